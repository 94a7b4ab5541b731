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
