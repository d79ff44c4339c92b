//! Unit tests of what needs no server: addresses, error details, wire
//! conversions, the fallback file, backoff, and the provider while offline.

use std::collections::HashMap;
use std::time::Duration;

use confstrata_core::serde_json::json;
use confstrata_core::{Context, NamespaceName, Provenance, parse_context};
use confstrata_proto::v1;
use figment::{Figment, Provider};
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

use crate::client::normalize_addr;
use crate::error::Error;
use crate::types::{ResolvedView, WatchEvent};
use crate::watch::{Backoff, WatchOptions};
use crate::{ConfstrataProvider, fallback, wire};
use confstrata_core::view::LayerStatus;

fn check_addr(input: &str, expected: Result<&str, &str>) {
    match (normalize_addr(input), expected) {
        (Ok(got), Ok(want)) => assert_eq!(got, want, "{input}"),
        (Err(e), Err(needle)) => {
            let text = e.to_string();
            assert!(text.contains(needle), "{input}: {text:?} lacks {needle:?}");
        }
        (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn addresses_take_host_port_or_http_urls() {
    check_addr("127.0.0.1:7400", Ok("http://127.0.0.1:7400"));
    check_addr("http://127.0.0.1:7400", Ok("http://127.0.0.1:7400"));
    check_addr("http://127.0.0.1:7400/", Ok("http://127.0.0.1:7400"));
    check_addr(" localhost:7400 ", Ok("http://localhost:7400"));
    check_addr("[::1]:7400", Ok("http://[::1]:7400"));
    check_addr("", Err("empty"));
    check_addr("https://a:1", Ok("https://a:1"));
    check_addr("https://", Err("no host"));
    check_addr("grpc://a:1", Err("only http://"));
    check_addr("http://", Err("no host"));
    check_addr("a:1/path", Err("path"));
    check_addr("a b:1", Err("invalid Confstrata address"));
}

#[test]
fn status_details_become_fields() {
    let conflict = tonic::Status::with_error_details(
        Code::Aborted,
        "conflict on layer web:defaults: expected revision 1, found 2",
        ErrorDetails::with_error_info(
            "CONFLICT",
            "confstrata.dev",
            HashMap::from([("current_revision".to_owned(), "7".to_owned())]),
        ),
    );
    let e = Error::from(conflict);
    assert!(e.is_conflict() && !e.is_not_found() && !e.is_retryable());
    assert_eq!(e.current_revision(), Some(7));
    assert_eq!(
        e.to_string(),
        "conflict on layer web:defaults: expected revision 1, found 2"
    );
    let Error::Status { reason, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(reason.as_deref(), Some("CONFLICT"));

    let bad = tonic::Status::with_error_details(
        Code::InvalidArgument,
        "invalid key path",
        ErrorDetails::with_bad_request_violation("change_set.ops[2].set.key", "invalid key path"),
    );
    let e = Error::from(bad);
    assert!(e.is_invalid_argument());
    assert_eq!(e.field(), Some("change_set.ops[2].set.key"));
    assert_eq!(e.current_revision(), None);

    let e = Error::from(tonic::Status::not_found("layer web:x not found"));
    assert!(e.is_not_found());
    assert_eq!(e.code(), Some(Code::NotFound));

    // Codes that are not domain errors are named, so an outage does not
    // read like a configuration problem.
    let e = Error::from(tonic::Status::unavailable("connection refused"));
    assert!(e.is_unavailable() && e.is_retryable());
    assert_eq!(
        e.to_string(),
        "the server answered UNAVAILABLE: connection refused"
    );
    assert!(Error::from(tonic::Status::internal("")).is_retryable());
    assert!(!Error::from(tonic::Status::out_of_range("compacted")).is_retryable());
}

#[test]
fn explain_answers_name_the_winner_and_the_changes() {
    let change = v1::RevisionInfo {
        revision: 3,
        time: Some(confstrata_proto::convert::timestamp(
            confstrata_core::Timestamp(1_700_000_000_123),
        )),
        author: "ann".into(),
        message: "bump".into(),
    };
    let r = v1::ExplainResponse {
        key: "db.pool".into(),
        value_json: "50".into(),
        entries: vec![
            v1::ExplainEntry {
                namespace: String::new(),
                layer: "env/prod".into(),
                revision: 3,
                value_json: "50".into(),
                deleted: false,
                winner: true,
                change: Some(change),
                origin: None,
            },
            v1::ExplainEntry {
                namespace: "shared/logging".into(),
                layer: "defaults".into(),
                revision: 1,
                value_json: String::new(),
                deleted: true,
                winner: false,
                change: None,
                origin: None,
            },
        ],
    };
    let x = wire::explained(&r).unwrap();
    assert_eq!(x.explanation.value, Some(json!(50)));
    assert_eq!(
        x.explanation.from,
        Some(Provenance {
            namespace: None,
            layer: "env/prod".parse().unwrap(),
            revision: 3
        })
    );
    assert_eq!(x.explanation.entries[1].value, None);
    assert_eq!(
        x.explanation.entries[1].namespace,
        Some("shared/logging".parse().unwrap())
    );
    let mut bad_ns = r.clone();
    bad_ns.entries[1].namespace = "no//such".into();
    assert_eq!(
        wire::explained(&bad_ns).unwrap_err().field,
        "entries[1].namespace"
    );
    assert!(x.explanation.entries[1].deleted);
    assert_eq!(x.changes[&3].author, "ann");
    assert_eq!(x.changes[&3].time.0, 1_700_000_000_123);
    assert!(!x.changes.contains_key(&1));

    // A key that resolves to nothing has no origin.
    let none = v1::ExplainResponse {
        key: "gone".into(),
        ..Default::default()
    };
    let x = wire::explained(&none).unwrap();
    assert_eq!((x.explanation.value, x.explanation.from), (None, None));
}

#[test]
fn layer_diffs_and_dry_runs_convert() {
    let r = v1::DryRunResponse {
        revision: 4,
        layers: vec![v1::LayerDiff {
            namespace: "web".into(),
            layer: "env/prod".into(),
            status: v1::layer_diff::Status::Created as i32,
            changes: vec![v1::DiffEntry {
                key: "a".into(),
                kind: v1::diff_entry::Kind::Added as i32,
                old_json: String::new(),
                new_json: "[1,2]".into(),
            }],
        }],
        namespaces: vec!["web".into()],
        findings: vec![v1::Finding {
            namespace: "web".into(),
            stage: "rule".into(),
            rule: "r1".into(),
            severity: "warning".into(),
            context: [("env".to_owned(), "prod".to_owned())].into(),
            key: "a".into(),
            message: "m".into(),
        }],
    };
    let d = wire::dry_run(&r).unwrap();
    assert_eq!(d.revision, 4);
    assert_eq!(d.findings[0].severity, confstrata_core::Severity::Warning);
    assert_eq!(d.findings[0].key.as_deref(), Some("a"));
    let mut bad_severity = r.clone();
    bad_severity.findings[0].severity = "fatal".into();
    let e = wire::dry_run(&bad_severity).unwrap_err();
    assert_eq!(e.field, "findings[0].severity");
    assert_eq!(d.layers[0].status, LayerStatus::Created);
    assert_eq!(d.layers[0].changes[0].new, Some(json!([1, 2])));
    assert_eq!(d.namespaces[0].as_str(), "web");

    let mut bad = r.clone();
    bad.layers[0].status = 0;
    let e = wire::dry_run(&bad).unwrap_err();
    assert_eq!(e.field, "layers[0].status");

    let mut bad = r;
    bad.namespaces[0] = "../x".into();
    assert_eq!(wire::dry_run(&bad).unwrap_err().field, "namespaces[0]");
}

#[test]
fn resolve_answers_keep_key_order() {
    let p = |layer: &str| v1::Provenance {
        namespace: String::new(),
        layer: layer.into(),
        revision: 1,
    };
    let r = v1::ResolveResponse {
        partial: false,
        revision: 9,
        document_json: r#"{"b":{"c":1,"d":2},"a":true}"#.into(),
        layers: vec![p("defaults")],
        provenance: HashMap::from([
            ("b.d".to_owned(), p("defaults")),
            ("a".to_owned(), p("defaults")),
            ("b.c".to_owned(), p("defaults")),
        ]),
    };
    let ns: NamespaceName = "web".parse().unwrap();
    let ctx = parse_context("env=prod").unwrap();
    let got = wire::resolved(&ns, &ctx, &r).unwrap();
    let keys: Vec<String> = got.provenance.iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(keys, ["a", "b.c", "b.d"]);
    assert_eq!(got.document["b"]["d"], json!(2));
    assert_eq!((got.revision, got.context), (9, ctx));

    let mut bad = r;
    bad.document_json = "[1]".into();
    assert_eq!(
        wire::resolved(&ns, &Context::new(), &bad)
            .unwrap_err()
            .field,
        "document_json"
    );
}

#[test]
fn watch_events_convert() {
    let caught_up = v1::WatchResponse {
        caught_up_revision: 12,
        ..Default::default()
    };
    assert_eq!(
        wire::watch_event(&caught_up).unwrap(),
        WatchEvent::CaughtUp { revision: 12 }
    );
    let change = v1::WatchResponse {
        info: Some(v1::RevisionInfo {
            revision: 13,
            ..Default::default()
        }),
        items: vec![v1::ChangeItem {
            namespace: "web".into(),
            layer: String::new(),
            deleted: false,
        }],
        resolved_json: r#"{"x":1}"#.into(),
        caught_up_revision: 0,
    };
    let WatchEvent::Change {
        info,
        items,
        resolved,
    } = wire::watch_event(&change).unwrap()
    else {
        panic!("not a change")
    };
    assert_eq!(info.revision, 13);
    assert_eq!(items[0].layer, None);
    assert_eq!(resolved.unwrap()["x"], json!(1));
}

#[test]
fn backoff_doubles_up_to_the_cap_and_resets() {
    let mut b = Backoff::new(
        WatchOptions::default().backoff(Duration::from_millis(10), Duration::from_millis(35)),
    );
    let delays: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
    assert_eq!(delays, [10, 20, 35, 35]);
    b.reset();
    assert_eq!(b.next_delay(), Duration::from_millis(10));
}

fn sample(revision: u64) -> ResolvedView {
    ResolvedView {
        namespace: "web".parse().unwrap(),
        context: parse_context("env=prod").unwrap(),
        revision,
        layers: vec![],
        document: json!({"db": {"host": "h", "port": 5432}})
            .as_object()
            .unwrap()
            .clone(),
        provenance: vec![],
        partial: false,
    }
}

#[test]
fn the_fallback_file_round_trips_and_refuses_another_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/config.json");
    fallback::write(&path, "http://a:1", &sample(3)).unwrap();
    fallback::write(&path, "http://a:1", &sample(4)).unwrap();
    let r = sample(4);
    let file = fallback::read(&path, &r.namespace, &r.context).unwrap();
    assert_eq!((file.revision, file.document), (4, r.document));
    assert_eq!(file.address, "http://a:1");
    // Only the file itself is left: no temporary files.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["config.json"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let other = fallback::read(&path, &r.namespace, &parse_context("env=dev").unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        other.contains("env=prod") && other.contains("env=dev"),
        "{other}"
    );
    let missing = fallback::read(&dir.path().join("none.json"), &r.namespace, &r.context)
        .unwrap_err()
        .to_string();
    assert!(missing.contains("does not exist yet"), "{missing}");
    std::fs::write(&path, "{not json").unwrap();
    let garbage = fallback::read(&path, &r.namespace, &r.context)
        .unwrap_err()
        .to_string();
    assert!(
        garbage.contains("not a Confstrata fallback file"),
        "{garbage}"
    );
}

/// An address where nothing listens.
fn dead_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    addr
}

#[test]
fn an_offline_provider_without_fallback_names_the_address_and_the_cause() {
    let addr = dead_addr();
    let provider = ConfstrataProvider::new(&addr, "web", parse_context("env=prod").unwrap())
        .timeout(Duration::from_secs(10));
    let err = Figment::from(provider)
        .extract::<figment::value::Dict>()
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("http://{addr}")), "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    assert!(err.contains("no fallback file is configured"), "{err}");
    // Figment asks for metadata() first, then data(): the error is the
    // same one either way, not a wrapped copy.
    assert!(!err.contains("could not run"), "{err}");
    assert_eq!(err.matches("cannot load namespace").count(), 1, "{err}");
}

#[test]
fn an_offline_provider_reads_its_fallback_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let r = sample(5);
    fallback::write(&path, "http://old:1", &r).unwrap();
    let provider = ConfstrataProvider::new(dead_addr(), "web", r.context.clone())
        .fallback_file(&path)
        .profile("prod");
    let meta = provider.metadata();
    assert!(
        meta.name.contains("fallback file, revision 5"),
        "{}",
        meta.name
    );
    assert_eq!(meta.source, Some(figment::Source::File(path.clone())));
    let data = provider.data().unwrap();
    let dict = &data[&figment::Profile::new("prod")];
    assert_eq!(
        dict["db"].to_owned().into_dict().unwrap()["port"].to_u128(),
        Some(5432)
    );

    // A fallback file for another context is not used.
    let provider = ConfstrataProvider::new(dead_addr(), "web", parse_context("env=dev").unwrap())
        .fallback_file(&path);
    let err = provider.data().unwrap_err().to_string();
    assert!(err.contains("could not be used either"), "{err}");
}

#[test]
fn a_provider_inside_a_runtime_does_not_block_it() {
    // data() runs its own runtime on its own thread, so calling it from
    // inside a current-thread runtime neither panics nor deadlocks.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt.block_on(async {
        ConfstrataProvider::new(dead_addr(), "web", Context::new())
            .data()
            .unwrap_err()
            .to_string()
    });
    assert!(err.contains("cannot load namespace \"web\""), "{err}");
}

#[test]
fn an_invalid_namespace_is_rejected_before_connecting() {
    let err = ConfstrataProvider::new("127.0.0.1:1", "../etc", Context::new())
        .data()
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid namespace"), "{err}");
}

#[test]
fn every_error_kind_is_reached_from_a_server_answer() {
    use crate::{CODE_KINDS, ErrorKind};
    for kind in ErrorKind::ALL {
        let reached = CODE_KINDS.iter().any(|(_, k)| *k == kind)
            // INVALID_ARGUMENT with reason VALIDATION_FAILED.
            || kind == ErrorKind::ValidationFailed;
        assert!(reached, "no gRPC code maps to {kind} in CODE_KINDS");
    }
    let codes: std::collections::BTreeSet<i32> =
        CODE_KINDS.iter().map(|(c, _)| *c as i32).collect();
    assert_eq!(codes.len(), CODE_KINDS.len(), "a code has two rows");
    let e = Error::from(tonic::Status::new(
        Code::NotFound,
        "namespace \"web\" not found",
    ));
    assert_eq!(e.kind(), Some(ErrorKind::NotFound));
    assert!(e.is_not_found() && !e.is_retryable());
    let e = Error::from(tonic::Status::new(Code::Cancelled, "gone"));
    assert_eq!(e.kind(), Some(ErrorKind::Unavailable));
    let e = Error::from(tonic::Status::new(Code::Unimplemented, "no"));
    assert_eq!(e.kind(), None);
}
