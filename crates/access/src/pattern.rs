//! Resources (what a request touches) and resource patterns (what a grant names).
//!
//! # Pattern grammar
//!
//! ```text
//! pattern    = namespace [ ":" layer ] [ "#" key ]
//! namespace  = segment *( "/" segment )       ; as a namespace name
//! layer      = segment *( "/" segment )       ; as a layer path
//! key        = kseg *( "." kseg )             ; as a key path
//! segment    = "*" | "**" | 1*( ALPHA / DIGIT / "-" / "_" / "." )   ; not "." or ".."
//! kseg       = "*" | "**" | bare-key-segment | quoted-key-segment
//! ```
//!
//! - `*` matches exactly one segment; `**` matches any number of segments,
//!   zero included. A wildcard is always a whole segment: `env-*` is an error.
//!   In the key part, `"*"` (quoted) is a key literally named `*`.
//! - A missing layer or key part means "all": `payments` is every layer and
//!   key of namespace `payments`, `payments#db` the `db` subtree in every
//!   layer. The namespace part is required; `**` names every namespace.
//!   A part after a separator may not be empty (`payments:` is an error).
//! - Namespace and layer parts match whole paths: `payments` does not match
//!   namespace `payments/eu`, `env/prod` does not match layer
//!   `env/prod/region/eu` (write `env/prod/**` for both).
//! - The key part names subtrees: `db` covers `db` and every key under it;
//!   `db.*` covers every child of `db` and everything under them, but not a
//!   scalar stored at `db` itself.
//! - `:` separates namespace from layer because both contain `/`
//!   (`shared/logging`, `env/prod`), so `shared/logging/env/prod` could not say
//!   where one ends. `:` and `#` cannot appear in namespace names or layer
//!   paths, so the split is unambiguous; everything after the first `#` is the key part.
//!
//! Examples: `**` (everything), `payments:env/prod#db.*`, `*:env/*/region/eu`,
//! `shared/**#logging.level`, `payments#labels."app.io/name"`.
//!
//! # Allow covers, deny overlaps
//!
//! A [`Resource`] can be a whole namespace or layer, or a key subtree. An
//! allow grant applies only if its pattern *covers* the whole resource; a deny
//! grant applies if its pattern *overlaps* any part of it. So with `read` on
//! `payments#db` a request to read all of `payments` is refused, and with a
//! deny on `payments#db.password` so is a read of `payments#db`: a
//! refusal can never be side-stepped by asking for something bigger.

use std::fmt;
use std::str::FromStr;

use confstrata_core::{KeyPath, LayerPath, NamespaceName};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result, shown};

/// Longest resource pattern accepted, in bytes.
pub const MAX_PATTERN_BYTES: usize = 2048;
/// Most segments in one part (namespace, layer or key) of a pattern.
pub const MAX_PATTERN_SEGMENTS: usize = 64;

/// One segment of a path pattern.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Seg {
    /// Exactly this segment.
    Lit(String),
    /// `*`: any one segment.
    One,
    /// `**`: any number of segments.
    Any,
}

/// A pattern over `/`- or `.`-separated segments, matched as an NFA whose
/// states (positions in the pattern) are bits of a `u128`.
///
/// Invariant: at most [`MAX_PATTERN_SEGMENTS`] segments (so positions 0..=64
/// fit in a `u128`) and never two `Any` in a row (the parser collapses them),
/// so the epsilon closure is a single shift.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) struct PathPattern {
    segs: Box<[Seg]>,
    /// Bit i set when `segs[i]` is `Any`.
    any: u128,
    /// Bit i set when `segs[i]` is `One`.
    one: u128,
    /// Bit i set when `segs[i]` is a literal.
    lit: u128,
}

impl PathPattern {
    /// Builds a pattern, collapsing runs of `**`. The caller checks the length.
    pub(crate) fn new(raw: Vec<Seg>) -> PathPattern {
        let mut segs: Vec<Seg> = Vec::with_capacity(raw.len());
        for s in raw {
            if s == Seg::Any && segs.last() == Some(&Seg::Any) {
                continue;
            }
            segs.push(s);
        }
        let (mut any, mut one, mut lit) = (0u128, 0u128, 0u128);
        for (i, s) in segs.iter().enumerate() {
            match s {
                Seg::Any => any |= 1 << i,
                Seg::One => one |= 1 << i,
                Seg::Lit(_) => lit |= 1 << i,
            }
        }
        PathPattern {
            segs: segs.into_boxed_slice(),
            any,
            one,
            lit,
        }
    }

    /// The pattern `**`, matching everything.
    pub(crate) fn all() -> PathPattern {
        PathPattern::new(vec![Seg::Any])
    }

    /// Whether the pattern is `**` (matches every path, the empty one included).
    pub(crate) fn is_all(&self) -> bool {
        matches!(&*self.segs, [Seg::Any])
    }

    #[cfg(test)]
    pub(crate) fn segs(&self) -> &[Seg] {
        &self.segs
    }

    fn accept(&self) -> u128 {
        1 << self.segs.len()
    }

    /// Follows `**` to the position after it without consuming input.
    fn closure(&self, set: u128) -> u128 {
        set | ((set & self.any) << 1)
    }

    fn step(&self, set: u128, seg: &str) -> u128 {
        let mut next = ((set & self.one) << 1) | (set & self.any);
        let mut lits = set & self.lit;
        while lits != 0 {
            let i = lits.trailing_zeros() as usize;
            lits &= lits - 1;
            if let Some(Seg::Lit(l)) = self.segs.get(i)
                && l == seg
            {
                next |= 1 << (i + 1);
            }
        }
        self.closure(next)
    }

    /// Whether the pattern matches the whole path.
    pub(crate) fn matches<'a>(&self, path: impl IntoIterator<Item = &'a str>) -> bool {
        let mut set = self.closure(1);
        for seg in path {
            set = self.step(set, seg);
            if set == 0 {
                return false;
            }
        }
        set & self.accept() != 0
    }

    /// Whether the pattern matches the path or one of its ancestors (the path
    /// itself with the empty path and every prefix), i.e. whether the subtree
    /// the pattern names contains the whole subtree at `path`.
    pub(crate) fn covers_subtree<'a>(&self, path: impl IntoIterator<Item = &'a str>) -> bool {
        let mut set = self.closure(1);
        if set & self.accept() != 0 {
            return true;
        }
        for seg in path {
            set = self.step(set, seg);
            if set & self.accept() != 0 {
                return true;
            }
            if set == 0 {
                return false;
            }
        }
        false
    }

    /// Whether the subtree the pattern names and the subtree at `path` share
    /// any path: the pattern matches an ancestor of `path`, `path` itself, or
    /// something below it.
    pub(crate) fn overlaps_subtree<'a>(&self, path: impl IntoIterator<Item = &'a str>) -> bool {
        let mut set = self.closure(1);
        for seg in path {
            if set & self.accept() != 0 {
                return true;
            }
            set = self.step(set, seg);
            if set == 0 {
                return false;
            }
        }
        // Every path was consumed and some position is live: the rest of the
        // pattern matches some continuation (literals, `*` and `**` each match
        // something), so the pattern matches a path below (or at) `path`.
        set != 0
    }

    fn fmt_with(&self, f: &mut fmt::Formatter<'_>, sep: char, key: bool) -> fmt::Result {
        for (i, s) in self.segs.iter().enumerate() {
            if i > 0 {
                fmt::Write::write_char(f, sep)?;
            }
            match s {
                Seg::Any => f.write_str("**")?,
                Seg::One => f.write_str("*")?,
                Seg::Lit(l) if key => write_key_segment(f, l)?,
                Seg::Lit(l) => f.write_str(l)?,
            }
        }
        Ok(())
    }
}

/// Writes a literal key segment, quoted unless it is plain `[A-Za-z0-9_-]+`
/// (so a key literally named `*` is written `"*"`).
fn write_key_segment(f: &mut fmt::Formatter<'_>, seg: &str) -> fmt::Result {
    let plain = !seg.is_empty()
        && seg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        return f.write_str(seg);
    }
    f.write_str("\"")?;
    for c in seg.chars() {
        if c == '"' || c == '\\' {
            f.write_str("\\")?;
        }
        fmt::Write::write_char(f, c)?;
    }
    f.write_str("\"")
}

/// A pattern over namespaces, layers and key subtrees; see the [module
/// docs](crate::pattern) for the grammar. Serialized as its text form.
///
/// ```
/// use confstrata_access::{Resource, ResourcePattern};
/// let p: ResourcePattern = "payments:env/*#db.*".parse().unwrap();
/// let r = Resource::parse("payments:env/prod#db.pool.max").unwrap();
/// assert!(p.covers(&r));
/// assert!(!p.covers(&Resource::parse("payments:env/prod").unwrap()));
/// assert!(p.overlaps(&Resource::parse("payments:env/prod").unwrap()));
/// let err = "payments:env/prod#".parse::<ResourcePattern>().unwrap_err();
/// assert!(err.to_string().contains("the key part"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ResourcePattern {
    pub(crate) namespace: PathPattern,
    pub(crate) layer: PathPattern,
    pub(crate) key: PathPattern,
}

const NS_PART: &str = "the namespace part";
const LAYER_PART: &str = "the layer part";
const KEY_PART: &str = "the key part";
const WHOLE: &str = "the pattern";

impl ResourcePattern {
    /// The pattern `**`: every resource.
    pub fn everything() -> ResourcePattern {
        ResourcePattern {
            namespace: PathPattern::all(),
            layer: PathPattern::all(),
            key: PathPattern::all(),
        }
    }

    /// Whether this is `**`, covering every resource.
    pub fn is_everything(&self) -> bool {
        self.namespace.is_all() && self.layer.is_all() && self.key.is_all()
    }

    /// Parses the text form, naming the bad part on error.
    pub fn parse(input: &str) -> Result<ResourcePattern> {
        let err = |part: &'static str, reason: String| Error::InvalidPattern {
            pattern: shown(input),
            part,
            reason,
        };
        if input.is_empty() {
            return Err(err(WHOLE, "it is empty; use ** for everything".into()));
        }
        if input.len() > MAX_PATTERN_BYTES {
            return Err(err(
                WHOLE,
                format!(
                    "it is {} bytes long; the limit is {MAX_PATTERN_BYTES}",
                    input.len()
                ),
            ));
        }
        let (head, key) = match input.split_once('#') {
            Some((h, k)) => (h, Some(k)),
            None => (input, None),
        };
        let (ns, layer) = match head.split_once(':') {
            Some((n, l)) => (n, Some(l)),
            None => (head, None),
        };
        if ns.is_empty() {
            return Err(err(
                NS_PART,
                "it is empty; write ** for every namespace".into(),
            ));
        }
        let namespace = parse_slash_pattern(ns, "namespace name").map_err(|r| err(NS_PART, r))?;
        let layer = match layer {
            None => PathPattern::all(),
            Some("") => {
                return Err(err(
                    LAYER_PART,
                    "it is empty after ':'; omit the ':' or write ** for every layer".into(),
                ));
            }
            Some(l) => parse_slash_pattern(l, "layer path").map_err(|r| err(LAYER_PART, r))?,
        };
        let key = match key {
            None => PathPattern::all(),
            Some("") => {
                return Err(err(
                    KEY_PART,
                    "it is empty after '#'; omit the '#' or write ** for every key".into(),
                ));
            }
            Some(k) => parse_key_pattern(k).map_err(|r| err(KEY_PART, r))?,
        };
        Ok(ResourcePattern {
            namespace,
            layer,
            key,
        })
    }

    /// Whether an allow grant on this pattern covers all of `resource`.
    pub fn covers(&self, resource: &Resource) -> bool {
        let ns = match &resource.namespace {
            None => self.namespace.is_all(),
            Some(n) => self.namespace.matches(n.segments()),
        };
        if !ns {
            return false;
        }
        let layer = match &resource.layer {
            None => self.layer.is_all(),
            Some(l) => self.layer.matches(l.segments()),
        };
        if !layer {
            return false;
        }
        match &resource.key {
            None => self.key.is_all(),
            Some(k) => self
                .key
                .covers_subtree(k.segments().iter().map(String::as_str)),
        }
    }

    /// Whether a deny grant on this pattern touches any part of `resource`.
    pub fn overlaps(&self, resource: &Resource) -> bool {
        if let Some(n) = &resource.namespace
            && !self.namespace.matches(n.segments())
        {
            return false;
        }
        if let Some(l) = &resource.layer
            && !self.layer.matches(l.segments())
        {
            return false;
        }
        match &resource.key {
            None => true,
            Some(k) => self
                .key
                .overlaps_subtree(k.segments().iter().map(String::as_str)),
        }
    }
}

/// A pattern over key paths alone: the key part of a [`ResourcePattern`]
/// (`db`, `db.*`, `features.**`, `*.timeout_ms`), naming subtrees the same
/// way. For filters that are not grants, such as `confstrata sync
/// --include`.
///
/// ```
/// use confstrata_access::KeyPattern;
/// use confstrata_core::KeyPath;
/// let p = KeyPattern::parse("db.*").unwrap();
/// assert!(p.covers(&KeyPath::parse("db.pool.max").unwrap()));
/// assert!(!p.covers(&KeyPath::parse("db").unwrap()));
/// assert!(KeyPattern::parse("db.po*").unwrap_err().to_string().contains("whole segment"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyPattern(PathPattern);

impl KeyPattern {
    /// Parses the key part grammar, naming the pattern on error.
    pub fn parse(input: &str) -> Result<KeyPattern> {
        if input.len() > MAX_PATTERN_BYTES {
            return Err(Error::InvalidPattern {
                pattern: shown(input),
                part: KEY_PART,
                reason: format!(
                    "it is {} bytes long; the limit is {MAX_PATTERN_BYTES}",
                    input.len()
                ),
            });
        }
        parse_key_pattern(input)
            .map(KeyPattern)
            .map_err(|reason| Error::InvalidPattern {
                pattern: shown(input),
                part: KEY_PART,
                reason,
            })
    }

    /// Whether the subtree the pattern names holds the key (and so all of
    /// its own subtree).
    pub fn covers(&self, key: &KeyPath) -> bool {
        self.0
            .covers_subtree(key.segments().iter().map(String::as_str))
    }
}

impl fmt::Display for KeyPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_with(f, '.', true)
    }
}

impl fmt::Debug for KeyPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPattern({self})")
    }
}

/// A pattern over layer paths alone: the layer part of a
/// [`ResourcePattern`] (`env/*`, `env/prod/**`), matching whole paths.
///
/// ```
/// use confstrata_access::LayerPattern;
/// use confstrata_core::LayerPath;
/// let p = LayerPattern::parse("env/*").unwrap();
/// assert!(p.matches(&LayerPath::parse("env/prod").unwrap()));
/// assert!(!p.matches(&LayerPath::parse("env/prod/region/eu").unwrap()));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LayerPattern(PathPattern);

impl LayerPattern {
    /// Parses the layer part grammar, naming the pattern on error.
    pub fn parse(input: &str) -> Result<LayerPattern> {
        let err = |reason: String| Error::InvalidPattern {
            pattern: shown(input),
            part: LAYER_PART,
            reason,
        };
        if input.is_empty() {
            return Err(err("it is empty; write ** for every layer".into()));
        }
        if input.len() > MAX_PATTERN_BYTES {
            return Err(err(format!(
                "it is {} bytes long; the limit is {MAX_PATTERN_BYTES}",
                input.len()
            )));
        }
        parse_slash_pattern(input, "layer path")
            .map(LayerPattern)
            .map_err(err)
    }

    /// Whether the pattern matches the whole layer path.
    pub fn matches(&self, layer: &LayerPath) -> bool {
        self.0.matches(layer.segments())
    }
}

impl fmt::Display for LayerPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt_with(f, '/', false)
    }
}

impl fmt::Debug for LayerPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LayerPattern({self})")
    }
}

/// Parses a `/`-separated namespace or layer pattern; the error is the reason only.
fn parse_slash_pattern(text: &str, kind: &str) -> std::result::Result<PathPattern, String> {
    let mut segs = Vec::new();
    for (i, seg) in text.split('/').enumerate() {
        let n = i + 1;
        if n > MAX_PATTERN_SEGMENTS {
            return Err(format!("it has more than {MAX_PATTERN_SEGMENTS} segments"));
        }
        segs.push(match seg {
            "*" => Seg::One,
            "**" => Seg::Any,
            "" => return Err(format!("segment {n} is empty")),
            s if s.contains('*') => {
                return Err(format!(
                    "segment {n} ({s:?}) mixes '*' with other characters; a wildcard must be a whole segment (* or **)"
                ));
            }
            s => {
                // A single segment is valid exactly when it parses as a one-segment layer path.
                LayerPath::parse(s).map_err(|e| match e {
                    // The core parser saw a one-segment path: renumber its message.
                    confstrata_core::Error::InvalidPath { reason, .. } => {
                        match reason.strip_prefix("segment 1 ") {
                            Some(rest) => format!("segment {n} {rest} (in a {kind})"),
                            None => format!("segment {n} ({s:?}) is not a valid {kind} segment: {reason}"),
                        }
                    }
                    other => other.to_string(),
                })?;
                Seg::Lit(s.to_owned())
            }
        });
    }
    Ok(PathPattern::new(segs))
}

/// Parses a `.`-separated key pattern with the key path quoting rules.
fn parse_key_pattern(text: &str) -> std::result::Result<PathPattern, String> {
    // The key path parser checks syntax (quotes, escapes, empty segments) and unescapes.
    let path = KeyPath::parse(text).map_err(|e| match e {
        confstrata_core::Error::InvalidPath { reason, .. } => reason,
        other => other.to_string(),
    })?;
    let quoted = quoted_segments(text);
    let mut segs = Vec::with_capacity(path.segments().len());
    for (i, seg) in path.segments().iter().enumerate() {
        let n = i + 1;
        let is_quoted = quoted.get(i).copied().unwrap_or(true);
        segs.push(match seg.as_str() {
            "*" if !is_quoted => Seg::One,
            "**" if !is_quoted => Seg::Any,
            s if !is_quoted && s.contains('*') => {
                return Err(format!(
                    "segment {n} ({s:?}) mixes '*' with other characters; a wildcard must be a whole segment (* or **); quote the segment to match a key containing '*'"
                ));
            }
            s => Seg::Lit(s.to_owned()),
        });
    }
    if segs.len() > MAX_PATTERN_SEGMENTS {
        return Err(format!("it has more than {MAX_PATTERN_SEGMENTS} segments"));
    }
    Ok(PathPattern::new(segs))
}

/// For text that `KeyPath::parse` accepted: which segments were quoted.
fn quoted_segments(text: &str) -> Vec<bool> {
    let mut out = Vec::new();
    let mut chars = text.chars();
    loop {
        let mut rest = chars.clone();
        if rest.next() == Some('"') {
            out.push(true);
            chars = rest;
            // Skip to the closing quote, honouring `\"` and `\\`.
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => break,
                    _ => {}
                }
            }
            // Then to the separator.
            if chars.next().is_none() {
                break;
            }
        } else {
            out.push(false);
            let mut ended = true;
            for c in chars.by_ref() {
                if c == '.' {
                    ended = false;
                    break;
                }
            }
            if ended {
                break;
            }
        }
    }
    out
}

impl fmt::Display for ResourcePattern {
    /// The canonical text form: a `**` layer or key part is left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.namespace.fmt_with(f, '/', false)?;
        if !self.layer.is_all() {
            f.write_str(":")?;
            self.layer.fmt_with(f, '/', false)?;
        }
        if !self.key.is_all() {
            f.write_str("#")?;
            self.key.fmt_with(f, '.', true)?;
        }
        Ok(())
    }
}

impl fmt::Debug for ResourcePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResourcePattern({self})")
    }
}

confstrata_core::text_serde!(ResourcePattern, Error);

/// What a request touches: everything, a namespace, a layer, or a key
/// subtree (in one layer, or in the resolved view of a namespace).
///
/// Text form: `**` for everything, else `namespace[:layer][#key]`, the
/// same shape as a [`ResourcePattern`] without wildcards.
///
/// ```
/// use confstrata_access::Resource;
/// let r = Resource::parse("payments:env/prod#db.password").unwrap();
/// assert_eq!(r.namespace_name().unwrap().as_str(), "payments");
/// assert_eq!(r.to_string(), "payments:env/prod#db.password");
/// assert_eq!(Resource::everything().to_string(), "**");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Resource {
    // Invariant: `layer` or `key` is only set when `namespace` is.
    namespace: Option<NamespaceName>,
    layer: Option<LayerPath>,
    key: Option<KeyPath>,
}

impl Resource {
    /// The whole store (for `audit`, `backup` and `admin` on everything).
    pub fn everything() -> Resource {
        Resource {
            namespace: None,
            layer: None,
            key: None,
        }
    }

    /// A whole namespace: every layer, and the resolved views.
    pub fn namespace(namespace: NamespaceName) -> Resource {
        Resource {
            namespace: Some(namespace),
            layer: None,
            key: None,
        }
    }

    /// A whole layer.
    pub fn layer(namespace: NamespaceName, layer: LayerPath) -> Resource {
        Resource {
            namespace: Some(namespace),
            layer: Some(layer),
            key: None,
        }
    }

    /// The subtree at `key` in one layer.
    pub fn key(namespace: NamespaceName, layer: LayerPath, key: KeyPath) -> Resource {
        Resource {
            namespace: Some(namespace),
            layer: Some(layer),
            key: Some(key),
        }
    }

    /// The subtree at `key` in every layer of a namespace (as in a resolved view).
    pub fn resolved_key(namespace: NamespaceName, key: KeyPath) -> Resource {
        Resource {
            namespace: Some(namespace),
            layer: None,
            key: Some(key),
        }
    }

    /// Parses the text form.
    pub fn parse(input: &str) -> Result<Resource> {
        if input == "**" {
            return Ok(Resource::everything());
        }
        let err = |reason: String| Error::InvalidResource {
            input: shown(input),
            reason,
        };
        let (head, key) = match input.split_once('#') {
            Some((h, k)) => (h, Some(k)),
            None => (input, None),
        };
        let (ns, layer) = match head.split_once(':') {
            Some((n, l)) => (n, Some(l)),
            None => (head, None),
        };
        let reason = |e: confstrata_core::Error| match e {
            confstrata_core::Error::InvalidPath { kind, reason, .. } => {
                format!("the {kind}: {reason}")
            }
            other => other.to_string(),
        };
        let namespace = NamespaceName::parse(ns).map_err(|e| err(reason(e)))?;
        let layer = layer
            .map(LayerPath::parse)
            .transpose()
            .map_err(|e| err(reason(e)))?;
        let key = key
            .map(KeyPath::parse)
            .transpose()
            .map_err(|e| err(reason(e)))?;
        Ok(Resource {
            namespace: Some(namespace),
            layer,
            key,
        })
    }

    /// The namespace, unless the resource is everything.
    pub fn namespace_name(&self) -> Option<&NamespaceName> {
        self.namespace.as_ref()
    }

    /// The layer, if the resource is inside one.
    pub fn layer_path(&self) -> Option<&LayerPath> {
        self.layer.as_ref()
    }

    /// The key, if the resource is a key subtree.
    pub fn key_path(&self) -> Option<&KeyPath> {
        self.key.as_ref()
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(ns) = &self.namespace else {
            return f.write_str("**");
        };
        f.write_str(ns.as_str())?;
        if let Some(l) = &self.layer {
            write!(f, ":{l}")?;
        }
        if let Some(k) = &self.key {
            write!(f, "#{k}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Resource({self})")
    }
}

impl FromStr for Resource {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Resource::parse(s)
    }
}

impl Serialize for Resource {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Resource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Resource::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
