//! The administration resources (gRPC's `AdminService` over REST) on a real
//! server: a principal added, granted roles and given a token that reads
//! what it may and is refused what it may not until it is revoked; data
//! keys, compaction, the policy document, roles and groups; bad requests
//! named, an unknown principal `404`.

use confstrata_core::serde_json::{self, Value, json};
use confstrata_http_api::HttpOptions;
use reqwest::Method;

use crate::Server;

/// An answer: status, headers and body (JSON; `Null` when empty).
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

/// `method path` with `token` and, if any, a JSON body.
async fn call(
    server: &Server,
    token: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Answer {
    let mut request = server.request(method, path).bearer_auth(token);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).unwrap());
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)))
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// [`call`] as the server's administrator.
async fn admin(server: &Server, method: Method, path: &str, body: Option<&Value>) -> Answer {
    call(server, &server.token, method, path, body).await
}

/// Asserts a problem of `status` and `code`; its body.
fn problem(a: &Answer, status: u16, code: &str) -> Value {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.headers["content-type"], "application/problem+json");
    assert_eq!(a.body["code"], code, "{}", a.body);
    a.body.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_its_roles_and_token_from_grant_to_revocation() {
    let server = Server::start(HttpOptions::default()).await;
    let new = json!({"id": "ci", "name": "CI", "kind": "service", "roles": ["viewer"]});
    let a = admin(&server, Method::POST, "/v1/principals", Some(&new)).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.headers["location"], "/v1/principals/ci");
    assert_eq!(a.body["principal"]["id"], "ci");
    assert_eq!(a.body["principal"]["kind"], "service");
    assert_eq!(a.body["principal"]["roles"], json!(["viewer"]));
    let again = admin(&server, Method::POST, "/v1/principals", Some(&new)).await;
    problem(&again, 409, "already-exists");

    // Editor only within one layer, over the viewer everywhere.
    let grant = "/v1/principals/ci/roles/editor?on=web:env/dev";
    let a = admin(&server, Method::PUT, grant, None).await;
    assert_eq!((a.status, &a.body), (200, &json!({"granted": true})));
    let a = admin(&server, Method::PUT, grant, None).await;
    assert_eq!((a.status, &a.body), (200, &json!({"granted": false})));

    let a = admin(
        &server,
        Method::POST,
        "/v1/principals/ci/tokens",
        Some(&json!({"label": "pipeline"})),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.headers["cache-control"], "no-store");
    let token = a.body["token"].as_str().unwrap().to_owned();
    let hash = a.body["hash_prefix"].as_str().unwrap().to_owned();
    assert!(token.starts_with("cst_"), "{token}");
    assert!(!hash.is_empty());

    // The token reads, writes where its scope says, and nothing more.
    let ci = |method, path: &'static str, body: Option<Value>| {
        let (server, token) = (&server, token.clone());
        async move { call(server, &token, method, path, body.as_ref()).await }
    };
    let a = ci(Method::GET, "/v1/namespaces/web/layers/defaults", None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["document"], json!({"a": 1}));
    let doc = json!({"a": 2});
    let a = ci(
        Method::PUT,
        "/v1/namespaces/web/layers/env%2Fdev",
        Some(doc.clone()),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = ci(
        Method::PUT,
        "/v1/namespaces/web/layers/defaults",
        Some(doc.clone()),
    )
    .await;
    let refused = problem(&a, 403, "permission-denied");
    assert_eq!(refused["action"], "write", "{refused}");
    problem(
        &ci(Method::GET, "/v1/keys", None).await,
        403,
        "permission-denied",
    );
    problem(
        &ci(Method::GET, "/v1/principals/admin", None).await,
        403,
        "permission-denied",
    );
    // About itself it may ask.
    let a = ci(Method::GET, "/v1/principals/ci", None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["principal"]["tokens"][0]["hash"], hash.as_str());
    assert_eq!(a.body["principal"]["tokens"][0]["label"], "pipeline");
    let a = ci(
        Method::GET,
        "/v1/access/check?principal_id=ci&action=write&resource=web:env/dev",
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["allowed"], true);
    assert_eq!(a.body["deciding"]["role"], "editor");
    assert_eq!(a.body["deciding"]["scope"], "web:env/dev");
    let a = admin(
        &server,
        Method::GET,
        "/v1/access/check?principal_id=ci&action=write&resource=web:defaults",
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["allowed"], false);

    // The scoped binding taken away; one not held is named.
    let a = admin(&server, Method::DELETE, grant, None).await;
    assert_eq!((a.status, &a.body), (204, &Value::Null));
    problem(
        &admin(&server, Method::DELETE, grant, None).await,
        400,
        "invalid-input",
    );

    let a = admin(&server, Method::GET, "/v1/principals", None).await;
    assert_eq!(a.status, 200);
    let listed = a.body["principals"].as_array().unwrap();
    let ids: Vec<&str> = listed.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["admin", "ci"]);

    // Revoked: the token no longer opens anything.
    let a = admin(&server, Method::DELETE, &format!("/v1/tokens/{hash}"), None).await;
    assert_eq!(a.status, 204, "{}", a.body);
    let a = ci(Method::GET, "/v1/namespaces/web/layers/defaults", None).await;
    problem(&a, 401, "unauthenticated");
    problem(
        &admin(&server, Method::DELETE, "/v1/tokens/ffffffffffffffff", None).await,
        400,
        "invalid-input",
    );

    let a = admin(&server, Method::POST, "/v1/principals/ci/revoke", None).await;
    assert_eq!(a.status, 204, "{}", a.body);
    let a = admin(&server, Method::GET, "/v1/principals/ci", None).await;
    assert_eq!(a.body["principal"]["revoked"], true, "{}", a.body);
    // Nobody left to administer the server: refused.
    let a = admin(&server, Method::POST, "/v1/principals/admin/revoke", None).await;
    problem(&a, 400, "invalid-input");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_keys_compaction_and_the_policy_document() {
    let server = Server::start(HttpOptions::default()).await;
    let a = admin(&server, Method::POST, "/v1/keys/web/rotate", None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let first = a.body["key_id"].as_str().unwrap().to_owned();
    assert!(first.starts_with("web#"), "{first}");
    let a = admin(&server, Method::POST, "/v1/keys/web/rotate", None).await;
    let second = a.body["key_id"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    let a = admin(&server, Method::GET, "/v1/keys", None).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.body["keys"],
        json!([{"id": first, "current": false}, {"id": second, "current": true}])
    );
    // Nothing is sealed: nothing to rewrap, and the old key retires.
    let a = admin(&server, Method::POST, "/v1/keys/web/rewrap", None).await;
    assert_eq!((a.status, &a.body), (200, &json!({"commit": null})));
    let encoded = |id: &str| id.replace('#', "%23");
    let a = admin(
        &server,
        Method::DELETE,
        &format!("/v1/keys/{}", encoded(&first)),
        None,
    )
    .await;
    assert_eq!(a.status, 204, "{}", a.body);
    let current = format!("/v1/keys/{}", encoded(&second));
    problem(
        &admin(&server, Method::DELETE, &current, None).await,
        400,
        "invalid-input",
    );
    problem(
        &admin(&server, Method::POST, "/v1/keys/..%2Fetc/rotate", None).await,
        400,
        "invalid-input",
    );
    // The master key (from the data directory's key file) rotates; the
    // audit chain still verifies across it.
    let a = admin(&server, Method::POST, "/v1/master-key/rotate", None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_ne!(a.body["from"], a.body["to"]);
    assert_eq!(a.body["data_keys"], 1);
    let a = admin(&server, Method::GET, "/v1/audit/verify", None).await;
    assert_eq!(a.status, 200, "{}", a.body);

    let keep = json!({"keep_versions": 10, "keep_days": 30});
    let a = admin(&server, Method::POST, "/v1/compact", Some(&keep)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["removed_versions"], 0);
    assert!(a.body["oldest_revision"].is_u64(), "{}", a.body);
    let none = json!({"keep_versions": 0, "keep_days": 30});
    let p = problem(
        &admin(&server, Method::POST, "/v1/compact", Some(&none)).await,
        400,
        "invalid-input",
    );
    assert_eq!(p["errors"][0]["field"], "keep_versions");

    // The policy, exported and applied back: nothing changes.
    let a = admin(&server, Method::GET, "/v1/policy", None).await;
    assert_eq!(a.status, 200);
    let mut policy = a.body.clone();
    assert_eq!(policy["principals"][0]["id"], "admin", "{policy}");
    let a = admin(
        &server,
        Method::POST,
        "/v1/policy?dry_run=true",
        Some(&policy),
    )
    .await;
    assert_eq!(
        (a.status, &a.body),
        (200, &json!({"changes": [], "applied": false}))
    );
    // A new role in it: a dry run says so and changes nothing.
    policy["roles"] = json!([{"name": "db-reader", "grants": [
        {"effect": "allow", "actions": ["read"], "on": "web#db"}]}]);
    let a = admin(
        &server,
        Method::POST,
        "/v1/policy?dry_run=true",
        Some(&policy),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["applied"], false);
    assert_eq!(
        a.body["changes"],
        json!(["+ role db-reader: allow read on web#db"])
    );
    let a = admin(&server, Method::GET, "/v1/roles", None).await;
    assert!(
        !a.body["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "db-reader")
    );
    // Every principal must be listed; the place is named.
    policy["principals"] = json!([]);
    let p = problem(
        &admin(&server, Method::POST, "/v1/policy", Some(&policy)).await,
        400,
        "invalid-input",
    );
    assert_eq!(p["errors"][0]["field"], "principals", "{p}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_groups_created_used_and_deleted() {
    let server = Server::start(HttpOptions::default()).await;
    let role = json!({"description": "reads the database settings",
        "grants": [{"effect": "allow", "actions": ["read"], "on": "web#db"}]});
    let path = "/v1/roles/db-reader?create_only=true";
    let a = admin(&server, Method::PUT, path, Some(&role)).await;
    assert_eq!(a.status, 204, "{}", a.body);
    problem(
        &admin(&server, Method::PUT, path, Some(&role)).await,
        409,
        "already-exists",
    );
    let a = admin(&server, Method::GET, "/v1/roles", None).await;
    let listed = a.body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "db-reader")
        .cloned()
        .unwrap();
    assert_eq!(listed["builtin"], false);
    assert_eq!(listed["grants"], role["grants"]);
    problem(
        &admin(&server, Method::PUT, "/v1/roles/viewer", Some(&role)).await,
        400,
        "invalid-input",
    );

    let a = admin(&server, Method::PUT, "/v1/groups/sre", None).await;
    assert_eq!(a.status, 204, "{}", a.body);
    // A body left out, or JSON `null`, is no description; one given sets it.
    let a = admin(&server, Method::PUT, "/v1/groups/ops", Some(&Value::Null)).await;
    assert_eq!(a.status, 204, "{}", a.body);
    let described = json!({"description": "on call"});
    let a = admin(&server, Method::PUT, "/v1/groups/ops", Some(&described)).await;
    assert_eq!(a.status, 204, "{}", a.body);
    let a = admin(&server, Method::GET, "/v1/groups", None).await;
    assert_eq!(a.body["groups"][0]["description"], "on call", "{}", a.body);
    let a = admin(&server, Method::DELETE, "/v1/groups/ops", None).await;
    assert_eq!(a.status, 204, "{}", a.body);
    let members = json!({"add": ["admin"]});
    let a = admin(
        &server,
        Method::PATCH,
        "/v1/groups/sre/members",
        Some(&members),
    )
    .await;
    assert_eq!(a.status, 204, "{}", a.body);
    let a = admin(&server, Method::PUT, "/v1/groups/sre/roles/db-reader", None).await;
    assert_eq!((a.status, &a.body), (200, &json!({"granted": true})));
    let a = admin(&server, Method::GET, "/v1/groups", None).await;
    assert_eq!(
        a.body["groups"],
        json!([{"name": "sre", "description": "", "members": ["admin"], "roles": ["db-reader"]}])
    );
    let a = admin(&server, Method::GET, "/v1/principals/admin", None).await;
    assert_eq!(a.body["groups"], json!(["sre"]), "{}", a.body);
    // Held through the group: the role cannot go.
    let p = problem(
        &admin(&server, Method::DELETE, "/v1/roles/db-reader", None).await,
        400,
        "invalid-input",
    );
    assert!(p["detail"].as_str().unwrap().contains("sre"), "{p}");
    let a = admin(
        &server,
        Method::DELETE,
        "/v1/groups/sre/roles/db-reader",
        None,
    )
    .await;
    assert_eq!(a.status, 204, "{}", a.body);
    let a = admin(&server, Method::DELETE, "/v1/groups/sre", None).await;
    assert_eq!(a.status, 204, "{}", a.body);
    let a = admin(&server, Method::GET, "/v1/groups", None).await;
    assert_eq!(a.body["groups"], json!([]));
    let a = admin(&server, Method::DELETE, "/v1/roles/db-reader", None).await;
    assert_eq!(a.status, 204, "{}", a.body);
    problem(
        &admin(&server, Method::DELETE, "/v1/roles/db-reader", None).await,
        400,
        "invalid-input",
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_named_and_an_unknown_principal_is_404() {
    let server = Server::start(HttpOptions::default()).await;
    let field = |a: &Answer| a.body["errors"][0]["field"].clone();

    let a = admin(&server, Method::GET, "/v1/principals/nobody", None).await;
    problem(&a, 404, "not-found");
    for path in [
        "/v1/principals/nobody/tokens",
        "/v1/principals/nobody/revoke",
    ] {
        problem(
            &admin(&server, Method::POST, path, None).await,
            404,
            "not-found",
        );
    }
    let a = admin(
        &server,
        Method::PUT,
        "/v1/principals/nobody/roles/viewer",
        None,
    )
    .await;
    problem(&a, 404, "not-found");
    // A malformed id is not "nobody": it is a bad request.
    let a = admin(&server, Method::GET, "/v1/principals/bad%20id", None).await;
    problem(&a, 400, "invalid-input");
    assert_eq!(field(&a), "id");

    let a = admin(
        &server,
        Method::PUT,
        "/v1/principals/admin/roles/bad%20role",
        None,
    )
    .await;
    problem(&a, 400, "invalid-input");
    assert_eq!(field(&a), "role");
    let a = admin(
        &server,
        Method::PUT,
        "/v1/principals/admin/roles/viewer?on=web:",
        None,
    )
    .await;
    problem(&a, 400, "invalid-input");
    assert_eq!(field(&a), "on");
    let role = json!({"grants": []});
    let a = admin(&server, Method::PUT, "/v1/roles/-bad", Some(&role)).await;
    problem(&a, 400, "invalid-input");
    assert_eq!(field(&a), "name");
    let bad_grant = json!({"grants": [{"effect": "maybe", "actions": ["read"], "on": "**"}]});
    let a = admin(&server, Method::PUT, "/v1/roles/r", Some(&bad_grant)).await;
    problem(&a, 400, "invalid-input");
    assert_eq!(field(&a), "grants[0].effect");
    let a = admin(
        &server,
        Method::POST,
        "/v1/principals",
        Some(&json!({"id": "x", "roles": ["ok", "not ok"]})),
    )
    .await;
    problem(&a, 400, "invalid-input");
    assert_eq!(field(&a), "roles[1]");
    let a = admin(
        &server,
        Method::PATCH,
        "/v1/groups/g/members",
        Some(&json!({"add": ["a b"]})),
    )
    .await;
    problem(&a, 400, "invalid-input");
    assert_eq!(field(&a), "add[0]");

    // Bodies that do not parse, or say what is not asked, name the body.
    for body in [
        json!({"id": 3}),
        json!({"id": "x", "colour": "red"}),
        json!({"id": "x", "kind": "robot"}),
    ] {
        let a = admin(&server, Method::POST, "/v1/principals", Some(&body)).await;
        problem(&a, 400, "invalid-input");
        assert_eq!(field(&a), "body", "{body}");
    }
    let a = server
        .request(Method::POST, "/v1/principals")
        .bearer_auth(&server.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 400);
    let a = server
        .request(Method::POST, "/v1/principals")
        .bearer_auth(&server.token)
        .header("content-type", "text/plain")
        .body("id = x")
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 415);
    let a = admin(
        &server,
        Method::POST,
        "/v1/compact",
        Some(&json!({"keep_versions": 1})),
    )
    .await;
    problem(&a, 400, "invalid-input");
    assert_eq!(field(&a), "body");

    let a = admin(
        &server,
        Method::GET,
        "/v1/access/check?principal_id=admin&resource=web",
        None,
    )
    .await;
    problem(&a, 400, "invalid-input");
    assert_eq!(field(&a), "action");
    let a = admin(
        &server,
        Method::GET,
        "/v1/access/check?principal_id=admin&action=fly&resource=web",
        None,
    )
    .await;
    problem(&a, 400, "invalid-input");
    assert_eq!(field(&a), "action");
    let a = admin(
        &server,
        Method::GET,
        "/v1/access/check?principal_id=admin&action=read&resource=..",
        None,
    )
    .await;
    problem(&a, 400, "invalid-input");
    assert_eq!(field(&a), "resource");

    // Without a token, nothing.
    let a = call(&server, "", Method::GET, "/v1/keys", None).await;
    problem(&a, 401, "unauthenticated");
    server.stop().await;
}
