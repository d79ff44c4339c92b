//! A store written by an earlier schema opens with every read unchanged.
//!
//! `tests/fixtures/v2/confstrata.db` was made by the build that wrote
//! schema version 2 (whole layer documents per version), through the CLI:
//! two namespaces, a declaration change, 22 commits of sets, unsets,
//! secrets, a data key rotation, a layer deletion and a layer rollback
//! (`tests/fixtures/v2/make.sh`). `dump.json` is what that build's store
//! answered to every read at every revision ([`dump`]). The test opens a
//! copy with this build (which migrates it) and asks the same.

use std::path::{Path, PathBuf};

use confstrata_core::serde_json::{Value, json};
use confstrata_core::{LayerPath, Store};

use crate::open;

fn fixture(version: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(version)
}

/// Every read of a store at every revision, as JSON: revision infos,
/// namespaces, every layer (whole, by section, and all of a namespace),
/// histories, the change feed, the journal and the settings.
pub(crate) fn dump(store: &dyn Store) -> Value {
    let current = store.revision().unwrap();
    let mut revisions = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for rev in 0..=current {
        for n in store.namespaces(rev).unwrap() {
            names.insert(n.spec.name.clone());
        }
    }
    for rev in 0..=current {
        let mut namespaces = Vec::new();
        for name in &names {
            let layers = store.layers(name, rev).unwrap();
            let mut paths: std::collections::BTreeSet<LayerPath> =
                layers.iter().map(|l| l.layer.clone()).collect();
            // Layers deleted by then must read as absent, one by one too.
            for r in 0..=current {
                for l in store.layers(name, r).unwrap() {
                    paths.insert(l.layer);
                }
            }
            let mut one_by_one = Vec::new();
            for p in &paths {
                let whole = store.layer(name, p, rev).unwrap();
                let mut sections = Vec::new();
                if let Some(w) = &whole {
                    for top in w.document.keys() {
                        let s = store.layer_section(name, p, rev, top).unwrap();
                        sections.push(json!([top, s]));
                    }
                }
                one_by_one.push(json!([p.as_str(), whole, sections]));
            }
            namespaces.push(json!({
                "name": name.as_str(),
                "declaration": store.namespace(name, rev).unwrap(),
                "layers": layers,
                "one_by_one": one_by_one,
            }));
        }
        revisions.push(json!({
            "revision": rev,
            "info": store.revision_info(rev).unwrap(),
            "namespaces": namespaces,
        }));
    }
    let histories: Vec<Value> = names
        .iter()
        .map(|n| {
            json!({
                "name": n.as_str(),
                "layers": store.history(n, None, usize::MAX).unwrap(),
                "declaration": store.declaration_history(n, usize::MAX).unwrap(),
            })
        })
        .collect();
    json!({
        "current": current,
        "oldest": store.oldest_revision().unwrap(),
        "revisions": revisions,
        "histories": histories,
        "changes": store.changes_since(0, usize::MAX).unwrap(),
        "journal": store.journal(0, usize::MAX).unwrap(),
        "settings": store.settings("").unwrap(),
    })
}

/// Writes `dump.json` for a fixture database: run by hand with the build
/// that made it (`CONFSTRATA_FIXTURE=tests/fixtures/v2 cargo test -p
/// confstrata-store-sqlite --test it -- --ignored write_fixture_dump`).
#[test]
#[ignore = "writes a fixture; run by hand with the build that made it"]
fn write_fixture_dump() {
    let dir = PathBuf::from(std::env::var("CONFSTRATA_FIXTURE").unwrap());
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("confstrata.db"), tmp.path().join("confstrata.db")).unwrap();
    let store = open(&tmp.path().join("confstrata.db"));
    let text = confstrata_core::serde_json::to_string_pretty(&dump(&store)).unwrap();
    std::fs::write(dir.join("dump.json"), text + "\n").unwrap();
}

#[test]
fn a_version_2_store_migrates_with_every_read_unchanged() {
    let dir = fixture("v2");
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("confstrata.db");
    std::fs::copy(dir.join("confstrata.db"), &db).unwrap();
    let expected: Value = confstrata_core::serde_json::from_str(
        &std::fs::read_to_string(dir.join("dump.json")).unwrap(),
    )
    .unwrap();
    let store = open(&db);
    let got = dump(&store);
    assert_eq!(got["current"], 22, "the fixture is the one described");
    // Compare part by part, so that a failure names the part.
    for part in [
        "current",
        "oldest",
        "histories",
        "changes",
        "journal",
        "settings",
    ] {
        assert_eq!(got[part], expected[part], "{part}");
    }
    let (got, expected) = (
        got["revisions"].as_array().unwrap(),
        expected["revisions"].as_array().unwrap(),
    );
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(expected) {
        assert_eq!(g, e, "revision {}", e["revision"]);
    }
    // Rewritten once so that compaction gives space back.
    let mode: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, 2);
    // Schema 4 gave it an identity, which stays.
    let id = store.store_id().unwrap();
    assert_eq!(id.len(), 32, "{id}");
    drop(store);
    // Opened again (migrated already): the same.
    let store = open(&db);
    assert_eq!(dump(&store)["revisions"].as_array().unwrap(), got);
    assert_eq!(store.store_id().unwrap(), id);
}
