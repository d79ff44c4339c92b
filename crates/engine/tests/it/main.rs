//! The engine's integration tests, one binary: the view cache, incremental
//! re-resolve (property tests), security (authorization, sealing, audit)
//! and validation on the commit path.

mod cache;
mod generate;
mod imports;
mod incremental;
mod scoped;
mod security;
mod validation;
