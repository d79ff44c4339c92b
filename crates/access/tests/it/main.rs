//! Integration tests of `confstrata-access` through its public API.

mod audit;
mod policy;
mod roles;
mod scoped;
mod tokens;

use confstrata_access::{PrincipalId, Resource, ResourcePattern, RoleName};

pub(crate) fn id(s: &str) -> PrincipalId {
    PrincipalId::parse(s).unwrap()
}

pub(crate) fn role(s: &str) -> RoleName {
    RoleName::parse(s).unwrap()
}

pub(crate) fn res(s: &str) -> Resource {
    Resource::parse(s).unwrap()
}

pub(crate) fn pat(s: &str) -> ResourcePattern {
    ResourcePattern::parse(s).unwrap()
}
