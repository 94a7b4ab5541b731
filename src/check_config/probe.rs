//! Every check but the cgroup ones, in report order.

use super::facts::{parse_seccomp_status, Facts, Host};
use super::{cgroup_checks, Builder, Level, Report, Status};

/// The namespaces checked by their `/proc/self/ns` file: (file, name, level,
/// impact when missing, kernel option). One loop over a table instead of a
/// call laid out per namespace.
const NAMESPACES: &[(&str, &str, Level, &str, &str)] = &[
    ("mnt", "mount", Level::Required,
        "containers cannot start: no private mount table for the container's root filesystem",
        "CONFIG_NAMESPACES"),
    ("pid", "pid", Level::Required,
        "containers cannot start: processes would see and signal the host's processes",
        "CONFIG_PID_NS"),
    ("uts", "uts", Level::Required,
        "containers cannot start: no per-container hostname",
        "CONFIG_UTS_NS"),
    ("ipc", "ipc", Level::Required,
        "containers cannot start: System V IPC and POSIX message queues would be shared with the host",
        "CONFIG_IPC_NS"),
    ("net", "network", Level::Required,
        "containers cannot start: no private network stack",
        "CONFIG_NET_NS"),
    ("cgroup", "cgroup", Level::Optional,
        "containers see the host's cgroup paths in /proc/self/cgroup",
        "CONFIG_CGROUPS (cgroup namespace, kernel 4.6+)"),
];

/// Probe a host (its root directory) and build the report.
pub fn probe(host: &Host) -> Report {
    let facts = Facts::gather(host);
    let mut b = Builder {
        host,
        facts: &facts,
        checks: Vec::new(),
    };

    // --- namespaces
    for &(file, name, level, impact, kconfig) in NAMESPACES {
        b.namespace(file, name, level, impact, kconfig);
    }
    {
        let ns = host.exists("/proc/self/ns/user");
        let max = host
            .read("/proc/sys/user/max_user_namespaces")
            .and_then(|s| s.trim().parse::<u64>().ok());
        let r = match (ns, max) {
            (false, _) => (Status::Missing, "/proc/self/ns/user does not exist".into()),
            (true, Some(0)) => (
                Status::Missing,
                "user.max_user_namespaces is 0 (disabled by sysctl)".into(),
            ),
            (true, _) => (Status::Present, String::new()),
        };
        b.add("namespaces", "user", Level::Optional, r,
            "user-namespace remapping is unavailable; the default (root in the container is root on the host) is unaffected",
            "CONFIG_USER_NS");
    }

    // --- cgroups
    cgroup_checks(&mut b);

    // --- filesystems
    let overlay = facts.filesystem(host, "overlay", "CONFIG_OVERLAY_FS", "overlay");
    b.add("filesystems", "overlay", Level::Recommended, overlay,
        "the copy fallback is used: every container gets a full copy of its image (slower start, more disk and flash wear)",
        "CONFIG_OVERLAY_FS");
    let devpts = in_filesystems(&facts, "devpts");
    b.add("filesystems", "devpts", Level::Required, devpts,
        "containers cannot start: each container mounts its own /dev/pts (terminals, `docker run -t`)",
        "CONFIG_UNIX98_PTYS (devpts)");
    let tmpfs = in_filesystems(&facts, "tmpfs");
    b.add(
        "filesystems",
        "tmpfs",
        Level::Required,
        tmpfs,
        "containers cannot start: /dev, /dev/shm and --tmpfs mounts are tmpfs",
        "CONFIG_TMPFS (CONFIG_SHMEM)",
    );
    let mqueue = in_filesystems(&facts, "mqueue");
    b.add(
        "filesystems",
        "mqueue",
        Level::Recommended,
        mqueue,
        "containers get no /dev/mqueue (POSIX message queues)",
        "CONFIG_POSIX_MQUEUE",
    );

    // --- process isolation
    {
        let root_fs = facts
            .mounts
            .iter()
            .rev()
            .find(|m| m.mount_point == "/")
            .map(|m| m.fs_type.clone());
        let r = match root_fs.as_deref() {
            Some("rootfs") => (
                Status::Missing,
                "the host root is the initramfs (rootfs), which pivot_root cannot leave; \
                 switch_root to a real root filesystem (or mount a tmpfs and switch_root into it) before starting coracle"
                    .into(),
            ),
            _ => (Status::Present, "system call of every Linux kernel".into()),
        };
        b.add(
            "security",
            "pivot_root",
            Level::Required,
            r,
            "containers cannot start: the container root cannot replace the host root",
            "none (a real root filesystem, not initramfs)",
        );
    }
    {
        let status = host.read("/proc/self/status").unwrap_or_default();
        let r = match parse_seccomp_status(&status) {
            None => (
                Status::Missing,
                "no Seccomp: line in /proc/self/status".into(),
            ),
            Some(_) => {
                if host.exists("/proc/sys/kernel/seccomp/actions_avail") {
                    (Status::Present, "filter mode, seccomp-bpf".into())
                } else {
                    match facts.kconfig("CONFIG_SECCOMP_FILTER") {
                        Some((true, d)) => (Status::Present, d),
                        Some((false, d)) => (Status::Missing, format!("strict mode only; {d}")),
                        None => (
                            Status::Unknown,
                            "seccomp present, filter mode cannot be confirmed (kernel older than 4.14 and no kernel config)".into(),
                        ),
                    }
                }
            }
        };
        b.add(
            "security",
            "seccomp",
            Level::Recommended,
            r,
            "containers run without a system-call filter (less isolation, same function)",
            "CONFIG_SECCOMP, CONFIG_SECCOMP_FILTER",
        );
    }

    // --- network
    let veth = facts.kernel_feature(host, "CONFIG_VETH", "veth");
    b.add(
        "network",
        "veth",
        Level::Recommended,
        veth,
        "no bridge networking: containers only get --network host or none",
        "CONFIG_VETH",
    );
    let nft = facts.kernel_feature(host, "CONFIG_NF_TABLES", "nf_tables");
    b.add("network", "nftables", Level::Recommended, nft,
        "published ports go through the userland proxy (slower, client addresses lost) and containers on a bridge are not masqueraded beyond the device",
        "CONFIG_NF_TABLES, CONFIG_NF_TABLES_INET, CONFIG_NFT_NAT, CONFIG_NFT_MASQ, CONFIG_NFT_CT, CONFIG_NFT_FIB_INET");
    let bridge = {
        let has_bridge_dev = host
            .list_dir("/sys/class/net")
            .iter()
            .find(|n| host.exists(&format!("/sys/class/net/{n}/bridge")))
            .cloned();
        match has_bridge_dev {
            Some(dev) => (Status::Present, format!("bridge device {dev} exists")),
            None => facts.kernel_feature(host, "CONFIG_BRIDGE", "bridge"),
        }
    };
    b.add(
        "network",
        "bridge",
        Level::Recommended,
        bridge,
        "no bridge networking: containers only get --network host or none",
        "CONFIG_BRIDGE",
    );
    {
        let r = match host.read("/proc/sys/net/ipv4/ip_forward").as_deref().map(str::trim) {
            Some("1") => (Status::Present, "net.ipv4.ip_forward=1".into()),
            Some(v) => (
                Status::Missing,
                format!("net.ipv4.ip_forward={v}; set it to 1 (sysctl.conf) on devices that route container traffic"),
            ),
            None => (Status::Missing, "/proc/sys/net/ipv4/ip_forward not readable (no IPv4?)".into()),
        };
        b.add(
            "network",
            "ip forwarding",
            Level::Optional,
            r,
            "containers on a bridge cannot reach beyond the device",
            "CONFIG_INET (runtime sysctl net.ipv4.ip_forward)",
        );
    }
    {
        let ifs = host.list_dir("/sys/class/net");
        let r = if ifs.is_empty() {
            (
                Status::Unknown,
                "/sys/class/net is empty or /sys is not mounted".into(),
            )
        } else {
            (Status::Present, ifs.join(", "))
        };
        b.add(
            "network",
            "interfaces",
            Level::Optional,
            r,
            "the daemon cannot list network devices (is /sys mounted?)",
            "CONFIG_SYSFS",
        );
    }

    Report {
        kernel_release: facts.release.clone(),
        kernel_config_source: facts.config_source.clone(),
        checks: b.checks,
    }
}

/// Present when /proc/filesystems lists `fs`.
fn in_filesystems(facts: &Facts, fs: &str) -> (Status, String) {
    if facts.has_fs(fs) {
        (Status::Present, String::new())
    } else {
        (Status::Missing, "not in /proc/filesystems".into())
    }
}
