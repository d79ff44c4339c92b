//! The built-in schema library: small JSON Schemas for the values
//! configuration is made of (ports, durations, byte sizes, ...), referenced
//! from a namespace's schema as `{"$ref": "confstrata:port"}`.
//!
//! Checks that JSON Schema cannot express readably are formats named
//! `confstrata:<name>`, registered on every validator this crate builds, so
//! a failure reads `"5x" is not a "confstrata:duration"`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::LazyLock;

use serde_json::{Value, json};

/// The URI scheme of library references: `confstrata:port`.
pub(crate) const SCHEME: &str = "confstrata";

/// A format's check.
pub(crate) type FormatCheck = fn(&str) -> bool;

/// The formats this crate adds to JSON Schema, by name.
pub(crate) const FORMATS: &[(&str, FormatCheck)] = &[
    ("confstrata:duration", is_duration),
    ("confstrata:byte-size", is_byte_size),
    ("confstrata:percentage", is_percentage),
    ("confstrata:semver", is_semver),
    ("confstrata:cron", is_cron),
    ("confstrata:ip", is_ip),
    ("confstrata:cidr", is_cidr),
    ("confstrata:log-level", is_log_level),
    ("confstrata:timezone", is_timezone),
    ("confstrata:url", is_url),
];

static LIBRARY: LazyLock<BTreeMap<String, Value>> = LazyLock::new(build);

/// The built-in schema library, by name: `port`, `hostname`, `url`,
/// `duration`, `byte-size`, `percentage`, `semver`, `cron`, `email`, `ipv4`,
/// `ipv6`, `ip`, `cidr`, `log-level`, `positive-integer`,
/// `non-empty-string`, `timezone`.
///
/// A namespace's schema refers to an entry as `{"$ref": "confstrata:port"}`.
/// Each entry is a JSON Schema (draft 2020-12) with a `title`, a
/// `description` and `examples`.
///
/// ```
/// let port = &confstrata_rules::library()["port"];
/// assert_eq!(port["maximum"], 65535);
/// ```
pub fn library() -> &'static BTreeMap<String, Value> {
    &LIBRARY
}

fn entry(name: &str, description: &str, examples: Value, mut schema: Value) -> (String, Value) {
    if let Value::Object(map) = &mut schema {
        map.insert("$id".into(), Value::String(format!("{SCHEME}:{name}")));
        map.insert("title".into(), Value::String(name.into()));
        map.insert("description".into(), Value::String(description.into()));
        map.insert("examples".into(), examples);
    }
    (name.to_owned(), schema)
}

fn build() -> BTreeMap<String, Value> {
    [
        entry(
            "port",
            "A TCP or UDP port number, 1 to 65535.",
            json!([80, 5432]),
            json!({"type": "integer", "minimum": 1, "maximum": 65535}),
        ),
        entry(
            "hostname",
            "A DNS host name (RFC 1123): `db.internal`, `localhost`.",
            json!(["db.internal", "localhost"]),
            json!({"type": "string", "minLength": 1, "format": "hostname"}),
        ),
        entry(
            "url",
            "An absolute URL with a scheme and a host: `https://example.com/path`.",
            json!(["https://example.com/api", "postgres://db:5432/app"]),
            json!({"type": "string", "format": "confstrata:url"}),
        ),
        entry(
            "duration",
            "A duration: numbers with units ns, us, ms, s, m, h, d, e.g. `30s`, `5m`, `1h30m`, `250ms`, `1.5h`.",
            json!(["30s", "1h30m", "250ms"]),
            json!({"type": "string", "format": "confstrata:duration"}),
        ),
        entry(
            "byte-size",
            "A size in bytes: a non-negative integer, or a number with a unit (B, k/KB, KiB, M/MB, MiB, G/GB, GiB, T/TB, TiB, P/PB, PiB; case-insensitive), e.g. `512MiB`, `1GB`, `64k`.",
            json!(["512MiB", "1GB", "64k", 4096]),
            json!({"type": ["integer", "string"], "minimum": 0, "format": "confstrata:byte-size"}),
        ),
        entry(
            "percentage",
            "A percentage from 0 to 100: a number, or a string ending in `%` (`12.5%`).",
            json!([50, 12.5, "75%"]),
            json!({"type": ["number", "string"], "minimum": 0, "maximum": 100, "format": "confstrata:percentage"}),
        ),
        entry(
            "semver",
            "A semantic version (semver.org 2.0): `1.2.3`, `2.0.0-rc.1+build.5`.",
            json!(["1.2.3", "2.0.0-rc.1"]),
            json!({"type": "string", "format": "confstrata:semver"}),
        ),
        entry(
            "cron",
            "A cron schedule: 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first, or a macro such as `@daily`. Fields take `*`, numbers, names (JAN, MON), ranges `a-b`, lists `a,b` and steps `*/5`.",
            json!(["*/5 * * * *", "0 30 2 * * MON-FRI", "@hourly"]),
            json!({"type": "string", "format": "confstrata:cron"}),
        ),
        entry(
            "email",
            "An e-mail address.",
            json!(["ops@example.com"]),
            json!({"type": "string", "format": "email"}),
        ),
        entry(
            "ipv4",
            "An IPv4 address in dotted-quad form.",
            json!(["10.0.0.1"]),
            json!({"type": "string", "format": "ipv4"}),
        ),
        entry(
            "ipv6",
            "An IPv6 address.",
            json!(["fd00::1"]),
            json!({"type": "string", "format": "ipv6"}),
        ),
        entry(
            "ip",
            "An IPv4 or IPv6 address.",
            json!(["10.0.0.1", "::1"]),
            json!({"type": "string", "format": "confstrata:ip"}),
        ),
        entry(
            "cidr",
            "An IP network in CIDR notation: `10.0.0.0/8`, `fd00::/64` (prefix 0-32 for IPv4, 0-128 for IPv6).",
            json!(["10.0.0.0/8", "fd00::/64"]),
            json!({"type": "string", "format": "confstrata:cidr"}),
        ),
        entry(
            "log-level",
            "A log level: trace, debug, info, warn, error or fatal, in any case.",
            json!(["info", "WARN"]),
            json!({"type": "string", "format": "confstrata:log-level"}),
        ),
        entry(
            "positive-integer",
            "An integer of at least 1.",
            json!([1, 42]),
            json!({"type": "integer", "minimum": 1}),
        ),
        entry(
            "non-empty-string",
            "A string with at least one character that is not whitespace.",
            json!(["x"]),
            json!({"type": "string", "minLength": 1, "pattern": "\\S"}),
        ),
        entry(
            "timezone",
            "A time zone: an IANA name (`Europe/Paris`, `America/Argentina/Buenos_Aires`, `Etc/GMT+5`), `UTC`, `GMT`, a few legacy names (`CET`, `EST5EDT`), or a UTC offset (`+02:00`, `-0530`). The name is checked for shape, not against a time zone database.",
            json!(["Europe/Paris", "UTC", "+05:30"]),
            json!({"type": "string", "format": "confstrata:timezone"}),
        ),
    ]
    .into_iter()
    .collect()
}

/// A decimal number: digits, optionally `.` and digits. Returns the rest.
fn number_prefix(s: &str) -> Option<(f64, &str)> {
    let int_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if int_end == 0 {
        return None;
    }
    let mut end = int_end;
    if let Some(frac) = s[int_end..].strip_prefix('.') {
        let frac_len = frac
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(frac.len());
        if frac_len == 0 {
            return None;
        }
        end = int_end + 1 + frac_len;
    }
    let value = s[..end].parse().ok()?;
    Some((value, &s[end..]))
}

pub(crate) fn is_duration(s: &str) -> bool {
    if s == "0" {
        return true;
    }
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let Some((_, after)) = number_prefix(rest) else {
            return false;
        };
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        if !matches!(
            &after[..unit_len],
            "ns" | "us" | "µs" | "ms" | "s" | "m" | "h" | "d"
        ) {
            return false;
        }
        rest = &after[unit_len..];
    }
    true
}

pub(crate) fn is_byte_size(s: &str) -> bool {
    let Some((_, unit)) = number_prefix(s) else {
        return false;
    };
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    matches!(
        unit.as_str(),
        "" | "b"
            | "k"
            | "kb"
            | "kib"
            | "m"
            | "mb"
            | "mib"
            | "g"
            | "gb"
            | "gib"
            | "t"
            | "tb"
            | "tib"
            | "p"
            | "pb"
            | "pib"
    )
}

pub(crate) fn is_percentage(s: &str) -> bool {
    let Some(number) = s.strip_suffix('%') else {
        return false;
    };
    let number = number.strip_suffix(' ').unwrap_or(number);
    matches!(number_prefix(number), Some((v, "")) if v <= 100.0)
}

fn is_numeric_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
}

fn is_semver_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

pub(crate) fn is_semver(s: &str) -> bool {
    let (rest, build) = match s.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (s, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 || !parts.iter().all(|p| is_numeric_identifier(p)) {
        return false;
    }
    if let Some(pre) = pre {
        let ok = pre.split('.').all(|id| {
            is_semver_identifier(id)
                && (!id.bytes().all(|b| b.is_ascii_digit()) || is_numeric_identifier(id))
        });
        if !ok {
            return false;
        }
    }
    build.is_none_or(|b| b.split('.').all(is_semver_identifier))
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// One cron field: its range and its names (the first name is `min`).
struct CronField {
    min: u32,
    max: u32,
    names: &'static [&'static str],
    question_mark: bool,
}

fn cron_value(field: &CronField, s: &str) -> Option<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return (field.min..=field.max).contains(&n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    field
        .names
        .iter()
        .position(|name| *name == upper)
        .and_then(|i| u32::try_from(i).ok())
        .map(|i| i + field.min)
}

fn is_cron_field(field: &CronField, s: &str) -> bool {
    s.split(',').all(|item| {
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => (base, Some(step)),
            None => (item, None),
        };
        if let Some(step) = step
            && !matches!(step.parse::<u32>(), Ok(n) if n >= 1)
        {
            return false;
        }
        match base {
            "*" => true,
            "?" => field.question_mark && step.is_none(),
            _ => match base.split_once('-') {
                Some((a, b)) => matches!(
                    (cron_value(field, a), cron_value(field, b)),
                    (Some(a), Some(b)) if a <= b
                ),
                None => cron_value(field, base).is_some(),
            },
        }
    })
}

pub(crate) fn is_cron(s: &str) -> bool {
    let fields: Vec<&str> = s.split_whitespace().collect();
    if let [single] = fields.as_slice()
        && single.starts_with('@')
    {
        return matches!(
            *single,
            "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight" | "@hourly"
        );
    }
    const SECOND: CronField = CronField {
        min: 0,
        max: 59,
        names: &[],
        question_mark: false,
    };
    const MINUTE: CronField = SECOND;
    const HOUR: CronField = CronField {
        min: 0,
        max: 23,
        names: &[],
        question_mark: false,
    };
    const DAY: CronField = CronField {
        min: 1,
        max: 31,
        names: &[],
        question_mark: true,
    };
    const MONTH: CronField = CronField {
        min: 1,
        max: 12,
        names: &MONTHS,
        question_mark: false,
    };
    // 0 and 7 are both Sunday.
    const WEEKDAY: CronField = CronField {
        min: 0,
        max: 7,
        names: &DAYS,
        question_mark: true,
    };
    let layout: &[&CronField] = match fields.len() {
        5 => &[&MINUTE, &HOUR, &DAY, &MONTH, &WEEKDAY],
        6 => &[&SECOND, &MINUTE, &HOUR, &DAY, &MONTH, &WEEKDAY],
        _ => return false,
    };
    layout
        .iter()
        .zip(&fields)
        .all(|(field, text)| is_cron_field(field, text))
}

pub(crate) fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

pub(crate) fn is_cidr(s: &str) -> bool {
    let Some((addr, prefix)) = s.split_once('/') else {
        return false;
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return false;
    };
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 3 {
        return false;
    }
    let max = if addr.is_ipv4() { 32 } else { 128 };
    prefix.parse::<u32>().is_ok_and(|p| p <= max)
}

pub(crate) fn is_log_level(s: &str) -> bool {
    ["trace", "debug", "info", "warn", "error", "fatal"]
        .iter()
        .any(|level| level.eq_ignore_ascii_case(s))
}

const TZ_AREAS: &[&str] = &[
    "Africa",
    "America",
    "Antarctica",
    "Arctic",
    "Asia",
    "Atlantic",
    "Australia",
    "Europe",
    "Indian",
    "Pacific",
    "Etc",
    // Backward-compatible areas still in the IANA database.
    "Brazil",
    "Canada",
    "Chile",
    "Mexico",
    "US",
];

const TZ_SINGLE: &[&str] = &[
    "UTC",
    "GMT",
    "UCT",
    "Universal",
    "Zulu",
    "CET",
    "EET",
    "WET",
    "MET",
    "EST",
    "MST",
    "HST",
    "EST5EDT",
    "CST6CDT",
    "MST7MDT",
    "PST8PDT",
];

fn is_utc_offset(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('+').or_else(|| s.strip_prefix('-')) else {
        return false;
    };
    let (h, m) = match rest.split_once(':') {
        Some(hm) => hm,
        None if rest.len() == 4 => rest.split_at(2),
        None => return false,
    };
    let two_digits = |x: &str| x.len() == 2 && x.bytes().all(|b| b.is_ascii_digit());
    two_digits(h)
        && two_digits(m)
        && h.parse::<u32>().is_ok_and(|h| h <= 14)
        && m.parse::<u32>().is_ok_and(|m| m < 60)
}

pub(crate) fn is_timezone(s: &str) -> bool {
    if TZ_SINGLE.contains(&s) || is_utc_offset(s) {
        return true;
    }
    let mut segments = s.split('/');
    let Some(area) = segments.next() else {
        return false;
    };
    let rest: Vec<&str> = segments.collect();
    TZ_AREAS.contains(&area)
        && !rest.is_empty()
        && rest.iter().all(|seg| {
            seg.starts_with(|c: char| c.is_ascii_alphabetic())
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
        })
}

pub(crate) fn is_url(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    scheme_ok
        && !host.is_empty()
        && !host.starts_with(':')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}
