//! `docker exec`: a new process inside a running container. The parent
//! setns()es into the container's PID namespace just for the fork, so the
//! process is the daemon's own child *and* a member of the container's PID
//! namespace; the child joins ipc, uts, net and mnt itself (setns(mnt)
//! needs a single-threaded caller) and lands in the container's root: after
//! pivot_root the namespace's root *is* the container rootfs, so setns(mnt)
//! already gives the chroot `/proc/<pid>/root` would. Until its execve the
//! process is a non-dumpable copy of the daemon (see `launch::spawn`).

use super::caps;
use super::errors::{LaunchError, Stage};
use super::launch::{join_cgroup, open_ns, spawn_pending, PendingLaunch, PidNs};
use super::program::exec_program;
use super::rlimits;
use super::seccomp::{self, Confine, Seccomp};
use super::spec::{StdioSpec, Ulimit};
use super::user;
use nix::sched::{setns, CloneFlags};
use nix::unistd::Pid;
use std::convert::Infallible;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// What `docker exec` asks for, resolved by the daemon against the
/// container's config (user defaulted to the container's, env merged).
#[derive(Debug, Clone)]
pub struct ExecSpec {
    pub args: Vec<String>,
    /// Full environment (container env + exec's Env), PATH included.
    pub env: Vec<String>,
    /// Working dir; "" = the container's.
    pub cwd: String,
    pub user: String,
    pub group_add: Vec<String>,
    /// Exec's `Privileged` or the container's.
    pub privileged: bool,
    /// The container's CapAdd / CapDrop.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub ulimits: Vec<Ulimit>,
    /// The container's seccomp setting and no_new_privs (runc gives an
    /// exec the container's).
    pub seccomp: Seccomp,
    pub no_new_privs: bool,
    pub stdio: StdioSpec,
    /// The container's cgroup directories on the host: the child joins
    /// them itself, first (the daemon never writes its `cgroup.procs`).
    pub cgroup_dirs: Vec<PathBuf>,
}

const NAMESPACES: &[(&str, CloneFlags)] = &[
    // First: joined while /proc still shows the host's view.
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// Start `spec` inside the container whose first process is `init_pid`
/// and wait for its report (healthcheck probes, tests).
pub fn exec_in(init_pid: Pid, spec: &ExecSpec) -> Result<Pid, LaunchError> {
    super::launch::wait_report(exec_in_pending(init_pid, spec)?)
}

/// `exec_in` up to the release of the child: the report is the caller's
/// to watch (`engine/launching.rs`).
pub fn exec_in_pending(init_pid: Pid, spec: &ExecSpec) -> Result<PendingLaunch, LaunchError> {
    let last = caps::last_cap();
    let caps = caps::resolve(spec.privileged, &spec.cap_add, &spec.cap_drop, last)
        .map_err(LaunchError::Setup)?;
    if spec.args.is_empty() {
        return Err(LaunchError::Setup("no command specified".into()));
    }
    // The filter is the container's: built for its capabilities, not
    // for those a privileged exec gets.
    let ctr_caps =
        caps::resolve(false, &spec.cap_add, &spec.cap_drop, last).map_err(LaunchError::Setup)?;
    let confine = Confine::new(
        seccomp::filter_for(&spec.seccomp, ctr_caps)?,
        spec.no_new_privs,
    );
    let pid_ns = open_ns(init_pid, "pid")?;
    spawn_pending(
        PidNs::Join(pid_ns),
        &spec.stdio,
        &[],
        // The child joins the container's cgroup itself (`exec_main`).
        &mut |_| Ok(()),
        Box::new(move |_err_fd| exec_main(init_pid, spec, caps, last, &confine)),
    )
}

fn exec_main(
    init_pid: Pid,
    spec: &ExecSpec,
    caps: u64,
    last: u32,
    confine: &Confine,
) -> Result<Infallible, LaunchError> {
    // Into the container's cgroup first, by path on the host's mounts (as
    // a container's first process does): the daemon's loop never waits on
    // the kernel's cgroup lock for it.
    for dir in &spec.cgroup_dirs {
        join_cgroup(dir)?;
    }
    // All opened first (the child closed every inherited fd): once in the
    // container's mount namespace, host PIDs under /proc mean nothing.
    let mut fds = Vec::new();
    for (name, flag) in NAMESPACES {
        fds.push((*name, *flag, open_ns(init_pid, name)?));
    }
    let user_ns = super::userns::of_process(init_pid)?;
    for (name, flag, fd) in &fds {
        setns(fd, *flag).stage(format!("join {name} namespace"))?;
    }
    drop(fds);
    rlimits::apply(&spec.ulimits)?;
    // A remapped container's: last, as its first process entered it (its
    // other namespaces belong to the host's user namespace).
    if let Some(ns) = &user_ns {
        super::userns::enter(ns.as_raw_fd())?;
    }
    let u = user::resolve_in_container(&spec.user, &spec.group_add)?;
    let env = user::with_home(&spec.env, &u);
    let cwd = if spec.cwd.is_empty() {
        "/"
    } else {
        spec.cwd.as_str()
    };
    nix::unistd::chdir(cwd).stage(format!("chdir {cwd}"))?;
    confine.become_user(caps, last, &u)?;
    exec_program(&spec.args, &env)
}
