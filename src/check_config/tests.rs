use std::path::PathBuf;

use super::facts::*;
use super::*;
use crate::runtime::mountinfo::parse as parse_mountinfo;

const MOUNTINFO_HYBRID: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
";

#[test]
fn filesystems_are_the_last_column() {
    let fs = parse_filesystems("nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlay\n\n");
    assert_eq!(fs, vec!["sysfs", "tmpfs", "ext4", "overlay"]);
}

#[test]
fn kernel_config_values_and_not_set() {
    let cfg = parse_kernel_config(
        "#\n# Automatically generated\nCONFIG_VETH=m\nCONFIG_BRIDGE=y\n# CONFIG_USER_NS is not set\nCONFIG_LOCALVERSION=\"-v8\"\nNOT_CONFIG=y\n",
    );
    assert_eq!(cfg.get("CONFIG_VETH").map(String::as_str), Some("m"));
    assert_eq!(cfg.get("CONFIG_BRIDGE").map(String::as_str), Some("y"));
    assert_eq!(cfg.get("CONFIG_USER_NS").map(String::as_str), Some("n"));
    assert_eq!(
        cfg.get("CONFIG_LOCALVERSION").map(String::as_str),
        Some("\"-v8\"")
    );
    assert!(!cfg.contains_key("NOT_CONFIG"));
}

#[test]
fn mountinfo_cgroup_hierarchies() {
    let m = parse_mountinfo(MOUNTINFO_HYBRID);
    assert_eq!(m.len(), 8);
    let cg = cgroup_mounts(&m);
    assert_eq!(cg.v2, vec!["/sys/fs/cgroup/unified"]);
    assert_eq!(cg.v1.len(), 4);
    assert_eq!(cg.v1[0].0, "/sys/fs/cgroup/cpu,cpuacct");
    assert_eq!(cg.v1[0].1, vec!["cpu", "cpuacct"]);
    assert!(cg.v1[3].1.is_empty(), "name=systemd binds no controller");
    assert_eq!(
        cg.v1_controllers(),
        vec!["cpu", "cpuacct", "memory", "pids"]
    );
}

#[test]
fn mountinfo_unescapes_paths_and_skips_junk() {
    let m = parse_mountinfo(
        "garbage\n50 1 0:40 / /mnt/my\\040disk rw - ext4 /dev/sda1 rw\n60 1 0:41 / / rw - rootfs rootfs rw\n",
    );
    assert_eq!(m.len(), 2);
    assert_eq!(m[0].mount_point, "/mnt/my disk");
    assert_eq!(m[1].fs_type, "rootfs");
}

#[test]
fn pure_v2_mount() {
    let cg = cgroup_mounts(&parse_mountinfo(
        "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
    ));
    assert!(cg.v1.is_empty());
    assert_eq!(cg.v2, vec!["/sys/fs/cgroup"]);
}

#[test]
fn proc_cgroups_enabled_column() {
    let c = parse_proc_cgroups(
        "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t3\t1\t1\nmemory\t0\t70\t0\npids\t8\t1\t1\n",
    );
    assert_eq!(c.get("memory"), Some(&false));
    assert_eq!(c.get("pids"), Some(&true));
    assert_eq!(c.get("blkio"), None);
}

#[test]
fn seccomp_line() {
    assert_eq!(
        parse_seccomp_status("Name:\tx\nSeccomp:\t2\nSeccomp_filters:\t1\n"),
        Some(2)
    );
    assert_eq!(parse_seccomp_status("Seccomp:\t0\n"), Some(0));
    assert_eq!(parse_seccomp_status("Name:\tx\nNoNewPrivs:\t0\n"), None);
}

#[test]
fn modules_lists() {
    let dep = "kernel/net/bridge/bridge.ko.xz: kernel/net/802/stp.ko.xz kernel/net/llc/llc.ko.xz\nkernel/drivers/net/veth.ko:\n";
    assert!(module_listed(dep, "bridge"));
    assert!(module_listed(dep, "veth"));
    assert!(
        !module_listed(dep, "stp"),
        "dependencies are not modules of their own line"
    );
    assert!(!module_listed(dep, "overlay"));
    assert!(module_listed("kernel/fs/overlayfs/overlay.ko\n", "overlay"));
    assert!(!module_listed(
        "kernel/net/bridge/bridge_extra.ko\n",
        "bridge"
    ));
}

#[test]
fn kernel_versions_and_cmdline() {
    assert_eq!(parse_kernel_version("6.1.0-18-arm64"), Some((6, 1)));
    assert_eq!(parse_kernel_version("5.10.110-v7l+"), Some((5, 10)));
    assert_eq!(parse_kernel_version("garbage"), None);
    assert!(cmdline_disables(
        "console=tty1 cgroup_disable=memory rootwait",
        "memory"
    ));
    assert!(cmdline_disables("cgroup_disable=cpuset,memory", "memory"));
    assert!(!cmdline_disables(
        "cgroup_enable=memory cgroup_memory=1",
        "memory"
    ));
}

/// A fake root tree: `files` are (path, content); directories in `dirs` are created empty.
fn fake_root(name: &str, files: &[(&str, &str)], dirs: &[&str]) -> PathBuf {
    let root = std::env::temp_dir().join(format!(
        "coracle-check-config-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&root);
    for (p, content) in files {
        let path = root.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    for d in dirs {
        std::fs::create_dir_all(root.join(d.trim_start_matches('/'))).unwrap();
    }
    root
}

fn find<'a>(r: &'a Report, section: &str, name: &str) -> &'a Check {
    r.checks
        .iter()
        .find(|c| c.section == section && c.name == name)
        .unwrap_or_else(|| panic!("no check {section}: {name}"))
}

const NS: &[(&str, &str)] = &[
    ("/proc/self/ns/mnt", ""),
    ("/proc/self/ns/pid", ""),
    ("/proc/self/ns/uts", ""),
    ("/proc/self/ns/ipc", ""),
    ("/proc/self/ns/net", ""),
];

#[test]
fn raspberry_pi_without_memcg_fails_with_a_cmdline_hint() {
    let mut files: Vec<(&str, &str)> = NS.to_vec();
    files.extend([
        ("/proc/sys/kernel/osrelease", "5.10.103-v7l+\n"),
        (
            "/proc/filesystems",
            "nodev\ttmpfs\nnodev\tdevpts\nnodev\tcgroup\n\text4\n",
        ),
        (
            "/proc/self/mountinfo",
            "1 0 179:2 / / rw - ext4 /dev/root rw\n\
             2 1 0:20 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n\
             3 1 0:21 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n",
        ),
        (
            "/proc/cgroups",
            "#subsys_name\thierarchy\tnum_cgroups\tenabled\nmemory\t0\t1\t0\npids\t2\t1\t1\n",
        ),
        ("/proc/self/status", "Seccomp:\t0\n"),
        ("/proc/sys/net/ipv4/ip_forward", "1\n"),
        (
            "/lib/modules/5.10.103-v7l+/modules.dep",
            "kernel/fs/overlayfs/overlay.ko:\nkernel/drivers/net/veth.ko:\n",
        ),
    ]);
    let root = fake_root("rpi", &files, &["/sys/class/net/eth0"]);
    let r = probe(&Host::new(&root));
    let h = find(&r, "cgroups", "hierarchy");
    assert_eq!(h.status, Status::Missing);
    assert!(
        h.detail.contains("cgroup_enable=memory cgroup_memory=1"),
        "{}",
        h.detail
    );
    assert_eq!(find(&r, "cgroups", "pids").status, Status::Present);
    let ov = find(&r, "filesystems", "overlay");
    assert_eq!(ov.status, Status::Present, "{}", ov.detail);
    assert_eq!(find(&r, "network", "veth").status, Status::Present);
    assert_eq!(find(&r, "network", "bridge").status, Status::Unknown);
    assert_eq!(find(&r, "security", "seccomp").status, Status::Unknown);
    assert_eq!(find(&r, "namespaces", "user").status, Status::Missing);
    assert_eq!(r.exit_code(), 1);
    let mut out = Vec::new();
    write_report(&mut out, &r).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("cgroups: hierarchy"), "{text}");
    assert!(
        text.contains("missing (required: containers cannot start"),
        "{text}"
    );
    assert!(text.contains("network: bridge"), "{text}");
    assert!(text.contains("unknown (recommended"), "{text}");
    assert!(
        text.contains("result: 1 required feature(s) missing"),
        "{text}"
    );
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn v2_host_with_config_passes() {
    let mut files: Vec<(&str, &str)> = NS.to_vec();
    files.extend([
        ("/proc/sys/kernel/osrelease", "6.1.0-18-arm64\n"),
        ("/proc/filesystems", "nodev\ttmpfs\nnodev\tdevpts\nnodev\tcgroup2\nnodev\toverlay\nnodev\tmqueue\n"),
        ("/proc/self/mountinfo", "1 0 179:2 / / rw - ext4 /dev/root rw\n2 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"),
        ("/sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n"),
        ("/boot/config-6.1.0-18-arm64", "CONFIG_VETH=m\nCONFIG_BRIDGE=m\nCONFIG_CGROUP_BPF=y\n# CONFIG_SECCOMP_FILTER is not set\n"),
        ("/proc/self/status", "Seccomp:\t0\n"),
        ("/proc/sys/net/ipv4/ip_forward", "0\n"),
    ]);
    let root = fake_root("v2", &files, &[]);
    let r = probe(&Host::new(&root));
    assert_eq!(
        r.kernel_config_source.as_deref(),
        Some("/boot/config-6.1.0-18-arm64")
    );
    assert_eq!(find(&r, "cgroups", "hierarchy").status, Status::Present);
    assert_eq!(find(&r, "cgroups", "io").status, Status::Present);
    assert_eq!(find(&r, "cgroups", "freezer").status, Status::Present);
    assert_eq!(find(&r, "cgroups", "devices").status, Status::Present);
    assert_eq!(find(&r, "network", "bridge").status, Status::Present);
    assert!(find(&r, "network", "veth").detail.contains("=m"));
    assert_eq!(find(&r, "security", "seccomp").status, Status::Missing);
    assert_eq!(find(&r, "network", "ip forwarding").status, Status::Missing);
    assert_eq!(r.exit_code(), 0);
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn missing_namespace_and_initramfs_root_are_required() {
    let files = [
        ("/proc/self/ns/mnt", ""),
        ("/proc/filesystems", "nodev\ttmpfs\nnodev\tdevpts\n"),
        ("/proc/self/mountinfo", "1 0 0:1 / / rw - rootfs rootfs rw\n2 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"),
    ];
    let root = fake_root("initramfs", &files, &[]);
    let r = probe(&Host::new(&root));
    assert_eq!(find(&r, "namespaces", "mount").status, Status::Present);
    assert_eq!(find(&r, "namespaces", "pid").status, Status::Missing);
    assert_eq!(find(&r, "security", "pivot_root").status, Status::Missing);
    assert_eq!(find(&r, "filesystems", "overlay").status, Status::Missing);
    assert_eq!(find(&r, "filesystems", "overlay").level, Level::Recommended);
    assert_eq!(r.missing_required(), 5, "pid, uts, ipc, net, pivot_root");
    std::fs::remove_dir_all(root).unwrap();
}
