//! A data directory written by an earlier schema (the fixture of
//! `confstrata-store-sqlite`, made through the CLI) opens with its master
//! key: secrets open, the audit chain verifies, contexts resolve.

use std::path::Path;

use confstrata_core::{At, parse_context};
use confstrata_engine::Caller;

#[test]
fn a_version_2_data_dir_opens_with_secrets_and_audit_chain_intact() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../store-sqlite/tests/fixtures/v2");
    let dir = tempfile::tempdir().unwrap();
    for f in ["confstrata.db", "master.key"] {
        std::fs::copy(fixture.join(f), dir.path().join(f)).unwrap();
    }
    // Git keeps no file modes: the key file must be the owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.path().join("master.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    let engine = confstrata_host::open(dir.path()).unwrap();
    let ops = Caller::local("ops");
    let verified = engine.audit_verify(&ops).unwrap();
    assert_eq!(verified.records, 28);
    let pay = engine
        .resolve(
            &ops,
            &"pay".parse().unwrap(),
            &parse_context("env=prod").unwrap(),
            At::Latest,
        )
        .unwrap();
    assert_eq!(pay.document["api"]["key"], "canary-fixture-3");
    assert_eq!(pay.document["db"]["password"], "canary-fixture-1");
    let old = engine
        .resolve(
            &ops,
            &"pay".parse().unwrap(),
            &parse_context("env=prod").unwrap(),
            At::Revision(11),
        )
        .unwrap();
    assert_eq!(old.document["api"]["key"], "canary-fixture-2");
    let web = engine
        .resolve(
            &ops,
            &"web".parse().unwrap(),
            &parse_context("env=prod,region=eu").unwrap(),
            At::Latest,
        )
        .unwrap();
    assert_eq!(web.document["db"]["host"], "eu2.db");
}
