//! Reading what the user typed: names and paths from arguments, `KEY=VALUE`
//! pairs, values, input files in any format, change sets, declarations, and
//! a directory to import.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use confstrata_core::format::{self, Format};
use confstrata_core::{
    At, ChangeSet, Context, KeyPath, LayerPath, Limits, NamespaceName, NamespaceSpec, parse_context,
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

/// Reads a namespace directory (`namespace.toml` and `layers/**`) as a
/// bundle and turns it into a change set ([`confstrata_core::bundle`]:
/// the same step REST and gRPC imports take). Hidden files are skipped,
/// except `.env` ones; so is anything beside the declaration and
/// `layers/`.
pub(crate) fn import_dir(dir: &Path) -> Result<ChangeSet> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for spec in confstrata_core::bundle::SPEC_FILES {
        let path = dir.join(spec);
        if path.is_file() {
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            files.insert(spec.to_owned(), bytes);
        }
    }
    if files.is_empty() {
        bail!("{} has no namespace.toml (or .yaml/.json)", dir.display());
    }
    let root = dir.join("layers");
    let mut found = Vec::new();
    if root.is_dir() {
        collect_files(&root, &mut found)?;
    }
    for file in found {
        let rel = file
            .strip_prefix(dir)
            .map_err(|e| anyhow!("{}: {e}", file.display()))?
            .to_string_lossy()
            .replace('\\', "/");
        let bytes =
            std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        files.insert(rel, bytes);
    }
    confstrata_core::bundle::change_set(&files, &Limits::default())
        .with_context(|| format!("cannot import {}", dir.display()))
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
