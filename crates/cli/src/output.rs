//! Rendering of command results: tables for people, JSON/YAML/TOML for scripts.

use std::io::Write;

use anyhow::{Result, bail};
use confstrata_core::format::{Format, render};
use confstrata_core::{Document, doc};
use serde::Serialize;
use serde_json::Value;

use crate::args::Output;

/// Writes to stdout, ignoring a closed pipe (`confstrata ... | head`).
pub(crate) fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    if !text.ends_with('\n') && !text.is_empty() {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
}

/// A value as shown in a table cell.
pub(crate) fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Lays out rows under headers, columns padded to their widest cell.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let n = cells.len();
        for (i, c) in cells.into_iter().enumerate() {
            out.push_str(c);
            if i + 1 < n {
                out.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        out.push('\n');
    };
    line(headers.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// Prints a document: key/value rows as a table, or the document itself.
pub(crate) fn document(doc: &Document, output: Output) -> Result<()> {
    let format = match output {
        Output::Table => {
            let rows: Vec<Vec<String>> = doc::leaves(doc)
                .into_iter()
                .map(|(k, v)| vec![k.to_string(), cell(v)])
                .collect();
            emit(&table(&["KEY", "VALUE"], &rows));
            return Ok(());
        }
        Output::Json => Format::Json,
        Output::Yaml => Format::Yaml,
        Output::Toml => Format::Toml,
        Output::Env => Format::Env,
    };
    emit(&render(doc, format)?);
    Ok(())
}

/// Prints structured data, or `rows` under `headers` for a table.
pub(crate) fn structured<T: Serialize>(
    value: &T,
    output: Output,
    headers: &[&str],
    rows: impl FnOnce() -> Vec<Vec<String>>,
) -> Result<()> {
    match output {
        Output::Table => emit(&table(headers, &rows())),
        Output::Json => emit(&(serde_json::to_string_pretty(value)? + "\n")),
        Output::Yaml => emit(&serde_yaml::to_string(value)?),
        Output::Toml => {
            let v = serde_json::to_value(value)?;
            let wrapped = match v {
                Value::Object(m) => m,
                other => {
                    let mut m = serde_json::Map::new();
                    m.insert("items".into(), other);
                    m
                }
            };
            emit(&render(&wrapped, Format::Toml)?);
        }
        Output::Env => {
            bail!("-o env is only for documents (get, resolve); use json, yaml, toml or table")
        }
    }
    Ok(())
}

/// A byte count for people: `512 B`, `3.4 KiB`, `1.2 MiB`, `2.0 GiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    #[expect(clippy::cast_precision_loss, reason = "a rounded figure for people")]
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}
