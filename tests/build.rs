//! `docker build` (issue 17): what the daemon answers today. The Dockerfile
//! parser's own tests are unit tests in src/build/tests.rs.

mod common;

use common::Daemon;

#[test]
fn build_endpoints() {
    let d = Daemon::start();

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

    // The CLI's classic builder gets a clear daemon error, not a 404.
    let dir = common::temp_dir("build-ctx");
    std::fs::write(dir.join("Dockerfile"), "FROM busybox\nRUN true\n").unwrap();
    let out = std::process::Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", d.dir.join("docker-config"))
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_API_VERSION")
        .args(["build", "-q", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!err.contains("page not found"), "{err}");
    assert!(err.contains("classic builder"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
