use super::*;

#[test]
fn every_error_kind_has_a_code() {
    for kind in ErrorKind::ALL {
        let rows = CODES.iter().filter(|(k, _)| *k == kind).count();
        assert_eq!(rows, 1, "{kind} has {rows} rows in status::CODES");
    }
}

#[test]
fn a_status_has_the_code_of_its_kind() {
    let cases = [
        Error::NamespaceNotFound {
            namespace: "web".into(),
        },
        Error::invalid("layer", "bad"),
        Error::Unavailable {
            message: "stopping".into(),
        },
        Error::Validation { findings: vec![] },
        Error::Operation {
            index: 2,
            op: "set".into(),
            source: Box::new(Error::AlreadyExists { what: "x".into() }),
        },
    ];
    for e in cases {
        assert_eq!(from_core(&e, "").code(), code(e.kind()), "{e}");
    }
    assert_eq!(code(ErrorKind::Conflict), Code::Aborted);
}
