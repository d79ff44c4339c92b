use super::*;
use confstrata_core::serde_json::json;

fn doc(v: Value) -> Document {
    v.as_object().cloned().unwrap()
}

#[test]
fn indexed_json_is_what_serde_json_writes() {
    for v in [
        json!({}),
        json!({"a": 1}),
        json!({"b": {"x": [1, 2], "y": {}}, "a\"q": "é\n", "c": {"$sealed": "x"}}),
    ] {
        let d = doc(v);
        let (text, spans) = indexed_json(&d);
        assert_eq!(&*text, serde_json::to_string(&d).unwrap());
        assert_eq!(spans.len(), d.len());
        let leaves: Vec<usize> = d.values().map(count_leaves).collect();
        let mut first = 0;
        for (span, n) in spans.iter().zip(leaves) {
            assert_eq!(span.first_leaf as usize, first);
            first += n;
        }
        assert_eq!(first, confstrata_core::doc::leaves(&d).len());
    }
}

#[test]
fn sections_are_found_by_key_with_escapes_and_at_the_end() {
    let d = doc(json!({"a": 1, "b\\c": {"d": 2}, "z": [3]}));
    let (text, spans) = indexed_json(&d);
    let draft = Draft {
        raw: text.to_string(),
        spans: spans.to_vec(),
        winners: vec![0; 3],
        layers: Vec::new(),
        sealed: Vec::new(),
        any_sealed: false,
        namespace: "web".parse().unwrap(),
    };
    for (name, value) in [("a", "1"), ("b\\c", r#"{"d":2}"#), ("z", "[3]")] {
        let (_, range) = draft.section(name).unwrap();
        assert_eq!(&draft.raw[range], value, "{name}");
    }
    assert!(draft.section("b").is_none());
    assert!(draft.section("zz").is_none());
}
