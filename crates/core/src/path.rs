//! Validated names: key paths inside documents, layer paths and namespace names.
//!
//! Parse, don't validate: a [`KeyPath`], [`LayerPath`] or [`NamespaceName`]
//! can only be built through its parser, so holding one proves it is well formed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// Longest key path accepted, in bytes of its text form.
pub const MAX_KEY_PATH_BYTES: usize = 1024;
/// Most segments in a key path.
pub const MAX_KEY_SEGMENTS: usize = 64;
/// Longest layer path or namespace name, in bytes.
pub const MAX_LAYER_PATH_BYTES: usize = 512;
/// Longest single segment of a layer path or namespace name, in bytes.
pub const MAX_SEGMENT_BYTES: usize = 128;
/// Most segments in a layer path or namespace name.
pub const MAX_LAYER_SEGMENTS: usize = 16;

fn shown(input: &str) -> String {
    if input.len() > 80 {
        let mut end = 80;
        while !input.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &input[..end])
    } else {
        input.to_owned()
    }
}

fn path_error(kind: &'static str, input: &str, reason: impl Into<String>) -> Error {
    Error::InvalidPath {
        kind,
        input: shown(input),
        reason: reason.into(),
    }
}

/// A path to a key inside a document: `db.pool.max`, or `labels."app.kubernetes.io/name"`
/// for keys that contain dots.
///
/// Bare segments may contain any character except `.`, `"`, whitespace and
/// control characters; quoted segments may contain anything but control
/// characters, with `\"` and `\\` as escapes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyPath(Vec<String>);

impl KeyPath {
    const KIND: &'static str = "key path";

    /// Parses the text form.
    ///
    /// ```
    /// use confstrata_core::KeyPath;
    /// let k: KeyPath = "labels.\"app.io/name\".x".parse().unwrap();
    /// assert_eq!(k.segments(), ["labels", "app.io/name", "x"]);
    /// assert!("a..b".parse::<KeyPath>().is_err());
    /// ```
    pub fn parse(input: &str) -> Result<Self> {
        let err = |reason: String| path_error(Self::KIND, input, reason);
        if input.is_empty() {
            return Err(err("it is empty".into()));
        }
        if input.len() > MAX_KEY_PATH_BYTES {
            return Err(err(format!(
                "it is {} bytes long; the limit is {MAX_KEY_PATH_BYTES}",
                input.len()
            )));
        }
        let mut segments = Vec::new();
        let mut chars = input.char_indices().peekable();
        loop {
            let n = segments.len() + 1;
            let mut seg = String::new();
            match chars.peek() {
                Some(&(_, '"')) => {
                    chars.next();
                    let mut closed = false;
                    while let Some((_, c)) = chars.next() {
                        match c {
                            '"' => {
                                closed = true;
                                break;
                            }
                            '\\' => match chars.next() {
                                Some((_, e @ ('"' | '\\'))) => seg.push(e),
                                _ => {
                                    return Err(err(format!(
                                        "segment {n} has an invalid escape (only \\\" and \\\\ are allowed)"
                                    )));
                                }
                            },
                            c if c.is_control() => {
                                return Err(err(format!(
                                    "segment {n} contains a control character"
                                )));
                            }
                            c => seg.push(c),
                        }
                    }
                    if !closed {
                        return Err(err(format!("segment {n} has an unclosed quote")));
                    }
                    if seg.is_empty() {
                        return Err(err(format!("segment {n} is empty")));
                    }
                    match chars.peek() {
                        None | Some(&(_, '.')) => {}
                        Some(&(i, _)) => {
                            return Err(err(format!(
                                "unexpected text after the quoted segment {n} at byte {i}"
                            )));
                        }
                    }
                }
                _ => {
                    while let Some(&(_, c)) = chars.peek() {
                        if c == '.' {
                            break;
                        }
                        if c == '"' {
                            return Err(err(format!(
                                "segment {n} has a quote inside it; quote the whole segment"
                            )));
                        }
                        if c.is_control() || c.is_whitespace() {
                            return Err(err(format!(
                                "segment {n} contains whitespace or a control character; quote it"
                            )));
                        }
                        seg.push(c);
                        chars.next();
                    }
                    if seg.is_empty() {
                        return Err(err(format!("segment {n} is empty")));
                    }
                }
            }
            if seg == "." || seg == ".." {
                return Err(err(format!("segment {n} is {seg:?}, which is not allowed")));
            }
            segments.push(seg);
            if segments.len() > MAX_KEY_SEGMENTS {
                return Err(err(format!("it has more than {MAX_KEY_SEGMENTS} segments")));
            }
            match chars.next() {
                None => break,
                Some((_, '.')) => {
                    if chars.peek().is_none() {
                        return Err(err(format!("segment {} is empty", n + 1)));
                    }
                }
                Some((i, _)) => return Err(err(format!("unexpected character at byte {i}"))),
            }
        }
        Ok(KeyPath(segments))
    }

    /// Builds a key path from raw segments (for example keys found in a document).
    pub fn from_segments<I, S>(segments: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let segments: Vec<String> = segments.into_iter().map(Into::into).collect();
        let text = KeyPath(segments.clone()).to_string();
        if segments.is_empty() {
            return Err(path_error(Self::KIND, "", "it is empty"));
        }
        if segments.len() > MAX_KEY_SEGMENTS {
            return Err(path_error(
                Self::KIND,
                &text,
                format!("it has more than {MAX_KEY_SEGMENTS} segments"),
            ));
        }
        for (i, s) in segments.iter().enumerate() {
            if s.is_empty() {
                return Err(path_error(
                    Self::KIND,
                    &text,
                    format!("segment {} is empty", i + 1),
                ));
            }
            if s.chars().any(char::is_control) {
                return Err(path_error(
                    Self::KIND,
                    &text,
                    format!("segment {} contains a control character", i + 1),
                ));
            }
            if s == "." || s == ".." {
                return Err(path_error(
                    Self::KIND,
                    &text,
                    format!("segment {} is {s:?}, which is not allowed", i + 1),
                ));
            }
        }
        Ok(KeyPath(segments))
    }

    /// Builds a key path from segments already known to be valid keys.
    pub(crate) fn from_raw(segments: Vec<String>) -> KeyPath {
        KeyPath(segments)
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> &[String] {
        &self.0
    }

    /// The path with `segment` appended (used when walking documents).
    pub fn child(&self, segment: &str) -> KeyPath {
        let mut v = self.0.clone();
        v.push(segment.to_owned());
        KeyPath(v)
    }
}

fn needs_quotes(seg: &str) -> bool {
    seg.is_empty()
        || !seg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Writes one key path segment, quoted where needed.
pub(crate) fn write_segment(f: &mut impl fmt::Write, seg: &str) -> fmt::Result {
    if needs_quotes(seg) {
        f.write_char('"')?;
        for c in seg.chars() {
            if c == '"' || c == '\\' {
                f.write_char('\\')?;
            }
            f.write_char(c)?;
        }
        f.write_char('"')
    } else {
        f.write_str(seg)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write_segment(f, seg)?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPath({self})")
    }
}

impl FromStr for KeyPath {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        KeyPath::parse(s)
    }
}

/// Checks one `/`-separated segment of a layer path or namespace name.
fn check_segment(kind: &'static str, input: &str, n: usize, seg: &str) -> Result<()> {
    let err = |reason: String| path_error(kind, input, reason);
    if seg.is_empty() {
        return Err(err(format!("segment {n} is empty")));
    }
    if seg == "." || seg == ".." {
        return Err(err(format!("segment {n} is {seg:?}, which is not allowed")));
    }
    if seg.len() > MAX_SEGMENT_BYTES {
        return Err(err(format!(
            "segment {n} is {} bytes long; the limit is {MAX_SEGMENT_BYTES}",
            seg.len()
        )));
    }
    if let Some(c) = seg
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(err(format!(
            "segment {n} ({seg:?}) contains {c:?}; only letters, digits, '-', '_' and '.' are allowed"
        )));
    }
    Ok(())
}

fn check_slash_path(kind: &'static str, input: &str) -> Result<()> {
    if input.is_empty() {
        return Err(path_error(kind, input, "it is empty"));
    }
    if input.len() > MAX_LAYER_PATH_BYTES {
        return Err(path_error(
            kind,
            input,
            format!(
                "it is {} bytes long; the limit is {MAX_LAYER_PATH_BYTES}",
                input.len()
            ),
        ));
    }
    let segments: Vec<&str> = input.split('/').collect();
    if segments.len() > MAX_LAYER_SEGMENTS {
        return Err(path_error(
            kind,
            input,
            format!("it has more than {MAX_LAYER_SEGMENTS} segments"),
        ));
    }
    for (i, seg) in segments.iter().enumerate() {
        check_segment(kind, input, i + 1, seg)?;
    }
    Ok(())
}

/// `FromStr`, `Serialize` (its `Display` text) and `Deserialize` (a string
/// read back with `$name::parse`, an invalid one a serde error) for a type
/// that has `parse(&str) -> Result<Self, $error>` and `Display`: a value
/// that travels as its text form. The crate using it needs `serde`.
#[macro_export]
#[doc(hidden)]
macro_rules! text_serde {
    ($name:ty, $error:ty) => {
        impl ::std::str::FromStr for $name {
            type Err = $error;
            fn from_str(s: &str) -> ::std::result::Result<Self, $error> {
                <$name>::parse(s)
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(
                &self,
                s: S,
            ) -> ::std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                d: D,
            ) -> ::std::result::Result<Self, D::Error> {
                let s = <String as ::serde::Deserialize>::deserialize(d)?;
                <$name>::parse(&s).map_err(::serde::de::Error::custom)
            }
        }
    };
}

/// Defines a validated text newtype: `$name(String)`, built only by
/// `parse` (which runs `$check(kind, input)`), with `as_str`, `Display`,
/// `Debug` (quoted), `FromStr` and serde as a string that is checked on the
/// way in. Shared by core's paths and access's names, so every validated
/// name behaves alike. The crate using it needs `serde`.
#[macro_export]
#[doc(hidden)]
macro_rules! text_newtype {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:path, $error:ty) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates the text form.
            pub fn parse(input: &str) -> ::std::result::Result<Self, $error> {
                $check($kind, input)?;
                Ok($name(input.to_owned()))
            }

            /// The text form.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }

        $crate::text_serde!($name, $error);
    };
}

macro_rules! slash_path {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $crate::text_newtype!($(#[$doc])* $name, $kind, check_slash_path, Error);

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::path::slash_path_schema(concat!(
                    "A ", $kind, ": `/`-separated segments of letters, digits, `-`, `_` and `.` ",
                    "(never empty, `.` or `..`); one URL path segment with `/` as `%2F`."
                ))
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl $name {
            /// The `/`-separated segments.
            pub fn segments(&self) -> impl Iterator<Item = &str> {
                self.0.split('/')
            }
        }
    };
}

slash_path!(
    /// The path of a layer inside its namespace: `defaults`, `env/prod`,
    /// `env/prod/region/eu`. Segments are letters, digits, `-`, `_` and `.`,
    /// never empty, `.` or `..`; so `../x`, `a//b` and `%2e%2e` are rejected.
    LayerPath,
    "layer path"
);

slash_path!(
    /// The name of a namespace: `webshop`, `shared/logging`. Same grammar as
    /// [`LayerPath`].
    NamespaceName,
    "namespace name"
);

#[cfg(feature = "openapi")]
/// The schema of a validated text type (OpenAPI): a non-empty string.
pub(crate) fn text_schema(
    description: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(1))
        .description(Some(description))
        .into()
}

#[cfg(feature = "openapi")]
/// The schema of a `/`-separated path ([`check_slash_path`]): its
/// characters as a pattern, its length bound. (That a segment is not `.`
/// or `..` the description says: the pattern stays simple enough for
/// clients and test generators to use.)
pub(crate) fn slash_path_schema(
    description: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_LAYER_PATH_BYTES))
        .pattern(Some(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"))
        .description(Some(description))
        .into()
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for KeyPath {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        text_schema(
            "A key path inside a document: `db.pool.max`, or `labels.\"app.kubernetes.io/name\"` for keys that contain dots.",
        )
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for KeyPath {}

impl Serialize for KeyPath {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        KeyPath::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
