//! `docker build` (issue 17): what the daemon does today. The context is
//! streamed into a worker, extracted, its Dockerfile found and parsed (with
//! dockerd's errors); the steps do not run yet (501). The parser's own
//! tests are unit tests in src/build/tests.rs.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::Daemon;

/// The CLI's classic builder (DOCKER_BUILDKIT=0) against this daemon.
fn docker_build(d: &Daemon, args: &[&str]) -> Output {
    Command::new("docker")
        .arg("build")
        .args(args)
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", d.dir.join("docker-config"))
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_API_VERSION")
        .output()
        .expect("docker CLI")
}

/// A context directory with these files.
fn context(tag: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = common::temp_dir(tag);
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

/// `tar c` of a directory (`z` for gzip).
fn tar_of(dir: &Path, gzip: bool) -> Vec<u8> {
    let out = Command::new("tar")
        .arg(if gzip { "czf" } else { "cf" })
        .arg("-")
        .arg("-C")
        .arg(dir)
        .arg(".")
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

fn message(r: &common::RawResponse) -> String {
    r.message()
}

#[test]
fn build_endpoints() {
    let d = Daemon::with_busybox();

    // `/_ping` tells the CLI to use the classic builder.
    let r = d.request("GET", "/_ping", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Builder-Version"), Some("1"));

    // BuildKit's endpoints: a clear error that points at DOCKER_BUILDKIT=0.
    for path in ["/session", "/grpc", "/v1.45/session"] {
        let r = d.request("POST", path, None);
        assert_eq!(r.status, 501, "{path}");
        let m = r.json()["message"].as_str().unwrap_or("").to_string();
        assert!(m.contains("DOCKER_BUILDKIT=0"), "{path}: {m}");
    }

    // Refused before the context is read, with dockerd's 400.
    let cases = [
        ("/build?version=2", "DOCKER_BUILDKIT=0"),
        ("/build?version=7", "unsupported builder version: 7"),
        (
            "/build?outputs=%5B%7B%22Type%22%3A%22local%22%7D%5D",
            "the --output option requires BuildKit",
        ),
        (
            "/build?remote=https%3A%2F%2Fgithub.com%2Fmoby%2Fmoby.git",
            "git build contexts are not supported",
        ),
        (
            "/build?remote=git%40github.com%3Ax%2Fy",
            "git build contexts",
        ),
    ];
    for (path, want) in cases {
        let r = d.request("POST", path, None);
        assert_eq!(r.status, 400, "{path}");
        let m = r.json()["message"].as_str().unwrap_or("").to_string();
        assert!(m.contains(want), "{path}: {m}");
    }

    // Raw HTTP: the context as a tar, plain or gzip.
    let raw_ctx = context(
        "build-raw",
        &[
            ("Dockerfile", "FROM busybox\nRUNN x\n"),
            ("alt/Other", "FROM busybox\n"),
        ],
    );
    for gzip in [false, true] {
        let tar = tar_of(&raw_ctx, gzip);
        let ct = [("Content-Type", "application/x-tar")];
        let r = d.request_bytes("POST", "/build", &ct, Some(&tar));
        assert_eq!(r.status, 400, "gzip={gzip}");
        assert_eq!(
            message(&r),
            "dockerfile parse error on line 2: unknown instruction: RUNN"
        );
        let r = d.request_bytes("POST", "/build?dockerfile=nope", &ct, Some(&tar));
        assert_eq!(r.status, 400);
        assert_eq!(message(&r), "Cannot locate specified Dockerfile: nope");
        let r = d.request_bytes("POST", "/build?dockerfile=../Dockerfile", &ct, Some(&tar));
        assert_eq!(r.status, 400);
    }
    let r = d.request_bytes("POST", "/build", &[], Some(b"not a tar at all, not at all"));
    assert_eq!(r.status, 400, "{}", message(&r));

    // The CLI's classic builder shows the daemon's errors.
    let ctx = context(
        "build-cli",
        &[
            ("Dockerfile", "FROM busybox\nCOPY --chmod=755 a /a\n"),
            ("a", "x"),
        ],
    );
    let out = docker_build(&d, &["-q", ctx.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("dockerfile parse error on line 2: the --chmod option requires BuildKit"),
        "{err}"
    );
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\n\n").unwrap();
    std::fs::write(ctx.join("Empty.df"), "# nothing\n").unwrap();
    let out = docker_build(
        &d,
        &[
            "-q",
            "-f",
            ctx.join("Empty.df").to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the Dockerfile (Empty.df) cannot be empty"),
        "{err}"
    );
    // The contexts went through workers and are deleted after (by a
    // worker too): none is left behind.
    let mut left = Vec::new();
    for _ in 0..40 {
        left = Command::new("find")
            .arg(&d.data_root)
            .args(["-name", "Other"])
            .output()
            .unwrap()
            .stdout;
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        left.is_empty(),
        "context left behind: {}",
        String::from_utf8_lossy(&left)
    );
    let _ = std::fs::remove_dir_all(&ctx);
    let _ = std::fs::remove_dir_all(&raw_ctx);
}
