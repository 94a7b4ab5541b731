//! API access control on TCP (issue 19): an exposed listener needs tokens or
//! TLS, Bearer tokens with admin/read-only roles (docker CLI via
//! `HttpHeaders`, curl), SIGHUP reload, `allow-from` at accept, the audit log.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{binary, free_port, temp_dir, Daemon};

/// `coracle token new NAME [--read-only]` into `file`; returns the token.
fn new_token(file: &Path, name: &str, read_only: bool) -> String {
    let mut cmd = Command::new(binary());
    cmd.args(["token", "new", name, "--api-tokens"]).arg(file);
    if read_only {
        cmd.arg("--read-only");
    }
    let o = cmd.output().expect("run coracle token new");
    assert!(o.status.success(), "token new: {o:?}");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let token = out.lines().next().unwrap_or("").to_string();
    assert!(token.starts_with("crc_"), "{out}");
    let stored = std::fs::read_to_string(file).unwrap();
    assert!(
        !stored.contains(&token),
        "the tokens file must hold only hashes"
    );
    token
}

/// A docker CLI config dir whose config.json sends `token` (or nothing).
fn cli_config(dir: &Path, name: &str, token: Option<&str>) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let cfg = match token {
        Some(t) => serde_json::json!({"HttpHeaders": {"Authorization": format!("Bearer {t}")}}),
        None => serde_json::json!({}),
    };
    std::fs::write(d.join("config.json"), cfg.to_string()).unwrap();
    d
}

/// The docker CLI, killed after 60 s (a stalled stream fails the test
/// instead of hanging it).
fn docker(host: &str, config: &Path, args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["60", "docker"])
        .args(args)
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", config)
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_API_VERSION")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .stdin(Stdio::null())
        .output()
        .expect("the docker CLI must be installed")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// curl with extra arguments; returns (exit code, status, body).
fn curl(args: &[&str]) -> (i32, u16, String) {
    let o = Command::new("curl")
        .args(["-s", "-m", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl must be installed");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
    (
        o.status.code().unwrap_or(-1),
        code.trim().parse().unwrap_or(0),
        body.to_string(),
    )
}

fn message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("not dockerd's JSON error: {body:?}"))
}

#[test]
fn exposed_tcp_needs_tokens_tls_or_insecure_tcp() {
    let dir = temp_dir("lansec-expose");
    let empty = dir.join("tokens");
    std::fs::write(&empty, "# no tokens yet\n").unwrap();
    std::fs::write(dir.join("daemon.json"), "{}").unwrap();
    let port = free_port();
    let o = Command::new(binary())
        .arg("--config-file")
        .arg(dir.join("daemon.json"))
        .arg("--data-root")
        .arg(dir.join("root"))
        .arg("-H")
        .arg(format!("unix://{}", dir.join("d.sock").display()))
        .arg("-H")
        .arg(format!("tcp://0.0.0.0:{port}"))
        .arg("--api-tokens")
        .arg(&empty)
        .stdin(Stdio::null())
        .output()
        .expect("run coracle");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "must refuse to start: {err}");
    assert!(
        err.contains("--insecure-tcp") && err.contains(&format!("tcp://0.0.0.0:{port}")),
        "{err}"
    );
    assert!(
        !dir.join("d.sock").exists(),
        "no socket left behind by a refused start"
    );

    // With the flag it starts, says why it is dangerous, and serves.
    let t = free_port();
    let tcp = format!("tcp://0.0.0.0:{t}");
    let d = Daemon::start_with(&["-H", &tcp, "--insecure-tcp"], false);
    d.wait_serving();
    assert!(
        d.log_text()
            .contains("--insecure-tcp: API listening on tcp://0.0.0.0"),
        "{}",
        d.log_text()
    );
    let (_, status, _) = curl(&[&format!("http://127.0.0.1:{t}/_ping")]);
    assert_eq!(status, 200);
    drop(d);

    // With a token it starts; a reload that would empty the tokens of an
    // exposed listener is refused and the old ones stay.
    let tokens = dir.join("tokens2");
    let token = new_token(&tokens, "owner", false);
    let t = free_port();
    let tcp = format!("tcp://0.0.0.0:{t}");
    let d = Daemon::start_with(
        &["-H", &tcp, "--api-tokens", tokens.to_str().unwrap()],
        false,
    );
    d.wait_serving();
    let url = format!("http://127.0.0.1:{t}/_ping");
    assert_eq!(curl(&[&url]).1, 401);
    std::fs::write(&tokens, "").unwrap();
    common::signal(d.pid(), common::libc_sig::HUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.log_text().contains("keeping the previous API tokens") {
        assert!(Instant::now() < deadline, "{}", d.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(curl(&[&url]).1, 401, "still protected");
    let bearer = format!("Authorization: Bearer {token}");
    assert_eq!(curl(&["-H", &bearer, &url]).1, 200);
    drop(d);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tokens_roles_reload_allow_from_and_audit() {
    let dir = temp_dir("lansec");
    let tokens = dir.join("tokens");
    let admin = new_token(&tokens, "ops", false);
    let viewer = new_token(&tokens, "dash", true);
    let audit = dir.join("audit.log");
    let port = free_port();
    let host = format!("tcp://127.0.0.1:{port}");
    let url = format!("http://127.0.0.1:{port}");
    let mut d = Daemon::start_with(
        &[
            "-H",
            &host,
            "--api-tokens",
            tokens.to_str().unwrap(),
            "--audit-log",
            audit.to_str().unwrap(),
            "--allow-from",
            "127.0.0.1/32",
        ],
        false,
    );
    d.load_busybox();
    let none = cli_config(&dir, "none", None);
    let ro = cli_config(&dir, "ro", Some(&viewer));
    let rw = cli_config(&dir, "rw", Some(&admin));

    // No token, a wrong one, a non-Bearer scheme: 401 with dockerd's JSON.
    let (_, status, body) = curl(&["-i", &format!("{url}/_ping")]);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("WWW-Authenticate: Bearer"), "{body}");
    let (_, status, body) = curl(&[&format!("{url}/containers/json")]);
    assert_eq!(status, 401);
    assert!(message(&body).contains("Authorization: Bearer"), "{body}");
    let (_, status, body) = curl(&[
        "-H",
        "Authorization: Bearer crc_nope",
        &format!("{url}/containers/json"),
    ]);
    assert_eq!(
        (status, message(&body).as_str()),
        (401, "invalid API token")
    );
    let basic = format!("Authorization: Basic {admin}");
    let (_, status, _) = curl(&["-H", &basic, &format!("{url}/_ping")]);
    assert_eq!(status, 401);
    let o = docker(&host, &none, &["ps"]);
    assert!(
        !o.status.success() && text(&o).contains("authentication required"),
        "{}",
        text(&o)
    );

    // The unix socket is governed by its file mode, not by tokens.
    let o = d.docker(&["run", "--name", "web", "busybox", "echo", "hello-ro"]);
    assert!(o.status.success(), "{}", text(&o));

    // Read-only: ps, inspect, logs, images; not run, rm, exec, attach, archive.
    let o = docker(&host, &ro, &["ps", "-a"]);
    assert!(
        o.status.success() && text(&o).contains("web"),
        "{}",
        text(&o)
    );
    let o = docker(&host, &ro, &["inspect", "-f", "{{.State.Status}}", "web"]);
    assert!(
        o.status.success() && text(&o).contains("exited"),
        "{}",
        text(&o)
    );
    let o = docker(&host, &ro, &["logs", "web"]);
    assert!(
        o.status.success() && text(&o).contains("hello-ro"),
        "{}",
        text(&o)
    );
    let o = docker(&host, &ro, &["images"]);
    assert!(
        o.status.success() && text(&o).contains("busybox"),
        "{}",
        text(&o)
    );
    for args in [
        &["run", "--rm", "busybox", "true"][..],
        &["rm", "web"],
        &["exec", "web", "true"],
        &["start", "web"],
    ] {
        let o = docker(&host, &ro, args);
        let t = text(&o);
        assert!(
            !o.status.success()
                && t.contains("token \"dash\" is read-only")
                && t.contains("needs an admin token"),
            "{args:?}: {t}"
        );
    }
    let bearer_ro = format!("Authorization: Bearer {viewer}");
    for path in [
        "/containers/web/archive?path=/",
        "/containers/web/export",
        "/v1.45/containers/web/attach?stream=1",
    ] {
        let (_, status, body) = curl(&["-H", &bearer_ro, &format!("{url}{path}")]);
        assert_eq!(status, 403, "{path}: {body}");
        assert!(message(&body).contains("read-only"), "{body}");
    }

    // Admin: everything.
    let o = docker(&host, &rw, &["run", "--rm", "busybox", "echo", "admin-ran"]);
    assert!(
        o.status.success() && text(&o).contains("admin-ran"),
        "{}",
        text(&o)
    );
    let o = docker(&host, &rw, &["rm", "web"]);
    assert!(o.status.success(), "{}", text(&o));

    // A token added to the file works after SIGHUP, without a restart.
    let late = new_token(&tokens, "late", false);
    let bearer_late = format!("Authorization: Bearer {late}");
    let (_, status, _) = curl(&["-H", &bearer_late, &format!("{url}/_ping")]);
    assert_eq!(status, 401, "not before the reload");
    common::signal(d.pid(), common::libc_sig::HUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, status, _) = curl(&["-H", &bearer_late, &format!("{url}/_ping")]);
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not load the new token: {}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // allow-from 127.0.0.1/32: a peer at 127.0.0.2 is closed without an answer.
    let (code, status, body) = curl(&[
        "--interface",
        "127.0.0.2",
        "-H",
        &bearer_late,
        &format!("{url}/_ping"),
    ]);
    assert!(
        matches!(code, 52 | 56) && status == 0,
        "curl {code}, {status}: {body}"
    );
    assert!(
        d.log_text()
            .contains("not in allow-from (1 refused so far)"),
        "{}",
        d.log_text()
    );
    let (_, status, _) = curl(&["-H", &bearer_late, &format!("{url}/_ping")]);
    assert_eq!(status, 200, "127.0.0.1 is still served");

    // The audit log: every refused and every state-changing request.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    let has = |method: &str, path_part: &str, status: u64, token: Option<&str>| {
        lines.iter().any(|l| {
            l["method"] == method
                && l["path"].as_str().is_some_and(|p| p.contains(path_part))
                && l["status"] == status
                && l["token"].as_str() == token
                && l["peer"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("127.0.0.1:"))
                && l["time"].as_str().is_some()
        })
    };
    assert!(has("GET", "/containers/json", 401, None), "{lines:#?}");
    assert!(
        has("POST", "/containers/create", 403, Some("dash")),
        "{lines:#?}"
    );
    assert!(
        has("GET", "/containers/web/archive", 403, Some("dash")),
        "{lines:#?}"
    );
    assert!(
        has("POST", "/containers/create", 201, Some("ops")),
        "{lines:#?}"
    );
    assert!(has("POST", "/start", 204, Some("ops")), "{lines:#?}");
    assert!(
        has("DELETE", "/containers/web", 204, Some("ops")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l["refused"] == "not in allow-from"
            && l["peer"]
                .as_str()
                .is_some_and(|p| p.starts_with("127.0.0.2:"))),
        "{lines:#?}"
    );
    // Reads with a valid token are not audited; unix-socket writes are.
    assert!(
        !lines
            .iter()
            .any(|l| l["method"] == "GET" && l["status"] == 200),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["peer"] == "unix" && l["method"] == "POST"),
        "{lines:#?}"
    );

    // Token guessing: after 20 failures in a minute the address is cut off
    // at accept (even with a good token), the unix socket still answers.
    let mut closed_after = None;
    for i in 0..30 {
        let (code, status, _) = curl(&[
            "-H",
            "Authorization: Bearer crc_guess",
            &format!("{url}/_ping"),
        ]);
        if status == 0 {
            assert!(matches!(code, 52 | 56), "curl {code}");
            closed_after = Some(i);
            break;
        }
        assert_eq!(status, 401);
    }
    assert!(closed_after.is_some(), "never locked out");
    let (_, status, _) = curl(&["-H", &bearer_late, &format!("{url}/_ping")]);
    assert_eq!(
        status, 0,
        "a locked-out address is closed even with a good token"
    );
    assert!(
        d.log_text().contains("failed authentications in a minute"),
        "{}",
        d.log_text()
    );
    assert_eq!(d.request("GET", "/_ping", None).status, 200);
    d.terminate();
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made
/// with openssl in `dir` (dockerd's file names: ca.pem, cert.pem, key.pem).
fn make_pki(dir: &Path) -> (PathBuf, PathBuf) {
    let server = dir.join("server");
    let client = dir.join("client");
    std::fs::create_dir_all(&server).unwrap();
    std::fs::create_dir_all(&client).unwrap();
    let sh = format!(
        r#"set -e
cd {dir}
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 2 -subj /CN=coracle-test-ca
openssl req -newkey rsa:2048 -nodes -keyout server/key.pem -out server.csr -subj /CN=localhost
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server/cert.pem -days 2 -extfile server.ext
openssl req -newkey rsa:2048 -nodes -keyout client/key.pem -out client.csr -subj /CN=laptop
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out client/cert.pem -days 2 -extfile client.ext
cp ca.pem server/ca.pem
cp ca.pem client/ca.pem
"#,
        dir = dir.display()
    );
    let o = Command::new("sh")
        .arg("-c")
        .arg(&sh)
        .output()
        .expect("run openssl");
    assert!(o.status.success(), "openssl: {}", text(&o));
    (server, client)
}

#[test]
fn tlsverify_listener() {
    let dir = temp_dir("lansec-tls");
    let (server, client) = make_pki(&dir);
    let port = free_port();
    let host = format!("tcp://127.0.0.1:{port}");
    let url = format!("https://127.0.0.1:{port}");
    let audit = dir.join("audit.log");
    let arg = |name: &str| server.join(name).to_str().unwrap().to_string();
    let mut d = Daemon::start_with(
        &[
            "-H",
            &host,
            "--tlsverify",
            "--tlscacert",
            &arg("ca.pem"),
            "--tlscert",
            &arg("cert.pem"),
            "--tlskey",
            &arg("key.pem"),
            "--audit-log",
            audit.to_str().unwrap(),
        ],
        false,
    );
    d.wait_serving();
    assert!(
        d.log_text().contains("(TLS, client certificates verified)"),
        "{}",
        d.log_text()
    );
    d.load_busybox();
    let cfg = cli_config(&dir, "cli", None);
    let c = |name: &str| client.join(name).to_str().unwrap().to_string();
    let tls_docker = |args: &[&str]| {
        let mut all = vec![
            "--tlsverify".to_string(),
            "--tlscacert".into(),
            c("ca.pem"),
            "--tlscert".into(),
            c("cert.pem"),
            "--tlskey".into(),
            c("key.pem"),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        docker(&host, &cfg, &all)
    };

    // The real CLI with its client certificate: requests, streams, hijack.
    let o = tls_docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert!(
        o.status.success() && text(&o).contains("1.45"),
        "{}",
        text(&o)
    );
    let o = tls_docker(&[
        "run",
        "--name",
        "big",
        "busybox",
        "sh",
        "-c",
        "head -c 600000 /dev/zero | od -v | head -c 2000000",
    ]);
    assert!(
        o.status.success() && o.stdout.len() == 2_000_000,
        "{} bytes: {}",
        o.stdout.len(),
        String::from_utf8_lossy(&o.stderr)
    );
    let mut cmd = Command::new("timeout");
    cmd.args(["60", "docker"])
        .args([
            "--tlsverify",
            "--tlscacert",
            &c("ca.pem"),
            "--tlscert",
            &c("cert.pem"),
            "--tlskey",
            &c("key.pem"),
        ])
        .args(["run", "-i", "--rm", "busybox", "cat"])
        .env("DOCKER_HOST", &host)
        .env("DOCKER_CONFIG", &cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"through tls\n").unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "through tls\n",
        "{}",
        text(&o)
    );
    // A long log read back over TLS (binary output: json-file lines of
    // escaped NULs, so many log pieces hold no whole entry).
    let o = tls_docker(&[
        "run",
        "--name",
        "zeros",
        "busybox",
        "sh",
        "-c",
        "head -c 3000000 /dev/zero",
    ]);
    assert!(
        o.status.success() && o.stdout.len() == 3_000_000,
        "{}",
        o.stdout.len()
    );
    let start = Instant::now();
    let o = tls_docker(&["logs", "zeros"]);
    assert!(
        o.status.success() && o.stdout.len() == 3_000_000,
        "docker logs over TLS: {} bytes after {:?}",
        o.stdout.len(),
        start.elapsed()
    );
    let o = tls_docker(&["rm", "zeros"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = tls_docker(&["rm", "big"]);
    assert!(o.status.success(), "{}", text(&o));

    // DOCKER_TLS_VERIFY + DOCKER_CERT_PATH, as the CLI's docs set it up.
    let o = Command::new("timeout")
        .args(["60", "docker", "ps", "-a"])
        .env("DOCKER_HOST", &host)
        .env("DOCKER_CONFIG", &cfg)
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", &client)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));

    // curl: with the certificate 200; without one, or in plain HTTP, no answer.
    let (code, status, body) = curl(&[
        "--cacert",
        &c("ca.pem"),
        "--cert",
        &c("cert.pem"),
        "--key",
        &c("key.pem"),
        &format!("{url}/_ping"),
    ]);
    assert_eq!((code, status, body.as_str()), (0, 200, "OK"));
    let (code, status, _) = curl(&["--cacert", &c("ca.pem"), &format!("{url}/_ping")]);
    assert!(
        code != 0 && status == 0,
        "no client certificate: curl {code}, {status}"
    );
    let (code, status, _) = curl(&[&format!("http://127.0.0.1:{port}/_ping")]);
    assert!(
        code != 0 && status == 0,
        "plain HTTP: curl {code}, {status}"
    );
    // The CLI without its certificate is refused too.
    let o = docker(&host, &cfg, &["--tls", "--tlscacert", &c("ca.pem"), "ps"]);
    assert!(!o.status.success(), "{}", text(&o));

    let lines = std::fs::read_to_string(&audit).unwrap();
    assert!(
        lines.contains("\"path\":\"/v1.45/containers/big\"")
            && lines.contains("\"method\":\"DELETE\""),
        "{lines}"
    );
    d.terminate();
}
