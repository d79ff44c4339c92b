//! A namespace as files, a *bundle*: its declaration in `namespace.toml`
//! (or `.yaml`, `.yml`, `.json`) and one file per layer under `layers/`,
//! named by the layer path (`layers/env/prod.toml` is layer `env/prod`;
//! TOML, YAML, JSON or `.env`). `confstrata export` writes one;
//! [`change_set`] turns one into the change set that declares the
//! namespace and puts every layer, for every front end: the CLI reads it
//! from a directory, REST and gRPC clients send it as a map of files.
//!
//! ```
//! use std::collections::BTreeMap;
//! use confstrata_core::{Limits, Op, bundle};
//!
//! let files = BTreeMap::from([
//!     ("namespace.toml".to_owned(), b"name = \"web\"\nlevels = [\"defaults\", \"env/{env}\"]\n".to_vec()),
//!     ("layers/defaults.toml".to_owned(), b"port = 8080\n".to_vec()),
//!     ("layers/env/prod.yaml".to_owned(), b"port: 443\n".to_vec()),
//! ]);
//! let cs = bundle::change_set(&files, &Limits::default()).unwrap();
//! assert_eq!(cs.ops.len(), 3);
//! assert!(matches!(&cs.ops[2], Op::Put { layer, .. } if layer.as_str() == "env/prod"));
//! assert!(bundle::change_set(&BTreeMap::new(), &Limits::default()).is_err());
//! ```

use std::collections::BTreeMap;

use crate::changeset::{ChangeSet, Op};
use crate::doc::{Document, Limits};
use crate::error::{Error, Result};
use crate::format::{self, Format};
use crate::namespace::NamespaceSpec;
use crate::path::LayerPath;

/// The names the declaration may have, in the order they are looked for.
pub const SPEC_FILES: [&str; 4] = [
    "namespace.toml",
    "namespace.yaml",
    "namespace.yml",
    "namespace.json",
];

/// The folder of the layer files.
pub const LAYERS: &str = "layers/";

/// The change set that declares the bundle's namespace and puts each of
/// its layers (no preconditions: an import replaces what is there), with
/// the message `import NAMESPACE`.
/// `files` maps each file's path in the bundle (`/`-separated, relative)
/// to its bytes.
///
/// Refused, naming the file: no declaration, or more than one; a file that
/// is neither the declaration nor under `layers/`; a layer file of an
/// unknown type or whose path is not a layer path; two files for one
/// layer; a file that does not parse or breaks `limits`.
pub fn change_set(files: &BTreeMap<String, Vec<u8>>, limits: &Limits) -> Result<ChangeSet> {
    let specs: Vec<&str> = SPEC_FILES
        .iter()
        .copied()
        .filter(|f| files.contains_key(*f))
        .collect();
    let spec_file = match specs.as_slice() {
        [one] => *one,
        [] => {
            return Err(Error::invalid(
                "namespace bundle",
                "it has no namespace.toml (or .yaml, .yml, .json)",
            ));
        }
        more => {
            return Err(Error::invalid(
                "namespace bundle",
                format!("it has {} declarations; keep one", more.join(" and ")),
            ));
        }
    };
    let spec: NamespaceSpec = format::parse_structured(
        &files[spec_file],
        Format::from_path(spec_file).unwrap_or(Format::Toml),
        spec_file,
        limits,
    )?;
    let namespace = spec.name.clone();
    let mut ops = vec![Op::PutNamespace {
        spec,
        expect_revision: None,
    }];
    let mut seen: BTreeMap<LayerPath, &str> = BTreeMap::new();
    for (name, bytes) in files {
        if name == spec_file {
            continue;
        }
        let Some(rel) = name.strip_prefix(LAYERS) else {
            return Err(Error::invalid(
                format!("file {name}"),
                "a bundle holds its declaration (namespace.toml) and layer files under layers/ only",
            ));
        };
        let Some(fmt) = Format::from_path(name) else {
            return Err(Error::invalid(
                format!("file {name}"),
                "unknown layer file type (use .toml, .yaml, .yml, .json or .env)",
            ));
        };
        let stem = match rel.rsplit_once('.') {
            Some((stem, _)) if !stem.is_empty() && !stem.ends_with('/') => stem,
            // `.env` names the layer by its folder (`layers/dev/.env`).
            _ => rel.trim_end_matches(".env").trim_end_matches('/'),
        };
        let layer = LayerPath::parse(stem).map_err(|e| {
            Error::invalid(
                format!("file {name}"),
                format!("its path is not a valid layer path: {e}"),
            )
        })?;
        if let Some(other) = seen.insert(layer.clone(), name) {
            return Err(Error::invalid(
                format!("file {name}"),
                format!("{other} defines layer {layer} too"),
            ));
        }
        let document: Document = format::parse(bytes, fmt, name, limits)?;
        ops.push(Op::Put {
            namespace: namespace.clone(),
            layer,
            document,
            expect_revision: None,
        });
    }
    Ok(ChangeSet {
        author: String::new(),
        message: format!("import {namespace}"),
        ops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(files: &[(&str, &str)]) -> Result<ChangeSet> {
        let files = files
            .iter()
            .map(|(n, t)| ((*n).to_owned(), t.as_bytes().to_vec()))
            .collect();
        change_set(&files, &Limits::default())
    }

    const SPEC: &str = "name = \"web\"\nlevels = [\"defaults\", \"env/{env}\"]\n";

    #[test]
    fn a_bundle_declares_and_puts_every_layer() {
        let cs = bundle(&[
            ("namespace.toml", SPEC),
            ("layers/defaults.toml", "port = 1"),
            ("layers/env/prod.json", "{\"port\": 2}"),
            ("layers/env/dev.env", "PORT=3"),
        ])
        .unwrap();
        let layers: Vec<String> = cs
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::Put { layer, .. } => Some(layer.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(layers, ["defaults", "env/dev", "env/prod"]);
    }

    #[test]
    fn bad_bundles_are_refused_naming_the_file() {
        for (files, says) in [
            (vec![("layers/defaults.toml", "a = 1")], "no namespace.toml"),
            (
                vec![("namespace.toml", SPEC), ("namespace.json", "{}")],
                "namespace.toml and namespace.json",
            ),
            (
                vec![("namespace.toml", SPEC), ("README.md", "hi")],
                "file README.md",
            ),
            (
                vec![("namespace.toml", SPEC), ("layers/defaults.ini", "a=1")],
                "unknown layer file type",
            ),
            (
                vec![("namespace.toml", SPEC), ("layers/../x.toml", "a = 1")],
                "not a valid layer path",
            ),
            (
                vec![
                    ("namespace.toml", SPEC),
                    ("layers/defaults.toml", "a = 1"),
                    ("layers/defaults.yaml", "a: 1"),
                ],
                "defines layer defaults too",
            ),
            (
                vec![("namespace.toml", SPEC), ("layers/defaults.toml", "a = ")],
                "layers/defaults.toml",
            ),
            (vec![("namespace.toml", "name = 1")], "namespace.toml"),
        ] {
            let err = bundle(&files).unwrap_err().to_string();
            assert!(err.contains(says), "{files:?}: {err}");
        }
    }
}
