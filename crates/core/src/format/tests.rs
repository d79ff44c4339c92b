use serde_json::json;

use super::*;

fn p(text: &str, f: Format) -> Result<Document> {
    parse(text.as_bytes(), f, "in", &Limits::default())
}

#[test]
fn every_format_reads_the_same_document() {
    let want = json!({"db": {"host": "h", "port": 5432, "tls": true}, "tags": ["a", "b"]});
    let toml = "tags = [\"a\", \"b\"]\n[db]\nhost = \"h\"\nport = 5432\ntls = true\n";
    let yaml = "db:\n  host: h\n  port: 5432\n  tls: true\ntags: [a, b]\n";
    let json = want.to_string();
    for (text, f) in [
        (toml, Format::Toml),
        (yaml, Format::Yaml),
        (json.as_str(), Format::Json),
    ] {
        assert_eq!(Value::Object(p(text, f).unwrap()), want, "{f}");
    }
    let env = "# comment\nDB__HOST=h\nexport DB__PORT=5432\nDB__TLS=true\n";
    assert_eq!(
        Value::Object(p(env, Format::Env).unwrap()),
        json!({"db": {"host": "h", "port": 5432, "tls": true}})
    );
}

#[test]
fn render_round_trips() {
    let doc = json!({"db": {"host": "h", "port": 5432}, "name": "with space", "x": 1.5});
    let doc = doc.as_object().unwrap();
    for f in [Format::Toml, Format::Yaml, Format::Json, Format::Env] {
        let text = render(doc, f).unwrap();
        assert_eq!(&p(&text, f).unwrap(), doc, "{f}: {text}");
    }
}

#[test]
fn parse_errors_carry_line_and_column() {
    for (text, f, line) in [
        ("a = 1\nb = \n", Format::Toml, 2),
        ("a: 1\n b: [\n", Format::Yaml, 2),
        ("{\"a\": 1,\n \"b\": }", Format::Json, 2),
        ("A=1\nnot a line\n", Format::Env, 2),
    ] {
        match p(text, f).unwrap_err() {
            Error::Parse {
                line: Some(l),
                source_name,
                message,
                ..
            } => {
                assert_eq!((l, source_name.as_str()), (line, "in"), "{f}");
                assert!(
                    !message.is_empty() && !message.contains("at line"),
                    "{f}: {message}"
                );
            }
            other => panic!("{f}: {other:?}"),
        }
    }
}

#[test]
fn hostile_input_is_rejected_without_overflow() {
    let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        p(&format!("{{\"a\": {deep_json}}}"), Format::Json),
        Err(Error::TooDeep { .. })
    ));
    let deep_toml = format!("a = {}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        p(&deep_toml, Format::Toml),
        Err(Error::TooDeep { .. })
    ));
    let deep_yaml = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        p(&deep_yaml, Format::Yaml),
        Err(Error::TooDeep { .. })
    ));
    let mut indented = String::new();
    for i in 0..200 {
        indented.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
    }
    assert!(p(&indented, Format::Yaml).is_err());
    let dotted = format!("{} = 1", vec!["k"; 40].join("."));
    let e = p(&dotted, Format::Toml);
    assert!(matches!(e, Err(Error::TooDeep { .. })), "{e:?}");
    let dotted = format!("{} = 1", vec!["k"; 100_000].join("."));
    let e = p(&dotted, Format::Toml).unwrap_err().to_string();
    assert!(e.contains("recursion limit exceeded"), "{e}");
    match parse(b"a = \"\xff\"", Format::Toml, "f.toml", &Limits::default()) {
        Err(Error::InvalidUtf8 { valid_up_to: 5, .. }) => {}
        other => panic!("{other:?}"),
    }
    let e = p("[1, 2]", Format::Json).unwrap_err().to_string();
    assert!(e.contains("must be a table"), "{e}");
}

#[test]
fn toml_output_refuses_null() {
    let doc = json!({"a": {"b": null}});
    let e = render(doc.as_object().unwrap(), Format::Toml)
        .unwrap_err()
        .to_string();
    assert!(e.contains("null at a.b"), "{e}");
}

#[test]
fn a_key_twice_in_one_table_is_refused_in_every_format_with_its_line() {
    // TOML's parser refuses it itself; JSON and YAML parsers keep the last.
    let cases: [(&str, Format, usize); 5] = [
        ("{\"a\": 1,\n \"a\": 2}", Format::Json, 2),
        ("{\"db\": {\"port\": 1,\n\n \"port\": 2}}", Format::Json, 3),
        ("a: 1\nb:\n  c: 1\n  c: 2\n", Format::Yaml, 4),
        ("a: 1\na: 2\n", Format::Yaml, 2),
        ("a = 1\na = 2\n", Format::Toml, 2),
    ];
    for (text, format, line) in cases {
        let e = p(text, format).unwrap_err();
        let Error::Parse { line: l, .. } = &e else {
            panic!("{text:?}: {e:?}");
        };
        assert_eq!(*l, Some(line), "{text:?}: {e}");
        if format != Format::Toml {
            assert!(e.to_string().contains("occurs twice"), "{e}");
        }
    }
    // The same key in two tables is fine.
    p("{\"a\": {\"x\": 1}, \"b\": {\"x\": 2}}", Format::Json).unwrap();
    p("a:\n  x: 1\nb:\n  x: 2\n", Format::Yaml).unwrap();
    p("[{\"x\": 1}, {\"x\": 2}]", Format::Json).unwrap_err(); // not a table, but no panic
}

#[test]
fn errors_never_echo_a_whole_long_input() {
    let long = "x".repeat(5000);
    let e = p(&format!("{{\"a\": {long}}}"), Format::Json).unwrap_err();
    assert!(e.to_string().len() < 1200, "{}", e.to_string().len());
}
