use super::*;

fn key_err(input: &str) -> String {
    KeyPath::parse(input).unwrap_err().to_string()
}

#[test]
fn key_paths_round_trip() {
    for (input, segs) in [
        ("db", vec!["db"]),
        ("db.pool.max", vec!["db", "pool", "max"]),
        ("labels.\"app.io/name\"", vec!["labels", "app.io/name"]),
        ("\"a\\\"b\".c", vec!["a\"b", "c"]),
        ("x-y_z.0", vec!["x-y_z", "0"]),
    ] {
        let k = KeyPath::parse(input).unwrap();
        assert_eq!(k.segments(), segs.as_slice(), "{input}");
        assert_eq!(KeyPath::parse(&k.to_string()).unwrap(), k, "{input}");
    }
}

#[test]
fn bad_key_paths_name_the_bad_part() {
    for (input, expected) in [
        ("", "it is empty"),
        ("a..b", "segment 2 is empty"),
        (".a", "segment 1 is empty"),
        ("a.", "segment 2 is empty"),
        ("a.\"b", "segment 2 has an unclosed quote"),
        ("a.b c", "segment 2 contains whitespace"),
        (
            "a.\u{7}",
            "segment 2 contains whitespace or a control character",
        ),
        ("a.\"\"", "segment 2 is empty"),
        ("a.\"x\"y", "unexpected text after the quoted segment 2"),
    ] {
        let e = key_err(input);
        assert!(e.contains(expected), "{input:?}: {e}");
    }
    assert!(key_err(&"a.".repeat(600)).contains("limit is 1024"));
    assert!(key_err(&vec!["a"; 65].join(".")).contains("more than 64 segments"));
}

#[test]
fn layer_paths_reject_traversal_and_encodings() {
    for ok in ["defaults", "env/prod", "env/prod/region/eu-west-1", "v1.2"] {
        LayerPath::parse(ok).unwrap();
    }
    for (bad, expected) in [
        ("../x", "segment 1 is \"..\""),
        ("a//b", "segment 2 is empty"),
        ("%2e%2e", "contains '%'"),
        ("/abs", "segment 1 is empty"),
        ("a/", "segment 2 is empty"),
        ("a/./b", "segment 2 is \".\""),
        ("a b", "contains ' '"),
        ("a\u{0}b", "contains '\\0'"),
        ("", "it is empty"),
    ] {
        let e = LayerPath::parse(bad).unwrap_err().to_string();
        assert!(e.contains(expected), "{bad:?}: {e}");
    }
    assert!(LayerPath::parse(&"a".repeat(129)).is_err());
    assert!(LayerPath::parse(&vec!["a"; 17].join("/")).is_err());
}
