//! Reading what the user typed: names and paths from arguments, `KEY=VALUE`
//! pairs, values, input files in any format, change sets, declarations, and
//! a directory to import.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use confstrata_core::format::{self, Format};
use confstrata_core::{
    At, ChangeSet, Context, Document, KeyPath, LayerPath, Limits, NamespaceName, NamespaceSpec, Op,
    parse_context,
};
use serde_json::Value;

use crate::args::AtArg;

pub(crate) fn ns(s: &str) -> Result<NamespaceName> {
    Ok(NamespaceName::parse(s)?)
}

pub(crate) fn layer_path(s: &str) -> Result<LayerPath> {
    Ok(LayerPath::parse(s)?)
}

pub(crate) fn key_path(s: &str) -> Result<KeyPath> {
    Ok(KeyPath::parse(s)?)
}

pub(crate) fn at_of(a: &AtArg) -> Result<At> {
    opt_at(a.at.as_deref())
}

pub(crate) fn opt_at(s: Option<&str>) -> Result<At> {
    Ok(s.map(str::parse).transpose()?.unwrap_or(At::Latest))
}

pub(crate) fn contexts(parts: &[String]) -> Result<Context> {
    let mut ctx = Context::new();
    for p in parts {
        for (k, v) in parse_context(p)? {
            if ctx.insert(k.clone(), v).is_some() {
                bail!("context variable {k:?} is given twice");
            }
        }
    }
    Ok(ctx)
}

/// Splits `KEY=VALUE` at the first `=` outside a quoted key segment.
pub(crate) fn split_pair(pair: &str) -> Result<(&str, &str)> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in pair.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '=' if !quoted => return Ok((&pair[..i], &pair[i + 1..])),
            _ => {}
        }
    }
    bail!("{pair:?} is not of the form KEY=VALUE")
}

/// Reads a value as TOML (`50`, `true`, `"text"`, `[1, 2]`, `{ a = 1 }`), or
/// else as a plain string.
pub(crate) fn parse_value(text: &str) -> Value {
    let parsed: Result<toml::Table, _> = format!("v = {text}").parse();
    match parsed.ok().and_then(|mut t| t.remove("v")) {
        Some(toml::Value::Datetime(d)) => Value::String(d.to_string()),
        Some(v) => serde_json::to_value(v).unwrap_or_else(|_| Value::String(text.to_owned())),
        None => Value::String(text.to_owned()),
    }
}

pub(crate) fn read_input(file: &str) -> Result<(Vec<u8>, String)> {
    if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read stdin")?;
        Ok((buf, "<stdin>".into()))
    } else {
        let bytes = std::fs::read(file).with_context(|| format!("cannot read {file}"))?;
        Ok((bytes, file.to_owned()))
    }
}

pub(crate) fn pick_format(explicit: Option<&str>, name: &str) -> Result<Format> {
    Ok(match explicit {
        Some(f) => f.parse()?,
        None => Format::from_path(name).unwrap_or(Format::Toml),
    })
}

/// Parses a structured file (change set, namespace spec) through the same
/// reader as layers, so limits and error locations are the same.
pub(crate) fn parse_structured<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    fmt: Format,
    name: &str,
    limits: &Limits,
) -> Result<T> {
    Ok(format::parse_structured(bytes, fmt, name, limits)?)
}

pub(crate) fn parse_change_set(bytes: &[u8], fmt: Format, name: &str) -> Result<ChangeSet> {
    Ok(format::parse_change_set(
        bytes,
        fmt,
        name,
        &Limits::default(),
    )?)
}

pub(crate) fn parse_spec(bytes: &[u8], fmt: Format, name: &str) -> Result<NamespaceSpec> {
    parse_structured(bytes, fmt, name, &Limits::default())
}

/// Reads `dir/namespace.{toml,yaml,yml,json}` and every layer file under `dir/layers`.
pub(crate) fn import_dir(dir: &Path) -> Result<ChangeSet> {
    let spec_file = [
        "namespace.toml",
        "namespace.yaml",
        "namespace.yml",
        "namespace.json",
    ]
    .iter()
    .map(|f| dir.join(f))
    .find(|p| p.is_file())
    .ok_or_else(|| anyhow!("{} has no namespace.toml (or .yaml/.json)", dir.display()))?;
    let name = spec_file.display().to_string();
    let bytes = std::fs::read(&spec_file).with_context(|| format!("cannot read {name}"))?;
    let spec = parse_spec(&bytes, pick_format(None, &name)?, &name)?;
    let namespace = spec.name.clone();
    let mut ops = vec![Op::PutNamespace {
        spec,
        expect_revision: None,
    }];
    let root = dir.join("layers");
    let mut files = Vec::new();
    if root.is_dir() {
        collect_files(&root, &mut files)?;
    }
    files.sort();
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in files {
        let name = file.display().to_string();
        let Some(fmt) = Format::from_path(&name) else {
            bail!("{name}: unknown layer file type (use .toml, .yaml, .yml, .json or .env)");
        };
        let rel = file
            .strip_prefix(&root)
            .map_err(|e| anyhow!("{name}: {e}"))?;
        let rel = rel.to_string_lossy().replace('\\', "/");
        let layer = match rel.rsplit_once('.') {
            Some((stem, _)) => stem.to_owned(),
            None => rel.clone(),
        };
        let layer = LayerPath::parse(&layer)
            .with_context(|| format!("{name}: the file's path is not a valid layer path"))?;
        if let Some(other) = seen.insert(layer.to_string(), file.clone()) {
            bail!("{name} and {} both define layer {layer}", other.display());
        }
        let bytes = std::fs::read(&file).with_context(|| format!("cannot read {name}"))?;
        let document: Document = format::parse(&bytes, fmt, &name, &Limits::default())?;
        ops.push(Op::Put {
            namespace: namespace.clone(),
            layer,
            document,
            expect_revision: None,
        });
    }
    Ok(ChangeSet {
        author: String::new(),
        message: String::new(),
        ops,
    })
}

pub(crate) fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)
        .with_context(|| format!("cannot read directory {}", dir.display()))?
    {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| !n.starts_with('.') || n == ".env")
        {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
