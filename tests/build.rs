//! `docker build` (issue 17): the context is streamed into a worker,
//! extracted, its Dockerfile found and parsed (with dockerd's errors), each
//! step committed; RUN steps run in containers the daemon starts for the
//! worker. The parser's own tests are unit tests in src/build/tests.rs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::build::{context, docker_build, tar_gz_of, tar_of};
use common::Daemon;

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

    // `docker builder prune`: no cache apart from the images.
    let out = d.docker(&["builder", "prune", "-f"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Total reclaimed space: 0B"));

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
        let tar = if gzip {
            tar_gz_of(&raw_ctx)
        } else {
            tar_of(&raw_ctx)
        };
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

fn inspect_config(d: &Daemon, name: &str) -> serde_json::Value {
    let out = d.docker(&["image", "inspect", name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["Config"].clone()
}

/// A multi-stage Dockerfile without RUN through the CLI's classic builder:
/// every setting in inspect, the image runs, `.dockerignore` applied,
/// several tags, `--target`, build args and labels.
#[test]
fn cli_builds_an_image() {
    let mut d = Daemon::with_busybox();
    d.has_containers = true;
    let ctx = context(
        "build-ok",
        &[
            ("a.txt", "hello\n"),
            ("sub/b", "bee\n"),
            ("junk.log", "junk\n"),
            ("sub/keep.log", "kept\n"),
            (".dockerignore", "**/*.log\n!sub/keep.log\n"),
            (
                "Dockerfile",
                "# escape=\\\n\
                 ARG BASE=busybox\n\
                 FROM ${BASE} AS first\n\
                 LABEL stage=first\n\
                 COPY sub /stage/\n\
                 FROM $BASE AS final\n\
                 ARG WHO=nobody\n\
                 ENV GREETING=hi \\\n    DIR=/opt/app\n\
                 WORKDIR ${DIR}\n\
                 COPY --chown=1000:1000 a.txt sub ./\n\
                 COPY --from=first /stage/b /opt/fromfirst\n\
                 ADD t.tar.gz /opt/tar/\n\
                 LABEL who=\"${WHO}\" dir=${DIR:-none} alt=${NOPE:+x}\n\
                 EXPOSE 8080/tcp 53/udp\n\
                 USER 1000\n\
                 VOLUME /data\n\
                 HEALTHCHECK --interval=5s --retries=2 CMD true\n\
                 STOPSIGNAL SIGINT\n\
                 ENTRYPOINT [\"/bin/sh\", \"-c\"]\n\
                 CMD [\"cat a.txt; ls\"]\n",
            ),
        ],
    );
    // A local tar for ADD to extract.
    let t = context("build-tar", &[("inner/t.txt", "from tar\n")]);
    std::fs::write(ctx.join("t.tar.gz"), tar_gz_of(&t)).unwrap();
    let _ = std::fs::remove_dir_all(&t);
    let c = ctx.to_str().unwrap();
    let out = docker_build(
        &d,
        &[
            "-t",
            "built",
            "-t",
            "built:v2",
            "--build-arg",
            "WHO=me",
            "--label",
            "extra=1",
            c,
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Step 1/19 : FROM ${BASE} AS first\n ---> "),
        "{stdout}"
    );
    assert!(
        stdout.contains("Step 18/19 : CMD [\"cat a.txt; ls\"]\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Successfully tagged built:latest\nSuccessfully tagged built:v2\n"),
        "{stdout}"
    );
    let cfg = inspect_config(&d, "built:v2");
    assert_eq!(cfg["WorkingDir"], "/opt/app");
    assert_eq!(cfg["User"], "1000");
    assert_eq!(cfg["StopSignal"], "SIGINT");
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(cfg["Cmd"], serde_json::json!(["cat a.txt; ls"]));
    assert!(cfg["Env"]
        .as_array()
        .unwrap()
        .contains(&"GREETING=hi".into()));
    assert!(cfg["ExposedPorts"]["53/udp"].is_object());
    assert!(cfg["Volumes"]["/data"].is_object());
    assert_eq!(cfg["Labels"]["who"], "me");
    assert_eq!(cfg["Labels"]["dir"], "/opt/app");
    assert_eq!(cfg["Labels"]["alt"], "");
    assert_eq!(cfg["Labels"]["extra"], "1");
    assert!(cfg["Labels"].get("stage").is_none(), "first stage leaked");
    assert_eq!(
        cfg["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "true"])
    );
    assert_eq!(cfg["Healthcheck"]["Interval"], 5_000_000_000u64);
    // The same build again: every step from the cache, the same image.
    let id = |d: &Daemon, n: &str| {
        String::from_utf8_lossy(&d.docker(&["image", "inspect", "-f", "{{.Id}}", n]).stdout)
            .trim()
            .to_string()
    };
    let first_id = id(&d, "built");
    let args = [
        "-t",
        "built",
        "--build-arg",
        "WHO=me",
        "--label",
        "extra=1",
        c,
    ];
    let out = docker_build(&d, &args);
    let again = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(again.matches(" ---> Using cache\n").count(), 17, "{again}");
    assert_eq!(id(&d, "built"), first_id);
    // A changed file: the steps from its COPY on are made anew.
    std::fs::write(ctx.join("a.txt"), "changed\n").unwrap();
    let out = docker_build(&d, &args);
    let third = String::from_utf8_lossy(&out.stdout).into_owned();
    let (before, after) = third.split_once("COPY --chown").unwrap();
    assert_eq!(before.matches("Using cache").count(), 5, "{third}");
    assert_eq!(after.matches("Using cache").count(), 0, "{third}");
    assert_ne!(id(&d, "built"), first_id);
    // --no-cache makes every step anew.
    let out = docker_build(
        &d,
        &[
            "--no-cache",
            "-t",
            "built",
            "--build-arg",
            "WHO=me",
            "--label",
            "extra=1",
            c,
        ],
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Using cache"));
    std::fs::write(ctx.join("a.txt"), "hello\n").unwrap();
    let out = docker_build(&d, &args);
    assert!(out.status.success());
    // The image runs: the copied files, owned by 1000, the ignored log gone.
    let out = d.docker(&["run", "--rm", "built"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text, "hello\na.txt\nb\nkeep.log\n");
    let out = d.docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "stat",
        "built",
        "-c",
        "%u:%g",
        "/opt/app/a.txt",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1000:1000");
    // COPY --from a stage, ADD of a local tar extracted.
    let out = d.docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "cat",
        "built",
        "/opt/fromfirst",
        "/opt/tar/inner/t.txt",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "bee\nfrom tar\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // --target stops at the named stage.
    let out = docker_build(&d, &["-q", "--target", "first", "-t", "first", c]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(inspect_config(&d, "first")["Labels"]["stage"], "first");
    let out = docker_build(&d, &["-q", "--target", "nope", c]);
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("failed to reach build target nope in Dockerfile"));
    // A FROM image that is not here: an error in the stream.
    std::fs::write(ctx.join("Dockerfile"), "FROM nosuchimage:1\n").unwrap();
    let out = docker_build(&d, &[c]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such image: nosuchimage:1"));
    let _ = std::fs::remove_dir_all(&ctx);
}

/// The stream over raw HTTP: dockerd's messages, `\r\n` after each.
#[test]
fn stream_format_raw() {
    let mut d = Daemon::with_busybox();
    d.has_containers = true;
    let ctx = context(
        "build-stream",
        &[("Dockerfile", "FROM busybox\nENV A=1\nRUN false\n")],
    );
    let ct = [("Content-Type", "application/x-tar")];
    let tar = tar_gz_of(&ctx);
    let r = d.request_bytes("POST", "/build?t=s1&rm=1", &ct, Some(&tar));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let text = r.text();
    let lines: Vec<serde_json::Value> = text
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert_eq!(
        lines[0],
        serde_json::json!({"stream": "Step 1/3 : FROM busybox\n"})
    );
    let id = lines[1]["stream"].as_str().unwrap();
    assert!(
        id.starts_with(" ---> ") && id.len() == 19 && id.ends_with('\n'),
        "{id:?}"
    );
    assert_eq!(
        lines[2],
        serde_json::json!({"stream": "Step 2/3 : ENV A=1\n"})
    );
    // ENV is committed from a container too (dockerd 20.10's classic
    // builder), removed per rm.
    assert!(
        lines[3]["stream"]
            .as_str()
            .is_some_and(|s| s.starts_with(" ---> Running in ") && s.len() == 30),
        "{text}"
    );
    assert_eq!(
        lines[6],
        serde_json::json!({"stream": "Step 3/3 : RUN false\n"})
    );
    let last = lines.last().unwrap();
    let m = "The command '/bin/sh -c false' returned a non-zero code: 1";
    assert_eq!(
        *last,
        serde_json::json!({"errorDetail": {"code": 1, "message": m}, "error": m})
    );
    assert!(
        lines[7]["stream"]
            .as_str()
            .is_some_and(|s| s.starts_with(" ---> Running in ") && s.len() == 30),
        "{text}"
    );
    // rm without forcerm keeps a failed step's container, as dockerd
    // (only the ENV step's is removed).
    assert_eq!(
        lines[4]["stream"].as_str().and_then(|s| s.get(..31)),
        Some("Removing intermediate container"),
        "{text}"
    );
    assert_eq!(text.matches("Removing intermediate").count(), 1, "{text}");
    let ps = d.docker(&["ps", "-aq"]);
    assert_eq!(String::from_utf8_lossy(&ps.stdout).lines().count(), 1);
    d.remove_all_containers();
    // forcerm removes it too.
    let r = d.request_bytes("POST", "/build?forcerm=1", &ct, Some(&tar));
    assert!(
        r.text().contains("Removing intermediate container"),
        "{}",
        r.text()
    );
    let ps = d.docker(&["ps", "-aq"]);
    assert_eq!(String::from_utf8_lossy(&ps.stdout), "");
    let _ = std::fs::remove_dir_all(&ctx);

    // A raw client's context: the daemon applies `.dockerignore` itself
    // (the CLI filters before sending; curl and others do not).
    let ctx = context(
        "build-ignore",
        &[
            ("Dockerfile", "FROM busybox\nCOPY . /ctx/\n"),
            (".dockerignore", "secret*\ndeep/**/x\n!deep/keep/x\n"),
            ("secret.key", "no"),
            ("deep/a/b/x", "no"),
            ("deep/keep/x", "yes"),
            ("ok", "yes"),
        ],
    );
    let r = d.request_bytes("POST", "/build?t=ign&q=1", &ct, Some(&tar_of(&ctx)));
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(text.contains("\"aux\""), "{text}");
    assert!(!text.contains("Step 1/"), "q=1 prints only the ID: {text}");
    let out = d.docker(&["run", "--rm", "ign", "find", "/ctx", "-type", "f"]);
    let mut found: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "/ctx/.dockerignore",
            "/ctx/Dockerfile",
            "/ctx/deep/keep/x",
            "/ctx/ok"
        ]
    );
    let _ = std::fs::remove_dir_all(&ctx);
}

/// A python that can `import docker` (docker-py 7): `CORACLE_DOCKER_PY`, or
/// a venv built once in `$CARGO_TARGET_TMPDIR` (as tests/client_compat.rs).
fn docker_py() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let works = |py: &Path| {
            Command::new(py)
                .args([
                    "-c",
                    "import docker, sys; sys.exit(0 if docker.__version__.startswith('7') else 1)",
                ])
                .status()
                .is_ok_and(|s| s.success())
        };
        if let Some(p) = std::env::var_os("CORACLE_DOCKER_PY").map(PathBuf::from) {
            assert!(works(&p), "CORACLE_DOCKER_PY cannot import docker 7");
            return p;
        }
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("venv-docker-py");
        let py = venv.join("bin/python");
        if works(&py) {
            return py;
        }
        let _ = std::fs::remove_dir_all(&venv);
        let o = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "python3 -m venv: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let o = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "docker>=7,<8"])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "pip install docker: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(works(&py), "docker-py not importable after pip install");
        py
    })
}

/// docker-py's `images.build`: the image and its parsed log; a failing
/// step raises `BuildError` carrying the step's message.
#[test]
fn docker_py_build() {
    let d = Daemon::with_busybox();
    let ctx = context(
        "build-py",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY f /f\nCMD [\"cat\", \"/f\"]\n",
            ),
            ("f", "py\n"),
        ],
    );
    let bad = context(
        "build-py-bad",
        &[("Dockerfile", "FROM busybox\nRUN false\n")],
    );
    let script = format!(
        r#"
import docker, json
c = docker.DockerClient(base_url='unix://{sock}', version='1.45', timeout=60)
img, logs = c.images.build(path='{ok}', tag='pyimg:1', rm=True)
logs = list(logs)
print(json.dumps({{"tags": img.tags, "cmd": img.attrs['Config']['Cmd'],
    "streams": [l.get('stream', '') for l in logs], "aux": [l['aux']['ID'] for l in logs if 'aux' in l],
    "id": img.id}}))
try:
    c.images.build(path='{bad}')
    print(json.dumps({{"raised": None}}))
except docker.errors.BuildError as e:
    print(json.dumps({{"raised": e.msg, "log": [l for l in e.build_log]}}))
"#,
        sock = d.sock.display(),
        ok = ctx.display(),
        bad = bad.display()
    );
    let o = Command::new(docker_py())
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut lines = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap());
    let first = lines.next().unwrap();
    assert_eq!(first["tags"], serde_json::json!(["pyimg:1"]));
    assert_eq!(first["cmd"], serde_json::json!(["cat", "/f"]));
    assert_eq!(first["aux"], serde_json::json!([first["id"].clone()]));
    let streams = first["streams"].to_string();
    assert!(streams.contains("Step 2/3 : COPY f /f"), "{streams}");
    assert!(streams.contains("Successfully tagged pyimg:1"), "{streams}");
    let second = lines.next().unwrap();
    let msg = second["raised"].as_str().unwrap_or("");
    assert_eq!(
        msg, "The command '/bin/sh -c false' returned a non-zero code: 1",
        "{second}"
    );
    let _ = std::fs::remove_dir_all(&ctx);
    let _ = std::fs::remove_dir_all(&bad);
}

/// RUN in both forms, with an ARG and an ENV, its file read by a later
/// stage's COPY --from; the cache; `rm`; the loop stays responsive.
#[test]
fn run_steps() {
    let mut d = Daemon::with_busybox();
    d.has_containers = true;
    let df = "FROM busybox AS b\n\
              ARG GREETING=hello\n\
              ENV WHO=world\n\
              RUN echo \"$GREETING $WHO\" > /msg && echo built-out && echo to-err >&2\n\
              RUN [\"/bin/sh\", \"-c\", \"echo json >> /msg\"]\n\
              FROM busybox\n\
              COPY --from=b /msg /msg\n\
              CMD [\"cat\", \"/msg\"]\n";
    let ctx = context("build-run", &[("Dockerfile", df)]);
    let dir = ctx.to_str().unwrap();
    let o = docker_build(&d, &["-t", "runimg", "--build-arg", "GREETING=hi", dir]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}\n{}\n{}",
        String::from_utf8_lossy(&o.stderr),
        d.log_text()
    );
    // RUN, and the metadata steps ARG, ENV and CMD (dockerd 20.10 commits
    // them from a container too).
    assert_eq!(out.matches(" ---> Running in ").count(), 5, "{out}");
    assert_eq!(
        out.matches("Removing intermediate container ").count(),
        5,
        "{out}"
    );
    assert!(out.contains("\nbuilt-out\n"), "{out}");
    assert!(out.contains("\nto-err\n"), "{out}");
    let r = d.docker(&["run", "--rm", "runimg"]);
    assert_eq!(String::from_utf8_lossy(&r.stdout), "hi world\njson\n");
    let ps = d.docker(&["ps", "-aq"]);
    assert_eq!(String::from_utf8_lossy(&ps.stdout), "", "rm is the default");

    // The second build: every step from the cache; the first stage's
    // history as dockerd writes it.
    let o = docker_build(&d, &["-t", "runimg2", "--build-arg", "GREETING=hi", dir]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}");
    assert_eq!(out.matches(" ---> Using cache").count(), 6, "{out}");
    assert!(!out.contains("Running in"), "{out}");
    let o = docker_build(
        &d,
        &[
            "-t",
            "stageb",
            "--target",
            "b",
            "--build-arg",
            "GREETING=hi",
            dir,
        ],
    );
    assert!(o.status.success());
    let h = d.docker(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "stageb",
    ]);
    let h = String::from_utf8_lossy(&h.stdout).into_owned();
    let mut lines = h.lines();
    assert_eq!(
        lines.next(),
        Some("|1 GREETING=hi /bin/sh -c echo json >> /msg"),
        "{h}"
    );
    assert_eq!(
        lines.next(),
        Some("|1 GREETING=hi /bin/sh -c echo \"$GREETING $WHO\" > /msg && echo built-out && echo to-err >&2"),
        "{h}"
    );
    let _ = std::fs::remove_dir_all(&ctx);

    // rm=0 keeps the step's container (exited 0).
    let ct = [("Content-Type", "application/x-tar")];
    let keep = context(
        "build-keep",
        &[("Dockerfile", "FROM busybox\nRUN echo kept > /k\n")],
    );
    let r = d.request_bytes("POST", "/build?rm=0", &ct, Some(&tar_of(&keep)));
    assert!(r.text().contains("\"aux\""), "{}", r.text());
    assert!(!r.text().contains("Removing intermediate"), "{}", r.text());
    let ps = d.docker(&["ps", "-a", "--format", "{{.Status}}"]);
    let ps = String::from_utf8_lossy(&ps.stdout).into_owned();
    assert!(
        ps.starts_with("Exited (0)") && ps.lines().count() == 1,
        "{ps}"
    );
    d.remove_all_containers();
    let _ = std::fs::remove_dir_all(&keep);

    // The request's settings reach the RUN container: extra hosts, the
    // network mode, the memory limit.
    let opts = context(
        "build-opts",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN grep myhost /etc/hosts > /hosts; ls /sys/class/net > /nets; \
             cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes > /mem 2>/dev/null; true\n",
        )],
    );
    let o = docker_build(
        &d,
        &[
            "-t",
            "optsimg",
            "--add-host",
            "myhost:10.1.2.3",
            "--network",
            "none",
            "--memory",
            "64m",
            opts.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = d.docker(&["run", "--rm", "optsimg", "cat", "/hosts", "/nets", "/mem"]);
    let r = String::from_utf8_lossy(&r.stdout).into_owned();
    assert_eq!(r, "10.1.2.3\tmyhost\nlo\n67108864\n", "{r}");
    let _ = std::fs::remove_dir_all(&opts);

    // USER and WORKDIR apply to RUN; a RUN right after metadata steps
    // (the stream once stalled there: a pull that wrote nothing).
    let user = context(
        "build-user",
        &[(
            "Dockerfile",
            "FROM busybox\nWORKDIR /w\nUSER 1000\nRUN id -u > /tmp/uid; pwd >> /tmp/uid\n",
        )],
    );
    let o = docker_build(&d, &["-t", "userimg", user.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = d.docker(&["run", "--rm", "userimg", "cat", "/tmp/uid"]);
    assert_eq!(String::from_utf8_lossy(&r.stdout), "1000\n/w\n");
    let _ = std::fs::remove_dir_all(&user);

    // /_ping answers while a RUN step sleeps.
    let slow = context(
        "build-slow",
        &[("Dockerfile", "FROM busybox\nRUN sleep 2\n")],
    );
    // The floor: the slowest of a few round trips just before, on the
    // machine as loaded as it is now. A loop that waited for the 2 s RUN
    // would hold a ping for well over the bound's 1.5 s cap.
    let floor = (0..5)
        .map(|_| {
            let t = std::time::Instant::now();
            assert_eq!(d.request("GET", "/_ping", None).status, 200);
            t.elapsed()
        })
        .max()
        .unwrap_or_default();
    let bound = (floor * 5).clamp(
        std::time::Duration::from_millis(250),
        std::time::Duration::from_millis(1500),
    );
    let mut child = Command::new("docker")
        .args(["build", "-q", "--no-cache"])
        .arg(&slow)
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", d.dir.join("docker-config"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let begin = std::time::Instant::now();
    let mut running = false;
    let mut slowest = std::time::Duration::ZERO;
    while begin.elapsed() < std::time::Duration::from_secs(20) {
        let t = std::time::Instant::now();
        let r = d.request("GET", "/_ping", None);
        slowest = slowest.max(t.elapsed());
        assert_eq!(r.status, 200);
        let ps = d.request("GET", "/containers/json", None);
        running |= ps.json().as_array().is_some_and(|a| !a.is_empty());
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(child.wait().unwrap().success());
    assert!(running, "the RUN container was never seen running");
    assert!(
        slowest < bound,
        "/_ping took {slowest:?} during a build (floor {floor:?})"
    );
    let _ = std::fs::remove_dir_all(&slow);
}
