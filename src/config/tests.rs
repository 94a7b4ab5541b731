//! Tests of the command line and daemon.json parsing.

use super::*;

fn args(s: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = s.iter().map(|x| x.to_string()).collect();
    v.push("--config-file".into());
    v.push("/nonexistent/coracle.json".into());
    v
}

fn run(flags: Flags, file: serde_json::Value) -> Result<Config, String> {
    merge(flags, Some(&file), "daemon.json")
}

#[test]
fn insecure_registries_from_flags_or_file() {
    let f = Flags {
        insecure_registries: vec!["10.0.0.2:5000".into()],
        ..Flags::default()
    };
    let cfg = merge(f, None, "x").unwrap();
    assert_eq!(cfg.insecure_registries, vec!["10.0.0.2:5000".to_string()]);
    let cfg = run(
        Flags::default(),
        serde_json::json!({"insecure-registries": ["lan:5000"]}),
    )
    .unwrap();
    assert_eq!(cfg.insecure_registries, vec!["lan:5000".to_string()]);
    assert!(run(
        Flags::default(),
        serde_json::json!({"insecure-registries": "x"})
    )
    .is_err());
}

#[test]
fn flags_and_defaults() {
    let cfg = merge(Flags::default(), None, "x").unwrap();
    assert_eq!(cfg.hosts, vec![HostAddr::Unix(DEFAULT_UNIX_SOCKET.into())]);
    assert_eq!(cfg.data_root, PathBuf::from(DEFAULT_DATA_ROOT));
    assert!(matches!(parse_args(&["-h".to_string()]), Ok(Command::Help)));
    assert!(parse_args(&args(&["--bogus"])).is_err());
    // An explicitly named config file that is missing is an error.
    assert!(parse_args(&args(&[])).is_err());
}

#[test]
fn file_merge_rules() {
    let f = Flags {
        hosts: vec!["tcp://127.0.0.1:1".into()],
        ..Flags::default()
    };
    let err = run(f, serde_json::json!({"hosts": ["unix:///x"]})).unwrap_err();
    assert!(err.contains("both as a flag"), "{err}");
    let err = run(Flags::default(), serde_json::json!({"nope": 1})).unwrap_err();
    assert!(err.contains("nope"), "{err}");
    let cfg = run(
        Flags::default(),
        serde_json::json!({"hosts": ["tcp://127.0.0.1:9"], "data-root": "/d", "debug": true,
                           "log-opts": {"max-size": "1m"}, "max-connections": 8}),
    )
    .unwrap();
    assert_eq!(
        cfg.hosts,
        vec![HostAddr::Tcp("127.0.0.1:9".parse().unwrap())]
    );
    assert_eq!(cfg.log_level, log::LevelFilter::Debug);
    assert_eq!(cfg.max_connections, 8);
    assert_eq!(cfg.log_opts["max-size"], "1m");
    assert!(run(Flags::default(), serde_json::json!({"data-root": "rel"})).is_err());
    assert!(run(Flags::default(), serde_json::json!({"max-connections": 0})).is_err());
    // api-cors-header: empty (no cross-origin requests) unless set.
    assert_eq!(cfg.api_cors_header, "");
    let cfg = run(
        Flags::default(),
        serde_json::json!({"api-cors-header": "http://ui.example"}),
    )
    .unwrap();
    assert_eq!(cfg.api_cors_header, "http://ui.example");
    let enable = || Flags {
        api_enable_cors: true,
        ..Flags::default()
    };
    assert_eq!(
        run(enable(), serde_json::json!({}))
            .unwrap()
            .api_cors_header,
        "*"
    );
    let cfg = run(
        enable(),
        serde_json::json!({"api-cors-header": "http://a.lan"}),
    )
    .unwrap();
    assert_eq!(cfg.api_cors_header, "http://a.lan");
}

#[test]
fn userns_remap_from_flag_or_file() {
    let flag = || Flags {
        userns_remap: Some("default".into()),
        ..Flags::default()
    };
    assert_eq!(
        run(flag(), serde_json::json!({}))
            .unwrap()
            .userns_remap
            .as_deref(),
        Some("default")
    );
    let cfg = run(
        Flags::default(),
        serde_json::json!({"userns-remap": "web:www"}),
    )
    .unwrap();
    assert_eq!(cfg.userns_remap.as_deref(), Some("web:www"));
    assert_eq!(
        run(Flags::default(), serde_json::json!({"userns-remap": ""}))
            .unwrap()
            .userns_remap,
        None
    );
    let e = run(flag(), serde_json::json!({"userns-remap": "x"})).unwrap_err();
    assert!(e.contains("userns-remap"), "{e}");
    assert!(run(Flags::default(), serde_json::json!({}))
        .unwrap()
        .userns_remap
        .is_none());
}

#[test]
fn every_flag_reaches_its_setting() {
    let file = std::env::temp_dir().join(format!("coracle-flags-{}.json", std::process::id()));
    std::fs::write(&file, "{}").unwrap();
    let file_arg = file.display().to_string();
    let argv: Vec<String> = [
        "-H",
        "unix:///tmp/a.sock",
        "--host=tcp://127.0.0.1:2375",
        "-g",
        "/d",
        "-l",
        "warn",
        "-p",
        "/p",
        "--max-connections",
        "7",
        "--head-timeout=9",
        "--api-cors-header",
        "http://ui.lan",
        "--insecure-registry",
        "r:5000",
        "--registry-certs-dir",
        "/c",
        "--insecure-tcp",
        "--tls=false",
        "--tlsverify=true",
        "--api-tokens",
        "/t",
        "--allow-from",
        "10.0.0.0/8",
        "--audit-log",
        "/a",
        "--tlscacert",
        "/ca",
        "--tlscert=/cert",
        "--tlskey",
        "/key",
        "--trace-timings",
        "--userns-remap",
        "default",
        "--registry-mirror",
        "https://m.lan",
        "--config-file",
        &file_arg,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let got = parse_args(&argv);
    let last_wins = parse_args(&[
        "--data-root=/one".to_string(),
        "--data-root=/two".to_string(),
        "--config-file".to_string(),
        file_arg.clone(),
    ]);
    let _ = std::fs::remove_file(&file);
    let Ok(Command::Run(c)) = got else {
        panic!("flags rejected")
    };
    assert_eq!(c.hosts.len(), 2);
    assert_eq!(c.data_root, PathBuf::from("/d"));
    assert_eq!(c.log_level, log::LevelFilter::Warn);
    assert_eq!(c.pidfile, Some(PathBuf::from("/p")));
    assert_eq!(c.max_connections, 7);
    assert_eq!(c.head_timeout, Duration::from_secs(9));
    assert_eq!(c.api_cors_header, "http://ui.lan");
    assert_eq!(c.insecure_registries, vec!["r:5000".to_string()]);
    assert_eq!(c.registry_certs_dir, PathBuf::from("/c"));
    assert!(c.insecure_tcp && !c.tls.tls && c.tls.verify && c.trace_timings);
    assert_eq!(c.api_tokens, PathBuf::from("/t"));
    assert!(c.api_tokens_explicit);
    assert_eq!(c.allow_from.len(), 1);
    assert_eq!(c.audit_log, Some(PathBuf::from("/a")));
    assert_eq!(c.tls.ca, Some(PathBuf::from("/ca")));
    assert_eq!(c.tls.cert, Some(PathBuf::from("/cert")));
    assert_eq!(c.tls.key, Some(PathBuf::from("/key")));
    assert_eq!(c.userns_remap.as_deref(), Some("default"));
    assert_eq!(c.registry.mirrors, vec!["https://m.lan/".to_string()]);
    let Ok(Command::Run(c)) = last_wins else {
        panic!("flags rejected")
    };
    assert_eq!(c.data_root, PathBuf::from("/two"));
    let err = |a: &[&str]| match parse_args(&args(a)) {
        Err(e) => e,
        Ok(_) => panic!("{a:?} accepted"),
    };
    assert_eq!(
        parse_args(&["--tlskey".to_string()]).err().as_deref(),
        Some("flag needs an argument: --tlskey")
    );
    assert_eq!(err(&["--tls=maybe"]), "invalid value \"maybe\" for --tls");
    assert!(err(&["--tlskeys", "x"]).starts_with("unknown flag: --tlskeys\n\nUsage:"));
}
