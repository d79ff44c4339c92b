use super::*;

#[test]
fn workspace_dependencies_point_the_right_way() {
    let problems = check_dependencies(&metadata().unwrap()).unwrap();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_catches_a_bad_edge() {
    let meta = serde_json::json!({"packages": [
        {"name": "confstrata-core", "manifest_path": "/w/crates/core/Cargo.toml", "description": "d",
         "dependencies": [{"name": "rusqlite", "kind": null}, {"name": "confstrata-store-sqlite", "kind": null}]},
        {"name": "confstrata-store-sqlite", "manifest_path": "/w/crates/store-sqlite/Cargo.toml", "description": "d",
         "dependencies": [{"name": "tonic-health", "kind": null}, {"name": "tempfile", "kind": "dev"},
                          {"name": "sqlx", "kind": null}]},
        {"name": "confstrata-http-api", "manifest_path": "/w/crates/http-api/Cargo.toml",
         "dependencies": [{"name": "confstrata-grpc-api", "kind": null}]},
    ]});
    let p = check_dependencies(&meta).unwrap();
    assert_eq!(p.len(), 6, "{p:?}");
    assert!(p[0].contains("confstrata-core must not depend on confstrata-store-sqlite"));
    assert!(p[1].contains("confstrata-core must not depend on rusqlite"));
    assert!(p[2].contains("confstrata-store-sqlite must not depend on tonic-health"));
    assert!(p[3].contains("confstrata-store-sqlite must not depend on sqlx"));
    assert!(p[4].contains("confstrata-http-api has no description"));
    assert!(p[5].contains("confstrata-http-api must not depend on confstrata-grpc-api"));
}
