//! Launcher tests against real namespaces and mounts (root required): a
//! busybox rootfs in a temp dir, launched, waited for, output inspected.

use super::errors::LaunchError;
use super::exec::{exec_in, ExecSpec};
use super::launch::launch;
use super::rootfs::copy_layers;
use super::spec::*;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicUsize = AtomicUsize::new(0);

const APPLETS: &[&str] = &[
    "sh", "cat", "ls", "id", "hostname", "grep", "mount", "sleep", "echo", "true", "false", "ps",
    "stat", "touch", "wc", "pwd", "rm", "env", "head", "kill", "mkdir",
];

struct Fixture {
    dir: PathBuf,
    out: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        assert!(nix::unistd::geteuid().is_root(), "launcher tests need root");
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("coracle-rt-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let lower = dir.join("lower");
        fs::create_dir_all(lower.join("bin")).unwrap();
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::create_dir_all(lower.join("tmp")).unwrap();
        fs::copy("/bin/busybox", lower.join("bin/busybox"))
            .expect("/bin/busybox (busybox-static) must be installed");
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", lower.join("bin").join(a)).unwrap();
        }
        fs::write(
            lower.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        .unwrap();
        fs::write(
            lower.join("etc/group"),
            "root:x:0:\nnogroup:x:65534:\nstaff:x:50:nobody\n",
        )
        .unwrap();
        for d in ["upper", "work", "merged"] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        fs::write(dir.join("hostname"), "box\n").unwrap();
        fs::write(dir.join("hosts"), "127.0.0.1 localhost box\n").unwrap();
        fs::write(dir.join("resolv.conf"), "nameserver 9.9.9.9\n").unwrap();
        let out = dir.join("out");
        Fixture { dir, out }
    }

    fn lower(&self) -> PathBuf {
        self.dir.join("lower")
    }

    fn spec(&self, args: &[&str]) -> LaunchSpec {
        LaunchSpec {
            rootfs: RootfsSpec {
                lower_dirs: vec![self.lower()],
                upper_dir: self.dir.join("upper"),
                work_dir: self.dir.join("work"),
                merged_dir: self.dir.join("merged"),
                readonly: false,
            },
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            cwd: String::new(),
            user: String::new(),
            group_add: vec![],
            hostname: "box".into(),
            domainname: String::new(),
            network: NetworkMode::None,
            etc_hostname: self.dir.join("hostname"),
            etc_hosts: self.dir.join("hosts"),
            etc_resolv_conf: self.dir.join("resolv.conf"),
            mounts: vec![],
            shm_size: 64 << 20,
            privileged: false,
            pid_ns: NsMode::Private,
            ipc_ns: NsMode::Private,
            devices: vec![],
            cap_add: vec![],
            cap_drop: vec![],
            ulimits: vec![],
            sysctls: BTreeMap::new(),
            init: false,
            cgroupns: false,
            cgroup_view: vec![],
            seccomp: crate::runtime::seccomp::Seccomp::Unconfined,
            no_new_privs: false,
            userns: None,
            stdio: StdioSpec {
                stdin: None,
                stdout: -1,
                stderr: -1,
                tty: false,
            },
        }
    }

    /// Launch with stdout+stderr into the fixture's out file.
    fn start(&self, spec: &mut LaunchSpec) -> Result<Pid, LaunchError> {
        let f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.out)
            .unwrap();
        spec.stdio.stdout = f.as_raw_fd();
        spec.stdio.stderr = f.as_raw_fd();
        launch(spec, &mut |_| Ok(()))
    }

    fn run(&self, mut spec: LaunchSpec) -> (i32, String) {
        let pid = match self.start(&mut spec) {
            Ok(p) => p,
            Err(e) => panic!("launch failed: {e}"),
        };
        let code = wait_exit(pid);
        (code, self.output())
    }

    fn output(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn wait_exit(pid: Pid) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, c)) => return c,
            Ok(WaitStatus::Signaled(_, s, _)) => return 128 + s as i32,
            Ok(_) => {
                if Instant::now() > deadline {
                    let _ = kill(pid, Signal::SIGKILL);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => panic!("waitpid {pid}: {e}"),
        }
    }
}

fn cap_line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(name))
        .map(|l| l[name.len()..].trim())
        .unwrap_or("")
}

#[test]
fn pid1_hostname_env_cwd_and_etc_files() {
    let f = Fixture::new("basic");
    let mut spec = f.spec(&["sh", "-c", "echo pid=$$; hostname; echo foo=$FOO; pwd; echo home=$HOME; cat /etc/resolv.conf; stat -c %a /work/dir"]);
    spec.env.push("FOO=bar baz".into());
    spec.cwd = "/work/dir".into();
    let (code, out) = f.run(spec);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "pid=1",
            "box",
            "foo=bar baz",
            "/work/dir",
            "home=/root",
            "nameserver 9.9.9.9",
            "755"
        ],
        "{out}"
    );
}

#[test]
fn exit_code_propagates() {
    let f = Fixture::new("exit");
    assert_eq!(f.run(f.spec(&["sh", "-c", "exit 3"])).0, 3);
}

#[test]
fn root_gets_dockerd_default_caps() {
    let f = Fixture::new("caps");
    let (code, out) = f.run(f.spec(&["grep", "Cap", "/proc/self/status"]));
    assert_eq!(code, 0, "{out}");
    assert_eq!(cap_line(&out, "CapBnd:"), "00000000a80425fb", "{out}");
    assert_eq!(cap_line(&out, "CapEff:"), "00000000a80425fb", "{out}");
    assert_eq!(cap_line(&out, "CapPrm:"), "00000000a80425fb", "{out}");
    assert_eq!(cap_line(&out, "CapInh:"), "0000000000000000", "{out}");
    assert_eq!(cap_line(&out, "CapAmb:"), "0000000000000000", "{out}");
}

#[test]
fn cap_add_and_drop() {
    let f = Fixture::new("capadd");
    let mut spec = f.spec(&["grep", "CapEff", "/proc/self/status"]);
    spec.cap_add = vec!["NET_ADMIN".into()];
    spec.cap_drop = vec!["CAP_CHOWN".into(), "kill".into()];
    let (_, out) = f.run(spec);
    assert_eq!(
        cap_line(&out, "CapEff:"),
        format!("{:016x}", (0xa80425fbu64 | 1 << 12) & !1 & !(1 << 5)),
        "{out}"
    );
}

#[test]
fn nobody_has_no_effective_caps() {
    let f = Fixture::new("nobody");
    let mut spec = f.spec(&["sh", "-c", "id; grep Cap /proc/self/status"]);
    spec.user = "nobody".into();
    spec.group_add = vec!["root".into()];
    let (code, out) = f.run(spec);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("uid=65534(nobody) gid=65534(nogroup) groups=0(root),50(staff)"),
        "{out}"
    );
    assert_eq!(cap_line(&out, "CapBnd:"), "00000000a80425fb", "{out}");
    for c in ["CapEff:", "CapPrm:", "CapInh:", "CapAmb:"] {
        assert_eq!(cap_line(&out, c), "0000000000000000", "{c} {out}");
    }
}

#[test]
fn unknown_user_fails_with_dockerd_text() {
    let f = Fixture::new("nouser");
    let mut spec = f.spec(&["true"]);
    spec.user = "bob".into();
    let e = f.start(&mut spec).unwrap_err();
    assert_eq!(
        e,
        LaunchError::Setup("unable to find user bob: no matching entries in passwd file".into())
    );
    assert_eq!(e.exit_code(), 128);
}

#[test]
fn host_processes_and_mounts_are_invisible() {
    let f = Fixture::new("iso");
    let (code, out) = f.run(f.spec(&["sh", "-c", "ps; echo ---; cat /proc/self/mountinfo"]));
    assert_eq!(code, 0, "{out}");
    let (ps, mi) = out.split_once("---\n").unwrap();
    let procs: Vec<&str> = ps.lines().skip(1).collect();
    assert_eq!(procs.len(), 2, "only sh and ps: {ps}");
    assert!(procs[0].trim_start().starts_with("1 "), "{ps}");
    let points: Vec<&str> = mi.lines().filter_map(|l| l.split(' ').nth(4)).collect();
    assert!(
        points.contains(&"/") && points.contains(&"/dev/pts") && points.contains(&"/dev/mqueue"),
        "{mi}"
    );
    for p in &points {
        assert!(
            !p.starts_with("/tmp") && !p.starts_with("/work") && !p.starts_with("/mnt"),
            "host mount {p} leaked in: {mi}"
        );
    }
    // Nothing leaked out either.
    let host = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host.contains(f.dir.to_str().unwrap()), "{host}");
}

#[test]
fn overlay_writes_land_in_upper() {
    let f = Fixture::new("overlay");
    let (code, out) = f.run(f.spec(&[
        "sh",
        "-c",
        "echo hi > /newfile && rm /bin/true && ls /dev && ls -l /dev/ptmx",
    ]));
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        fs::read_to_string(f.dir.join("upper/newfile")).unwrap(),
        "hi\n"
    );
    assert!(!f.lower().join("newfile").exists());
    assert!(fs::symlink_metadata(f.dir.join("upper/bin/true"))
        .unwrap()
        .file_type()
        .is_char_device());
    assert!(fs::symlink_metadata(f.lower().join("bin/true")).is_ok());
    for d in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "fd", "stdin",
        "core",
    ] {
        assert!(out.lines().any(|l| l == d), "/dev/{d} missing: {out}");
    }
    assert!(out.contains("ptmx -> pts/ptmx"), "{out}");
}

#[test]
fn binds_and_tmpfs() {
    let f = Fixture::new("binds");
    let ro = f.dir.join("host-ro");
    let rw = f.dir.join("host-rw");
    fs::create_dir_all(&ro).unwrap();
    fs::create_dir_all(&rw).unwrap();
    fs::write(ro.join("f"), "hello from host\n").unwrap();
    fs::write(f.dir.join("single"), "one file\n").unwrap();
    let mut spec = f.spec(&[
        "sh",
        "-c",
        "cat /data/f; touch /data/x 2>/dev/null && echo ro-broken || echo ro-ok; echo w > /rw/f2; \
         echo t > /scratch/t && cat /scratch/t; grep ' /scratch ' /proc/mounts; cat /deep/dir/single",
    ]);
    let m = |kind, source: &Path, target: &str, readonly, options: &str| MountSpec {
        kind,
        source: source.to_path_buf(),
        target: PathBuf::from(target),
        readonly,
        options: options.into(),
    };
    spec.mounts = vec![
        m(MountKind::Bind, &ro, "/data", true, ""),
        m(MountKind::Bind, &rw, "/rw", false, ""),
        m(
            MountKind::Tmpfs,
            Path::new(""),
            "/scratch",
            false,
            "size=1m,mode=1777",
        ),
        m(
            MountKind::Bind,
            &f.dir.join("single"),
            "/deep/dir/single",
            true,
            "",
        ),
    ];
    let (code, out) = f.run(spec);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..3], ["hello from host", "ro-ok", "t"], "{out}");
    assert!(
        lines[3].starts_with("tmpfs /scratch tmpfs rw,nosuid,nodev,noexec"),
        "{out}"
    );
    assert!(lines[3].contains("size=1024k"), "{out}");
    assert_eq!(lines[4], "one file", "{out}");
    assert_eq!(fs::read_to_string(rw.join("f2")).unwrap(), "w\n");
    assert!(!ro.join("x").exists());
}

#[test]
fn missing_bind_source_is_a_setup_error() {
    let f = Fixture::new("nobind");
    let mut spec = f.spec(&["true"]);
    spec.mounts = vec![MountSpec {
        kind: MountKind::Bind,
        source: PathBuf::from("/nonexistent/coracle"),
        target: PathBuf::from("/x"),
        readonly: false,
        options: String::new(),
    }];
    let e = f.start(&mut spec).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid mount config for type \"bind\": bind source path does not exist: /nonexistent/coracle"
    );
}

#[test]
fn a_mount_reaching_proc_through_a_symlink_is_refused() {
    // Create-time checks see "/p/sys"; only the launcher sees the image's
    // /p -> /proc symlink (runc's checkProcMount runs after securejoin too).
    let f = Fixture::new("procbind");
    std::os::unix::fs::symlink("/proc", f.lower().join("p")).unwrap();
    let mut spec = f.spec(&["true"]);
    spec.mounts = vec![MountSpec {
        kind: MountKind::Tmpfs,
        source: PathBuf::from("tmpfs"),
        target: PathBuf::from("/p/sys"),
        readonly: false,
        options: String::new(),
    }];
    let e = f.start(&mut spec).unwrap_err();
    assert_eq!(
        e.to_string(),
        "\"/proc/sys\" cannot be mounted because it is inside /proc"
    );
}

#[test]
fn readonly_rootfs() {
    let f = Fixture::new("rorootfs");
    let mut spec = f.spec(&[
        "sh",
        "-c",
        "touch /x 2>/dev/null && echo root-rw || echo root-ro; touch /dev/shm/x && echo shm-rw; echo h > /etc/hostname && echo etc-rw",
    ]);
    spec.rootfs.readonly = true;
    let (code, out) = f.run(spec);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "root-ro\nshm-rw\netc-rw\n");
}

#[test]
fn not_found_and_not_executable() {
    let f = Fixture::new("notfound");
    fs::write(f.lower().join("bin/noexec"), "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(
        f.lower().join("bin/noexec"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    fs::write(f.lower().join("bin/garbage"), "\x7fELF nonsense").unwrap();
    fs::set_permissions(
        f.lower().join("bin/garbage"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let cases: &[(&str, LaunchError)] = &[
        (
            "nope",
            LaunchError::NotFound("exec: \"nope\": executable file not found in $PATH".into()),
        ),
        (
            "/nope",
            LaunchError::NotFound("exec: \"/nope\": stat /nope: no such file or directory".into()),
        ),
        (
            "noexec",
            LaunchError::NotFound("exec: \"noexec\": executable file not found in $PATH".into()),
        ),
        (
            "/bin/noexec",
            LaunchError::NotExecutable("exec: \"/bin/noexec\": permission denied".into()),
        ),
        (
            "/bin",
            LaunchError::NotExecutable("exec: \"/bin\": permission denied".into()),
        ),
        (
            "garbage",
            LaunchError::NotExecutable("exec /bin/garbage: exec format error".into()),
        ),
    ];
    for (prog, want) in cases {
        let e = f.start(&mut f.spec(&[prog])).unwrap_err();
        assert_eq!(&e, want);
    }
    assert_eq!(LaunchError::NotFound(String::new()).exit_code(), 127);
}

#[test]
fn masked_and_readonly_paths() {
    let f = Fixture::new("masked");
    let (code, out) = f.run(f.spec(&[
        "sh",
        "-c",
        "wc -c < /proc/timer_list; ls /sys/firmware /proc/acpi | wc -l; (echo 1 > /proc/sys/kernel/domainname) 2>/dev/null && echo sys-rw || echo sys-ro; \
         touch /sys/x 2>/dev/null && echo sysfs-rw || echo sysfs-ro; grep ' /proc/sys ' /proc/self/mountinfo | grep -c ro,",
    ]));
    assert_eq!(code, 0, "{out}");
    // This kernel has no /proc/kcore: /proc/timer_list and /proc/acpi stand in.
    assert_eq!(out, "0\n3\nsys-ro\nsysfs-ro\n1\n");
}

#[test]
fn privileged_has_all_caps_and_no_masks() {
    let f = Fixture::new("priv");
    let mut spec = f.spec(&[
        "sh",
        "-c",
        "grep CapEff /proc/self/status; grep -c ' /proc/timer_list ' /proc/self/mountinfo",
    ]);
    spec.privileged = true;
    let (_, out) = f.run(spec);
    let (_, host_prm, _) = super::caps::get().unwrap();
    assert_eq!(
        cap_line(&out, "CapEff:"),
        format!("{:016x}", host_prm),
        "{out}"
    );
    assert!(out.ends_with("0\n"), "{out}");
}

#[test]
fn network_none_has_only_lo_up() {
    let f = Fixture::new("net");
    let (code, out) =
        f.run(f.spec(&["sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/flags"]));
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "lo", "{out}");
    let flags = u32::from_str_radix(lines[1].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "lo not up: {out}");
}

#[test]
fn init_reaps_forwards_and_propagates() {
    let f = Fixture::new("init");
    let mut spec = f.spec(&[
        "sh",
        "-c",
        "echo pid=$$; (sleep 0.1 &); sleep 0.5; cat /proc/[0-9]*/stat | grep -c ' Z ' ; exit 7",
    ]);
    spec.init = true;
    let (code, out) = f.run(spec);
    assert_eq!(code, 7, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["pid=2", "0"], "{out}");

    // SIGTERM to the init is forwarded; the program dies of it: 128+15.
    let mut spec = f.spec(&["sleep", "100"]);
    spec.init = true;
    let pid = f.start(&mut spec).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    kill(pid, Signal::SIGTERM).unwrap();
    assert_eq!(wait_exit(pid), 143);
}

#[test]
fn pid1_without_init_ignores_sigterm_default() {
    // Kernel rule for a PID-namespace init with SIG_DFL: SIGTERM is dropped,
    // SIGKILL works (what `docker stop` relies on after its timeout).
    let f = Fixture::new("pid1");
    let pid = f.start(&mut f.spec(&["sleep", "100"])).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    kill(pid, Signal::SIGTERM).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        waitpid(pid, Some(WaitPidFlag::WNOHANG)).unwrap(),
        WaitStatus::StillAlive
    );
    kill(pid, Signal::SIGKILL).unwrap();
    assert_eq!(wait_exit(pid), 137);
}

#[test]
fn ulimits_and_sysctls() {
    let f = Fixture::new("limits");
    let mut spec = f.spec(&[
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn; cat /proc/sys/kernel/shmmni",
    ]);
    spec.ulimits = vec![Ulimit {
        name: "nofile".into(),
        soft: 100,
        hard: 200,
    }];
    spec.sysctls.insert("kernel.shmmni".into(), "1234".into());
    let (code, out) = f.run(spec);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "100\n200\n1234\n");
}

#[test]
fn join_runs_before_the_child_continues_and_can_fail() {
    let f = Fixture::new("join");
    let mut spec = f.spec(&["true"]);
    let fl = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&f.out)
        .unwrap();
    spec.stdio.stdout = fl.as_raw_fd();
    spec.stdio.stderr = fl.as_raw_fd();
    let mut seen = None;
    let e = launch(&spec, &mut |pid| {
        seen = Some(pid);
        Err(std::io::Error::other("cgroup full"))
    })
    .unwrap_err();
    assert_eq!(e, LaunchError::Setup("join: cgroup full".into()));
    let pid = seen.unwrap();
    assert!(
        kill(pid, None).is_err(),
        "child {pid} was not killed and reaped"
    );
}

#[test]
fn exec_in_joins_the_container() {
    let f = Fixture::new("exec");
    let mut spec = f.spec(&["sleep", "100"]);
    spec.hostname = "inside".into();
    let pid = f.start(&mut spec).unwrap();
    let out2 = f.dir.join("out2");
    let fl = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out2)
        .unwrap();
    let ex = ExecSpec {
        args: vec![
            "sh".into(),
            "-c".into(),
            "echo pid=$$; hostname; ps | wc -l; id -u; pwd; ls /sys/class/net".into(),
        ],
        env: vec!["PATH=/bin".into()],
        cwd: "/tmp".into(),
        user: "nobody".into(),
        group_add: vec![],
        privileged: false,
        cap_add: vec![],
        cap_drop: vec![],
        ulimits: vec![],
        seccomp: crate::runtime::seccomp::Seccomp::Unconfined,
        no_new_privs: false,
        stdio: StdioSpec {
            stdin: None,
            stdout: fl.as_raw_fd(),
            stderr: fl.as_raw_fd(),
            tty: false,
        },
        cgroup_dirs: vec![],
    };
    let epid = exec_in(pid, &ex).unwrap();
    let code = wait_exit(epid);
    let out = fs::read_to_string(&out2).unwrap();
    let nf = exec_in(
        pid,
        &ExecSpec {
            args: vec!["nope".into()],
            ..ex.clone()
        },
    )
    .unwrap_err();
    kill(pid, Signal::SIGKILL).unwrap();
    wait_exit(pid);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    // header, sleep (1), sh, ps, wc.
    assert_eq!(
        lines,
        ["pid=2", "inside", "5", "65534", "/tmp", "lo"],
        "{out}"
    );
    assert_eq!(
        nf,
        LaunchError::NotFound("exec: \"nope\": executable file not found in $PATH".into())
    );
}

#[test]
fn copy_fallback_flattens_layers_with_whiteouts() {
    let f = Fixture::new("copy");
    let top = f.dir.join("top");
    fs::create_dir_all(top.join("etc")).unwrap();
    fs::create_dir_all(top.join("opq")).unwrap();
    fs::create_dir_all(f.lower().join("opq")).unwrap();
    fs::write(f.lower().join("opq/old"), "x").unwrap();
    fs::write(top.join("opq/new"), "y").unwrap();
    let c = std::ffi::CString::new(top.join("opq").to_str().unwrap()).unwrap();
    // SAFETY: valid C strings.
    let r = unsafe {
        libc::setxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            b"y".as_ptr().cast(),
            1,
            0,
        )
    };
    assert_eq!(r, 0);
    nix::sys::stat::mknod(
        &top.join("etc/group"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        0,
    )
    .unwrap();
    fs::write(top.join(".wh.tmp"), "").unwrap();
    fs::write(top.join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
    let dst = f.dir.join("flat");
    copy_layers(&[top.clone(), f.lower()], &dst).unwrap();
    assert!(!dst.join("etc/group").exists());
    assert!(!dst.join("tmp").exists());
    assert!(!dst.join("opq/old").exists());
    assert_eq!(fs::read_to_string(dst.join("opq/new")).unwrap(), "y");
    assert_eq!(
        fs::read_to_string(dst.join("etc/passwd")).unwrap(),
        "root:x:0:0::/:/bin/sh\n"
    );
    assert_eq!(
        fs::read_link(dst.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::metadata(dst.join("bin/busybox"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
}

/// Run with a fresh pty as the container's terminal; returns what the
/// program wrote (read from the master after it exited).
fn run_on_pty(f: &Fixture, mut spec: LaunchSpec) -> (i32, String) {
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = pty.slave.as_raw_fd();
    spec.stdio = StdioSpec {
        stdin: Some(slave),
        stdout: slave,
        stderr: slave,
        tty: true,
    };
    let pid = launch(&spec, &mut |_| Ok(())).unwrap();
    let code = wait_exit(pid);
    drop(pty.slave);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = nix::unistd::read(&pty.master, &mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let _ = f;
    (code, String::from_utf8_lossy(&out).replace("\r\n", "\n"))
}

/// Fields 7 (tty_nr) and 8 (tpgid) of /proc/self/stat, and pid/pgrp.
const TTY_PROBE: &str =
    "[ -t 0 ] && echo tty-yes; read -r a b c d e f g h rest < /proc/self/stat; \
                         echo pid=$a pgrp=$e tty_nr=$g tpgid=$h; ls /dev/console";

#[test]
fn tty_is_the_controlling_terminal() {
    let f = Fixture::new("tty");
    let (code, out) = run_on_pty(&f, f.spec(&["sh", "-c", TTY_PROBE]));
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "tty-yes", "{out}");
    assert!(
        lines[1].starts_with("pid=1 pgrp=1 tty_nr=") && lines[1].ends_with(" tpgid=1"),
        "{out}"
    );
    assert!(!lines[1].contains("tty_nr=0 "), "{out}");
    assert_eq!(lines[2], "/dev/console", "{out}");

    // With --init the program is the terminal's foreground process group.
    let mut spec = f.spec(&["sh", "-c", TTY_PROBE]);
    spec.init = true;
    let (code, out) = run_on_pty(&f, spec);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("pid=2 pgrp=2 tty_nr=") && l.ends_with(" tpgid=2")),
        "{out}"
    );
}

#[test]
fn a_panic_in_the_child_is_a_setup_error() {
    let f = Fixture::new("panic");
    let fl = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&f.out)
        .unwrap();
    let stdio = StdioSpec {
        stdin: None,
        stdout: fl.as_raw_fd(),
        stderr: fl.as_raw_fd(),
        tty: false,
    };
    let e = super::launch::spawn(
        super::launch::PidNs::New,
        &stdio,
        &[],
        &mut |_| Ok(()),
        |_| panic!("boom"),
    )
    .unwrap_err();
    assert!(
        e.message().starts_with("container setup panicked: ") && e.message().contains("boom"),
        "{e}"
    );
    assert_eq!(e.exit_code(), 128);
}
