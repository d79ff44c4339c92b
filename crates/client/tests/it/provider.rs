//! The figment provider: merged over local files, with its fallback file.

use std::time::Duration;

use confstrata_client::model::parse_context;
use confstrata_client::model::serde_json::json;
use confstrata_client::{ConfstrataProvider, WriteOptions};
use figment::providers::{Format, Toml};
use figment::{Figment, Provider};
use serde::Deserialize;

use crate::{Server, seed};

#[derive(Debug, Deserialize, PartialEq)]
struct Config {
    name: String,
    debug: bool,
    db: Db,
    local_only: String,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Db {
    host: String,
    pool: u32,
    timeout_s: u32,
}

const LOCAL: &str = r#"
name = "local-name"
debug = true
local_only = "kept"

[db]
host = "127.0.0.1"
timeout_s = 30
"#;

fn figment(provider: ConfstrataProvider) -> Figment {
    Figment::new().merge(Toml::string(LOCAL)).merge(provider)
}

#[tokio::test]
async fn server_values_override_local_ones_and_say_where_they_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.client().await.commit(&seed()).await.unwrap();

    // Called from inside a runtime: the provider fetches on its own thread.
    let provider = ConfstrataProvider::new(
        server.addr(),
        "web",
        parse_context("env=prod,region=eu").unwrap(),
    )
    .token(server.token.clone());
    let fig = figment(provider);
    let config: Config = fig.extract().unwrap();
    assert_eq!(
        config,
        Config {
            name: "web".into(),
            debug: false,
            local_only: "kept".into(),
            db: Db {
                host: "db.prod".into(),
                pool: 20,
                timeout_s: 30
            },
        }
    );
    let from_server = fig.find_metadata("db.host").unwrap();
    assert!(
        from_server.name.starts_with("Confstrata"),
        "{}",
        from_server.name
    );
    assert!(from_server.name.contains("`web`"), "{}", from_server.name);
    assert!(
        from_server.name.contains(&server.addr()),
        "{}",
        from_server.name
    );
    let source = from_server.source.as_ref().unwrap().to_string();
    assert!(source.contains("env=prod,region=eu"), "{source}");
    let local = fig.find_metadata("db.timeout_s").unwrap();
    assert!(!local.name.contains("Confstrata"), "{}", local.name);

    // Profiles: the values can go to a named profile.
    let fig = Figment::new()
        .merge(
            ConfstrataProvider::new(server.addr(), "web", parse_context("env=prod").unwrap())
                .token(server.token.clone())
                .profile("prod"),
        )
        .select("prod");
    assert_eq!(fig.extract_inner::<String>("db.host").unwrap(), "db.prod");
}

#[tokio::test]
async fn the_fallback_file_stands_in_when_the_server_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let file = cache.path().join("web.json");
    let server = Server::start(dir.path());
    let client = server.client().await;
    client.commit(&seed()).await.unwrap();
    client
        .set_keys(
            &"web".parse().unwrap(),
            &"env/prod".parse().unwrap(),
            &[("db.pool".parse().unwrap(), json!(70))],
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    let ctx = parse_context("env=prod").unwrap();
    let provider = || {
        ConfstrataProvider::new(server.addr(), "web", ctx.clone())
            .token(server.token.clone())
            .fallback_file(&file)
            .timeout(Duration::from_secs(10))
    };
    let online: Config = figment(provider()).extract().unwrap();
    assert_eq!(online.db.pool, 70);
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(written["revision"], 2);
    assert_eq!(written["namespace"], "web");
    assert_eq!(written["context"], json!({"env": "prod"}));
    assert_eq!(written["document"]["db"]["pool"], 70);

    let addr = server.addr();
    drop(client);
    server.stop().await;
    let fig = figment(
        ConfstrataProvider::new(&addr, "web", ctx.clone())
            .fallback_file(&file)
            .timeout(Duration::from_secs(10)),
    );
    let offline: Config = fig.extract().unwrap();
    assert_eq!(offline, online);
    let meta = fig.find_metadata("db.pool").unwrap();
    assert!(
        meta.name.contains("fallback file, revision 2"),
        "{}",
        meta.name
    );
    assert_eq!(meta.source, Some(figment::Source::File(file.clone())));
}

#[tokio::test]
async fn no_server_and_no_fallback_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let addr = server.addr();
    server.stop().await;
    let err = figment(ConfstrataProvider::new(
        &addr,
        "web",
        parse_context("env=prod").unwrap(),
    ))
    .extract::<Config>()
    .unwrap_err()
    .to_string();
    assert!(err.contains(&format!("http://{addr}")), "{err}");
    assert!(err.contains("cannot load namespace \"web\""), "{err}");
    assert!(
        err.contains("Connection refused") || err.contains("connect"),
        "{err}"
    );
    assert!(err.contains("no fallback file is configured"), "{err}");
}

#[tokio::test]
async fn a_rejected_request_is_not_hidden_by_the_fallback_file() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.client().await.commit(&seed()).await.unwrap();
    let err = ConfstrataProvider::new(server.addr(), "web", parse_context("env=qa").unwrap())
        .token(server.token.clone())
        .fallback_file(cache.path().join("web.json"))
        .data()
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("not in the matrix"), "{err}");
    assert!(
        err.contains(&format!("Confstrata at http://{}", server.addr)),
        "{err}"
    );
}
