//! Import and export of layer documents as TOML, YAML, JSON and `.env`.
//!
//! Reading goes through figment's providers, so a layer file reads exactly as
//! a figment-based service would read it; errors carry the source name, line
//! and column.

use std::fmt;
use std::str::FromStr;

use figment::Figment;
use figment::providers::{Format as _, Json, Toml, Yaml};
use serde_json::{Map, Value};

use crate::doc::{self, Document, Limits};
use crate::error::{Error, Result};

/// A document format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TOML.
    Toml,
    /// YAML.
    Yaml,
    /// JSON.
    Json,
    /// `.env`: `KEY=value` lines; `__` in a key separates nesting levels.
    Env,
}

impl Format {
    /// The format's display name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Toml => "TOML",
            Format::Yaml => "YAML",
            Format::Json => "JSON",
            Format::Env => ".env",
        }
    }

    /// Guesses the format from a file name's extension.
    pub fn from_path(path: &str) -> Option<Format> {
        let lower = path.to_ascii_lowercase();
        let name = lower.rsplit('/').next().unwrap_or(&lower);
        if name == ".env" || name.ends_with(".env") {
            return Some(Format::Env);
        }
        match name.rsplit_once('.')?.1 {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "toml" => Ok(Format::Toml),
            "yaml" | "yml" => Ok(Format::Yaml),
            "json" => Ok(Format::Json),
            "env" | ".env" | "dotenv" => Ok(Format::Env),
            other => Err(Error::invalid(
                "format",
                format!("{other:?} is not one of toml, yaml, json, env"),
            )),
        }
    }
}

/// Finds `line N` and `column M` in a parser's message.
fn location(msg: &str) -> (Option<usize>, Option<usize>) {
    fn number_after(msg: &str, word: &str) -> Option<usize> {
        let i = msg.find(word)? + word.len();
        let digits: String = msg[i..]
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    }
    (number_after(msg, "line "), number_after(msg, "column "))
}

/// Parses bytes of `format` into a `T` (a change set, a declaration, a
/// role): the document is parsed and checked like any document (size,
/// depth), then taken apart by serde; an error names the source and the
/// field's path (`a.toml: ops[2].layer: ...`). Every front door and the
/// CLI parse these documents here, so they refuse the same things the
/// same way.
pub fn parse_structured<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    format: Format,
    source_name: &str,
    limits: &Limits,
) -> Result<T> {
    let refuse = |message: String| Error::Parse {
        source_name: source_name.to_owned(),
        format: format.name(),
        line: None,
        column: None,
        message,
    };
    if format == Format::Env {
        return Err(refuse(
            ".env files hold layers only; use TOML, YAML or JSON".to_owned(),
        ));
    }
    let doc = parse(bytes, format, source_name, limits)?;
    serde_path_to_error::deserialize(Value::Object(doc)).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            refuse(e.inner().to_string())
        } else {
            refuse(format!("{path}: {}", e.inner()))
        }
    })
}

/// Parses a change set document (what `confstrata apply -f` and
/// `POST /v1/changesets` take): [`parse_structured`] with the change set's
/// size limit for the whole (it holds many documents) and room for its
/// own nesting above theirs.
pub fn parse_change_set(
    bytes: &[u8],
    format: Format,
    source_name: &str,
    limits: &Limits,
) -> Result<crate::ChangeSet> {
    let limits = Limits {
        max_document_bytes: limits.max_change_set_bytes,
        max_depth: limits.max_depth + 4,
        ..*limits
    };
    parse_structured(bytes, format, source_name, &limits)
}

/// Parses bytes as a document of the given format.
///
/// `source_name` (a file name, `<stdin>`) appears in errors. The result is
/// checked against `limits` (size and depth) before it is returned.
///
/// ```
/// use confstrata_core::format::{parse, Format};
/// let d = parse(b"[db]\nport = 5432\n", Format::Toml, "a.toml", &Default::default()).unwrap();
/// assert_eq!(d["db"]["port"], 5432);
/// let e = parse(b"[db\n", Format::Toml, "a.toml", &Default::default()).unwrap_err();
/// assert!(e.to_string().starts_with("a.toml: line 1, column 4"), "{e}");
/// ```
pub fn parse(bytes: &[u8], format: Format, source_name: &str, limits: &Limits) -> Result<Document> {
    if bytes.len() > limits.max_document_bytes.saturating_mul(4) {
        return Err(Error::TooLarge {
            what: source_name.to_owned(),
            size: bytes.len(),
            limit: limits.max_document_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
        source_name: source_name.to_owned(),
        valid_up_to: e.valid_up_to(),
    })?;
    check_nesting(text, format, source_name, limits)?;
    let figment = match format {
        Format::Toml => Figment::from(Toml::string(text)),
        Format::Yaml => Figment::from(Yaml::string(text)),
        Format::Json => Figment::from(Json::string(text)),
        Format::Env => return finish(parse_env(text, source_name)?, source_name, limits),
    };
    let value: Value = if text.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        figment.extract().map_err(|e| {
            let message = match &e.kind {
                figment::error::Kind::Message(m) => m.clone(),
                other => other.to_string(),
            };
            let (line, column) = location(&message);
            if message.contains("expected a map") {
                return Error::Parse {
                    source_name: source_name.to_owned(),
                    format: format.name(),
                    line: None,
                    column: None,
                    message: "the document must be a table at the top".into(),
                };
            }
            Error::Parse {
                source_name: source_name.to_owned(),
                format: format.name(),
                line,
                column,
                message: strip_location(&message),
            }
        })?
    };
    if matches!(format, Format::Json | Format::Yaml) {
        unique_keys(text, format, source_name)?;
    }
    match value {
        Value::Object(doc) => finish(doc, source_name, limits),
        other => Err(Error::Parse {
            source_name: source_name.to_owned(),
            format: format.name(),
            line: None,
            column: None,
            message: format!(
                "the document must be a table at the top, not {}",
                kind(&other)
            ),
        }),
    }
}

fn finish(doc: Document, source_name: &str, limits: &Limits) -> Result<Document> {
    doc::check_document(source_name, &doc, limits)?;
    Ok(doc)
}

/// Keeps the parser's own words, dropping the location (reported separately)
/// and the source excerpt that toml's messages repeat.
fn strip_location(message: &str) -> String {
    let words: Vec<&str> = message
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !(l.contains("parse error at line")
                || t.starts_with('|')
                || t.split_once(" |")
                    .is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit())))
        })
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let joined = words.join("; ");
    match joined.find(" at line ") {
        Some(i) => joined[..i].to_owned(),
        None => joined,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

/// Rejects input nested deeper than the limit before any recursive parser sees
/// it, so hostile input cannot overflow the stack.
fn check_nesting(text: &str, format: Format, source_name: &str, limits: &Limits) -> Result<()> {
    if format == Format::Env {
        return Ok(());
    }
    // Brackets count for every format; YAML's indentation nesting is bounded
    // by serde_yaml's own recursion limit.
    let mut depth = 0usize;
    let mut in_str: Option<char> = None;
    let mut escaped = false;
    let (mut line, mut col) = (1usize, 0usize);
    for c in text.chars() {
        col += 1;
        if c == '\n' {
            line += 1;
            col = 0;
            if format != Format::Json {
                in_str = None;
            }
        }
        if let Some(q) = in_str {
            if escaped {
                escaped = false;
            } else if c == '\\' && q == '"' {
                escaped = true;
            } else if c == q {
                in_str = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => in_str = Some(c),
            '[' | '{' => {
                depth += 1;
                if depth > limits.max_depth + 1 {
                    return Err(Error::TooDeep {
                        what: source_name.to_owned(),
                        path: format!("line {line}, column {col}"),
                        limit: limits.max_depth,
                    });
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn parse_env(text: &str, source_name: &str) -> Result<Document> {
    let mut doc = Document::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let err = |column: usize, message: String| Error::Parse {
            source_name: source_name.to_owned(),
            format: ".env",
            line: Some(line_no),
            column: Some(column),
            message,
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(err(1, "expected KEY=value".into()));
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(err(1, format!("{key:?} is not a valid variable name")));
        }
        let segments: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
        if segments.iter().any(String::is_empty) {
            return Err(err(1, format!("{key:?} has an empty segment around '__'")));
        }
        let value = value.trim();
        let value = if let Some(q) = value.chars().next().filter(|c| *c == '"' || *c == '\'') {
            let inner = &value[1..];
            let Some(end) = inner.rfind(q) else {
                return Err(err(key.len() + 2, "unclosed quote".into()));
            };
            let s = &inner[..end];
            Value::String(if q == '"' {
                s.replace("\\n", "\n")
                    .replace("\\\"", "\"")
                    .replace("\\\\", "\\")
            } else {
                s.to_owned()
            })
        } else {
            let v = value.split(" #").next().unwrap_or(value).trim();
            scalar(v)
        };
        let key =
            crate::path::KeyPath::from_segments(segments).map_err(|e| err(1, e.to_string()))?;
        doc::set(&mut doc, &key, value).map_err(|e| err(1, e.to_string()))?;
    }
    Ok(doc)
}

/// Reads an unquoted scalar the way figment's `Env` provider does: booleans
/// and numbers are typed, anything else is a string.
pub fn scalar(text: &str) -> Value {
    match text {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => {
            if let Ok(i) = text.parse::<i64>() {
                Value::from(i)
            } else if let Ok(f) = text.parse::<f64>() {
                if f.is_finite() && text.chars().any(|c| c.is_ascii_digit()) {
                    Value::from(f)
                } else {
                    Value::String(text.to_owned())
                }
            } else {
                Value::String(text.to_owned())
            }
        }
    }
}

/// Renders a document in the given format.
pub fn render(doc: &Document, format: Format) -> Result<String> {
    match format {
        Format::Json => serde_json::to_string_pretty(doc)
            .map(|s| s + "\n")
            .map_err(|e| Error::invalid("JSON output", e.to_string())),
        Format::Yaml => {
            serde_yaml::to_string(doc).map_err(|e| Error::invalid("YAML output", e.to_string()))
        }
        Format::Toml => {
            if let Some((k, _)) = doc::leaves(doc).into_iter().find(|(_, v)| contains_null(v)) {
                return Err(Error::invalid(
                    "TOML output",
                    format!("TOML cannot represent the null at {k}; use -o json or -o yaml"),
                ));
            }
            toml::to_string_pretty(doc).map_err(|e| Error::invalid("TOML output", e.to_string()))
        }
        Format::Env => {
            let mut out = String::new();
            for (k, v) in doc::leaves(doc) {
                if doc::is_delete_marker(v) {
                    return Err(Error::invalid(
                        ".env output",
                        format!(
                            "a .env file cannot hold the delete marker at {k}; use toml, yaml or json"
                        ),
                    ));
                }
                let mut name = String::new();
                for (i, s) in k.segments().iter().enumerate() {
                    if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || s.contains("__")
                    {
                        return Err(Error::invalid(
                            ".env output",
                            format!("key {k} cannot be written as an environment variable name"),
                        ));
                    }
                    if i > 0 {
                        name.push_str("__");
                    }
                    name.push_str(&s.to_ascii_uppercase());
                }
                let value = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                let needs_quotes = value.is_empty()
                    || value
                        .chars()
                        .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '#' | '\\' | '$'));
                if needs_quotes {
                    let escaped = value
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n");
                    out.push_str(&format!("{name}=\"{escaped}\"\n"));
                } else {
                    out.push_str(&format!("{name}={value}\n"));
                }
            }
            Ok(out)
        }
    }
}

fn contains_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.iter().any(contains_null),
        Value::Object(m) => m.values().any(contains_null),
        _ => false,
    }
}

#[cfg(test)]
mod tests;

/// Refuses a JSON or YAML text with a key twice in one table, naming the
/// line: both parsers keep the last silently, so one of two values a user
/// wrote would be dropped (TOML's parser refuses them itself).
fn unique_keys(text: &str, format: Format, source_name: &str) -> Result<()> {
    let parse_error = |line: Option<usize>, column: Option<usize>, message: String| Error::Parse {
        source_name: source_name.to_owned(),
        format: format.name(),
        line,
        column,
        message,
    };
    match format {
        Format::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            serde::Deserialize::deserialize(&mut de)
                .map(|Unique| ())
                .map_err(|e: serde_json::Error| {
                    let message = e.to_string();
                    let message = message
                        .split(" at line ")
                        .next()
                        .unwrap_or(&message)
                        .to_owned();
                    parse_error(Some(e.line()), Some(e.column()), message)
                })
        }
        Format::Yaml => serde_yaml::from_str::<Unique>(text)
            .map(|Unique| ())
            .map_err(|e| {
                let (mut line, mut column) = e
                    .location()
                    .map_or((None, None), |l| (Some(l.line()), Some(l.column())));
                // serde_yaml places the error at the table; point at the key's
                // second occurrence when it can be found.
                if let (Some(table), Some(key)) = (line, duplicate_key(&e.to_string()))
                    && let Some((l, c)) = second_yaml_key(text, table, &key)
                {
                    (line, column) = (Some(l), Some(c));
                }
                let message = e.to_string();
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(&message)
                    .to_owned();
                parse_error(line, column, message)
            }),
        Format::Toml | Format::Env => Ok(()),
    }
}

/// The key named by a duplicate-key message, as written (unescaped).
fn duplicate_key(message: &str) -> Option<String> {
    let start = message.find("the key \"")? + "the key ".len();
    let end = message.find("\" occurs twice")? + 1;
    serde_json::from_str(message.get(start..end)?).ok()
}

/// The 1-based line and column of the second `key:` at the indentation of
/// the first, from line `from` on (a block mapping's keys share one).
fn second_yaml_key(text: &str, from: usize, key: &str) -> Option<(usize, usize)> {
    let mut indent = None;
    for (i, line) in text.lines().enumerate().skip(from.saturating_sub(1)) {
        let trimmed = line.trim_start();
        let at = line.len() - trimmed.len();
        let rest = trimmed
            .strip_prefix(key)
            .or_else(|| trimmed.strip_prefix(&format!("\"{key}\"")))
            .or_else(|| trimmed.strip_prefix(&format!("'{key}'")));
        if rest.is_some_and(|r| r.trim_start().starts_with(':')) {
            match indent {
                None => indent = Some(at),
                Some(first) if first == at => return Some((i + 1, at + 1)),
                Some(_) => {}
            }
        }
    }
    None
}

/// Any value, checked only for keys that occur twice in one table.
struct Unique;

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_i128<E>(self, _: i128) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_u128<E>(self, _: u128) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_bytes<E>(self, _: &[u8]) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_unit<E>(self) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_none<E>(self) -> std::result::Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_some<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Unique, D::Error> {
        serde::Deserialize::deserialize(d)
    }
    fn visit_newtype_struct<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Unique, D::Error> {
        serde::Deserialize::deserialize(d)
    }
    fn visit_enum<A: serde::de::EnumAccess<'de>>(
        self,
        data: A,
    ) -> std::result::Result<Unique, A::Error> {
        // A YAML tagged value (`!tag value`): the value is what counts.
        use serde::de::VariantAccess as _;
        let (KeyText(_), variant) = data.variant()?;
        variant.newtype_variant::<Unique>()
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Unique, A::Error> {
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(Unique)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Unique, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(KeyText(key)) = map.next_key::<KeyText>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!(
                    "the key {:?} occurs twice in one table",
                    crate::clip(&key, 80)
                )));
            }
            map.next_value::<Unique>()?;
        }
        Ok(Unique)
    }
}

/// A table key as text, whatever scalar the format made of it (YAML keys
/// may be numbers or booleans).
struct KeyText(String);

impl<'de> serde::Deserialize<'de> for KeyText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> serde::de::Visitor<'de> for KeyVisitor {
    type Value = KeyText;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<KeyText, E> {
        Ok(KeyText(v.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<KeyText, E> {
        Ok(KeyText(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<KeyText, E> {
        Ok(KeyText(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<KeyText, E> {
        Ok(KeyText(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<KeyText, E> {
        Ok(KeyText(v.to_owned()))
    }
    fn visit_unit<E>(self) -> std::result::Result<KeyText, E> {
        Ok(KeyText("null".to_owned()))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<KeyText, A::Error> {
        // A complex YAML key: figment refuses it; only its uniqueness is ours.
        while seq.next_element::<Unique>()?.is_some() {}
        Ok(KeyText(String::new()))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        map: A,
    ) -> std::result::Result<KeyText, A::Error> {
        UniqueVisitor.visit_map(map)?;
        Ok(KeyText(String::new()))
    }
}
