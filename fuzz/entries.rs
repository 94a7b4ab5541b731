//! The fuzz targets' entry points, one per target: each takes the raw input,
//! drives one parser of the daemon the way a request or a file reaches it, and
//! panics only on a broken invariant. Shared verbatim by the cargo-fuzz targets
//! (fuzz/fuzz_targets/*.rs, nightly) and the corpus replay test
//! (tests/fuzz_replay.rs, stable), so CI replays exactly what was fuzzed.

use std::path::{Path, PathBuf};

use coracle::http::body::BodyDecoder;
use coracle::http::request::{parse_head, BodyFraming};

/// A target's entry point.
pub type Entry = fn(&[u8]);

/// Every target, by the name of its corpus directory.
pub const TARGETS: &[(&str, Entry)] = &[
    ("http_head", http_head),
    ("chunked", chunked),
    ("query_filters", query_filters),
    ("create_body", create_body),
    ("image_reference", image_reference),
    ("daemon_json", daemon_json),
    ("tar_layer", tar_layer),
    ("dockerfile", dockerfile),
    ("dockerignore", dockerignore),
];

/// A request head as the connection reads it, then its body through the
/// decoder the head chose.
pub fn http_head(data: &[u8]) {
    if let Ok(Some((req, n))) = parse_head(data) {
        assert!(n <= data.len(), "consumed {n} of {}", data.len());
        let _ = req.header("content-type");
        let _ = req.query.get("filters");
        let _ = req.has_body();
        let mut dec = BodyDecoder::new(req.framing);
        let mut out = Vec::new();
        if let Ok(used) = dec.decode(&data[n..], &mut out, 1 << 20) {
            assert!(used <= data.len() - n);
        }
    }
    // A head split anywhere parses as "need more" or the same result.
    if data.len() > 1 {
        let cut = data[0] as usize % data.len();
        if let Ok(Some((_, n))) = parse_head(&data[..cut]) {
            assert!(n <= cut);
        }
    }
}

/// A chunked body fed in pieces (sizes and room from the input) decodes to the
/// same bytes, and the same error, as fed whole.
pub fn chunked(data: &[u8]) {
    let (ctl, body) = data.split_at(data.len().min(2));
    let piece = ctl.first().map_or(1, |b| usize::from(*b % 17) + 1);
    let room = ctl.get(1).map_or(7, |b| usize::from(*b) + 1);

    let mut whole = BodyDecoder::new(BodyFraming::Chunked);
    let mut out_whole = Vec::new();
    let whole_res = whole.decode(body, &mut out_whole, usize::MAX);

    let mut dec = BodyDecoder::new(BodyFraming::Chunked);
    let mut out = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut err = None;
    let mut stalls = 0;
    while !dec.is_done() {
        if fed < body.len() {
            let end = (fed + piece).min(body.len());
            buf.extend_from_slice(&body[fed..end]);
            fed = end;
        }
        match dec.decode(&buf, &mut out, room) {
            Ok(used) => {
                assert!(used <= buf.len());
                buf.drain(..used);
                if used == 0 && fed == body.len() {
                    // Nothing more to give; room is not the limit if it stays 0.
                    stalls += 1;
                    if stalls > 2 {
                        break;
                    }
                } else {
                    stalls = 0;
                }
            }
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    match whole_res {
        Err(e) => assert_eq!(Some(e), err, "whole failed, pieces did not"),
        Ok(_) if whole.is_done() => {
            assert!(err.is_none(), "pieces failed, whole did not: {err:?}");
            assert!(dec.is_done());
            assert_eq!(out, out_whole);
        }
        Ok(_) => {
            // Incomplete body: pieces saw a prefix of the same bytes.
            if err.is_none() {
                assert_eq!(out, out_whole);
            }
        }
    }
}

/// A query string, its `filters` as every list endpoint parses them, and a
/// prune's `until`.
pub fn query_filters(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let q = coracle::http::query::Query::parse(raw);
    let _ = q.bool("all");
    let _ = q.get_all("label").count();
    let _ = coracle::http::query::percent_decode(raw, true);
    for allowed in [
        &["label", "until"][..],
        &["dangling", "label", "until", "before", "since", "reference"][..],
        &[
            "id", "name", "status", "label", "ancestor", "exited", "until",
        ][..],
    ] {
        // As a query parameter, and as the raw text.
        for f in [q.get("filters"), Some(raw)] {
            if let Ok(map) = coracle::api::filters::parse(f, allowed) {
                for k in map.keys() {
                    assert!(allowed.contains(&k.as_str()), "{k} not allowed");
                }
                let _ = coracle::api::filters::until(&map);
            }
        }
    }
}

/// `POST /containers/create`'s body through every check the engine makes
/// before it writes anything, then to the launch spec a start would use.
pub fn create_body(data: &[u8]) {
    use coracle::container::{create, isolation, launch_spec, names, policy};
    let Ok((mut config, host_config)) = coracle::container::config::parse_create(data) else {
        return;
    };
    if create::validate_config(&config).is_err()
        || create::validate_host_config(&host_config).is_err()
    {
        return;
    }
    if isolation::validate(&host_config, &|k| k == "other").is_err() {
        return;
    }
    if coracle::runtime::cgroups::validate(&policy::resources_of(&host_config)).is_err() {
        return;
    }
    let image_config = serde_json::json!({
        "Cmd": ["sh"], "Env": ["PATH=/usr/bin:/bin", "HOME=/root"],
        "WorkingDir": "/", "Entrypoint": null,
    });
    let Ok((path, args)) = create::merge_image(&mut config, &image_config) else {
        return;
    };
    let Ok(network) = create::network_mode(&host_config.network_mode).map(str::to_string) else {
        return;
    };
    let _ = names::validate(&config.hostname);
    let networking = coracle::container::config::endpoints_config(data);
    let _ = coracle::container::etc::hostname(&config.hostname);
    let _ = coracle::container::etc::hosts(&host_config, &config.hostname, &network);
    let Ok(mounts) = launch_spec::mounts_of(&host_config) else {
        return;
    };
    let _ = launch_spec::bind_sources(&host_config);
    let _ = host_config.launch_ulimits();
    let iso = match isolation::resolve(&host_config, false, &|what, _| {
        Err(coracle::container::error::ContainerError::Conflict(
            what.into(),
        ))
    }) {
        Ok(i) => i,
        Err(_) => return,
    };
    let c = coracle::container::model::Container {
        id: "0".repeat(64),
        name: "/fuzz".into(),
        created: String::new(),
        image: "sha256:0".into(),
        path,
        args,
        state: Default::default(),
        restart_count: 0,
        manually_stopped: false,
        has_been_started: false,
        start_pending: false,
        mount_points: Vec::new(),
        links: Vec::new(),
        networking,
        config,
        host_config,
    };
    let paths = launch_spec::SpecPaths {
        upper_dir: "/nonexistent/upper".into(),
        work_dir: "/nonexistent/work".into(),
        merged_dir: "/nonexistent/merged".into(),
        dir: "/nonexistent".into(),
    };
    let stdio = coracle::runtime::spec::StdioSpec {
        stdin: None,
        stdout: 1,
        stderr: 2,
        tty: c.config.tty,
    };
    let net = coracle::runtime::spec::NetworkMode::None;
    let spec = launch_spec::launch_spec(&c, Vec::new(), paths, net, mounts, iso, stdio);
    assert!(!spec.args.is_empty());
    assert!(spec.cwd.starts_with('/') || !c.config.working_dir.is_empty());
}

/// An image reference: parsed, printed and parsed again gives the same text.
pub fn image_reference(data: &[u8]) {
    use coracle::image::reference::{familiar, valid_tag, Reference};
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = valid_tag(s);
    let _ = familiar(s);
    if let Ok(r) = Reference::parse(s) {
        let _ = r.familiar_name();
        let _ = r.familiar();
        let text = r.to_string();
        let again = Reference::parse(&text)
            .unwrap_or_else(|e| panic!("{s:?} printed as {text:?}, which does not parse: {e}"));
        assert_eq!(again.to_string(), text, "{s:?}");
        let _ = r.with_default_tag().to_string();
    }
}

/// daemon.json as the daemon reads it at start (no flags).
pub fn daemon_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = coracle::config::from_daemon_json(text) {
        assert!(cfg.data_root.is_absolute());
        assert!(cfg.max_connections > 0);
    }
}

/// A layer tar (plain or gzip) extracted into a fresh directory: whatever it
/// holds, nothing appears beside that directory, and no symlink was followed
/// out of it.
pub fn tar_layer(data: &[u8]) {
    use coracle::image::layer_extract::{extract_layer, Budget};
    let base = scratch_dir();
    let layer = base.join("layer");
    let fence = base.join("fence");
    std::fs::create_dir(&layer).expect("layer dir");
    std::fs::create_dir(&fence).expect("fence dir");
    // 64 MiB: a gzip bomb in the corpus stays cheap.
    let budget = Budget::new(64 << 20, 200);
    let _ = extract_layer(data, &layer, &budget);
    let mut beside: Vec<_> = std::fs::read_dir(&base)
        .expect("read base")
        .map(|e| e.expect("entry").file_name())
        .collect();
    beside.sort();
    assert_eq!(
        beside,
        ["fence", "layer"],
        "something landed beside the layer"
    );
    let fenced = std::fs::read_dir(&fence).expect("read fence").count();
    assert_eq!(fenced, 0, "something landed in a sibling directory");
    remove_all(&base);
}

/// A Dockerfile, and the stage a `--target` picks.
pub fn dockerfile(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(df) = coracle::build::dockerfile::parse(text) {
        for st in &df.stages {
            let _ = st.name();
        }
        if let Some(name) = df.stages.last().and_then(|s| s.name()) {
            let name = name.to_string();
            assert!(df.up_to_target(&name).is_ok(), "stage {name} not found");
        }
    }
}

/// .dockerignore patterns (up to a NUL), then paths (one a line) matched.
pub fn dockerignore(data: &[u8]) {
    use coracle::build::dockerignore::{clean, Matcher};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (patterns, paths) = text
        .split_once('\0')
        .unwrap_or((text, "a/b\n.git\nDockerfile"));
    if let Ok(m) = Matcher::parse(patterns) {
        let _ = m.is_empty();
        for p in paths.lines() {
            let _ = m.excluded(&clean(p));
        }
    }
}

/// A fresh empty directory under the temp dir (per process, per call).
fn scratch_dir() -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("coracle-fuzz-{}-{n}", std::process::id()));
    remove_all(&p);
    std::fs::create_dir_all(&p).expect("scratch dir");
    p
}

fn remove_all(p: &Path) {
    // Extracted trees may hold read-only directories: open them up first.
    if let Ok(rd) = std::fs::read_dir(p) {
        use std::os::unix::fs::PermissionsExt;
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(0o755));
                remove_all(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir_all(p);
}
