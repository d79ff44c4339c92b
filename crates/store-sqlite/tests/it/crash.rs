//! A writer process killed with SIGKILL loses no acknowledged commit and leaves
//! no partial change set behind.
//!
//! The parent test re-runs this test binary as a child that commits a stream of
//! change sets and prints `ACK <revision> <marker>` after each acknowledged
//! commit; the parent kills it after a number of acknowledgements, reopens the
//! store and checks it. The child is an ordinary test that returns at once
//! unless [`CHILD_ENV`] is set, so both `cargo test` and `cargo nextest` (which
//! runs `BINARY --exact NAME --nocapture`) can run it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use confstrata_core::serde_json::{Value, json};
use confstrata_core::{ChangeSet, Store};

use crate::{cs, lp, ns, open};

/// Set to the database path in the child writer process.
const CHILD_ENV: &str = "CONFSTRATA_CRASH_CHILD";
/// The first marker value the child writes.
const BASE_ENV: &str = "CONFSTRATA_CRASH_BASE";
/// The child test's full name inside this binary.
const CHILD_TEST: &str = "crash::child_writer";
const LAYERS: [&str; 3] = ["l/a", "l/b", "l/c"];
const ITERATIONS: u64 = 20;

/// Padding that makes each layer big enough to be stored as deltas: a
/// marker commit then writes a delta (`v` changed) to each layer, and
/// every 32nd a whole version, so kills land in both.
fn pad() -> String {
    "p".repeat(600)
}

fn marker_document(i: u64) -> Value {
    json!({"v": i, "pad": pad()})
}

fn marker_change(i: u64) -> ChangeSet {
    let ops: Vec<Value> = LAYERS
        .iter()
        .map(|l| json!({"op": "put", "namespace": "crash", "layer": l, "document": marker_document(i)}))
        .collect();
    cs(json!({"author": "child", "message": format!("marker {i}"), "ops": ops}))
}

/// The child: commits markers from three threads until killed (or a bound).
#[test]
fn child_writer() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return; // An ordinary test run: nothing to do.
    };
    let base: u64 = std::env::var(BASE_ENV).unwrap().parse().unwrap();
    let store = open(Path::new(&path));
    let next = AtomicU64::new(base);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..5_000 {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let info = store.commit(&marker_change(i)).unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {} {i}", info.revision).unwrap();
                    out.flush().unwrap();
                }
            });
        }
    });
}

/// The three layers' (document, revision) at a revision.
fn state(store: &dyn Store, rev: u64) -> Vec<Option<(Value, u64)>> {
    LAYERS
        .iter()
        .map(|l| {
            store
                .layer(&ns("crash"), &lp(l), rev)
                .unwrap()
                .map(|r| (Value::Object(r.document), r.revision))
        })
        .collect()
}

#[test]
fn a_killed_writer_loses_no_acknowledged_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    {
        let store = open(&path);
        store
            .commit(&cs(json!({"ops": [{"op": "put-namespace", "spec": {"name": "crash", "levels": ["l/{x}"]}}]})))
            .unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    for iteration in 0..ITERATIONS {
        let kill_after = usize::try_from(5 + iteration * 7 % 40).unwrap();
        let start = open(&path).revision().unwrap();
        let mut child = Command::new(&exe)
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .env(BASE_ENV, ((iteration + 1) * 1_000_000).to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut acks: BTreeMap<u64, u64> = BTreeMap::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            // libtest prints its own lines too; only ours start with ACK.
            let Some(rest) = line.strip_prefix("ACK ") else {
                continue;
            };
            let (rev, marker) = rest.split_once(' ').unwrap();
            let previous = acks.insert(rev.parse().unwrap(), marker.parse().unwrap());
            assert!(previous.is_none(), "revision {rev} acknowledged twice");
            if acks.len() == kill_after {
                child.kill().unwrap(); // SIGKILL on Unix.
                break;
            }
        }
        let status = child.wait().unwrap();
        assert_eq!(
            acks.len(),
            kill_after,
            "iteration {iteration}: the child stopped after {} acknowledgements ({status})",
            acks.len()
        );

        let store = open(&path);
        let current = store.revision().unwrap();
        let newest_ack = *acks.keys().next_back().unwrap();
        assert!(
            current >= newest_ack,
            "iteration {iteration}: store at {current}, acknowledged {newest_ack}"
        );
        // Every acknowledged revision is there, with all three layers holding its marker.
        for (&rev, &marker) in &acks {
            let expected = Some((marker_document(marker), rev));
            assert_eq!(
                state(&store, rev),
                vec![expected; 3],
                "iteration {iteration}, revision {rev}"
            );
            assert_eq!(
                store.revision_info(rev).unwrap().unwrap().message,
                format!("marker {marker}")
            );
        }
        // No revision shows part of a change set, acknowledged or not.
        for rev in start.max(2)..=current {
            let layers = state(&store, rev);
            assert!(
                layers[0].is_some() && layers.iter().all(|l| *l == layers[0]),
                "partial revision {rev}: {layers:?}"
            );
            assert_eq!(
                layers[0].as_ref().unwrap().1,
                rev,
                "revision {rev} wrote nothing"
            );
        }
        // The revision counter is dense: 1..=current, each once.
        let log: Vec<u64> = store
            .changes_since(0, usize::MAX)
            .unwrap()
            .iter()
            .map(|c| c.info.revision)
            .collect();
        assert_eq!(
            log,
            (1..=current).collect::<Vec<_>>(),
            "iteration {iteration}"
        );
        let latest = state(&store, current);
        assert!(latest.iter().all(|l| *l == latest[0]));
    }
    // The commits were stored as deltas, with whole versions between.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (whole, deltas): (i64, i64) = conn
        .query_row(
            "SELECT sum(base IS NULL), sum(base IS NOT NULL) FROM layer_versions",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(
        deltas > whole && whole > 3,
        "{whole} whole, {deltas} deltas"
    );
}
