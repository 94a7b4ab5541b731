//! Seccomp and no-new-privileges in real containers, through the docker CLI:
//! dockerd's default profile by default, `--security-opt seccomp=unconfined`
//! and `seccomp=PROFILE.json`, `--privileged`, `no-new-privileges` from the
//! option, the daemon flag and daemon.json, and the refusals.
//!
//! Syscalls busybox has no applet for are made by a tiny static C probe
//! built here with gcc and bind-mounted into the container.

mod common;

use common::cli::*;
use common::Daemon;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

const PROBE_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Prints "NAME ok" or "NAME errno=N" and exits 0 / 1. */
static int report(const char *name, long r) {
    if (r < 0) { printf("%s errno=%d\n", name, errno); return 1; }
    printf("%s ok\n", name);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *c = argv[1];
    if (!strcmp(c, "unshare-user")) return report(c, unshare(CLONE_NEWUSER));
    if (!strcmp(c, "mount")) return report(c, mount("none", "/tmp", "tmpfs", 0, NULL));
    if (!strcmp(c, "keyctl")) return report(c, syscall(SYS_keyctl, 0, -3, 0));
    if (!strcmp(c, "add_key"))
        return report(c, syscall(SYS_add_key, "user", "coracle", "x", 1, -2));
    if (!strcmp(c, "kcmp"))
        return report(c, syscall(SYS_kcmp, getpid(), getpid(), 0, 0, 0));
    if (!strcmp(c, "clone-newuser")) {
        long r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        if (r == 0) _exit(0);
        if (r > 0) waitpid(r, NULL, 0);
        return report(c, r);
    }
    if (!strcmp(c, "ptrace")) {
        pid_t child = fork();
        if (child == 0) { pause(); _exit(0); }
        long r = ptrace(PTRACE_ATTACH, child, 0, 0);
        int e = errno;
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        errno = e;
        return report(c, r);
    }
    if (!strcmp(c, "nr") && argc > 2) return report(c, syscall(atol(argv[2]), 0, 0, 0, 0));
    return 2;
}
"#;

/// The probe, built once per test run.
fn probe() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("seccomp-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("probe dir");
        let src = dir.join("probe.c");
        std::fs::write(&src, PROBE_C).expect("write probe.c");
        let out = dir.join("probe");
        let o = Command::new("gcc")
            .args(["-static", "-O1", "-o"])
            .arg(&out)
            .arg(&src)
            .output()
            .expect("run gcc");
        assert!(
            o.status.success(),
            "gcc: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        dir
    })
}

/// `docker run --rm [opts] -v PROBE busybox CMD...`: (exit code, stdout+stderr).
fn run(d: &Daemon, opts: &[&str], cmd: &[&str]) -> (i32, String) {
    let vol = format!("{}:/probe:ro", probe().display());
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(opts);
    args.extend_from_slice(&["-v", &vol, "busybox"]);
    args.extend_from_slice(cmd);
    let o = dk(d, &args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), text)
}

fn status_field(d: &Daemon, opts: &[&str], field: &str) -> String {
    let (code, out) = run(d, opts, &["grep", field, "/proc/self/status"]);
    assert_eq!(code, 0, "{out}");
    out.split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

const EPERM: &str = "errno=1\n";

#[test]
fn default_profile_confines_and_unconfined_does_not() {
    let d = Daemon::with_busybox();
    assert_eq!(status_field(&d, &[], "Seccomp:"), "2");
    assert_eq!(
        status_field(&d, &["--security-opt", "seccomp=unconfined"], "Seccomp:"),
        "0"
    );
    assert_eq!(status_field(&d, &["--privileged"], "Seccomp:"), "0");
    assert_eq!(status_field(&d, &[], "NoNewPrivs:"), "0");
    // Under --init the init finishes the setup: the filter is still there.
    assert_eq!(status_field(&d, &["--init"], "Seccomp:"), "2");
    let (code, out) = run(&d, &["--init"], &["/probe/probe", "keyctl"]);
    assert_eq!(
        (code, out.as_str()),
        (1, format!("keyctl {EPERM}").as_str())
    );

    // Refused by the profile (dockerd answers EPERM for these).
    for call in [
        "unshare-user",
        "mount",
        "keyctl",
        "add_key",
        "kcmp",
        "clone-newuser",
    ] {
        let (code, out) = run(&d, &[], &["/probe/probe", call]);
        assert_eq!(
            (code, out.as_str()),
            (1, format!("{call} {EPERM}").as_str()),
            "{call}"
        );
    }
    let (code, out) = run(&d, &[], &["busybox", "unshare", "-U", "true"]);
    assert_ne!(code, 0, "unshare -U: {out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    let (code, out) = run(
        &d,
        &[],
        &["busybox", "mount", "-t", "tmpfs", "none", "/mnt"],
    );
    assert_ne!(code, 0, "mount: {out}");

    // Without the filter the same calls get through (container root holds
    // CAP_SYS_ADMIN in the user namespace it creates; keyrings are not
    // namespaced; kcmp of oneself needs no capability).
    let unconfined = ["--security-opt", "seccomp=unconfined"];
    for call in ["unshare-user", "keyctl", "add_key", "kcmp", "clone-newuser"] {
        let (code, out) = run(&d, &unconfined, &["/probe/probe", call]);
        assert_eq!(
            (code, out.as_str()),
            (0, format!("{call} ok\n").as_str()),
            "{call}"
        );
    }
    let (code, out) = run(&d, &unconfined, &["busybox", "unshare", "-U", "true"]);
    assert_eq!(code, 0, "unshare -U unconfined: {out}");
    // mount(2) without CAP_SYS_ADMIN still fails, but on the capability.
    let (_, out) = run(&d, &unconfined, &["/probe/probe", "mount"]);
    assert_eq!(out, "mount errno=1\n");
    let (code, out) = run(&d, &["--cap-add", "SYS_ADMIN"], &["/probe/probe", "mount"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "mount ok\n"),
        "CAP_SYS_ADMIN opens mount"
    );

    // dockerd's profile allows ptrace on kernels >= 4.8: tracing one's own
    // child works as under dockerd.
    let (code, out) = run(&d, &[], &["/probe/probe", "ptrace"]);
    assert_eq!((code, out.as_str()), (0, "ptrace ok\n"));
}

#[test]
fn newer_syscalls_answer_enosys_older_ones_eperm() {
    let d = Daemon::with_busybox();
    // 999: above every number in the profile.
    let (code, out) = run(&d, &[], &["/probe/probe", "nr", "999"]);
    assert_eq!((code, out.as_str()), (1, "nr errno=38\n"));
    // kexec_load (246 on x86_64, 104 on aarch64): known and refused.
    let kexec = if cfg!(target_arch = "aarch64") {
        "104"
    } else {
        "246"
    };
    let (code, out) = run(&d, &[], &["/probe/probe", "nr", kexec]);
    assert_eq!((code, out.as_str()), (1, "nr errno=1\n"));
}

#[test]
fn exec_inherits_the_filter() {
    let d = Daemon::with_busybox();
    let vol = format!("{}:/probe:ro", probe().display());
    let id = ok(&d, &["run", "-d", "-v", &vol, "busybox", "sleep", "60"]);
    let id = id.trim();
    let o = ok(&d, &["exec", id, "grep", "Seccomp:", "/proc/self/status"]);
    assert!(o.contains('2'), "{o}");
    let o = dk(&d, &["exec", id, "/probe/probe", "keyctl"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("keyctl {EPERM}")
    );
    // A privileged exec gets every capability but keeps the container's filter.
    let o = dk(
        &d,
        &["exec", "--privileged", id, "/probe/probe", "unshare-user"],
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("unshare-user {EPERM}")
    );
    let id2 = ok(
        &d,
        &[
            "run",
            "-d",
            "--security-opt",
            "no-new-privileges",
            "busybox",
            "sleep",
            "60",
        ],
    );
    let o = ok(
        &d,
        &[
            "exec",
            id2.trim(),
            "grep",
            "NoNewPrivs:",
            "/proc/self/status",
        ],
    );
    assert!(o.contains('1'), "{o}");
    ok(&d, &["rm", "-f", id, id2.trim()]);
}

#[test]
fn custom_profile_file() {
    let d = Daemon::with_busybox();
    let dir = common::temp_dir("seccomp-profile");
    // Enough to start busybox and write, not to open a directory.
    let allow = [
        "execve",
        "exit",
        "exit_group",
        "brk",
        "arch_prctl",
        "set_tid_address",
        "mmap",
        "munmap",
        "mprotect",
        "rt_sigaction",
        "rt_sigprocmask",
        "getuid",
        "geteuid",
        "getgid",
        "getegid",
        "getpid",
        "getppid",
        "ioctl",
        "write",
        "writev",
        "read",
        "close",
        "fcntl",
        "prctl",
        "capget",
        "capset",
        "setgroups",
        "setresuid",
        "setresgid",
        "setuid",
        "setgid",
        "umask",
        "uname",
        "newfstatat",
        "fstat",
        "stat",
        "lstat",
        "statx",
        "getcwd",
        "chdir",
    ];
    let names: Vec<String> = allow.iter().map(|n| format!("{n:?}")).collect();
    let profile = format!(
        r#"{{
  "defaultAction": "SCMP_ACT_ERRNO",
  "archMap": [{{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}}],
  "syscalls": [{{"names": [{}], "action": "SCMP_ACT_ALLOW"}}]
}}"#,
        names.join(", ")
    );
    let path = dir.join("few.json");
    std::fs::write(&path, profile).expect("write profile");
    let opt = format!("seccomp={}", path.display());
    let o = dk(
        &d,
        &["run", "--rm", "--security-opt", &opt, "busybox", "ls", "/"],
    );
    assert!(!o.status.success(), "ls under a tiny profile: {}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Operation not permitted"), "{err}");
    // The same command without it lists the root.
    let o = ok(&d, &["run", "--rm", "busybox", "ls", "/"]);
    assert!(o.contains("bin"), "{o}");
    // echo needs none of what is missing.
    let o = ok(
        &d,
        &[
            "run",
            "--rm",
            "--security-opt",
            &opt,
            "busybox",
            "echo",
            "hi",
        ],
    );
    assert_eq!(o, "hi\n");
    // The profile travels in SecurityOpt and is echoed by inspect.
    let id = ok(&d, &["create", "--security-opt", &opt, "busybox", "true"]);
    let v = inspect(&d, id.trim());
    let opts = v["HostConfig"]["SecurityOpt"][0]
        .as_str()
        .unwrap_or_default();
    assert!(opts.starts_with("seccomp={"), "{opts}");
    ok(&d, &["rm", id.trim()]);
}

#[test]
fn refusals_are_clear() {
    let d = Daemon::with_busybox();
    let bad = |opt: &str| -> String {
        let o = dk(&d, &["create", "--security-opt", opt, "busybox"]);
        assert!(!o.status.success(), "{opt} accepted");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    assert!(bad("apparmor=docker-default").contains("AppArmor is not supported by coracle"));
    assert!(bad("label=type:svirt_t").contains("SELinux labels are not supported by coracle"));
    assert!(bad("no-new-privileges=maybe").contains("invalid --security-opt 2"));
    // The raw API gets dockerd's status and JSON message.
    let r = d.request(
        "POST",
        "/containers/create",
        Some(r#"{"Image": "busybox", "HostConfig": {"SecurityOpt": ["seccomp={nope"]}}"#),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let m = r.json()["message"].as_str().unwrap_or_default().to_string();
    assert!(m.starts_with("decoding seccomp profile failed: "), "{m}");
    let body = r#"{"Image": "busybox", "HostConfig": {"SecurityOpt": ["seccomp={\"defaultAction\": \"SCMP_ACT_NOTIFY\"}"]}}"#;
    let r = d.request("POST", "/containers/create", Some(body));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["message"]
        .as_str()
        .unwrap_or_default()
        .contains("SCMP_ACT_NOTIFY"));
    // Values that change nothing here are accepted.
    for opt in [
        "apparmor=unconfined",
        "label=disable",
        "seccomp=builtin",
        "no-new-privileges=false",
    ] {
        let o = dk(&d, &["create", "--security-opt", opt, "busybox"]);
        assert!(o.status.success(), "{opt}: {}", show(&o));
    }
}

#[test]
fn no_new_privileges_option_flag_and_daemon_json() {
    let d = Daemon::with_busybox();
    assert_eq!(
        status_field(&d, &["--security-opt", "no-new-privileges"], "NoNewPrivs:"),
        "1"
    );
    assert_eq!(
        status_field(
            &d,
            &["--security-opt", "no-new-privileges=true"],
            "NoNewPrivs:"
        ),
        "1"
    );
    assert_eq!(
        status_field(
            &d,
            &[
                "--security-opt",
                "no-new-privileges",
                "--security-opt",
                "seccomp=unconfined"
            ],
            "NoNewPrivs:"
        ),
        "1"
    );
    let v = d.request("GET", "/info", None).json();
    assert_eq!(
        v["SecurityOptions"],
        serde_json::json!(["name=seccomp,profile=builtin"])
    );
    drop(d);

    // daemon.json sets the default; a container may turn it off.
    let dir = common::temp_dir("nnp-config");
    let cfg = dir.join("daemon.json");
    std::fs::write(&cfg, r#"{"no-new-privileges": true}"#).expect("write daemon.json");
    let mut d = Daemon::start_with(&["--config-file", cfg.to_str().unwrap_or_default()], false);
    d.load_busybox();
    assert_eq!(status_field(&d, &[], "NoNewPrivs:"), "1");
    assert_eq!(
        status_field(
            &d,
            &["--security-opt", "no-new-privileges=false"],
            "NoNewPrivs:"
        ),
        "0"
    );
    let v = d.request("GET", "/info", None).json();
    assert_eq!(
        v["SecurityOptions"],
        serde_json::json!(["name=seccomp,profile=builtin", "name=no-new-privileges"])
    );
    drop(d);

    let mut d = Daemon::start_with(&["--no-new-privileges"], false);
    d.load_busybox();
    assert_eq!(status_field(&d, &[], "NoNewPrivs:"), "1");
}
