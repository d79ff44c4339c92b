//! Master-key rotation, killed at every step: the store opens with the old
//! or the new key (never neither), every secret opens, and `audit verify`
//! passes, across rotations.
//!
//! The parent test re-runs this test binary as a child that opens the data
//! directory and rotates the master key through a key file that aborts the
//! process (no destructors, no flush: as a kill) at one step. The child is
//! an ordinary test that returns at once unless [`CHILD_ENV`] is set, so
//! both `cargo test` and `cargo nextest` can run it.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use confstrata_core::serde_json::{Value, json};
use confstrata_core::{At, ChangeSet, Result, Store as _, parse_context};
use confstrata_engine::{Caller, Engine, MasterKey, MasterKeyFile, SecurityOptions};
use confstrata_host::{DB_FILE, KeyFile, MASTER_KEY_FILE};

/// Set to the data directory in the child process.
const CHILD_ENV: &str = "CONFSTRATA_MASTER_KEY_CHILD";
/// The step at which the child aborts.
const STEP_ENV: &str = "CONFSTRATA_MASTER_KEY_STEP";
const CHILD_TEST: &str = "master_key::child_rotates_and_aborts";

/// Where the child stops.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Step {
    /// Half of the staged key written.
    StagingHalfWritten,
    /// The staged key written and flushed; nothing committed.
    Staged,
    /// Committed; the staged key not yet renamed.
    Committed,
    /// Renamed; the engine not yet told.
    Renamed,
    /// Nowhere: the rotation completes.
    Never,
}

const STEPS: [Step; 5] = [
    Step::StagingHalfWritten,
    Step::Staged,
    Step::Committed,
    Step::Renamed,
    Step::Never,
];

impl Step {
    fn parse(s: &str) -> Step {
        *STEPS.iter().find(|x| format!("{x:?}") == s).unwrap()
    }

    /// Whether the store names the new key after a kill here.
    fn committed(self) -> bool {
        matches!(self, Step::Committed | Step::Renamed | Step::Never)
    }
}

/// A key file that aborts the process at one step.
struct Crashing {
    inner: KeyFile,
    step: Step,
}

impl MasterKeyFile for Crashing {
    fn stage(&self) -> Result<MasterKey> {
        if self.step == Step::StagingHalfWritten {
            std::fs::write(self.inner.staged_path(), "0123456789abcdef0123").unwrap();
            std::process::abort();
        }
        let key = self.inner.stage()?;
        if self.step == Step::Staged {
            std::process::abort();
        }
        Ok(key)
    }

    fn promote(&self) -> Result<()> {
        if self.step == Step::Committed {
            std::process::abort();
        }
        self.inner.promote()?;
        if self.step == Step::Renamed {
            std::process::abort();
        }
        Ok(())
    }

    fn discard(&self) {
        self.inner.discard();
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

fn cs(v: Value) -> ChangeSet {
    confstrata_core::serde_json::from_value(v).unwrap()
}

fn admin() -> Caller {
    Caller::local("ops")
}

/// The child: opens the data dir as the host does, with a key file that
/// aborts at the step asked for, and rotates.
#[test]
fn child_rotates_and_aborts() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return; // An ordinary test run: nothing to do.
    };
    let dir = Path::new(&dir);
    let step = Step::parse(&std::env::var(STEP_ENV).unwrap());
    let store = confstrata_store_sqlite::SqliteStore::open(&dir.join(DB_FILE)).unwrap();
    let stored = store
        .setting(confstrata_engine::MASTER_KEY_ID_SETTING)
        .unwrap();
    let inner = KeyFile::new(dir.join(MASTER_KEY_FILE));
    let (key, _) = inner.open(stored.as_deref()).unwrap();
    let engine = Engine::with_security(Arc::new(store), SecurityOptions::new(key)).unwrap();
    assert!(engine.set_master_key_file(Box::new(Crashing { inner, step })));
    engine.rotate_master_key(&admin()).unwrap();
    assert_eq!(step, Step::Never, "the child should have aborted");
}

/// Seeds two namespaces with secrets, a data key rotation and audit
/// records; returns the plaintexts every resolve must show.
fn seed(engine: &Engine, round: u64) -> Vec<(String, String, Value)> {
    let mut expected = Vec::new();
    for ns in ["pay", "orders"] {
        let secret = format!("canary-{ns}-{round}");
        let mut ops = Vec::new();
        if round == 0 {
            ops.push(json!({"op": "put-namespace", "spec": {"name": ns, "levels": ["defaults", "env/{env}"],
                "matrix": {"env": ["prod"]}}}));
        }
        ops.push(json!({"op": "set", "namespace": ns, "layer": "env/prod",
            "key": format!("db.password{round}"), "value": secret, "secret": true}));
        engine
            .commit(&admin(), &cs(json!({"message": "seed", "ops": ops})))
            .unwrap();
        expected.push((
            ns.to_owned(),
            format!("password{round}"),
            Value::String(secret),
        ));
    }
    // A second data key for one namespace: old values stay under the first.
    engine
        .rotate_key(&admin(), &"pay".parse().unwrap())
        .unwrap();
    expected
}

/// Opens the data dir as the server does and checks every secret and the
/// audit chain (keyed by one audit key more than `rotations`); returns
/// the engine and its master key id.
fn check(dir: &Path, expected: &[(String, String, Value)], rotations: usize) -> (Engine, String) {
    let engine = confstrata_host::open(dir).unwrap();
    assert!(
        !dir.join(format!("{MASTER_KEY_FILE}.next")).exists(),
        "opening finishes or discards a staged key"
    );
    let ctx = parse_context("env=prod").unwrap();
    for (ns, key, value) in expected {
        let view = engine
            .resolve(&admin(), &ns.parse().unwrap(), &ctx, At::Latest)
            .unwrap();
        assert_eq!(&view.document["db"][key], value, "{ns} {key}");
    }
    let verified = engine.audit_verify(&admin()).unwrap();
    let records = engine.audit_records(&admin(), 0, usize::MAX).unwrap();
    assert_eq!(verified.records, records.len() as u64);
    // Every rotation that committed moved the chain to a new audit key,
    // and the records keyed by the earlier ones verified above.
    let keys: std::collections::BTreeSet<String> =
        records.iter().map(|r| r.key_id.to_string()).collect();
    assert_eq!(keys.len(), rotations + 1, "{keys:?}");
    let id = engine.master_key_id(&admin()).unwrap();
    (engine, id)
}

#[test]
fn a_rotation_killed_at_any_step_leaves_a_store_that_opens_with_every_secret() {
    for step in STEPS {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut expected = Vec::new();
        {
            let engine = confstrata_host::open(&data).unwrap();
            expected.extend(seed(&engine, 0));
            // A first rotation that completes: the one killed below is a
            // second, so earlier audit keys must be carried on too.
            engine.rotate_master_key(&admin()).unwrap();
            expected.extend(seed(&engine, 1));
        }
        let (_, before) = check(&data, &expected, 1);

        let status = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", CHILD_TEST, "--nocapture"])
            .env(CHILD_ENV, &data)
            .env(STEP_ENV, format!("{step:?}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.success(), step == Step::Never, "{step:?}: {status}");

        let rotated = 1 + usize::from(step.committed());
        let (engine, after) = check(&data, &expected, rotated);
        assert_eq!(
            after != before,
            step.committed(),
            "{step:?}: the store names the new key exactly when the rotation committed"
        );
        // And it goes on: a new secret, another rotation, a reopen.
        expected.extend(seed(&engine, 2));
        let r = engine.rotate_master_key(&admin()).unwrap();
        assert_eq!(r.from, after);
        drop(engine);
        let (_, last) = check(&data, &expected, rotated + 1);
        assert_eq!(last, r.to, "{step:?}");
    }
}

#[test]
fn a_wrong_key_file_is_refused_naming_both_keys_and_an_env_key_does_not_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let id = {
        let engine = confstrata_host::open(&data).unwrap();
        seed(&engine, 0);
        engine.rotate_master_key(&admin()).unwrap().to
    };
    // Another key in the file: refused, naming the key the store needs.
    let path = data.join(MASTER_KEY_FILE);
    std::fs::remove_file(&path).unwrap();
    MasterKey::generate_file(&path).unwrap();
    let err = confstrata_host::open(&data).err().unwrap().to_string();
    assert!(
        err.contains(&format!("wrapped by master key {id}")),
        "{err}"
    );
    // A stray staged key that the store does not name changes nothing.
    std::fs::rename(&path, data.join(format!("{MASTER_KEY_FILE}.next"))).unwrap();
    let err = confstrata_host::open(&data).err().unwrap().to_string();
    assert!(err.contains(&id), "{err}");

    // A key from memory (or the environment): no file to replace.
    let store = confstrata_store_sqlite::SqliteStore::open(&dir.path().join("mem.db")).unwrap();
    let engine = Engine::with_security(
        Arc::new(store),
        SecurityOptions::new(MasterKey::generate().unwrap()),
    )
    .unwrap();
    let err = engine.rotate_master_key(&admin()).unwrap_err().to_string();
    assert!(err.contains("does not come from a key file"), "{err}");
}
