//! Pure logic tests, v2 against a fake root, and real-cgroup tests: v1 on
//! the host's hierarchies (they fail loudly on a host without v1), v2 on a
//! cgroup2 mount made for the test.

use super::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Container name inside each test's own parent (so no test removes a
/// parent another is creating in).
const ID: &str = "ctr";

fn parent(name: &str) -> String {
    format!("coracle-test-{}-{name}", std::process::id())
}

/// Kills, reaps and removes everything a test made, even when it fails.
struct Guard {
    cg: Option<Cgroup>,
    children: Vec<Child>,
    dirs: Vec<PathBuf>,
    unmount: Option<PathBuf>,
}

impl Guard {
    fn new() -> Guard {
        Guard {
            cg: None,
            children: Vec::new(),
            dirs: Vec::new(),
            unmount: None,
        }
    }
    fn cg(&self) -> &Cgroup {
        self.cg.as_ref().expect("test cgroup created")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(cg) = &self.cg {
            cg.kill_all(Signal::SIGKILL);
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(cg) = &self.cg {
            if let Err(e) = cg.remove() {
                eprintln!("guard: remove: {e}");
            }
            // Each test has its own parent directory; it goes too.
            for c in V1_CONTROLLERS {
                if let Some(p) = cg.path(c).and_then(Path::parent) {
                    let _ = std::fs::remove_dir(p);
                }
            }
        }
        if let Some(m) = &self.unmount {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir(m);
        }
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn host_v1() -> &'static BTreeMap<String, PathBuf> {
    match Layout::host() {
        Ok(Layout::V1 { mounts }) => mounts,
        other => panic!("these tests need the host's cgroup v1 hierarchies, found {other:?}"),
    }
}

fn v1_file(cg: &Cgroup, ctrl: &str, name: &str) -> String {
    let p = cg.path(ctrl).expect("controller dir").join(name);
    read_file(&p).unwrap_or_else(|e| panic!("{e}"))
}

fn spawn_sleep() -> Child {
    Command::new("/bin/sleep")
        .arg("30")
        .spawn()
        .expect("spawn /bin/sleep")
}

/// `busybox sh -c 'read x; <script>'`: waits on stdin so it can be put in
/// the cgroup before it forks.
fn spawn_gated(script: &str) -> Child {
    Command::new("/bin/busybox")
        .args(["sh", "-c", &format!("read x; {script}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn /bin/busybox")
}

fn release(child: &mut Child) {
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("write gate");
}

fn proc_state(pid: i32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(')')?.1.trim_start().chars().next()
}

fn wait_until(mut f: impl FnMut() -> bool, ms: u64) -> bool {
    let deadline = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f()
}

// ------------------------------------------------------------ pure logic

const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

#[test]
fn mountinfo_hybrid_is_v1_with_each_mount() {
    let l = Layout::from_mountinfo(HYBRID).expect("layout");
    assert_eq!(l.version(), CgroupVersion::V1);
    let Layout::V1 { mounts } = l else {
        unreachable!()
    };
    assert_eq!(mounts["memory"], Path::new("/sys/fs/cgroup/memory"));
    assert_eq!(mounts["cpuacct"], Path::new("/sys/fs/cgroup/cpuacct"));
    assert_eq!(
        mounts.len(),
        4,
        "name=systemd is not a controller: {mounts:?}"
    );
}

#[test]
fn mountinfo_comounted_escaped_and_bind_mounts() {
    let text = "\
1 0 0:1 /sub /mnt/bind rw - cgroup cgroup rw,memory
2 0 0:2 / /cg/cpu\\040acct rw,nosuid shared:5 - cgroup cgroup rw,cpu,cpuacct
3 0 0:1 / /cg/mem rw - cgroup cgroup rw,memory
";
    let Some(Layout::V1 { mounts }) = Layout::from_mountinfo(text) else {
        panic!("v1 expected")
    };
    assert_eq!(mounts["cpu"], Path::new("/cg/cpu acct"));
    assert_eq!(mounts["cpuacct"], Path::new("/cg/cpu acct"));
    assert_eq!(
        mounts["memory"],
        Path::new("/cg/mem"),
        "the hierarchy root wins"
    );
}

#[test]
fn mountinfo_unified_and_none() {
    let v2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n\
              31 23 0:27 / /sys/fs/cgroup/x rw - cgroup cgroup rw,memory\n";
    assert_eq!(
        Layout::from_mountinfo(v2),
        Some(Layout::V2 {
            root: "/sys/fs/cgroup".into()
        })
    );
    let elsewhere = "30 23 0:26 / /run/cg2 rw - cgroup2 none rw\n";
    assert_eq!(
        Layout::from_mountinfo(elsewhere),
        Some(Layout::V2 {
            root: "/run/cg2".into()
        })
    );
    assert_eq!(Layout::from_mountinfo("garbage\n\n - \n1 2 3\n"), None);
    assert_eq!(Layout::from_mountinfo(""), None);
}

#[test]
fn detect_on_this_host() {
    // The host's own mountinfo must parse; on the dev machines it is v1 hybrid.
    let l = Layout::host().expect("a cgroup hierarchy is mounted");
    assert_eq!(detect(), l.version());
}

#[test]
fn nano_cpus_conversion() {
    assert_eq!(nano_cpus_to_cfs(1_500_000_000), (150_000, 100_000));
    assert_eq!(nano_cpus_to_cfs(10_000_000), (1_000, 100_000));
    assert_eq!(nano_cpus_to_cfs(2_000_000_000), (200_000, 100_000));
    let p = plan(
        &Resources {
            nano_cpus: 500_000_000,
            ..Default::default()
        },
        true,
        2,
    )
    .expect("plan");
    assert_eq!((p.cpu_quota, p.cpu_period), (Some(50_000), Some(100_000)));
    let too_many = Resources {
        nano_cpus: 3_000_000_000,
        ..Default::default()
    };
    let e = plan(&too_many, true, 2).unwrap_err().to_string();
    assert_eq!(
        e,
        "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"
    );
    let conflict = Resources {
        nano_cpus: 1_000_000_000,
        cpu_period: 50_000,
        ..Default::default()
    };
    assert!(plan(&conflict, true, 2)
        .unwrap_err()
        .to_string()
        .contains("Nano CPUs and CPU Period"));
}

#[test]
fn memory_minimum_is_typed() {
    let r = Resources {
        memory: 6 * 1024 * 1024 - 1,
        ..Default::default()
    };
    let e = plan(&r, true, 2).unwrap_err();
    assert!(matches!(e, CgroupError::MemoryTooLow));
    assert_eq!(e.to_string(), "Minimum memory limit allowed is 6MB");
    let ok = Resources {
        memory: MIN_MEMORY,
        ..Default::default()
    };
    assert_eq!(
        plan(&ok, true, 2).expect("6 MiB is fine").memory,
        Some(MIN_MEMORY)
    );
    // Negative memory is below the minimum too (dockerd: Memory != 0 && < 6MB).
    let neg = Resources {
        memory: -1,
        ..Default::default()
    };
    assert!(matches!(
        plan(&neg, true, 2),
        Err(CgroupError::MemoryTooLow)
    ));
}

#[test]
fn swap_default_and_checks() {
    let m = 64 << 20;
    let r = Resources {
        memory: m,
        ..Default::default()
    };
    assert_eq!(plan(&r, true, 2).expect("plan").memory_swap, Some(2 * m));
    assert_eq!(plan(&r, false, 2).expect("plan").memory_swap, None);
    let unl = Resources {
        memory: m,
        memory_swap: -1,
        ..Default::default()
    };
    assert_eq!(plan(&unl, true, 2).expect("plan").memory_swap, Some(-1));
    let small = Resources {
        memory: m,
        memory_swap: m / 2,
        ..Default::default()
    };
    assert!(matches!(
        plan(&small, true, 2),
        Err(CgroupError::InvalidValue(_))
    ));
    let res = Resources {
        memory: m,
        memory_reservation: 2 * m,
        ..Default::default()
    };
    assert!(matches!(
        plan(&res, true, 2),
        Err(CgroupError::InvalidValue(_))
    ));
}

#[test]
fn other_fields_validated() {
    let p = plan(
        &Resources {
            cpu_shares: 1,
            pids_limit: Some(0),
            ..Default::default()
        },
        true,
        2,
    )
    .expect("plan");
    assert_eq!(p.cpu_shares, Some(2));
    assert_eq!(p.pids_max, Some(-1));
    for bad in [
        Resources {
            blkio_weight: 5,
            ..Default::default()
        },
        Resources {
            cpu_period: 500,
            ..Default::default()
        },
        Resources {
            cpu_quota: 999,
            ..Default::default()
        },
        Resources {
            cpuset_cpus: "0-x".into(),
            ..Default::default()
        },
        Resources {
            cpuset_mems: "3-1".into(),
            ..Default::default()
        },
    ] {
        assert!(
            matches!(plan(&bad, true, 2), Err(CgroupError::InvalidValue(_))),
            "{bad:?}"
        );
    }
    assert_eq!(
        parse_cpu_list("0-2,5").map(|s| s.into_iter().collect::<Vec<_>>()),
        Some(vec![0, 1, 2, 5])
    );
    assert_eq!(parse_cpu_list("0-4294967295"), None);
    assert!(check_cpuset("3", "0-1", "CPUs")
        .unwrap_err()
        .to_string()
        .starts_with("Requested CPUs are not available - requested 3, available: 0-1"));
    assert!(check_cpuset("1", "0-1", "CPUs").is_ok());
}

#[test]
fn weight_conversions() {
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(1024), 39);
    assert_eq!(shares_to_weight(262_144), 10_000);
    assert_eq!(blkio_to_io_weight(10), 1);
    assert_eq!(blkio_to_io_weight(500), 4950);
    assert_eq!(blkio_to_io_weight(1000), 10_000);
}

#[test]
fn warnings_in_dockerd_words() {
    let host = HostSupport {
        memory: true,
        swap: false,
        memory_reservation: true,
        cpu_shares: true,
        cpu_cfs: true,
        cpuset: true,
        pids: true,
        blkio_weight: false,
        freezer: true,
        devices: true,
        kernel_memory_tcp: false,
    };
    let r = Resources {
        memory: 64 << 20,
        memory_swap: 128 << 20,
        blkio_weight: 300,
        cpu_shares: 1,
        ..Default::default()
    };
    let (kept, w) = adapt(&r, &host);
    assert_eq!(
        w,
        vec![
            "Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.",
            "Changing requested CPUShares of 1 to minimum allowed of 2",
            "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.",
        ]
    );
    assert_eq!(kept.memory_swap, 0);
    assert_eq!(kept.blkio_weight, 0);
    assert_eq!(kept.memory, 64 << 20);
    assert_eq!(kept.cpu_shares, 2);
    // This host (v1 hybrid, BFQ-only blkio stats) at least parses.
    let _ = warnings_for(&r);
}

#[test]
fn names_are_checked() {
    for (parent, id) in [
        ("coracle", "../x"),
        ("coracle", "a/b"),
        ("coracle", ""),
        ("coracle", ".."),
        ("/abs", "x"),
        ("a//b", "x"),
        ("../up", "x"),
        ("", "x"),
    ] {
        assert!(
            matches!(relative_path(parent, id), Err(CgroupError::InvalidValue(_))),
            "{parent:?} {id:?}"
        );
    }
    assert_eq!(
        relative_path("coracle/nested", "abc").expect("ok"),
        Path::new("coracle/nested/abc")
    );
}

#[test]
fn device_rules_render_like_v1() {
    let r = default_device_rules();
    let lines: Vec<String> = r.iter().map(ToString::to_string).collect();
    assert!(lines.contains(&"c *:* m".to_string()));
    assert!(lines.contains(&"b *:* m".to_string()));
    assert!(lines.contains(&"c 1:3 rwm".to_string()));
    assert!(lines.contains(&"c 136:* rwm".to_string()));
    assert_eq!(DeviceRule::allow('a', None, None, "rwm").to_string(), "a");
}

#[test]
fn device_program_shape() {
    use super::bpf::program;
    let all = program(&[DeviceRule::allow('a', None, None, "rwm")]);
    assert_eq!(all.len(), 8, "prologue, r0 = 1, exit");
    let p = program(&default_device_rules());
    // prologue 6; "c *:* m" and "b *:* m" 6 each (type, access ×3, ret ×2);
    // each full c x:y rule 5 (type, major, minor, ret ×2); "c 136:*" 4; deny 2.
    assert_eq!(p.len(), 6 + 6 + 6 + 8 * 5 + 4 + 2);
    let deny = program(&[]);
    assert_eq!(deny.len(), 8);
}

// ------------------------------------------------------------ v2, fake root

fn fake_root(name: &str, g: &mut Guard) -> PathBuf {
    let root = std::env::temp_dir().join(format!("coracle-cgfake-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("mkdir fake root");
    g.dirs.push(root.clone());
    std::fs::write(
        root.join("cgroup.controllers"),
        "cpuset cpu io memory pids hugetlb\n",
    )
    .expect("write");
    std::fs::write(root.join("cgroup.subtree_control"), "").expect("write");
    root
}

fn touch(dir: &Path, files: &[(&str, &str)]) {
    for (f, v) in files {
        std::fs::write(dir.join(f), v).expect("write fake file");
    }
}

#[test]
fn v2_fake_root_paths_and_values() {
    let mut g = Guard::new();
    let root = fake_root("values", &mut g);
    let layout = Layout::V2 { root: root.clone() };
    // Pre-make the parent as the kernel would show it, so delegation there shows.
    std::fs::create_dir(root.join("coracle")).expect("mkdir");
    touch(
        &root.join("coracle"),
        &[
            ("cgroup.controllers", "cpuset cpu io memory pids"),
            ("cgroup.subtree_control", "memory"),
        ],
    );
    let cg = Cgroup::create_in(&layout, "coracle", "abc").expect("create");
    let dir = root.join("coracle/abc");
    assert!(dir.is_dir());
    assert_eq!(cg.version(), CgroupVersion::V2);
    assert_eq!(cg.path("anything"), Some(dir.as_path()));
    assert_eq!(
        read_file(&root.join("cgroup.subtree_control")).expect("read"),
        "+cpuset +cpu +io +memory +pids"
    );
    assert_eq!(
        read_file(&root.join("coracle/cgroup.subtree_control")).expect("read"),
        "+cpuset +cpu +io +pids",
        "only the missing ones are added"
    );
    // Idempotent.
    Cgroup::create_in(&layout, "coracle", "abc").expect("create again");

    let hs = HostSupport::probe(&layout);
    assert!(hs.memory && hs.cpu_cfs && hs.cpuset && hs.pids && hs.blkio_weight);

    // Nothing of the interface exists yet: every field is refused by name.
    let e = cg
        .apply(&Resources {
            pids_limit: Some(5),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "PidsLimit is not supported by this host's cgroups"
    );

    touch(
        &dir,
        &[
            ("memory.max", "max"),
            ("memory.swap.max", "max"),
            ("memory.low", "0"),
            ("cpu.weight", "100"),
            ("cpu.max", "max 100000"),
            ("cpuset.cpus", ""),
            ("cpuset.mems", ""),
            ("pids.max", "max"),
            ("io.weight", "default 100"),
            ("cgroup.procs", ""),
            ("cgroup.freeze", "0"),
            ("cgroup.events", "populated 0\nfrozen 0\n"),
            ("memory.events", "low 0\nhigh 0\nmax 9\noom 4\noom_kill 3\n"),
            ("memory.current", "12345\n"),
        ],
    );
    touch(&root.join("coracle"), &[("cpuset.cpus.effective", "0-1")]);
    let m = 64i64 << 20;
    cg.apply(&Resources {
        memory: m,
        memory_reservation: 32 << 20,
        nano_cpus: 1_500_000_000,
        cpu_shares: 1024,
        cpuset_cpus: "1".into(),
        cpuset_mems: "0".into(),
        pids_limit: Some(5),
        blkio_weight: 500,
        ..Default::default()
    })
    .expect("apply");
    let rd = |f: &str| read_file(&dir.join(f)).expect("read");
    assert_eq!(rd("memory.max"), m.to_string());
    assert_eq!(
        rd("memory.swap.max"),
        m.to_string(),
        "2×memory default minus memory"
    );
    assert_eq!(rd("memory.low"), (32i64 << 20).to_string());
    assert_eq!(rd("cpu.max"), "150000 100000");
    assert_eq!(rd("cpu.weight"), "39");
    assert_eq!(rd("cpuset.cpus"), "1");
    assert_eq!(rd("cpuset.mems"), "0");
    assert_eq!(rd("pids.max"), "5");
    assert_eq!(rd("io.weight"), "default 4950");

    // docker update: period alone keeps the quota; unlimited swap; pids unlimited.
    cg.update(&Resources {
        cpu_period: 50_000,
        memory_swap: -1,
        pids_limit: Some(-1),
        ..Default::default()
    })
    .expect("update");
    assert_eq!(rd("cpu.max"), "150000 50000");
    assert_eq!(rd("memory.swap.max"), "max");
    assert_eq!(rd("pids.max"), "max");
    cg.update(&Resources {
        memory_swap: 3 * m,
        cpu_quota: -1,
        ..Default::default()
    })
    .expect("update swap against current memory.max");
    assert_eq!(rd("memory.swap.max"), (2 * m).to_string());
    assert_eq!(rd("cpu.max"), "max 50000");
    // Out of the parent's cpus.
    assert!(cg
        .apply(&Resources {
            cpuset_cpus: "2".into(),
            ..Default::default()
        })
        .unwrap_err()
        .to_string()
        .contains("Requested CPUs are not available"));

    assert_eq!(cg.oom_kills(), 3);
    assert_eq!(cg.memory_usage(), Some(12345));
    assert!(!cg.is_frozen());
    touch(&dir, &[("cgroup.events", "populated 1\nfrozen 1\n")]);
    assert!(cg.is_frozen());
    cg.freeze().expect("freeze sees frozen 1");
    assert_eq!(rd("cgroup.freeze"), "1");
    cg.thaw().expect("thaw");
    assert_eq!(rd("cgroup.freeze"), "0");

    cg.add_pid(4242).expect("add pid");
    assert_eq!(rd("cgroup.procs"), "4242");
    assert!(matches!(cg.add_pid(0), Err(CgroupError::InvalidValue(_))));
    // Sub-cgroups the container made itself count too.
    std::fs::create_dir(dir.join("inner")).expect("mkdir");
    touch(&dir.join("inner"), &[("cgroup.procs", "77\n78\n")]);
    assert_eq!(cg.pids(), vec![77, 78, 4242]);

    // A plain directory is no cgroup: the program loads, attaching fails.
    assert!(cg.apply_devices(false).is_err());
    cg.apply_devices(true).expect("privileged needs no program");

    assert!(Cgroup::open_in(&layout, "coracle", "abc").is_some());
    assert!(Cgroup::open_in(&layout, "coracle", "nope").is_none());
    assert!(Cgroup::open_in(&layout, "coracle", "../coracle").is_none());
}

#[test]
fn v1_fake_root_cpuset_copy_and_comount() {
    let mut g = Guard::new();
    let base = std::env::temp_dir().join(format!("coracle-cgfake1-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    g.dirs.push(base.clone());
    let cpuset = base.join("cpuset");
    let cpu = base.join("cpu,cpuacct");
    std::fs::create_dir_all(&cpuset).expect("mkdir");
    std::fs::create_dir_all(&cpu).expect("mkdir");
    touch(&cpuset, &[("cpuset.cpus", "0-3\n"), ("cpuset.mems", "0\n")]);
    // Pre-make the levels with the empty files the kernel would show.
    for d in ["coracle", "coracle/x"] {
        std::fs::create_dir(cpuset.join(d)).expect("mkdir");
        touch(&cpuset.join(d), &[("cpuset.cpus", ""), ("cpuset.mems", "")]);
    }
    let mounts: BTreeMap<String, PathBuf> = [
        ("cpuset".to_string(), cpuset.clone()),
        ("cpu".to_string(), cpu.clone()),
        ("cpuacct".to_string(), cpu.clone()),
    ]
    .into();
    let layout = Layout::V1 { mounts };
    let cg = Cgroup::create_in(&layout, "coracle", "x").expect("create");
    assert_eq!(
        read_file(&cpuset.join("coracle/cpuset.cpus")).expect("r"),
        "0-3"
    );
    assert_eq!(
        read_file(&cpuset.join("coracle/x/cpuset.mems")).expect("r"),
        "0"
    );
    assert!(cpu.join("coracle/x").is_dir());
    assert_eq!(cg.path("cpu"), cg.path("cpuacct"));
    touch(&cpu.join("coracle/x"), &[("cgroup.procs", "")]);
    touch(&cpuset.join("coracle/x"), &[("cgroup.procs", "")]);
    cg.add_pid(99).expect("add");
    assert_eq!(
        read_file(&cpu.join("coracle/x/cgroup.procs")).expect("r"),
        "99"
    );
    // No memory controller: the field is refused by name.
    assert_eq!(
        cg.apply(&Resources {
            memory: 64 << 20,
            ..Default::default()
        })
        .unwrap_err()
        .to_string(),
        "Memory is not supported by this host's cgroups"
    );
    assert_eq!(cg.oom_kills(), 0);
    assert_eq!(cg.memory_usage(), None);
    assert!(matches!(cg.freeze(), Err(CgroupError::NotSupported(_))));
}

// ------------------------------------------------------------ v1, real

#[test]
fn v1_limits_read_back() {
    let mounts = host_v1();
    let mut g = Guard::new();
    g.cg = Some(Cgroup::create(&parent("limits"), ID).expect("create"));
    let cg = g.cg();
    assert_eq!(cg.version(), CgroupVersion::V1);
    for (c, m) in mounts {
        let d = cg.path(c).expect("dir per controller");
        assert!(d.starts_with(m) && d.is_dir(), "{}", d.display());
    }
    assert!(!v1_file(cg, "cpuset", "cpuset.cpus").is_empty());
    let parent = cg.path("cpuset").and_then(Path::parent).expect("parent");
    assert!(!read_file(&parent.join("cpuset.mems"))
        .expect("r")
        .is_empty());

    let m = 64i64 << 20;
    cg.apply(&Resources {
        memory: m,
        memory_reservation: 32 << 20,
        nano_cpus: 500_000_000,
        cpu_shares: 512,
        cpuset_cpus: "0".into(),
        cpuset_mems: "0".into(),
        pids_limit: Some(100),
        ..Default::default()
    })
    .expect("apply");
    assert_eq!(
        v1_file(cg, "memory", "memory.limit_in_bytes"),
        m.to_string()
    );
    let swap = HostSupport::host().swap;
    if swap {
        assert_eq!(
            v1_file(cg, "memory", "memory.memsw.limit_in_bytes"),
            (2 * m).to_string()
        );
    }
    assert_eq!(
        v1_file(cg, "memory", "memory.soft_limit_in_bytes"),
        (32i64 << 20).to_string()
    );
    assert_eq!(v1_file(cg, "cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(v1_file(cg, "cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(v1_file(cg, "cpu", "cpu.shares"), "512");
    assert_eq!(v1_file(cg, "cpuset", "cpuset.cpus"), "0");
    assert_eq!(v1_file(cg, "cpuset", "cpuset.mems"), "0");
    assert_eq!(v1_file(cg, "pids", "pids.max"), "100");

    // docker update up and down: the memsw/limit write order matters.
    cg.update(&Resources {
        memory: 4 * m,
        memory_swap: 8 * m,
        cpu_quota: -1,
        pids_limit: Some(0),
        ..Default::default()
    })
    .expect("update up");
    assert_eq!(
        v1_file(cg, "memory", "memory.limit_in_bytes"),
        (4 * m).to_string()
    );
    if swap {
        assert_eq!(
            v1_file(cg, "memory", "memory.memsw.limit_in_bytes"),
            (8 * m).to_string()
        );
    }
    assert_eq!(v1_file(cg, "cpu", "cpu.cfs_quota_us"), "-1");
    assert_eq!(v1_file(cg, "pids", "pids.max"), "max");
    cg.update(&Resources {
        memory: m / 2,
        memory_swap: m,
        ..Default::default()
    })
    .expect("update down");
    assert_eq!(
        v1_file(cg, "memory", "memory.limit_in_bytes"),
        (m / 2).to_string()
    );
    if swap {
        assert_eq!(
            v1_file(cg, "memory", "memory.memsw.limit_in_bytes"),
            m.to_string()
        );
    }

    // Refusals write nothing.
    assert!(matches!(
        cg.apply(&Resources {
            memory: 1 << 20,
            ..Default::default()
        }),
        Err(CgroupError::MemoryTooLow)
    ));
    let ncpu = host_cpus();
    let e = cg
        .apply(&Resources {
            cpuset_cpus: format!("{ncpu}"),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("Requested CPUs are not available"),
        "{e}"
    );
    let weight_file = ["blkio.bfq.weight", "blkio.weight"]
        .into_iter()
        .find(|f| cg.path("blkio").is_some_and(|d| d.join(f).exists()));
    assert_eq!(weight_file.is_some(), HostSupport::host().blkio_weight);
    let r = cg.apply(&Resources {
        blkio_weight: 500,
        ..Default::default()
    });
    match weight_file {
        Some(f) => {
            r.expect("blkio weight");
            assert_eq!(v1_file(cg, "blkio", f), "500");
        }
        None => assert_eq!(
            r.unwrap_err().to_string(),
            "BlkioWeight is not supported by this host's cgroups"
        ),
    }
    assert_eq!(
        v1_file(cg, "memory", "memory.limit_in_bytes"),
        (m / 2).to_string()
    );
}

#[test]
fn v1_devices_allow_list() {
    host_v1();
    let mut g = Guard::new();
    g.cg = Some(Cgroup::create(&parent("devices"), ID).expect("create"));
    let cg = g.cg();
    cg.apply_devices(false).expect("devices");
    let list = v1_file(cg, "devices", "devices.list");
    let lines: Vec<&str> = list.lines().collect();
    assert!(!lines.contains(&"a *:* rwm"), "{list}");
    for want in [
        "c *:* m",
        "b *:* m",
        "c 1:3 rwm",
        "c 1:9 rwm",
        "c 5:2 rwm",
        "c 136:* rwm",
    ] {
        assert!(lines.contains(&want), "{want} missing from {list}");
    }
    cg.apply_devices(true).expect("privileged");
    assert_eq!(v1_file(cg, "devices", "devices.list"), "a *:* rwm");
}

#[test]
fn v1_pids_freeze_thaw_kill_remove() {
    host_v1();
    let par = parent("freeze");
    let mut g = Guard::new();
    g.cg = Some(Cgroup::create(&par, ID).expect("create"));
    assert!(Cgroup::open(&par, ID).is_some());
    g.children.push(spawn_sleep());
    let pid = g.children[0].id() as i32;
    g.cg().add_pid(pid).expect("add pid");
    assert_eq!(g.cg().pids(), vec![pid]);
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read");
    assert!(own.contains(&format!("/{par}/{ID}")), "{own}");

    // A live process blocks removal.
    match g.cg().remove() {
        Err(CgroupError::Busy(msg)) => assert!(msg.contains("1 process"), "{msg}"),
        other => panic!("remove with a live process: {other:?}"),
    }

    g.cg().freeze().expect("freeze");
    assert!(g.cg().is_frozen());
    assert_eq!(v1_file(g.cg(), "freezer", "freezer.state"), "FROZEN");
    eprintln!(
        "note: frozen task's /proc/<pid>/stat state: {:?}",
        proc_state(pid)
    );
    g.cg().thaw().expect("thaw");
    assert!(!g.cg().is_frozen());
    assert_eq!(v1_file(g.cg(), "freezer", "freezer.state"), "THAWED");

    // SIGKILL lands on a paused container (kill_all thaws for it).
    g.cg().freeze().expect("freeze again");
    g.cg().kill_all(Signal::SIGKILL);
    let st = g.children[0].wait().expect("wait");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    assert!(wait_until(|| g.cg().pids().is_empty(), 1000));
    assert!(!g.cg().is_frozen());

    g.cg().remove().expect("remove");
    for c in host_v1().keys() {
        if let Some(d) = g.cg().path(c) {
            assert!(!d.exists(), "{} left behind", d.display());
        }
    }
    assert!(Cgroup::open(&par, ID).is_none());
    assert!(Cgroup::open(&par, "never-made").is_none());
}

#[test]
fn v1_pids_limit_stops_fork_bomb() {
    host_v1();
    let mut g = Guard::new();
    g.cg = Some(Cgroup::create(&parent("forkbomb"), ID).expect("create"));
    g.cg()
        .apply(&Resources {
            pids_limit: Some(5),
            ..Default::default()
        })
        .expect("pids limit");
    g.children
        .push(spawn_gated("for i in $(seq 20); do sleep 5 & done; wait"));
    let sh = g.children[0].id() as i32;
    g.cg().add_pid(sh).expect("add pid");
    release(&mut g.children[0]);
    let mut max = 0;
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        max = max.max(g.cg().pids().len());
        std::thread::sleep(Duration::from_millis(2));
    }
    let events = v1_file(g.cg(), "pids", "pids.events");
    // pids.peak (kernel 6.x) is the kernel's own high-water mark.
    if let Some(peak) = g
        .cg()
        .path("pids")
        .map(|d| d.join("pids.peak"))
        .filter(|p| p.exists())
    {
        let peak: usize = read_file(&peak).expect("peak").parse().expect("number");
        eprintln!("fork bomb: pids.peak {peak}");
        assert!(peak <= 5, "pids.peak {peak} under pids.max 5");
        max = max.max(peak);
    }
    let refused = keyed_value(&events, "max").unwrap_or(0);
    eprintln!("fork bomb: at most {max} pids seen, {refused} forks refused");
    assert!(max <= 5, "saw {max} processes under pids.max 5");
    assert!(max >= 3, "the shell should have forked some: {max}");
    assert!(refused > 0, "pids.events: {events}");

    // kill_all takes the whole tree.
    g.cg().kill_all(Signal::SIGKILL);
    g.children[0].wait().expect("wait");
    assert!(
        wait_until(|| g.cg().pids().is_empty(), 1000),
        "{:?}",
        g.cg().pids()
    );
}

#[test]
fn v1_memory_limit_oom_kills() {
    host_v1();
    let mut g = Guard::new();
    g.cg = Some(Cgroup::create(&parent("oom"), ID).expect("create"));
    g.cg()
        .apply(&Resources {
            memory: 16 << 20,
            ..Default::default()
        })
        .expect("memory");
    assert_eq!(g.cg().oom_kills(), 0);
    g.children.push(spawn_gated(
        "x=$(head -c 70000000 /dev/zero | tr '\\0' a); echo survived ${#x}",
    ));
    g.cg().add_pid(g.children[0].id() as i32).expect("add pid");
    assert!(g.cg().memory_usage().is_some());
    release(&mut g.children[0]);
    let mut out = String::new();
    if let Some(so) = g.children[0].stdout.take() {
        for line in BufReader::new(so).lines().map_while(Result::ok) {
            out.push_str(&line);
        }
    }
    let st = g.children[0].wait().expect("wait");
    let kills = g.cg().oom_kills();
    eprintln!(
        "oom: status {st:?}, oom_kills {kills}, oom_control: {:?}",
        v1_file(g.cg(), "memory", "memory.oom_control")
    );
    assert!(!out.contains("survived"), "{out}");
    assert!(kills > 0);
}

// ------------------------------------------------------------ v2, real mount

#[test]
fn v2_real_mount_procs_freeze_kill() {
    let mut g = Guard::new();
    let mnt = std::env::temp_dir().join(format!("coracle-cg2-{}", std::process::id()));
    std::fs::create_dir_all(&mnt).expect("mkdir");
    nix::mount::mount(
        Some("none"),
        &mnt,
        Some("cgroup2"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .expect("mount cgroup2 (needs root)");
    g.unmount = Some(mnt.clone());
    let layout = Layout::V2 { root: mnt.clone() };
    let controllers = read_file(&mnt.join("cgroup.controllers")).expect("controllers");
    eprintln!("cgroup2 controllers offered here: {controllers:?}");

    let par = parent("v2");
    let cg = Cgroup::create_in(&layout, &par, ID).expect("create");
    let dir = mnt.join(&par).join(ID);
    assert!(dir.is_dir());
    g.cg = Some(cg);
    assert!(Cgroup::open_in(&layout, &par, ID).is_some());
    g.children.push(spawn_sleep());
    let pid = g.children[0].id() as i32;
    g.cg().add_pid(pid).expect("add pid");
    assert_eq!(g.cg().pids(), vec![pid]);

    g.cg().freeze().expect("freeze");
    assert!(g.cg().is_frozen());
    eprintln!(
        "note: v2-frozen task's /proc/<pid>/stat state: {:?}",
        proc_state(pid)
    );
    g.cg().thaw().expect("thaw");
    assert!(wait_until(|| !g.cg().is_frozen(), 1000));

    if !controllers.split_whitespace().any(|c| c == "memory") {
        assert_eq!(
            g.cg()
                .apply(&Resources {
                    memory: 64 << 20,
                    ..Default::default()
                })
                .unwrap_err()
                .to_string(),
            "Memory is not supported by this host's cgroups"
        );
    }
    if !controllers.split_whitespace().any(|c| c == "pids") {
        assert!(matches!(
            g.cg().apply(&Resources {
                pids_limit: Some(5),
                ..Default::default()
            }),
            Err(CgroupError::NotSupported(_))
        ));
    }

    // Devices through the eBPF program: /dev/null yes, /dev/kmsg (c 1:11) no.
    g.cg().apply_devices(false).expect("attach device program");
    let mut c = spawn_gated(
        "true </dev/null && echo null-ok; true </dev/kmsg && echo kmsg-ok; \
         head -c 4 /dev/urandom | wc -c",
    );
    g.cg().add_pid(c.id() as i32).expect("add pid");
    release(&mut c);
    let out = c.wait_with_output().expect("wait");
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    eprintln!("v2 devices: stdout {so:?} stderr {se:?}");
    assert!(so.contains("null-ok"), "{so} {se}");
    assert!(!so.contains("kmsg-ok"), "{so} {se}");
    assert!(so.lines().any(|l| l.trim() == "4"), "{so} {se}");
    assert!(se.contains("not permitted"), "{se}");
    // Re-applying replaces the program (single-program mode).
    g.cg().apply_devices(false).expect("replace device program");

    // Killing a frozen cgroup (cgroup.kill when present).
    g.cg().freeze().expect("freeze");
    eprintln!("cgroup.kill present: {}", dir.join("cgroup.kill").exists());
    g.cg().kill_all(Signal::SIGKILL);
    let st = g.children[0].wait().expect("wait");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    assert!(wait_until(|| g.cg().pids().is_empty(), 1000));
    g.cg().thaw().expect("thaw");
    g.cg().remove().expect("remove");
    assert!(!dir.exists());
}
