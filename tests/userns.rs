//! `--userns-remap default` (issue 19): one daemon, its subordinate id files
//! in a temp dir (CORACLE_DEBUG_SUBID_DIR, debug builds only, so /etc is
//! never edited), serving every check: container root is the first
//! subordinate uid on the host and root inside, files made in a volume
//! belong to it, exec joins the same namespace, seccomp stays on, the image
//! layers look root-owned, `docker cp` and `docker commit` give unmapped
//! ownership, dockerd's refusals and `--userns host`, a published port on
//! the default bridge, and a daemon restart.

mod common;

use common::cli::*;
use common::Daemon;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// The range the daemon must add: after alice's, the highest one.
const ROOT: u32 = 300000 + 1000;

fn status_field(pid: i64, field: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn fails_with(d: &Daemon, args: &[&str], msg: &str) {
    let o = dk(d, args);
    assert!(!o.status.success(), "`docker {}` succeeded", args.join(" "));
    let text = show(&o);
    assert!(text.contains(msg), "`docker {}`: {text}", args.join(" "));
}

/// uid/gid of the first entry of a tar stream (ustar octal fields).
fn tar_owner(tar: &[u8]) -> (u32, u32) {
    let field = |r: std::ops::Range<usize>| {
        let s = String::from_utf8_lossy(&tar[r]);
        u32::from_str_radix(s.trim_matches(|c: char| c == '\0' || c == ' '), 8).unwrap_or(u32::MAX)
    };
    assert!(tar.len() >= 512, "short tar: {} bytes", tar.len());
    (field(108..116), field(116..124))
}

/// Removes the test's subordinate id files and, should the daemon die
/// without its clean shutdown, its bridge.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::process::Command::new("ip")
            .args(["link", "del", "cuns0"])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[test]
fn userns_remap_default() {
    // The daemon reads the test's subordinate-id files through
    // CORACLE_DEBUG_SUBID_DIR, which only a debug build honours: a release
    // binary (CORACLE_BIN, the musl run) would append to the host's
    // /etc/subuid and /etc/subgid, so this test does not run against one.
    if std::env::var("CORACLE_BIN").is_ok_and(|b| !b.is_empty()) {
        eprintln!("skipped: CORACLE_BIN is set (a release binary ignores CORACLE_DEBUG_SUBID_DIR)");
        return;
    }
    let subids: PathBuf = common::temp_dir("subids");
    let _cleanup = Cleanup(subids.clone());
    std::fs::write(
        subids.join("subuid"),
        "alice:100000:65536\nbob:300000:1000\n",
    )
    .unwrap();
    // The only test in this binary: nothing else reads the environment.
    std::env::set_var("CORACLE_DEBUG_SUBID_DIR", &subids);
    let mut d = Daemon::with_config_and_busybox(
        r#"{"userns-remap": "default", "bridge": "cuns0", "bip": "10.186.0.1/24"}"#,
    );

    // The ranges dockerd's useradd would have made, after the highest.
    let subuid = std::fs::read_to_string(subids.join("subuid")).unwrap();
    assert!(
        subuid.ends_with(&format!("dockremap:{ROOT}:65536\n")),
        "{subuid}"
    );
    let subgid = std::fs::read_to_string(subids.join("subgid")).unwrap();
    assert_eq!(subgid, "dockremap:100000:65536\n");
    let root_gid = 100000u32;
    assert!(d.log_text().contains("dockremap"), "{}", d.log_text());

    let info = d.request("GET", "/info", None).json();
    let opts = info["SecurityOptions"].to_string();
    assert!(opts.contains("name=userns"), "{opts}");

    // Root inside, the first subordinate uid outside; seccomp on.
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "u",
            "-v",
            "vol1:/data",
            "busybox",
            "sleep",
            "300",
        ],
    );
    let pid = inspect(&d, "u")["State"]["Pid"].as_i64().unwrap();
    assert_eq!(
        status_field(pid, "Uid"),
        format!("{ROOT} {ROOT} {ROOT} {ROOT}")
    );
    assert_eq!(
        status_field(pid, "Gid"),
        format!("{root_gid} {root_gid} {root_gid} {root_gid}")
    );
    assert_eq!(status_field(pid, "Seccomp"), "2");
    let id = ok(&d, &["exec", "u", "id"]);
    assert!(id.starts_with("uid=0(root) gid=0(root)"), "{id}");
    // The exec is in the same user namespace, also seccomp-confined.
    let map = ok(&d, &["exec", "u", "cat", "/proc/self/uid_map"]);
    assert_eq!(words(&map), format!("0 {ROOT} 65536"));
    let st = ok(
        &d,
        &["exec", "u", "sh", "-c", "grep Seccomp: /proc/self/status"],
    );
    assert_eq!(words(&st), "Seccomp: 2");

    // The image's files are root's inside; root can write the rootfs.
    let owners = ok(
        &d,
        &[
            "exec",
            "u",
            "stat",
            "-c",
            "%u:%g",
            "/",
            "/bin",
            "/etc/passwd",
        ],
    );
    assert_eq!(words(&owners), "0:0 0:0 0:0");
    ok(
        &d,
        &[
            "exec",
            "u",
            "sh",
            "-c",
            "echo hi > /etc/made && mkdir -p /newdir && touch /data/f",
        ],
    );
    // In the volume the file belongs to the first subordinate uid.
    let f = d.data_root.join("volumes/vol1/_data/f");
    let md = std::fs::metadata(&f).unwrap();
    assert_eq!((md.uid(), md.gid()), (ROOT, root_gid));

    // docker cp out and in: the image's (unmapped) ownership.
    let out = dk(&d, &["cp", "u:/etc/made", "-"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(tar_owner(&out.stdout), (0, 0));
    let host_file = subids.join("cp-in");
    std::fs::write(&host_file, "in\n").unwrap();
    ok(&d, &["cp", host_file.to_str().unwrap(), "u:/cp-in"]);
    let owner = ok(&d, &["exec", "u", "stat", "-c", "%u:%g", "/cp-in"]);
    assert_eq!(words(&owner), "0:0");

    // docker commit: the new layer holds root-owned files.
    ok(&d, &["commit", "u", "userns-committed"]);
    let owner = ok(
        &d,
        &[
            "run",
            "--rm",
            "userns-committed",
            "stat",
            "-c",
            "%u:%g",
            "/etc/made",
            "/newdir",
        ],
    );
    assert_eq!(words(&owner), "0:0 0:0");

    // A missing working dir is made by the remapped root, --init or not.
    for init in [&[][..], &["--init"][..]] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(init);
        args.extend([
            "-w",
            "/made/wd",
            "busybox",
            "sh",
            "-c",
            "id -u; stat -c %u:%g /made/wd",
        ]);
        assert_eq!(words(&ok(&d, &args)), "0 0:0", "{args:?}");
    }

    // dockerd's refusals, and --userns host opting out.
    fails_with(
        &d,
        &["run", "--rm", "--privileged", "busybox", "true"],
        "privileged mode is incompatible with user namespaces",
    );
    fails_with(
        &d,
        &["run", "--rm", "--net", "host", "busybox", "true"],
        "cannot share the host's network namespace when user namespaces are enabled",
    );
    fails_with(
        &d,
        &["run", "--rm", "--pid", "host", "busybox", "true"],
        "cannot share the host PID namespace when user namespaces are enabled",
    );
    let host = ok(
        &d,
        &[
            "run",
            "--rm",
            "--userns",
            "host",
            "--privileged",
            "busybox",
            "cat",
            "/proc/self/uid_map",
        ],
    );
    assert_eq!(words(&host), "0 0 4294967295");

    // A published port on the default bridge (httpd on port 80: binding
    // a low port needs no capability over the host-owned netns).
    let port = common::free_port();
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "-p",
            &format!("{port}:80"),
            "busybox",
            "sh",
            "-c",
            "echo hello-userns > /tmp/index.html; exec busybox httpd -f -p 80 -h /tmp",
        ],
    );
    let mut got = String::new();
    wait_for("the published port answers", 10, || {
        let o = std::process::Command::new("curl")
            .args(["-s", "-m", "2", &format!("http://127.0.0.1:{port}/")])
            .output()
            .unwrap();
        got = String::from_utf8_lossy(&o.stdout).into_owned();
        got.trim() == "hello-userns"
    });

    // A restart keeps the mapping (and adds no second range).
    d.remove_all_containers();
    d.terminate();
    d.restart();
    let map = ok(&d, &["run", "--rm", "busybox", "cat", "/proc/self/uid_map"]);
    assert_eq!(words(&map), format!("0 {ROOT} 65536"));
    let again = std::fs::read_to_string(subids.join("subuid")).unwrap();
    assert_eq!(again, subuid);
    let o = ok(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            "vol1:/data",
            "busybox",
            "sh",
            "-c",
            "touch /data/g && stat -c %u:%g /data/f /data/g",
        ],
    );
    assert_eq!(words(&o), "0:0 0:0");
    let md = std::fs::metadata(d.data_root.join("volumes/vol1/_data/g")).unwrap();
    assert_eq!((md.uid(), md.gid()), (ROOT, root_gid));
}
