//! The matcher against a simple reference model, and the parser's errors.

use confstrata_core::{KeyPath, LayerPath, NamespaceName};
use proptest::prelude::*;

use super::*;

/// A pattern segment of the reference model: runs of `**` are kept as written.
#[derive(Clone, Debug)]
enum R {
    Lit(&'static str),
    One,
    Any,
}

/// The obvious recursive matcher (exponential in the worst case, so only for tests).
fn ref_match(p: &[R], path: &[&str]) -> bool {
    match p.split_first() {
        None => path.is_empty(),
        Some((R::Any, rest)) => (0..=path.len()).any(|i| ref_match(rest, &path[i..])),
        Some((R::One, rest)) => !path.is_empty() && ref_match(rest, &path[1..]),
        Some((R::Lit(l), rest)) => path.first() == Some(l) && ref_match(rest, &path[1..]),
    }
}

/// Covers: the pattern matches the path or one of its ancestors.
fn ref_covers(p: &[R], path: &[&str]) -> bool {
    (0..=path.len()).any(|i| ref_match(p, &path[..i]))
}

/// Overlaps: covers, or the pattern matches some path below this one. Found
/// by enumerating every extension up to the pattern's length over the
/// alphabet plus a segment no pattern names.
fn ref_overlaps(p: &[R], path: &[&str], alphabet: &[&'static str]) -> bool {
    if ref_covers(p, path) {
        return true;
    }
    let mut frontier: Vec<Vec<&str>> = vec![path.to_vec()];
    for _ in 0..p.len() {
        let mut next = Vec::new();
        for f in &frontier {
            for s in alphabet.iter().copied().chain(["fresh"]) {
                let mut g = f.clone();
                g.push(s);
                if ref_match(p, &g) {
                    return true;
                }
                next.push(g);
            }
        }
        frontier = next;
    }
    false
}

const SLASH_ALPHABET: &[&str] = &["a", "b", "c.d"];
const KEY_ALPHABET: &[&str] = &["a", "b", "x.y", "*"];

fn pattern_segs(alphabet: &'static [&'static str]) -> impl Strategy<Value = Vec<R>> {
    prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(alphabet).prop_map(R::Lit),
            1 => Just(R::One),
            1 => Just(R::Any),
        ],
        1..5,
    )
}

fn path(alphabet: &'static [&'static str], min: usize) -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(
        prop::sample::select(alphabet.iter().copied().chain(["d"]).collect::<Vec<_>>()),
        min..6,
    )
}

fn slash_text(p: &[R]) -> String {
    p.iter()
        .map(|s| match s {
            R::Lit(l) => (*l).to_owned(),
            R::One => "*".into(),
            R::Any => "**".into(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn key_text(p: &[R]) -> String {
    p.iter()
        .map(|s| match s {
            R::Lit(l) if l.chars().all(|c| c.is_ascii_alphanumeric()) => (*l).to_owned(),
            R::Lit(l) => format!("\"{l}\""),
            R::One => "*".into(),
            R::Any => "**".into(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

proptest! {
    #[test]
    fn namespace_and_layer_patterns_match_like_the_reference(
        p in pattern_segs(SLASH_ALPHABET),
        path in path(SLASH_ALPHABET, 1),
    ) {
        let text = slash_text(&p);
        let ns = NamespaceName::parse(&path.join("/")).unwrap();
        let layer = LayerPath::parse(&path.join("/")).unwrap();
        let expected = ref_match(&p, &path);

        let by_ns = ResourcePattern::parse(&text).unwrap();
        prop_assert_eq!(by_ns.covers(&Resource::namespace(ns.clone())), expected);
        prop_assert_eq!(by_ns.overlaps(&Resource::namespace(ns.clone())), expected);

        let by_layer = ResourcePattern::parse(&format!("n:{text}")).unwrap();
        let n = NamespaceName::parse("n").unwrap();
        prop_assert_eq!(by_layer.covers(&Resource::layer(n.clone(), layer.clone())), expected);
        prop_assert_eq!(by_layer.overlaps(&Resource::layer(n, layer)), expected);
    }

    #[test]
    fn key_patterns_cover_and_overlap_like_the_reference(
        p in pattern_segs(KEY_ALPHABET),
        path in path(KEY_ALPHABET, 1),
    ) {
        let text = format!("n:l#{}", key_text(&p));
        let pattern = ResourcePattern::parse(&text).unwrap();
        let key = KeyPath::from_segments(path.iter().copied()).unwrap();
        let r = Resource::key("n".parse().unwrap(), "l".parse().unwrap(), key.clone());
        prop_assert_eq!(pattern.covers(&r), ref_covers(&p, &path), "covers {} {}", text, key);
        prop_assert_eq!(
            pattern.overlaps(&r),
            ref_overlaps(&p, &path, KEY_ALPHABET),
            "overlaps {} {}", text, key
        );
        prop_assert_eq!(pattern.key.matches(path.iter().copied()), ref_match(&p, &path));
    }

    #[test]
    fn display_parses_back_to_the_same_pattern(
        ns in pattern_segs(SLASH_ALPHABET),
        layer in pattern_segs(SLASH_ALPHABET),
        key in pattern_segs(KEY_ALPHABET),
    ) {
        let p = ResourcePattern::parse(&format!("{}:{}#{}", slash_text(&ns), slash_text(&layer), key_text(&key))).unwrap();
        let shown = p.to_string();
        prop_assert_eq!(ResourcePattern::parse(&shown).unwrap(), p);
    }
}

#[test]
fn runs_of_double_stars_collapse() {
    let p = ResourcePattern::parse("**/**/a:**/**#**.**").unwrap();
    assert_eq!(p.namespace.segs(), [Seg::Any, Seg::Lit("a".into())]);
    assert_eq!(p.to_string(), "**/a");
}

#[track_caller]
fn check_error(input: &str, expected: &str) {
    let err = ResourcePattern::parse(input).unwrap_err().to_string();
    assert_eq!(err, expected, "for {input:?}");
}

#[test]
fn errors_name_the_bad_part() {
    check_error(
        "",
        r#"invalid resource pattern "": the pattern: it is empty; use ** for everything"#,
    );
    check_error(
        ":env/prod",
        r#"invalid resource pattern ":env/prod": the namespace part: it is empty; write ** for every namespace"#,
    );
    check_error(
        "payments:",
        r#"invalid resource pattern "payments:": the layer part: it is empty after ':'; omit the ':' or write ** for every layer"#,
    );
    check_error(
        "payments#",
        r#"invalid resource pattern "payments#": the key part: it is empty after '#'; omit the '#' or write ** for every key"#,
    );
    check_error(
        "pay*:env",
        r#"invalid resource pattern "pay*:env": the namespace part: segment 1 ("pay*") mixes '*' with other characters; a wildcard must be a whole segment (* or **)"#,
    );
    check_error(
        "payments:env//prod",
        r#"invalid resource pattern "payments:env//prod": the layer part: segment 2 is empty"#,
    );
    check_error(
        "payments:env/../prod",
        r#"invalid resource pattern "payments:env/../prod": the layer part: segment 2 is "..", which is not allowed (in a layer path)"#,
    );
    check_error(
        "payments:env/%2e%2e",
        r#"invalid resource pattern "payments:env/%2e%2e": the layer part: segment 2 ("%2e%2e") contains '%'; only letters, digits, '-', '_' and '.' are allowed (in a layer path)"#,
    );
    check_error(
        "a:b:c",
        r#"invalid resource pattern "a:b:c": the layer part: segment 1 ("b:c") contains ':'; only letters, digits, '-', '_' and '.' are allowed (in a layer path)"#,
    );
    check_error(
        "sh ared",
        r#"invalid resource pattern "sh ared": the namespace part: segment 1 ("sh ared") contains ' '; only letters, digits, '-', '_' and '.' are allowed (in a namespace name)"#,
    );
    check_error(
        "payments#db..x",
        r#"invalid resource pattern "payments#db..x": the key part: segment 2 is empty"#,
    );
    check_error(
        "payments#db.pass*",
        r#"invalid resource pattern "payments#db.pass*": the key part: segment 2 ("pass*") mixes '*' with other characters; a wildcard must be a whole segment (* or **); quote the segment to match a key containing '*'"#,
    );
    check_error(
        "payments#db.\"open",
        r#"invalid resource pattern "payments#db.\"open": the key part: segment 2 has an unclosed quote"#,
    );
    let long = "a/".repeat(1100);
    let err = ResourcePattern::parse(&long).unwrap_err().to_string();
    assert!(
        err.contains("the pattern: it is 2200 bytes long; the limit is 2048"),
        "{err}"
    );
    let many = vec!["a"; 65].join("/");
    let err = ResourcePattern::parse(&many).unwrap_err().to_string();
    assert!(
        err.contains("the namespace part: it has more than 64 segments"),
        "{err}"
    );
}

#[test]
fn quoted_star_is_a_literal_key() {
    let p = ResourcePattern::parse("n#labels.\"*\"").unwrap();
    let star = Resource::parse("n:l#labels.\"*\"").unwrap();
    let other = Resource::parse("n:l#labels.app").unwrap();
    assert!(p.covers(&star));
    assert!(!p.covers(&other));
    assert_eq!(p.to_string(), "n#labels.\"*\"");
}

#[test]
fn allow_needs_coverage_and_deny_needs_overlap() {
    let r = |s: &str| Resource::parse(s).unwrap();
    let p = |s: &str| ResourcePattern::parse(s).unwrap();
    // A key grant does not cover the whole layer or namespace, but overlaps them.
    assert!(!p("pay:prod#db").covers(&r("pay:prod")));
    assert!(p("pay:prod#db").overlaps(&r("pay:prod")));
    assert!(!p("pay#db").covers(&r("pay")));
    assert!(p("pay#db").covers(&r("pay#db.host")));
    // A deny below the key asked for overlaps it.
    assert!(p("pay:prod#db.password").overlaps(&r("pay:prod#db")));
    assert!(!p("pay:prod#db.password").overlaps(&r("pay:prod#cache")));
    // Layers match whole paths.
    assert!(!p("pay:env/prod").covers(&r("pay:env/prod/region/eu")));
    assert!(p("pay:env/prod/**").covers(&r("pay:env/prod/region/eu")));
    assert!(p("pay:env/prod/**").covers(&r("pay:env/prod")));
    // Everything.
    assert!(p("**").covers(&Resource::everything()));
    assert!(!p("pay").covers(&Resource::everything()));
    assert!(p("pay").overlaps(&Resource::everything()));
}

#[test]
fn resources_parse_and_print() {
    for s in [
        "**",
        "pay",
        "pay:env/prod",
        "pay:env/prod#db.\"a.b\"",
        "shared/logging#level",
    ] {
        assert_eq!(Resource::parse(s).unwrap().to_string(), s);
    }
    let err = Resource::parse("pay:../x").unwrap_err().to_string();
    assert_eq!(
        err,
        r#"invalid resource "pay:../x": the layer path: segment 1 is "..", which is not allowed"#
    );
}
