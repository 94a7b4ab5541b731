//! `scripts/install.sh` into temporary device root trees, and running the installed binary.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const BOARDS: &[&str] = &["generic-x86_64", "raspberrypi-arm64", "armv7-musl"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh, empty directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "coracle-install-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run install.sh with `shell` (`sh` or `busybox sh`) and the test binary.
fn install_with(shell: &[&str], rootfs: &Path, board: &str, extra: &[&str]) -> Output {
    let mut cmd = Command::new(shell[0]);
    cmd.args(&shell[1..])
        .arg(repo().join("scripts/install.sh"))
        .arg("--rootfs")
        .arg(rootfs)
        .args(["--board", board, "--binary", env!("CARGO_BIN_EXE_coracle")])
        .args(extra);
    cmd.output().expect("run scripts/install.sh")
}

fn install(rootfs: &Path, board: &str, extra: &[&str]) -> Output {
    install_with(&["sh"], rootfs, board, extra)
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The board's daemon.json parses and has every agreed key with the agreed type.
fn check_daemon_json(p: &Path) {
    let v: serde_json::Value = serde_json::from_str(&read(p))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()));
    let hosts = v["hosts"].as_array().expect("hosts is an array");
    assert!(!hosts.is_empty());
    for h in hosts {
        let h = h.as_str().expect("host is a string");
        assert!(h.starts_with("unix:///") || h.starts_with("tcp://"), "{h}");
    }
    assert!(v["data-root"].as_str().expect("data-root").starts_with('/'));
    assert!(
        ["debug", "info", "warn", "error"].contains(&v["log-level"].as_str().expect("log-level"))
    );
    assert!(v["pidfile"].as_str().expect("pidfile").starts_with('/'));
    let size = v["log-opts"]["max-size"]
        .as_str()
        .expect("log-opts.max-size");
    assert!(
        size.trim_end_matches(['k', 'm', 'g'])
            .parse::<u64>()
            .is_ok(),
        "max-size {size}"
    );
    let files: u32 = v["log-opts"]["max-file"]
        .as_str()
        .expect("log-opts.max-file is a string, as in dockerd")
        .parse()
        .expect("max-file is a number");
    assert!(files >= 1);
    assert!(v["max-connections"].as_u64().expect("max-connections") > 0);
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    for k in &keys {
        assert!(
            [
                "hosts",
                "data-root",
                "log-level",
                "pidfile",
                "log-opts",
                "max-connections"
            ]
            .contains(&k.as_str()),
            "unexpected key {k} in {}",
            p.display()
        );
    }
}

#[test]
fn installs_every_board_into_a_rootfs_tree() {
    for board in BOARDS {
        let t = TempDir::new(board);
        let o = install(&t.0, board, &[]);
        assert!(o.status.success(), "{board}: {}", text(&o));

        let bin = t.0.join("usr/bin/coracle");
        assert_eq!(mode(&bin), 0o755, "{board}");
        assert_eq!(
            std::fs::read(&bin).unwrap(),
            std::fs::read(env!("CARGO_BIN_EXE_coracle")).unwrap(),
            "{board}: installed binary differs"
        );
        let json = t.0.join("etc/coracle/daemon.json");
        assert_eq!(mode(&json), 0o644);
        check_daemon_json(&json);

        // Default --init all = systemd + sysvinit, no OpenRC.
        let svc = t.0.join("etc/systemd/system/coracle.service");
        let sock = t.0.join("etc/systemd/system/coracle.socket");
        assert_eq!(mode(&svc), 0o644);
        assert_eq!(mode(&sock), 0o644);
        let svc_text = read(&svc);
        assert!(
            svc_text.contains("ExecStart=/usr/bin/coracle --config-file /etc/coracle/daemon.json")
        );
        assert!(svc_text.contains("Delegate=yes"));
        assert!(read(&sock).contains("ListenStream=/var/run/docker.sock"));
        let initd = t.0.join("etc/init.d/coracle");
        assert_eq!(mode(&initd), 0o755);
        assert!(
            read(&initd).starts_with("#!/bin/sh\n"),
            "sysvinit script expected"
        );
        assert_eq!(mode(&t.0.join("etc/default/coracle")), 0o644);
        assert!(!t.0.join("etc/conf.d/coracle").exists());
        // Nothing enabled without --enable.
        assert!(!t
            .0
            .join("etc/systemd/system/multi-user.target.wants")
            .exists());
        assert!(!t.0.join("etc/init.d/S95coracle").exists());
    }
}

#[test]
fn every_board_profile_is_complete() {
    for board in BOARDS {
        check_daemon_json(&repo().join("board").join(board).join("daemon.json"));
        for f in [
            "README.md",
            "board.conf",
            "systemd/coracle.service",
            "systemd/coracle.socket",
            "sysvinit/coracle",
            "openrc/coracle",
        ] {
            assert!(
                repo().join("board").join(board).join(f).is_file(),
                "{board}/{f} missing"
            );
        }
    }
}

#[test]
fn openrc_init_takes_the_init_d_slot() {
    let t = TempDir::new("openrc");
    let o = install(&t.0, "armv7-musl", &["--init", "openrc", "--enable"]);
    assert!(o.status.success(), "{}", text(&o));
    let initd = t.0.join("etc/init.d/coracle");
    assert_eq!(mode(&initd), 0o755);
    assert!(read(&initd).starts_with("#!/sbin/openrc-run\n"));
    assert_eq!(mode(&t.0.join("etc/conf.d/coracle")), 0o644);
    assert!(
        !t.0.join("etc/systemd").exists(),
        "openrc alone installs no systemd units"
    );
    assert!(!t.0.join("etc/default/coracle").exists());
    assert_eq!(
        std::fs::read_link(t.0.join("etc/runlevels/default/coracle")).unwrap(),
        Path::new("/etc/init.d/coracle")
    );
}

#[test]
fn existing_daemon_json_is_kept_unless_forced() {
    let t = TempDir::new("force");
    let json = t.0.join("etc/coracle/daemon.json");
    std::fs::create_dir_all(json.parent().unwrap()).unwrap();
    std::fs::write(&json, "{\"data-root\": \"/mnt/data/coracle\"}\n").unwrap();

    let o = install(&t.0, "raspberrypi-arm64", &["--init", "none"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("kept existing /etc/coracle/daemon.json (use --force"),
        "{}",
        text(&o)
    );
    assert_eq!(read(&json), "{\"data-root\": \"/mnt/data/coracle\"}\n");
    assert!(!t.0.join("etc/systemd").exists() && !t.0.join("etc/init.d").exists());

    let o = install(&t.0, "raspberrypi-arm64", &["--init", "none", "--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        read(&json),
        read(&repo().join("board/raspberrypi-arm64/daemon.json"))
    );
}

#[test]
fn unknown_board_missing_rootfs_and_bad_init_fail_clearly() {
    let t = TempDir::new("errors");
    let o = install(&t.0, "no-such-board", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unknown board 'no-such-board'"), "{err}");
    for b in BOARDS {
        assert!(err.contains(b), "the error lists the boards: {err}");
    }
    assert!(
        std::fs::read_dir(&t.0).unwrap().next().is_none(),
        "nothing installed"
    );

    let o = install(&t.0.join("absent"), "generic-x86_64", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not exist"),
        "{}",
        text(&o)
    );

    let o = install(&t.0, "generic-x86_64", &["--init", "upstart"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unknown --init"),
        "{}",
        text(&o)
    );

    let o = install(&t.0, "../board", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn install_runs_under_busybox_sh() {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox is needed for this test: apt-get install busybox-static");
    let t = TempDir::new("busybox");
    let o = install_with(&[busybox, "sh"], &t.0, "armv7-musl", &["--enable"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(mode(&t.0.join("usr/bin/coracle")), 0o755);
    assert_eq!(
        std::fs::read_link(t.0.join("etc/init.d/S95coracle")).unwrap(),
        Path::new("coracle")
    );
    assert_eq!(
        std::fs::read_link(t.0.join("etc/systemd/system/multi-user.target.wants/coracle.service"))
            .unwrap(),
        Path::new("/etc/systemd/system/coracle.service")
    );
    // The installed sysvinit script parses under busybox sh too.
    let o = Command::new(busybox)
        .args(["sh", "-n"])
        .arg(t.0.join("etc/init.d/coracle"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn installed_binary_runs_check_config_inside_the_tree() {
    let t = TempDir::new("checkconfig");
    let o = install(&t.0, "generic-x86_64", &[]);
    assert!(o.status.success(), "{}", text(&o));
    let o = Command::new(t.0.join("usr/bin/coracle"))
        .arg("check-config")
        .current_dir(&t.0)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("namespaces: mount"), "{}", text(&o));
    assert!(out.contains("cgroups: hierarchy"), "{}", text(&o));
    // The exit code agrees with the verdict printed.
    let ok = out.contains("\nresult: ok,");
    assert_eq!(
        o.status.code(),
        Some(if ok { 0 } else { 1 }),
        "{}",
        text(&o)
    );
}

/// Start the installed daemon with its data root inside the tree and wait for `/_ping`.
fn daemon_answers_ping_inside_tree(tree: &Path, sock_dir: &Path) {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::time::{Duration, Instant};

    let sock = sock_dir.join("s.sock");
    let mut child = Command::new(tree.join("usr/bin/coracle"))
        .arg("--data-root")
        .arg(tree.join("var/lib/coracle"))
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .spawn()
        .expect("start the installed coracle");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last_err = String::new();
    let answer = loop {
        if Instant::now() > deadline {
            break None;
        }
        if let Some(st) = child.try_wait().unwrap() {
            last_err = format!("daemon exited early: {st}");
            break None;
        }
        match UnixStream::connect(&sock) {
            Ok(mut s) => {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s.write_all(b"GET /_ping HTTP/1.1\r\nHost: coracle\r\nConnection: close\r\n\r\n")
                    .unwrap();
                let mut resp = String::new();
                let _ = s.read_to_string(&mut resp);
                break Some(resp);
            }
            Err(e) => {
                last_err = e.to_string();
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let resp = answer.unwrap_or_else(|| panic!("no answer on {}: {last_err}", sock.display()));
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with("OK"), "{resp}");
    assert!(
        tree.join("var/lib/coracle").is_dir(),
        "data root created inside the tree"
    );
}

#[test]
fn installed_daemon_runs_with_data_root_inside_the_tree() {
    let t = TempDir::new("daemon");
    let o = install(&t.0, "generic-x86_64", &[]);
    assert!(o.status.success(), "{}", text(&o));
    let s = TempDir::new("daemon-sock");
    daemon_answers_ping_inside_tree(&t.0, &s.0);
}
