//! What the daemon tells the launcher: a container's process, fully resolved
//! on the daemon side except what only the container's own files can answer
//! (the user from its /etc/passwd, the program from its $PATH).

use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::path::PathBuf;

use super::seccomp::Seccomp;

/// The overlay (or copy-fallback) root filesystem.
#[derive(Debug, Clone)]
pub struct RootfsSpec {
    /// Image layer directories, topmost first (overlayfs lowerdir order).
    pub lower_dirs: Vec<PathBuf>,
    /// Per-container writable layer (overlay upperdir), persistent.
    pub upper_dir: PathBuf,
    /// Overlay workdir (same filesystem as `upper_dir`).
    pub work_dir: PathBuf,
    /// Where the merged tree is mounted (inside the container's mount namespace).
    pub merged_dir: PathBuf,
    /// `ReadonlyRootfs`.
    pub readonly: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// `Binds` `host:ctr[:ro|rw]` and `Mounts` type=bind.
    Bind,
    /// `Tmpfs` and `Mounts` type=tmpfs; `options` like "size=64m,mode=1777".
    Tmpfs,
    /// A volume's data dir bound like `Bind`, first filled with the image's
    /// content at the target if it is empty (dockerd's copy-up).
    Volume,
}

#[derive(Debug, Clone)]
pub struct MountSpec {
    pub kind: MountKind,
    /// Host path for binds; ignored for tmpfs.
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub target: PathBuf,
    pub readonly: bool,
    /// Extra tmpfs options (`size=`, `mode=`); empty for binds.
    pub options: String,
}

/// One directory shown under the container's `/sys/fs/cgroup`: its own
/// cgroup in one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupDir {
    /// Name under /sys/fs/cgroup ("memory", "cpu,cpuacct"); empty on v2,
    /// where the one directory is /sys/fs/cgroup itself.
    pub name: String,
    /// The container's cgroup directory on the host.
    pub dir: PathBuf,
    /// Symlinks to `name` (co-mounted controllers: "cpu" -> "cpu,cpuacct").
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// A new network namespace with only `lo`, brought up.
    None,
    /// The host's network namespace.
    Host,
    /// The namespace behind this fd (prepared by the daemon, or another
    /// container's): the child joins it.
    Join(std::os::fd::RawFd),
}

/// Whose PID or IPC namespace the container gets (`--pid`, `--ipc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsMode {
    /// A new one (the default).
    Private,
    /// The daemon's (`host`).
    Host,
    /// That of another container's running first process (`container:<id>`).
    Join(nix::unistd::Pid),
}

/// A device node made in the container (`--device`, and every host device
/// under `--privileged`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// Absolute path inside the container.
    pub path: PathBuf,
    /// 'c' or 'b'.
    pub kind: char,
    pub major: u32,
    pub minor: u32,
    /// Permission bits of the host node.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Device-cgroup access, some of "rwm".
    pub access: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Ulimit {
    /// Docker's names: "nofile", "nproc", "core", "memlock", "stack", ...
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// The container's standard streams, as fds owned by the daemon. The child
/// dup2()s them onto 0, 1, 2. With `tty`, `stdout` is the pty's slave side
/// (and stdin/stderr the same fd); the child makes it its controlling tty.
#[derive(Debug, Clone, Copy)]
pub struct StdioSpec {
    /// None: /dev/null.
    pub stdin: Option<RawFd>,
    pub stdout: RawFd,
    pub stderr: RawFd,
    pub tty: bool,
}

#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub rootfs: RootfsSpec,
    /// argv; argv[0] is looked up in the container's PATH (from `env`) when
    /// it has no '/'.
    pub args: Vec<String>,
    /// `KEY=value` entries, PATH already defaulted by the daemon.
    pub env: Vec<String>,
    /// Absolute working directory, created if missing ("/" when empty).
    pub cwd: String,
    /// `User` as given: "", "name", "uid", "name:group", "uid:gid".
    pub user: String,
    /// `GroupAdd`: names or gids.
    pub group_add: Vec<String>,
    pub hostname: String,
    pub domainname: String,
    pub network: NetworkMode,
    /// Host files bind-mounted over /etc/hostname, /etc/hosts and
    /// /etc/resolv.conf (the daemon writes them in the container's dir).
    pub etc_hostname: PathBuf,
    pub etc_hosts: PathBuf,
    pub etc_resolv_conf: PathBuf,
    /// Binds, bind mounts and tmpfs, applied in order after the standard ones.
    pub mounts: Vec<MountSpec>,
    /// Size of /dev/shm in bytes (dockerd's default: 64 MiB).
    pub shm_size: u64,
    /// All capabilities, no masked paths, all devices (the host's /dev
    /// nodes are made in the container's /dev).
    pub privileged: bool,
    /// `--pid`: PID 1 of a new namespace, the host's, or another container's.
    pub pid_ns: NsMode,
    /// `--ipc`: a new IPC namespace and /dev/shm, or the host's or another
    /// container's (namespace and /dev/shm).
    pub ipc_ns: NsMode,
    /// `--device` nodes, made after the user's mounts.
    pub devices: Vec<DeviceNode>,
    /// Names as Docker writes them: "NET_ADMIN" or "CAP_NET_ADMIN", "ALL".
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub ulimits: Vec<Ulimit>,
    /// Namespaced sysctls only (net.*, kernel.shm*, kernel.msg*, kernel.sem,
    /// fs.mqueue.*); the daemon rejects others before launch.
    pub sysctls: BTreeMap<String, String>,
    /// Run a minimal init as PID 1 that starts `args`, reaps zombies and
    /// forwards signals (`--init`).
    pub init: bool,
    /// A private cgroup namespace (`CgroupnsMode` "private").
    pub cgroupns: bool,
    /// What `/sys/fs/cgroup` shows (read-only unless privileged); empty:
    /// nothing is mounted there.
    pub cgroup_view: Vec<CgroupDir>,
    /// `--security-opt seccomp=...` (unconfined when privileged).
    pub seccomp: Seccomp,
    /// `--security-opt no-new-privileges` or the daemon's default.
    pub no_new_privs: bool,
    /// `--userns-remap`: the process runs in a user namespace with this
    /// mapping, its image layers idmapped (None: the host's).
    pub userns: Option<super::userns::IdMap>,
    pub stdio: StdioSpec,
}
