//! Issue 10, items 6, 12 and 15: containers that could read the daemon
//! (`--init` as a daemon fork, dumpable exec launchers), bind mounts onto
//! /proc, and isolation options that were silently ignored (`--pid`,
//! `--ipc`, `--userns`, `--security-opt`, `--device`,
//! `--device-cgroup-rule`, host devices under `--privileged`).

mod common;

use common::cli::*;
use common::Daemon;
use serde_json::{json, Value};
use std::time::Duration;

fn create(d: &Daemon, host_config: Value) -> (u16, Value) {
    let body = json!({"Image": "busybox", "Cmd": ["true"], "HostConfig": host_config});
    let r = d.request("POST", "/containers/create", Some(&body.to_string()));
    let v = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

fn refused(d: &Daemon, host_config: Value, status: u16, message: &str) {
    let (s, v) = create(d, host_config.clone());
    assert_eq!(s, status, "{host_config}: {v}");
    assert_eq!(v["message"], message, "{host_config}");
}

fn accepted(d: &Daemon, host_config: Value) {
    let (s, v) = create(d, host_config.clone());
    assert_eq!(s, 201, "{host_config}: {v}");
}

/// stdout of `docker run --rm ARGS`, which must succeed.
fn run(d: &Daemon, args: &[&str]) -> String {
    let mut all = vec!["run", "--rm"];
    all.extend_from_slice(args);
    ok(d, &all)
}

// ------------------------------------------------------------- item 6

#[test]
fn init_is_a_sealed_copy_of_coracle_not_a_fork_of_the_daemon() {
    let mut d = Daemon::with_busybox();
    d.has_containers = true;
    let probe = r#"
        echo "exe=$(readlink /proc/1/exe)"
        echo "cmdline=$(tr '\0' ' ' < /proc/1/cmdline | cut -c1-30)"
        if (exec 3>>/proc/1/exe) 2>/dev/null; then echo exe-writable; fi
        if grep -q -- "--data-root" /proc/1/environ; then echo daemon-env; fi
        echo "pid=$$"
        grep SigIgn /proc/self/status
    "#;
    let out = run(&d, &["--init", "busybox", "sh", "-c", probe]);
    let daemon_exe = std::fs::read_link(format!("/proc/{}/exe", d.pid())).unwrap();
    assert!(out.contains("exe=/memfd:"), "{out}");
    assert!(
        !out.contains(daemon_exe.to_str().unwrap()),
        "the host binary is reachable: {out}"
    );
    assert!(!out.contains("exe-writable"), "{out}");
    assert!(!out.contains("daemon-env"), "{out}");
    // Before: the daemon's own argv (--config-file ... --data-root ...).
    assert!(out.contains("cmdline=init --coracle-init "), "{out}");
    assert!(out.contains("pid=2"), "{out}");
    // The program does not inherit the init's ignored SIGPIPE (bit 13).
    let ign = out
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(ign & (1 << 12), 0, "{out}");
    // The host file is untouched and still the daemon's executable.
    assert!(std::fs::metadata(&daemon_exe).unwrap().len() > 0);

    // Exit status, a missing program, signal forwarding, user and workdir.
    let o = dk(
        &d,
        &["run", "--rm", "--init", "busybox", "sh", "-c", "exit 7"],
    );
    assert_eq!(o.status.code(), Some(7), "{}", show(&o));
    let o = dk(&d, &["run", "--rm", "--init", "busybox", "nonexistent"]);
    assert_eq!(o.status.code(), Some(127), "{}", show(&o));
    assert!(
        show(&o).contains("executable file not found in $PATH"),
        "{}",
        show(&o)
    );
    let out = run(
        &d,
        &[
            "--init",
            "-u",
            "nobody",
            "-w",
            "/tmp/w",
            "busybox",
            "sh",
            "-c",
            "id -u; pwd",
        ],
    );
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["65534", "/tmp/w"]
    );
    ok(
        &d,
        &[
            "run", "-d", "--name", "i", "--init", "busybox", "sleep", "100",
        ],
    );
    ok(&d, &["stop", "-t", "5", "i"]);
    assert_eq!(state(&d, "i")["ExitCode"], 143);
}

#[test]
fn exec_launchers_are_never_readable_from_the_container() {
    let mut d = Daemon::with_busybox();
    d.has_containers = true;
    // Inside: look at every process of the container as fast as it can; a
    // process whose exe resolves to coracle, or whose mem or exe opens
    // while its exe cannot be read, is a daemon copy left readable.
    let probe = r#"
        while [ ! -e /tmp/stop ]; do
          for p in /proc/[0-9]*; do
            [ "$p" = /proc/$$ ] && continue
            e=$(readlink $p/exe 2>/dev/null)
            case "$e" in
              *coracle*|/memfd:*) echo "LEAK exe $p $e";;
              "")
                # A zombie's mem opens with no mm behind it, and a launcher
                # may exec its (dumpable) program between the two looks:
                # only a live process whose exe is still hidden leaks.
                if (exec 3<$p/mem) 2>/dev/null; then
                  e2=$(readlink $p/exe 2>/dev/null)
                  st=$(grep State: $p/status 2>/dev/null)
                  case "$st" in
                    ""|*zombie*|*dead*) ;;
                    *) [ -z "$e2" ] && echo "LEAK mem $p $st";;
                  esac
                fi
                if (exec 4>>$p/exe) 2>/dev/null; then echo "LEAK write $p"; fi;;
            esac
          done
        done
        echo probe-done
    "#;
    let id = ok(&d, &["run", "-d", "busybox", "sh", "-c", probe]);
    let id = id.trim();
    std::thread::sleep(Duration::from_millis(300));
    // Each round is create + start of a detached exec through the API.
    let rounds = 1000;
    for i in 0..rounds {
        let r = d.request(
            "POST",
            &format!("/containers/{id}/exec"),
            Some(r#"{"Cmd": ["true"], "User": "nobody", "WorkingDir": "/tmp"}"#),
        );
        assert_eq!(r.status, 201, "round {i}: {}", r.body);
        let exec_id = r.json()["Id"].as_str().unwrap().to_string();
        let r = d.request(
            "POST",
            &format!("/exec/{exec_id}/start"),
            Some(r#"{"Detach": true}"#),
        );
        assert!(r.status == 200 || r.status == 204, "round {i}: {}", r.body);
    }
    ok(&d, &["exec", id, "touch", "/tmp/stop"]);
    wait_exited(&d, id, 20);
    let logs = ok(&d, &["logs", id]);
    assert!(logs.contains("probe-done"), "{logs}");
    assert!(!logs.contains("LEAK"), "{logs}");
}

// ------------------------------------------------------------- item 12

#[test]
fn mounts_onto_proc_are_refused_at_create_like_runc() {
    let d = Daemon::with_busybox();
    refused(
        &d,
        json!({"Binds": ["/tmp:/proc/sys"]}),
        400,
        "\"/proc/sys\" cannot be mounted because it is inside /proc",
    );
    refused(
        &d,
        json!({"Binds": ["/tmp:/proc"]}),
        400,
        "\"/tmp\" cannot be mounted because it is not of type proc",
    );
    refused(
        &d,
        json!({"Binds": ["/tmp:/etc/../proc/sys/kernel/"]}),
        400,
        "\"/proc/sys/kernel\" cannot be mounted because it is inside /proc",
    );
    refused(
        &d,
        json!({"Mounts": [{"Type": "bind", "Source": "/tmp", "Target": "/proc/sysrq-trigger"}]}),
        400,
        "\"/proc/sysrq-trigger\" cannot be mounted because it is inside /proc",
    );
    refused(
        &d,
        json!({"Tmpfs": {"/proc/acpi": ""}}),
        400,
        "\"/proc/acpi\" cannot be mounted because it is inside /proc",
    );
    // runc's lxcfs exceptions, and names that only start with "proc".
    accepted(&d, json!({"Binds": ["/proc/uptime:/proc/uptime:ro"]}));
    accepted(&d, json!({"Binds": ["/tmp:/procfs"]}));
    let o = dk(
        &d,
        &["run", "--rm", "-v", "/tmp:/proc/sys", "busybox", "true"],
    );
    assert!(
        show(&o).contains("\"/proc/sys\" cannot be mounted because it is inside /proc"),
        "{}",
        show(&o)
    );
    let out = run(
        &d,
        &[
            "-v",
            "/proc/uptime:/proc/uptime:ro",
            "busybox",
            "cat",
            "/proc/uptime",
        ],
    );
    assert!(!out.trim().is_empty());
}

// ------------------------------------------------------------- item 15

#[test]
fn security_opt_and_userns_refusals() {
    let d = Daemon::with_busybox();
    // Seccomp and no-new-privileges are implemented (tests/seccomp.rs);
    // AppArmor profiles and SELinux labels are refused, a bad profile too.
    for (opt, want) in [
        ("seccomp={}", "decoding seccomp profile failed"),
        (
            "apparmor=docker-default",
            "AppArmor is not supported by coracle",
        ),
        (
            "label=type:svirt_t",
            "SELinux labels are not supported by coracle",
        ),
    ] {
        let (s, v) = create(&d, json!({"SecurityOpt": [opt]}));
        assert_eq!(s, 400, "{opt}: {v}");
        let m = v["message"].as_str().unwrap();
        assert!(m.contains(want), "{opt}: {m}");
    }
    refused(
        &d,
        json!({"SecurityOpt": ["bogus=1"]}),
        400,
        "invalid --security-opt 2: \"bogus=1\"",
    );
    refused(
        &d,
        json!({"SecurityOpt": ["bogus"]}),
        400,
        "invalid --security-opt 1: \"bogus\"",
    );
    for opt in [
        "seccomp=unconfined",
        "apparmor=unconfined",
        "label=disable",
        "label:disable",
        "no-new-privileges=false",
        "no-new-privileges",
        "no-new-privileges=true",
    ] {
        accepted(&d, json!({"SecurityOpt": [opt]}));
    }
    accepted(&d, json!({"UsernsMode": "host"}));
    let (s, v) = create(&d, json!({"UsernsMode": "private"}));
    assert_eq!(s, 400, "{v}");
    for hc in [
        json!({"UTSMode": "host"}),
        // "private" is served (tests/stats_health.rs); unknown modes are not.
        json!({"CgroupnsMode": "bogus"}),
        json!({"IpcMode": "none"}),
        json!({"IpcMode": "bogus"}),
        json!({"PidMode": "bogus"}),
        json!({"DeviceRequests": [{"Driver": "nvidia", "Count": -1}]}),
        json!({"MaskedPaths": []}),
    ] {
        let (s, v) = create(&d, hc.clone());
        assert_eq!(s, 400, "{hc}: {v}");
    }
    refused(
        &d,
        json!({"PidMode": "container:nope"}),
        404,
        "No such container: nope",
    );
    refused(
        &d,
        json!({"IpcMode": "container:nope"}),
        404,
        "No such container: nope",
    );
}

#[test]
fn pid_and_ipc_host_and_container_modes() {
    let mut d = Daemon::with_busybox();
    d.has_containers = true;
    let host_pid_ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let host_ipc_ns = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    let out = run(
        &d,
        &[
            "--pid",
            "host",
            "--ipc",
            "host",
            "busybox",
            "sh",
            "-c",
            "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc; echo $$",
        ],
    );
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], host_pid_ns.to_str().unwrap(), "{out}");
    assert_eq!(l[1], host_ipc_ns.to_str().unwrap(), "{out}");
    assert_ne!(l[2], "1", "{out}");
    // Default: new namespaces.
    let out = run(
        &d,
        &[
            "busybox",
            "sh",
            "-c",
            "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc",
        ],
    );
    assert!(!out.contains(host_pid_ns.to_str().unwrap()), "{out}");
    assert!(!out.contains(host_ipc_ns.to_str().unwrap()), "{out}");

    // container:<id> joins the other's PID and IPC namespaces and /dev/shm.
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "a",
            "busybox",
            "sh",
            "-c",
            "echo shared > /dev/shm/x; sleep 100",
        ],
    );
    wait_for("/dev/shm/x in a", 10, || {
        dk(&d, &["exec", "a", "test", "-e", "/dev/shm/x"])
            .status
            .success()
    });
    let a_ns = ok(
        &d,
        &[
            "exec",
            "a",
            "sh",
            "-c",
            "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc",
        ],
    );
    let out = run(
        &d,
        &["--pid", "container:a", "--ipc", "container:a", "busybox", "sh", "-c",
          "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc; cat /dev/shm/x; ps -o comm | grep -c sleep"],
    );
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[..2].join("\n"), a_ns.trim(), "{out}");
    assert_eq!(l[2], "shared", "{out}");
    assert_eq!(l[3], "1", "{out}");
    ok(&d, &["kill", "a"]);
    wait_exited(&d, "a", 10);
    let o = dk(
        &d,
        &["run", "--rm", "--pid", "container:a", "busybox", "true"],
    );
    assert!(
        show(&o).contains("cannot join PID of a non running container"),
        "{}",
        show(&o)
    );
}

/// `stat -c '%t:%T %F'` of a node inside a container made by ARGS.
fn node_in(d: &Daemon, args: &[&str], path: &str) -> String {
    let mut all: Vec<&str> = args.to_vec();
    let cmd = format!("stat -c '%t:%T %F' {path}");
    all.extend_from_slice(&["busybox", "sh", "-c", &cmd]);
    run(d, &all).trim().to_string()
}

/// Whether opening `path` for reading inside the container is allowed by
/// the device cgroup (EPERM is the cgroup's "no").
fn opens(d: &Daemon, args: &[&str], setup: &str, path: &str) -> bool {
    let mut all: Vec<&str> = args.to_vec();
    let cmd = format!(
        "{setup} (exec 3<{path}) 2>&1 | grep -q 'not permitted' && echo denied || echo allowed"
    );
    all.extend_from_slice(&["busybox", "sh", "-c", &cmd]);
    let out = run(d, &all);
    match out.trim() {
        "allowed" => true,
        "denied" => false,
        other => panic!("{other}"),
    }
}

#[test]
fn devices_from_the_host_and_the_device_cgroup() {
    let mut d = Daemon::with_busybox();
    d.has_containers = true;
    // /dev/null under another name: same type and numbers, usable.
    assert_eq!(
        node_in(&d, &["--device", "/dev/null:/dev/mynull"], "/dev/mynull"),
        "1:3 character special file"
    );
    let out = run(
        &d,
        &[
            "--device",
            "/dev/null:/dev/mynull",
            "busybox",
            "sh",
            "-c",
            "echo x > /dev/mynull && echo ok",
        ],
    );
    assert_eq!(out.trim(), "ok");
    // A block device (loop) and a serial port when the host has them.
    let loop_dev = ["/dev/loop0", "/dev/loop-control"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    if let Some(p) = loop_dev {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let md = std::fs::metadata(p).unwrap();
        let kind = if md.file_type().is_block_device() {
            "block special file"
        } else {
            "character special file"
        };
        let want = format!(
            "{:x}:{:x} {kind}",
            libc_major(md.rdev()),
            libc_minor(md.rdev())
        );
        let map = format!("{p}:/dev/mydev");
        assert_eq!(node_in(&d, &["--device", &map], "/dev/mydev"), want);
        assert!(opens(&d, &["--device", &map], "", "/dev/mydev"));
        // Made by hand without --device: the cgroup says no.
        let mk = format!(
            "mknod /dev/mydev {} {} {};",
            if kind.starts_with("block") { "b" } else { "c" },
            libc_major(md.rdev()),
            libc_minor(md.rdev())
        );
        assert!(!opens(&d, &[], &mk, "/dev/mydev"));
        // ... unless a --device-cgroup-rule allows it.
        let rule = format!(
            "{} {}:* r",
            if kind.starts_with("block") { "b" } else { "c" },
            libc_major(md.rdev())
        );
        assert!(opens(
            &d,
            &["--device-cgroup-rule", &rule],
            &mk,
            "/dev/mydev"
        ));
        // Privileged: the host's node is there, usable.
        assert_eq!(node_in(&d, &["--privileged"], p), want);
        assert!(opens(&d, &["--privileged"], "", p));
    }
    if std::path::Path::new("/dev/ttyS0").exists() {
        assert_eq!(
            node_in(&d, &["--device", "/dev/ttyS0"], "/dev/ttyS0"),
            "4:40 character special file"
        );
        assert_eq!(
            node_in(&d, &["--privileged"], "/dev/ttyS0"),
            "4:40 character special file"
        );
    }
    // Without --privileged the host's nodes are absent.
    let out = run(&d, &["busybox", "sh", "-c", "ls /dev | wc -l"]);
    let plain: usize = out.trim().parse().unwrap();
    let out = run(
        &d,
        &["--privileged", "busybox", "sh", "-c", "ls /dev | wc -l"],
    );
    let privileged: usize = out.trim().parse().unwrap();
    assert!(privileged > plain, "{plain} vs {privileged}");

    // Bad input, refused at create with dockerd's words.
    refused(
        &d,
        json!({"Devices": [{"PathOnHost": "/dev/nope", "PathInContainer": "/dev/nope", "CgroupPermissions": "rwm"}]}),
        400,
        "error gathering device information while adding custom device \"/dev/nope\": no such file or directory",
    );
    refused(
        &d,
        json!({"Devices": [{"PathOnHost": "/etc/hostname", "PathInContainer": "/dev/x", "CgroupPermissions": "rwm"}]}),
        400,
        "error gathering device information while adding custom device \"/etc/hostname\": not a device node",
    );
    refused(
        &d,
        json!({"DeviceCgroupRules": ["c 1:3 rwx"]}),
        400,
        "invalid device cgroup rule format: 'c 1:3 rwx'",
    );
}

fn libc_major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)
}

fn libc_minor(dev: u64) -> u64 {
    ((dev >> 12) & 0xffff_ff00) | (dev & 0xff)
}
