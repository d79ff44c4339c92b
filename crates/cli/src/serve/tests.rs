use super::*;

fn args(listen: Option<&str>, config: Option<PathBuf>) -> ServeArgs {
    ServeArgs {
        listen: listen.map(str::to_owned),
        config,
        log_format: None,
        log: None,
    }
}

#[test]
#[allow(
    clippy::result_large_err,
    reason = "figment::Jail's closure type is figment's"
)]
fn layers_apply_in_order() {
    figment::Jail::expect_with(|jail| {
        // Defaults.
        let s = settings(None, &args(None, None)).map_err(|e| e.to_string())?;
        assert_eq!(
            (s.listen.as_str(), s.data_dir.as_path()),
            ("127.0.0.1:7400", Path::new("./confstrata-data"))
        );
        // The file overrides defaults.
        jail.create_file(
            "c.toml",
            "listen = \"127.0.0.1:9000\"\nlog_format = \"json\"\nmax_depth = 8\n",
        )?;
        let file = Some(PathBuf::from("c.toml"));
        let s = settings(None, &args(None, file.clone())).map_err(|e| e.to_string())?;
        assert_eq!(
            (s.listen.as_str(), s.log_format.as_str(), s.max_depth),
            ("127.0.0.1:9000", "json", 8)
        );
        // The environment overrides the file; flags override everything.
        jail.set_env("CONFSTRATA_MAX_DEPTH", "9");
        let s = settings(
            Some(Path::new("/d")),
            &args(Some("127.0.0.1:0"), file.clone()),
        )
        .map_err(|e| e.to_string())?;
        assert_eq!(
            (s.listen.as_str(), s.max_depth, s.data_dir.as_path()),
            ("127.0.0.1:0", 9, Path::new("/d"))
        );
        // Retention runs hourly by default, and can be turned off.
        assert_eq!(
            (
                s.retention_interval_s,
                s.retention_keep_versions,
                s.retention_keep_days
            ),
            (3600, 100, 90)
        );
        jail.set_env("CONFSTRATA_RETENTION_INTERVAL_S", "0");
        let s = settings(None, &args(None, None)).map_err(|e| e.to_string())?;
        assert_eq!(s.retention_interval_s, 0);
        jail.set_env("CONFSTRATA_RETENTION_KEEP_VERSIONS", "0");
        let e = settings(None, &args(None, None)).unwrap_err().to_string();
        assert!(e.contains("retention_keep_versions"), "{e}");
        jail.set_env("CONFSTRATA_RETENTION_KEEP_VERSIONS", "5");
        // Bad files and values are named.
        jail.create_file("bad.toml", "listen = 5\n")?;
        let e = settings(None, &args(None, Some(PathBuf::from("bad.toml"))))
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen"), "{e}");
        jail.create_file("typo.toml", "lisen = \"x\"\n")?;
        let e = settings(None, &args(None, Some(PathBuf::from("typo.toml"))))
            .unwrap_err()
            .to_string();
        assert!(e.contains("lisen"), "{e}");
        let e = settings(None, &args(None, Some(PathBuf::from("missing.toml"))))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
        Ok(())
    });
}
