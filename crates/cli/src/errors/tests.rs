use super::*;

#[test]
fn every_error_kind_has_an_exit_code() {
    for kind in ErrorKind::ALL {
        let rows = EXIT_CODES.iter().filter(|(k, _)| *k == kind).count();
        assert_eq!(rows, 1, "{kind} has {rows} rows in EXIT_CODES");
    }
    let e = anyhow::Error::new(confstrata_core::Error::NamespaceNotFound {
        namespace: "web".into(),
    })
    .context("reading web");
    assert_eq!(exit_code(&e), 4);
    assert_eq!(exit_code(&anyhow::anyhow!("no kind")), 1);
}
