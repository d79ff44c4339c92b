//! Validation over gRPC: a refused commit is INVALID_ARGUMENT with reason
//! VALIDATION_FAILED and one field violation per error; DryRun and
//! Validate return the findings.

use confstrata_proto::v1;
use serde_json::json;
use tonic::Code;
use tonic_types::StatusExt;

use crate::{Server, change_set};

#[tokio::test]
async fn refused_commits_dry_runs_and_validate() {
    let mut s = Server::start().await;
    let ops = json!([
        {"put_namespace": {"spec": {"name": "svc", "levels": ["defaults", "env/{env}"],
            "matrix": {"env": {"values": ["dev", "prod"]}},
            "validation": {
                "schema": {"type": "object", "properties": {"port": {"$ref": "confstrata:port"}}},
                "rules": [{"id": "prod-replicas", "check": "ctx.env != \"prod\" || cfg.replicas >= 2",
                           "message": "prod needs 2 replicas, not {{replicas}}", "key": "replicas"}]
            }}}},
        {"put": {"namespace": "svc", "layer": "defaults", "document_json": r#"{"port": 80, "replicas": 1}"#}},
        {"put": {"namespace": "svc", "layer": "env/prod", "document_json": r#"{"replicas": 3}"#}},
    ]);
    s.client
        .commit(crate::req::commit(change_set(ops)))
        .await
        .unwrap();
    let before = s.snapshot().await;
    let bad = change_set(json!([
        {"set": {"namespace": "svc", "layer": "env/prod", "key": "replicas", "value_json": "1"}},
        {"set": {"namespace": "svc", "layer": "defaults", "key": "port", "value_json": "0"}},
    ]));
    let e = s
        .client
        .commit(crate::req::commit(bad.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let details = e.get_error_details();
    assert_eq!(details.error_info().unwrap().reason, "VALIDATION_FAILED");
    let violations = &details.bad_request().unwrap().field_violations;
    // Port 0 fails the schema in both contexts; in the default mode the
    // chain stops there, so the rule (which would fail in prod) is not run.
    assert_eq!(violations.len(), 2, "{violations:#?}");
    assert!(
        violations
            .iter()
            .all(|v| v.description.contains("less than the minimum of 1"))
    );
    let mut fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["svc env=dev port", "svc env=prod port"]);
    // With a good port, the rule speaks, in prod only.
    let e = s
        .client
        .commit(crate::req::commit(change_set(json!([
                {"set": {"namespace": "svc", "layer": "env/prod", "key": "replicas", "value_json": "1"}},
            ]))))
        .await
        .unwrap_err();
    let details = e.get_error_details();
    let violations = &details.bad_request().unwrap().field_violations;
    assert_eq!(violations.len(), 1, "{violations:#?}");
    assert_eq!(violations[0].field, "svc env=prod replicas");
    assert!(
        violations[0]
            .description
            .contains("prod needs 2 replicas, not 1")
    );
    assert_eq!(s.snapshot().await, before, "nothing was committed");

    let d = s
        .client
        .dry_run(v1::DryRunRequest {
            change_set: Some(bad),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.findings.len(), 2, "{:#?}", d.findings);
    assert!(
        d.findings
            .iter()
            .all(|f| f.severity == "error" && f.namespace == "svc")
    );

    let v = s
        .client
        .validate(v1::ValidateRequest {
            namespace: "svc".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(v.findings.is_empty(), "{:#?}", v.findings);
    let e = s
        .client
        .validate(v1::ValidateRequest {
            namespace: "../x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
}
