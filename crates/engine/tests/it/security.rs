//! Security through the engine: one authorization point for every
//! operation, sealed values opened or masked per caller, refusals that
//! reveal nothing, the audit chain, key rotation. Over the real SQLite store.

use confstrata_core::serde_json::{Value, json};
use confstrata_core::{At, ChangeSet, Error, parse_context};
use confstrata_engine::{Caller, Engine, PrincipalKind};

pub(crate) fn cs(v: Value) -> ChangeSet {
    confstrata_core::serde_json::from_value(v).unwrap()
}

pub(crate) struct World {
    _dir: tempfile::TempDir,
    pub(crate) engine: Engine,
    pub(crate) admin: Caller,
}

pub(crate) fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let engine = confstrata_host::open(&dir.path().join("data")).unwrap();
    let admin = Caller::local("ops");
    engine
        .commit(
            &admin,
            &cs(json!({"message": "seed", "ops": [
                {"op": "put-namespace", "spec": {"name": "pay", "levels": ["defaults", "env/{env}"],
                    "matrix": {"env": ["staging", "prod"]}}},
                {"op": "put", "namespace": "pay", "layer": "defaults",
                 "document": {"db": {"host": "localhost", "pool": 5, "password": "canary-default-1"}}},
                {"op": "set", "namespace": "pay", "layer": "env/prod", "key": "db.host", "value": "db.prod"},
                {"op": "set", "namespace": "pay", "layer": "env/prod", "key": "api.signing", "value": "canary-prod-2", "secret": true},
                {"op": "put-namespace", "spec": {"name": "hidden", "levels": ["defaults"]}},
                {"op": "put", "namespace": "hidden", "layer": "defaults", "document": {"x": 1}},
            ]})),
        )
        .unwrap();
    World {
        _dir: dir,
        engine,
        admin,
    }
}

impl World {
    /// A principal with roles, authenticated through a fresh token.
    pub(crate) fn user(&self, id: &str, roles: &[&str]) -> Caller {
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        self.engine
            .add_principal(&self.admin, id, id, PrincipalKind::User, &roles)
            .unwrap();
        let token = self.engine.issue_token(&self.admin, id, "test").unwrap();
        self.engine
            .authenticate(Some(&format!("Bearer {}", token.expose_secret())), "t")
            .unwrap()
    }
}

pub(crate) fn prod() -> confstrata_core::Context {
    parse_context("env=prod").unwrap()
}

#[test]
fn secrets_are_opened_for_secret_readers_and_masked_for_everyone_else() {
    let w = world();
    let pay = "pay".parse().unwrap();
    let viewer = w.user("vic", &["viewer"]);
    let reader = w.user("rita", &["secret-reader"]);

    let v = w
        .engine
        .resolve(&viewer, &pay, &prod(), At::Latest)
        .unwrap();
    assert_eq!(v.document["db"]["password"], "<sealed>");
    assert_eq!(v.document["api"]["signing"], "<sealed>");
    assert_eq!(v.document["db"]["host"], "db.prod");

    let v = w
        .engine
        .resolve(&reader, &pay, &prod(), At::Latest)
        .unwrap();
    assert_eq!(v.document["db"]["password"], "canary-default-1");
    assert_eq!(v.document["api"]["signing"], "canary-prod-2");

    // Layers, explain and history follow the same rule.
    let l = w
        .engine
        .layer(&viewer, &pay, &"env/prod".parse().unwrap(), At::Latest)
        .unwrap();
    assert_eq!(l.document["api"]["signing"], "<sealed>");
    let x = w
        .engine
        .explain(
            &viewer,
            &pay,
            &prod(),
            &"db.password".parse().unwrap(),
            At::Latest,
        )
        .unwrap();
    assert_eq!(x.explanation.entries[0].value, Some(json!("<sealed>")));
    assert_eq!(x.explanation.value, Some(json!("<sealed>")));
    let x = w
        .engine
        .explain(
            &reader,
            &pay,
            &prod(),
            &"db.password".parse().unwrap(),
            At::Latest,
        )
        .unwrap();
    assert_eq!(x.explanation.value, Some(json!("canary-default-1")));
    let x = w
        .engine
        .explain(&viewer, &pay, &prod(), &"db".parse().unwrap(), At::Latest)
        .unwrap();
    let text = confstrata_core::serde_json::to_string(&x).unwrap();
    assert!(
        !text.contains("$sealed") && !text.contains("canary"),
        "{text}"
    );
    for h in w.engine.history(&viewer, &pay, None, 100).unwrap() {
        let text = confstrata_core::serde_json::to_string(&h.document).unwrap();
        assert!(!text.contains("canary"), "{text}");
    }
    let h = w.engine.history(&reader, &pay, None, 100).unwrap();
    let text = confstrata_core::serde_json::to_string(&h).unwrap();
    assert!(text.contains("canary-prod-2"), "{text}");

    // The store holds only ciphertext.
    let raw = w
        .engine
        .store()
        .layer(
            &pay,
            &"env/prod".parse().unwrap(),
            w.engine.revision().unwrap(),
        )
        .unwrap()
        .unwrap();
    let raw = confstrata_core::serde_json::to_string(&raw.document).unwrap();
    assert!(raw.contains("$sealed") && !raw.contains("canary"), "{raw}");
}

#[test]
fn refusals_name_the_action_and_resource_and_reveal_nothing() {
    let w = world();
    let pay: confstrata_core::NamespaceName = "pay".parse().unwrap();
    let stranger = w.user("sam", &[]);
    let editor = w.user("ed", &["non-prod-editor"]);

    // A namespace the caller has no grant on: the same refusal whether it exists or not.
    let exists = w
        .engine
        .resolve(
            &stranger,
            &"hidden".parse().unwrap(),
            &Default::default(),
            At::Latest,
        )
        .unwrap_err();
    let missing = w
        .engine
        .resolve(
            &stranger,
            &"nothere".parse().unwrap(),
            &Default::default(),
            At::Latest,
        )
        .unwrap_err();
    assert!(matches!(exists, Error::PermissionDenied { .. }), "{exists}");
    assert_eq!(
        exists.to_string().replace("hidden", "NS"),
        missing.to_string().replace("nothere", "NS")
    );
    assert!(
        exists.to_string().contains("sam may not read hidden"),
        "{exists}"
    );
    // Listing leaves it out.
    let names: Vec<String> = w
        .engine
        .namespaces(&editor, At::Latest)
        .unwrap()
        .iter()
        .map(|n| n.spec.name.to_string())
        .collect();
    assert_eq!(names, ["hidden", "pay"]);
    assert!(
        w.engine
            .namespaces(&stranger, At::Latest)
            .unwrap()
            .is_empty()
    );

    // A write to production by a non-prod editor: refused before anything,
    // even with a precondition that would have failed (no conflict leaks).
    let before = w.engine.revision().unwrap();
    let write = cs(json!({"ops": [
        {"op": "set", "namespace": "pay", "layer": "env/prod", "key": "db.pool", "value": 9, "expect_revision": 999},
    ]}));
    let e = w.engine.commit(&editor, &write).unwrap_err();
    assert!(
        e.to_string()
            .contains("ed may not write pay:env/prod#db.pool"),
        "{e}"
    );
    assert_eq!(w.engine.revision().unwrap(), before);
    // Staging is fine, and recorded under the principal whatever the change set says.
    let ok = cs(json!({"author": "someone-else", "ops": [
        {"op": "set", "namespace": "pay", "layer": "env/staging", "key": "db.pool", "value": 9},
    ]}));
    let info = w.engine.commit(&editor, &ok).unwrap();
    assert_eq!(
        w.engine
            .store()
            .revision_info(info.revision)
            .unwrap()
            .unwrap()
            .author,
        "ed"
    );
    // A user may not write a `$sealed` table (copying a ciphertext from elsewhere).
    let copied = cs(json!({"ops": [
        {"op": "set", "namespace": "pay", "layer": "env/staging", "key": "db.password",
         "value": {"$sealed": {"v": 1, "kid": "pay#1", "nonce": "AAAA", "ct": "AAAA"}}},
    ]}));
    let e = w.engine.commit(&w.admin, &copied).unwrap_err();
    assert!(e.to_string().contains("written only by the server"), "{e}");
    // Admin operations need admin.
    let e = w.engine.rotate_key(&editor, &pay).unwrap_err();
    assert!(e.to_string().contains("ed may not admin pay"), "{e}");
    let e = w.engine.audit_verify(&editor).unwrap_err();
    assert!(matches!(e, Error::PermissionDenied { .. }), "{e}");
}

#[test]
fn every_role_against_every_operation() {
    let w = world();
    let pay: confstrata_core::NamespaceName = "pay".parse().unwrap();
    let staging_write = cs(json!({"ops": [
        {"op": "set", "namespace": "pay", "layer": "env/staging", "key": "k", "value": 1}]}));
    let prod_write = cs(json!({"ops": [
        {"op": "set", "namespace": "pay", "layer": "env/prod", "key": "k", "value": 1}]}));
    // role: resolve, sees secret, staging write, prod write, rollback (publish), rotate key (admin), audit
    let table: &[(&str, [bool; 7])] = &[
        ("viewer", [true, false, false, false, false, false, false]),
        ("editor", [true, false, true, true, false, false, false]),
        ("publisher", [true, false, true, true, true, false, false]),
        (
            "secret-reader",
            [true, true, false, false, false, false, false],
        ),
        ("auditor", [false, false, false, false, false, false, true]),
        (
            "backup-operator",
            [true, true, false, false, false, false, false],
        ),
        ("admin", [true, true, true, true, true, true, true]),
        (
            "non-prod-editor",
            [true, false, true, false, false, false, false],
        ),
    ];
    for (i, (role, want)) in table.iter().enumerate() {
        let c = w.user(&format!("u{i}"), &[role]);
        let resolved = w.engine.resolve(&c, &pay, &prod(), At::Latest);
        let sees_secret = resolved
            .as_ref()
            .is_ok_and(|v| v.document["api"]["signing"] == "canary-prod-2");
        let got = [
            resolved.is_ok(),
            sees_secret,
            w.engine.commit(&c, &staging_write).is_ok(),
            w.engine.commit(&c, &prod_write).is_ok(),
            w.engine
                .rollback(
                    &c,
                    &pay,
                    Some(&"env/staging".parse().unwrap()),
                    At::Revision(1),
                    "",
                    false,
                )
                .is_ok(),
            w.engine.rotate_key(&c, &pay).is_ok(),
            w.engine.audit_verify(&c).is_ok(),
        ];
        assert_eq!(&got, want, "role {role}");
    }
}

#[test]
fn the_audit_chain_records_changes_refusals_and_secret_reads_and_verifies() {
    let w = world();
    let pay = "pay".parse().unwrap();
    let viewer = w.user("vic", &["secret-reader"]);
    w.engine
        .resolve(&viewer, &pay, &prod(), At::Latest)
        .unwrap();
    let _ = w.engine.commit(
        &viewer,
        &cs(json!({"ops": [{"op": "set", "namespace": "pay", "layer": "defaults", "key": "a", "value": 1}]})),
    );
    assert!(
        w.engine
            .authenticate(Some("Bearer cst_nope"), "r9")
            .is_err()
    );
    let records = w.engine.audit_records(&w.admin, 0, 1000).unwrap();
    let outcomes: Vec<(String, String, String)> = records
        .iter()
        .map(|r| {
            (
                r.principal.as_ref().map_or("-".into(), ToString::to_string),
                r.action.to_string(),
                r.outcome.as_str().to_owned(),
            )
        })
        .collect();
    for want in [
        ("local:ops", "write", "success"),
        ("vic", "read-secrets", "success"),
        ("vic", "write", "denied"),
        ("-", "read", "unauthenticated"),
    ] {
        assert!(
            outcomes
                .iter()
                .any(|o| (o.0.as_str(), o.1.as_str(), o.2.as_str()) == want),
            "{want:?} missing from {outcomes:?}"
        );
    }
    let text = confstrata_core::serde_json::to_string(&records).unwrap();
    assert!(
        !text.contains("canary"),
        "no secret in the audit log: {text}"
    );
    let v = w.engine.audit_verify(&w.admin).unwrap();
    assert_eq!(v.records, records.len() as u64);
    assert_eq!(v.last_seq, records.last().unwrap().seq);
}

#[test]
fn keys_rotate_rewrap_and_retire_online() {
    let w = world();
    let pay: confstrata_core::NamespaceName = "pay".parse().unwrap();
    let first = w.engine.keys(&w.admin).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].id, "pay#1");
    let new = w.engine.rotate_key(&w.admin, &pay).unwrap();
    assert_eq!(new, "pay#2");
    // Old values still open; new ones use the new key.
    let v = w
        .engine
        .resolve(&w.admin, &pay, &prod(), At::Latest)
        .unwrap();
    assert_eq!(v.document["db"]["password"], "canary-default-1");
    let e = w.engine.retire_key(&w.admin, "pay#1").unwrap_err();
    assert!(e.to_string().contains("pay#1"), "{e}");
    let info = w.engine.rewrap(&w.admin, &pay).unwrap().unwrap();
    assert!(info.revision > 1);
    assert!(w.engine.rewrap(&w.admin, &pay).unwrap().is_none());
    let v = w
        .engine
        .resolve(&w.admin, &pay, &prod(), At::Latest)
        .unwrap();
    assert_eq!(v.document["api"]["signing"], "canary-prod-2");
    // Still referenced by history (a rollback must still open), so still refused.
    assert!(w.engine.retire_key(&w.admin, "pay#1").is_err());
}

#[test]
fn a_tampered_ciphertext_is_an_integrity_error_never_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pay: confstrata_core::NamespaceName = "pay".parse().unwrap();
    {
        let e = confstrata_host::open(&data).unwrap();
        let admin = Caller::local("ops");
        e.commit(
            &admin,
            &cs(json!({"ops": [
                {"op": "put-namespace", "spec": {"name": "pay", "levels": ["defaults"]}},
                {"op": "set", "namespace": "pay", "layer": "defaults", "key": "token", "value": "canary-3"},
            ]})),
        )
        .unwrap();
    }
    let conn = rusqlite::Connection::open(data.join("confstrata.db")).unwrap();
    let doc: String = conn
        .query_row("SELECT doc FROM layer_versions WHERE ns = 'pay'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let mut v: Value = confstrata_core::serde_json::from_str(&doc).unwrap();
    let ct = v["token"]["$sealed"]["ct"].as_str().unwrap().to_owned();
    let flipped: String = ct
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 3 {
                if c == 'A' { 'B' } else { 'A' }
            } else {
                c
            }
        })
        .collect();
    v["token"]["$sealed"]["ct"] = Value::String(flipped);
    conn.execute(
        "UPDATE layer_versions SET doc = ?1 WHERE ns = 'pay'",
        [confstrata_core::serde_json::to_string(&v).unwrap()],
    )
    .unwrap();
    drop(conn);
    let e = confstrata_host::open(&data).unwrap();
    let err = e
        .resolve(&Caller::local("ops"), &pay, &Default::default(), At::Latest)
        .unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    assert!(err.to_string().contains("pay:defaults"), "{err}");
}

#[test]
fn a_different_master_key_cannot_open_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let e = confstrata_host::open(&data).unwrap();
        e.commit(
            &Caller::local("ops"),
            &cs(json!({"ops": [
                {"op": "put-namespace", "spec": {"name": "pay", "levels": ["defaults"]}},
                {"op": "set", "namespace": "pay", "layer": "defaults", "key": "password", "value": "x"},
            ]})),
        )
        .unwrap();
    }
    std::fs::remove_file(data.join("master.key")).unwrap();
    let err = confstrata_host::open(&data).err().unwrap();
    assert!(
        err.to_string().contains("master key"),
        "a new key cannot unwrap the old data keys: {err}"
    );
}

/// The real SQLite store with its journal switched off on demand: what a
/// full disk or a broken audit table looks like to the engine.
struct BrokenJournal {
    inner: confstrata_store_sqlite::SqliteStore,
    broken: std::sync::atomic::AtomicBool,
}

impl BrokenJournal {
    fn check(&self) -> confstrata_core::Result<()> {
        if self.broken.load(std::sync::atomic::Ordering::SeqCst) {
            Err(Error::storage("disk I/O error (injected)"))
        } else {
            Ok(())
        }
    }
}

impl confstrata_core::Store for BrokenJournal {
    fn revision(&self) -> confstrata_core::Result<u64> {
        self.inner.revision()
    }
    fn oldest_revision(&self) -> confstrata_core::Result<u64> {
        self.inner.oldest_revision()
    }
    fn revision_for_time(&self, t: confstrata_core::Timestamp) -> confstrata_core::Result<u64> {
        self.inner.revision_for_time(t)
    }
    fn revision_info(
        &self,
        r: u64,
    ) -> confstrata_core::Result<Option<confstrata_core::RevisionInfo>> {
        self.inner.revision_info(r)
    }
    fn namespace(
        &self,
        n: &confstrata_core::NamespaceName,
        r: u64,
    ) -> confstrata_core::Result<Option<confstrata_core::NamespaceRecord>> {
        self.inner.namespace(n, r)
    }
    fn namespaces(&self, r: u64) -> confstrata_core::Result<Vec<confstrata_core::NamespaceRecord>> {
        self.inner.namespaces(r)
    }
    fn layer(
        &self,
        n: &confstrata_core::NamespaceName,
        l: &confstrata_core::LayerPath,
        r: u64,
    ) -> confstrata_core::Result<Option<confstrata_core::LayerRecord>> {
        self.inner.layer(n, l, r)
    }
    fn layers(
        &self,
        n: &confstrata_core::NamespaceName,
        r: u64,
    ) -> confstrata_core::Result<Vec<confstrata_core::LayerRecord>> {
        self.inner.layers(n, r)
    }
    fn history(
        &self,
        n: &confstrata_core::NamespaceName,
        l: Option<&confstrata_core::LayerPath>,
        limit: usize,
    ) -> confstrata_core::Result<Vec<confstrata_core::LayerVersion>> {
        self.inner.history(n, l, limit)
    }
    fn declaration_history(
        &self,
        n: &confstrata_core::NamespaceName,
        limit: usize,
    ) -> confstrata_core::Result<Vec<confstrata_core::DeclarationVersion>> {
        self.inner.declaration_history(n, limit)
    }
    fn changes_since(
        &self,
        a: u64,
        limit: usize,
    ) -> confstrata_core::Result<Vec<confstrata_core::Change>> {
        self.inner.changes_since(a, limit)
    }
    fn commit_checked(
        &self,
        c: &ChangeSet,
        j: Option<confstrata_core::JournalFn>,
        check: Option<confstrata_core::CheckFn>,
    ) -> confstrata_core::Result<confstrata_core::CommitInfo> {
        // The journal function runs inside the transaction: failing there
        // is failing to store the record.
        let broken = self.broken.load(std::sync::atomic::Ordering::SeqCst);
        let j = j.map(|f| -> confstrata_core::JournalFn {
            Box::new(move |slot| {
                if broken {
                    Err(Error::storage("disk I/O error (injected)"))
                } else {
                    f(slot)
                }
            })
        });
        self.inner.commit_checked(c, j, check)
    }
    fn append_journal(
        &self,
        j: confstrata_core::JournalFn,
    ) -> confstrata_core::Result<confstrata_core::JournalRecord> {
        self.check()?;
        self.inner.append_journal(j)
    }
    fn write_settings(
        &self,
        w: &[confstrata_core::SettingWrite],
        j: Option<confstrata_core::JournalFn>,
    ) -> confstrata_core::Result<()> {
        self.check()?;
        self.inner.write_settings(w, j)
    }
    fn setting(&self, k: &str) -> confstrata_core::Result<Option<String>> {
        self.inner.setting(k)
    }
    fn settings(&self, p: &str) -> confstrata_core::Result<Vec<(String, String)>> {
        self.inner.settings(p)
    }
    fn journal(
        &self,
        a: u64,
        l: usize,
    ) -> confstrata_core::Result<Vec<confstrata_core::JournalRecord>> {
        self.inner.journal(a, l)
    }
    fn apply_retention(
        &self,
        p: &confstrata_core::RetentionPolicy,
        n: confstrata_core::Timestamp,
    ) -> confstrata_core::Result<confstrata_core::RetentionReport> {
        self.inner.apply_retention(p, n)
    }
}

#[test]
fn without_an_audit_record_nothing_is_committed_and_audited_reads_fail() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(BrokenJournal {
        inner: confstrata_store_sqlite::SqliteStore::open(&dir.path().join("db")).unwrap(),
        broken: std::sync::atomic::AtomicBool::new(false),
    });
    let mut options =
        confstrata_engine::SecurityOptions::new(confstrata_crypto::MasterKey::generate().unwrap());
    options.audit_reads = true;
    let engine = Engine::with_security(store.clone(), options).unwrap();
    let admin = Caller::local("ops");
    let seed = cs(json!({"ops": [
        {"op": "put-namespace", "spec": {"name": "pay", "levels": ["defaults"]}},
        {"op": "put", "namespace": "pay", "layer": "defaults", "document": {"n": 1}},
    ]}));
    engine.commit(&admin, &seed).unwrap();
    let pay = "pay".parse().unwrap();
    engine
        .resolve(&admin, &pay, &Default::default(), At::Latest)
        .unwrap();

    store
        .broken
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let change = cs(json!({"ops": [
        {"op": "set", "namespace": "pay", "layer": "defaults", "key": "n", "value": 2},
    ]}));
    let e = engine.commit(&admin, &change).unwrap_err();
    assert!(e.to_string().contains("injected"), "{e}");
    assert_eq!(
        engine.revision().unwrap(),
        1,
        "the change was not committed"
    );
    let e = engine
        .resolve(&admin, &pay, &Default::default(), At::Latest)
        .unwrap_err();
    assert!(e.to_string().contains("could not be audited"), "{e}");
    let e = engine.rotate_key(&admin, &pay).unwrap_err();
    assert!(e.to_string().contains("injected"), "{e}");
    assert!(
        engine.keys(&admin).unwrap().is_empty(),
        "the key was not kept"
    );

    store
        .broken
        .store(false, std::sync::atomic::Ordering::SeqCst);
    engine.commit(&admin, &change).unwrap();
    assert_eq!(engine.revision().unwrap(), 2);
    let v = engine.audit_verify(&admin).unwrap();
    assert!(v.records >= 3, "{v:?}");
}

/// Issue 12, item 2: a refused write changes nothing, not even the keyring.
/// Every way a change set can be refused after it asked for a namespace's
/// first data key leaves no key; only a committed one creates it.
#[test]
fn a_refused_write_leaves_no_data_key_behind() {
    let w = world();
    let keys = |w: &World| -> Vec<String> {
        w.engine
            .keys(&w.admin)
            .unwrap()
            .into_iter()
            .map(|k| k.id)
            .collect()
    };
    let before = keys(&w);
    w.engine
        .commit(
            &w.admin,
            &cs(json!({"ops": [
                {"op": "put-namespace", "spec": {"name": "checked", "levels": ["defaults"],
                    "validation": {"rules": [{"id": "small", "check": "cfg.n < 10"}]}}},
                {"op": "put", "namespace": "checked", "layer": "defaults", "document": {"n": 1}},
            ]})),
        )
        .unwrap();
    let revision = w.engine.revision().unwrap();
    let refused = [
        // The namespace does not exist.
        json!({"ops": [{"op": "set", "namespace": "nope", "layer": "defaults", "key": "a", "value": "s", "secret": true}]}),
        // The secret rule seals `password` keys; the layer is outside the hierarchy.
        json!({"ops": [{"op": "put", "namespace": "hidden", "layer": "env/x", "document": {"password": "p"}}]}),
        // A precondition fails.
        json!({"ops": [{"op": "set", "namespace": "hidden", "layer": "defaults", "key": "a", "value": "s", "secret": true, "expect_revision": 999}]}),
        // Validation refuses the change set.
        json!({"ops": [
            {"op": "set", "namespace": "checked", "layer": "defaults", "key": "token", "value": "s", "secret": true},
            {"op": "set", "namespace": "checked", "layer": "defaults", "key": "n", "value": 50},
        ]}),
    ];
    for changes in refused {
        let e = w.engine.commit(&w.admin, &cs(changes.clone())).unwrap_err();
        assert_eq!(keys(&w), before, "{changes}: {e}");
    }
    // A dry run seals to show the diff but creates nothing either.
    let d = w
        .engine
        .dry_run(
            &w.admin,
            &cs(json!({"ops": [{"op": "set", "namespace": "hidden", "layer": "defaults", "key": "a", "value": "s", "secret": true}]})),
        )
        .unwrap();
    assert_eq!(d.layers.len(), 1);
    assert_eq!(keys(&w), before);
    assert_eq!(w.engine.revision().unwrap(), revision);
    // The same write, accepted: its namespace's first key, and the value opens.
    w.engine
        .commit(
            &w.admin,
            &cs(json!({"ops": [{"op": "set", "namespace": "checked", "layer": "defaults", "key": "token", "value": "s3", "secret": true}]})),
        )
        .unwrap();
    let after = keys(&w);
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    assert!(after.iter().any(|k| k == "checked#1"), "{after:?}");
    let v = w
        .engine
        .resolve(
            &w.admin,
            &"checked".parse().unwrap(),
            &Default::default(),
            At::Latest,
        )
        .unwrap();
    assert_eq!(v.document["token"], "s3");
}

/// Issue 12, item 5: a `$sealed` table is never taken from a user, at the
/// top of a document, under a key, or through a key path.
#[test]
fn no_user_writes_a_sealed_table_at_any_depth() {
    let w = world();
    let sealed = json!({"v": 1, "kid": "pay#1", "nonce": "AAAA", "ct": "AAAA"});
    for changes in [
        json!({"ops": [{"op": "put", "namespace": "pay", "layer": "defaults", "document": {"$sealed": sealed}}]}),
        json!({"ops": [{"op": "put", "namespace": "pay", "layer": "defaults", "document": {"a": {"$sealed": sealed}}}]}),
        json!({"ops": [{"op": "set", "namespace": "pay", "layer": "defaults", "key": "a", "value": {"$sealed": sealed}}]}),
        json!({"ops": [{"op": "set", "namespace": "pay", "layer": "defaults", "key": "a.$sealed", "value": sealed}]}),
        json!({"ops": [{"op": "set", "namespace": "pay", "layer": "defaults", "key": "$sealed", "value": sealed}]}),
        json!({"ops": [{"op": "put", "namespace": "pay", "layer": "defaults", "document": {"$delete": true}}]}),
    ] {
        let e = w.engine.commit(&w.admin, &cs(changes.clone())).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("$sealed") || text.contains("$delete"),
            "{changes}: {text}"
        );
    }
}

#[test]
fn no_policy_change_may_leave_the_server_without_an_administrator() {
    let w = world();
    let e = &w.engine;
    let admin = w.user("ada", &["admin"]);
    let refused = |r: confstrata_core::Result<()>| {
        let err = r.unwrap_err();
        assert!(
            err.to_string().contains("no principal could administer"),
            "{err}"
        );
    };
    // The last administrator: revoking it, or taking its role, is refused.
    refused(e.revoke_principal(&admin, "ada"));
    refused(e.unbind(
        &w.admin,
        &confstrata_engine::Holder::Principal("ada".into()),
        "admin",
        None,
    ));
    // With a second one, either may go.
    e.add_principal(
        &w.admin,
        "bob",
        "bob",
        PrincipalKind::User,
        &["admin".into()],
    )
    .unwrap();
    e.revoke_principal(&admin, "ada").unwrap();
    refused(e.revoke_principal(&w.admin, "bob"));
}

#[test]
fn audit_verify_notices_records_cut_off_after_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backups = dir.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let admin = Caller::local("ops");
    let configure = |e: &confstrata_engine::Engine| {
        e.set_backups(confstrata_engine::backup::BackupConfig {
            target: Box::new(confstrata_engine::confstrata_backup::LocalDir::new(
                &backups,
            )),
            keys: None,
            retention: confstrata_engine::confstrata_backup::Retention::default(),
        });
    };
    let seq = {
        let e = confstrata_host::open(&data).unwrap();
        configure(&e);
        e.commit(
            &admin,
            &cs(json!({"ops": [{"op": "put-namespace", "spec": {"name": "pay", "levels": ["defaults"]}}]})),
        )
        .unwrap();
        for i in 0..3 {
            e.commit(
                &admin,
                &cs(json!({"ops": [
                    {"op": "set", "namespace": "pay", "layer": "defaults", "key": "n", "value": i},
                ]})),
            )
            .unwrap();
        }
        let (m, _) = e.backup_now(&admin, false, &mut |_| {}).unwrap();
        let v = e.audit_verify(&admin).unwrap();
        assert!(v.records >= 4, "{v:?}");
        m.journal.unwrap().seq
    };
    // Someone with the database cuts off the newest records: what is left
    // still chains, but not up to what the backup recorded.
    let conn = rusqlite::Connection::open(data.join("confstrata.db")).unwrap();
    conn.execute_batch("DROP TRIGGER journal_no_delete")
        .unwrap();
    conn.execute(
        "DELETE FROM journal WHERE seq >= ?1",
        [i64::try_from(seq).unwrap()],
    )
    .unwrap();
    drop(conn);
    let e = confstrata_host::open(&data).unwrap();
    configure(&e);
    let err = e.audit_verify(&admin).unwrap_err().to_string();
    assert!(
        err.contains("cut off") && err.contains(&seq.to_string()),
        "{err}"
    );
    drop(e);
    // Without the backups to compare with, the shorter chain verifies on
    // its own: the hole the backups' heads close.
    let e = confstrata_host::open(&data).unwrap();
    assert!(e.audit_verify(&admin).is_ok());
}
