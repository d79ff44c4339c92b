//! Tidy checks that keep the architecture honest, run as ordinary tests.
//!
//! The dependency direction of docs/ARCHITECTURE.md is read from
//! `cargo metadata` and compared with an allow-table, so a change that makes
//! `core` depend on SQLite, or a domain crate on gRPC, fails CI.

use std::process::Command;

use anyhow::{Context, Result};
use serde_json::Value;

/// Internal crates each crate may depend on (normal dependencies).
const INTERNAL: &[(&str, &[&str])] = &[
    ("core", &[]),
    // One crate per store backend: the SQLite one now, PostgreSQL later.
    ("store-sqlite", &["core"]),
    ("store-postgres", &["core"]),
    ("cache", &["core"]),
    ("crypto", &["core"]),
    ("access", &["core"]),
    ("rules", &["core"]),
    ("analytics", &["core"]),
    ("backup", &["core"]),
    ("templates", &["core", "rules"]),
    (
        // Given its store, never opening one (the host does).
        "engine",
        &[
            "core",
            "cache",
            "crypto",
            "access",
            "rules",
            "templates",
            "analytics",
            "backup",
        ],
    ),
    // Only behind the `core` feature, for the shared wire conversions.
    ("proto", &["core"]),
    // The protocol-free runtime: opening the store is its job, not the engine's.
    (
        "host",
        &["core", "engine", "store-sqlite", "store-postgres"],
    ),
    // The two front doors sit on the host, never on each other.
    ("grpc-api", &["core", "engine", "host", "proto"]),
    ("http-api", &["core", "engine", "host"]),
    ("client", &["core", "proto"]),
    (
        "cli",
        &[
            "core", "engine", "host", "grpc-api", "http-api", "client", "proto",
        ],
    ),
];

/// External crates only some workspace members may use. `xtask` runs the
/// code generator; `benches` holds the gRPC load generator.
const RESTRICTED: &[(&str, &[&str])] = &[
    (
        "rusqlite",
        &["confstrata-store-sqlite", "confstrata-benches"],
    ),
    // A PostgreSQL store is a crate of its own, never inside the SQLite one;
    // the whole family is caught (see `family`).
    ("postgres", &["confstrata-store-postgres"]),
    (
        "tonic",
        &[
            "confstrata-proto",
            "confstrata-grpc-api",
            "confstrata-client",
            "confstrata-benches",
            "xtask",
        ],
    ),
    (
        "prost",
        &[
            "confstrata-proto",
            "confstrata-grpc-api",
            "confstrata-client",
            "confstrata-benches",
            "xtask",
        ],
    ),
    // The router type of the front doors and the host's listener.
    (
        "axum",
        &[
            "confstrata-host",
            "confstrata-grpc-api",
            "confstrata-http-api",
        ],
    ),
    // The listener itself: only the host serves connections.
    ("hyper", &["confstrata-host"]),
    ("hyper-util", &["confstrata-host"]),
    ("tokio-rustls", &["confstrata-host"]),
    // OpenAPI: the REST door (and, behind a derive-only feature, core).
    ("utoipa", &["confstrata-http-api", "confstrata-core"]),
    ("rhai", &["confstrata-rules"]),
    ("jsonschema", &["confstrata-rules"]),
    ("prometheus", &["confstrata-analytics"]),
    ("chacha20poly1305", &["confstrata-crypto"]),
    ("dashmap", &["confstrata-cache"]),
];

/// The restricted family a crate belongs to, by name: `tonic-health` is
/// tonic's, `prost-types` prost's; every PostgreSQL client (`postgres`,
/// `tokio-postgres`, `deadpool-postgres`, `sqlx`, `diesel`) is `postgres`.
fn family(dep: &str) -> Option<&'static str> {
    let base = dep.split('-').next().unwrap_or(dep);
    match base {
        "tonic" => Some("tonic"),
        "prost" => Some("prost"),
        _ if dep.contains("postgres") || base == "sqlx" || base == "diesel" || dep == "pq-sys" => {
            Some("postgres")
        }
        _ => None,
    }
}

/// Runs `cargo metadata` for the workspace.
pub(crate) fn metadata() -> Result<Value> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .context("cannot run cargo metadata")?;
    anyhow::ensure!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Every breach of the dependency rules, as readable lines.
pub(crate) fn check_dependencies(meta: &Value) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let packages = meta["packages"]
        .as_array()
        .context("metadata has no packages")?;
    for p in packages {
        let name = p["name"].as_str().unwrap_or_default();
        let manifest = p["manifest_path"].as_str().unwrap_or_default();
        let deps: Vec<(&str, bool)> = p["dependencies"]
            .as_array()
            .map(|d| {
                d.iter()
                    .map(|d| (d["name"].as_str().unwrap_or_default(), d["kind"].is_null()))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(folder) = manifest
            .strip_suffix("/Cargo.toml")
            .and_then(|m| m.rsplit_once("/crates/"))
            .map(|(_, f)| f)
        {
            if p["description"].as_str().is_none_or(str::is_empty) {
                problems.push(format!("{name} has no description in its Cargo.toml"));
            }
            if !manifest_inherits_lints(manifest) {
                problems.push(format!(
                    "{name} must say `[lints] workspace = true` in its Cargo.toml"
                ));
            }
            if name != format!("confstrata-{folder}") {
                problems.push(format!(
                    "crates/{folder} must be named confstrata-{folder}, not {name}"
                ));
            }
            match INTERNAL.iter().find(|(f, _)| *f == folder) {
                None => problems.push(format!("crates/{folder} is not in the tidy allow-table; add it with its allowed dependencies")),
                Some((_, allowed)) => {
                    for (dep, normal) in &deps {
                        if let Some(inner) = dep.strip_prefix("confstrata-")
                            && *normal
                            && !allowed.contains(&inner)
                        {
                            problems.push(format!("{name} must not depend on {dep} (allowed: {allowed:?})"));
                        }
                    }
                }
            }
        }
        for (dep, normal) in &deps {
            if !normal {
                continue;
            }
            for (restricted, users) in RESTRICTED {
                let hit = dep == restricted || family(dep) == Some(*restricted);
                if hit && !users.contains(&name) {
                    problems.push(format!(
                        "{name} must not depend on {dep} (only {users:?} may)"
                    ));
                }
            }
        }
    }
    Ok(problems)
}

/// Whether a crate's manifest inherits the workspace lints. `cargo
/// metadata` does not say, so the manifest is read (a missing file: the
/// test data of the checker's own test, which has none to read).
fn manifest_inherits_lints(manifest: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(manifest) else {
        return true;
    };
    let mut in_lints = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_lints = line == "[lints]";
        } else if in_lints && line.replace(' ', "") == "workspace=true" {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests;
