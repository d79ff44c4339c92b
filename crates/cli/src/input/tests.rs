use serde_json::json;

use super::*;

#[test]
fn values_read_as_toml_or_strings() {
    assert_eq!(parse_value("50"), json!(50));
    assert_eq!(parse_value("true"), json!(true));
    assert_eq!(parse_value("\"a b\""), json!("a b"));
    assert_eq!(parse_value("[1, 2]"), json!([1, 2]));
    assert_eq!(parse_value("{ a = 1 }"), json!({"a": 1}));
    assert_eq!(parse_value("db.example.com"), json!("db.example.com"));
    assert_eq!(
        parse_value("1979-05-27T07:32:00Z"),
        json!("1979-05-27T07:32:00Z")
    );
}

#[test]
fn pairs_split_outside_quotes() {
    assert_eq!(split_pair("a.b=1").unwrap(), ("a.b", "1"));
    assert_eq!(split_pair("\"x=y\".z=2=3").unwrap(), ("\"x=y\".z", "2=3"));
    assert!(split_pair("nope").is_err());
}
