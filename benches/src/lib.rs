//! Shared fixtures for Confstrata's benches: generated layers of many keys.

pub mod etcd;

use confstrata_core::Document;
use serde_json::{Map, Value};

/// A layer of `keys` leaves spread over sections and groups
/// (`s{i}.g{j}.k{k}`), whose values depend on `seed` so layers differ.
pub fn layer(keys: usize, seed: u64) -> Document {
    let mut doc = Map::new();
    let per_group = 10;
    let groups_per_section = 50;
    for n in 0..keys {
        let (s, g, k) = (
            n / (per_group * groups_per_section),
            (n / per_group) % groups_per_section,
            n % per_group,
        );
        let section = doc
            .entry(format!("s{s}"))
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(section) = section else {
            continue;
        };
        let group = section
            .entry(format!("g{g}"))
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(group) = group else {
            continue;
        };
        let v = match (n as u64 + seed) % 3 {
            0 => Value::from(n as u64 * 7 + seed),
            1 => Value::from(format!("value-{seed}-{n}")),
            _ => Value::Bool(n % 2 == 0),
        };
        group.insert(format!("k{k}"), v);
    }
    doc
}
