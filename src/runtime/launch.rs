//! Starting a container process: fork into a new PID namespace, sync and
//! error pipes, then the child's stages (namespaces, rootfs, pivot_root,
//! hardening, rlimits, user, capabilities, exec).
//!
//! Why fork() + unshare() instead of a raw clone(): glibc's fork() runs its
//! atfork handlers (malloc locks, cached TID), so the child may allocate
//! even when the caller has threads (the test binary does). The parent
//! thread unshare(CLONE_NEWPID)s so that its next child is PID 1 of a new
//! PID namespace, forks, and setns()es straight back to its own; the child
//! unshares the other namespaces itself. The result is what
//! clone(NEWNS|NEWPID|NEWUTS|NEWIPC[|NEWNET]|SIGCHLD) gives: the container's
//! first process is the daemon's own child and PID 1 of its namespace.
//!
//! Protocol: the child resets signals, takes its stdio, closes every other
//! inherited fd and blocks on the sync pipe; the parent calls `join(pid)`
//! (cgroups) and releases it. The child reports a failing stage on the
//! O_CLOEXEC error pipe and exits; a successful execve closes the pipe.

use super::caps;
use super::devices;
use super::errors::{setup, LaunchError, Stage};
use super::finish::Finish;
use super::init;
use super::mounts;
use super::netns;
pub(crate) use super::report::wait_report;
pub use super::report::{deadline_error, decode_report, PendingLaunch};
use super::seccomp::{self, Confine};
use super::spec::{LaunchSpec, NetworkMode, NsMode, StdioSpec};
use super::user;
use super::userns::{self, IdMap};
use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};
use std::convert::Infallible;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

/// Start the container's process. `join` runs in the parent with the
/// child's host PID before the child may continue (cgroup placement).
/// Returns once the program was exec()ed, or the first failure (tests: the
/// daemon uses `launch_pending` and watches the report on its loop).
#[cfg(test)]
pub fn launch(
    spec: &LaunchSpec,
    join: &mut dyn FnMut(Pid) -> std::io::Result<()>,
) -> Result<Pid, LaunchError> {
    wait_report(launch_pending(spec, join)?)
}

/// Start the container's process and return once the child is released:
/// its setup reports later on `PendingLaunch::report`.
pub fn launch_pending(
    spec: &LaunchSpec,
    join: &mut dyn FnMut(Pid) -> std::io::Result<()>,
) -> Result<PendingLaunch, LaunchError> {
    launch_pending_synced(spec, None, join)
}

/// The daemon's start record, written to `temp` but not synced: the child
/// fdatasyncs it through `fd` and renames it over `target` first thing, so
/// the fsync is not the daemon loop's and the record is durable before the
/// process joins its cgroup (recovery then knows it may have run).
pub struct StartRecord<'a> {
    pub fd: RawFd,
    pub temp: &'a Path,
    pub target: &'a Path,
}

/// `launch_pending`, the child first making `record` durable.
pub fn launch_pending_synced(
    spec: &LaunchSpec,
    record: Option<StartRecord>,
    join: &mut dyn FnMut(Pid) -> std::io::Result<()>,
) -> Result<PendingLaunch, LaunchError> {
    let last = caps::last_cap();
    let caps = caps::resolve(spec.privileged, &spec.cap_add, &spec.cap_drop, last)
        .map_err(LaunchError::Setup)?;
    if spec.args.is_empty() {
        return setup("no command specified");
    }
    let init_bin = if spec.init {
        Some(init::binary_fd()?)
    } else {
        None
    };
    let pid_ns = match &spec.pid_ns {
        NsMode::Private => PidNs::New,
        NsMode::Host => PidNs::Host,
        NsMode::Join(pid) => PidNs::Join(open_ns(*pid, "pid")?),
    };
    let confine = Confine::new(seccomp::filter_for(&spec.seccomp, caps)?, spec.no_new_privs);
    let mut keep: Vec<RawFd> = init_bin.into_iter().collect();
    if let NetworkMode::Join(fd) = spec.network {
        keep.push(fd);
    }
    // Made before the fork, dropped (in the daemon) once it is done.
    let userns = match &spec.userns {
        Some(map) => Some((userns::make_userns(map)?, map)),
        None => None,
    };
    let remap = userns.as_ref().map(|(fd, map)| (fd.as_raw_fd(), *map));
    keep.extend(remap.map(|(fd, _)| fd));
    keep.extend(record.as_ref().map(|r| r.fd));
    let body: ChildBody = Box::new(|err_fd| {
        if let Some(r) = &record {
            // Before the cgroup join: the write is the daemon's, not
            // charged to (or throttled by) the container's I/O limits.
            // SAFETY: the daemon keeps this fd open until the fork is done;
            // the child's copy is its own and closes at its execve (CLOEXEC).
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(r.fd) };
            nix::unistd::fdatasync(fd).stage("sync the start record")?;
            // Gone: the daemon superseded it with a newer record meanwhile.
            if let Err(e) = std::fs::rename(r.temp, r.target) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(e).stage("record the start");
                }
            }
        }
        container_main(spec, caps, last, &confine, err_fd, init_bin, remap)
    });
    spawn_pending(pid_ns, &spec.stdio, &keep, join, body)
}

/// Which PID namespace the child is born in.
pub(crate) enum PidNs {
    /// A fresh one: the child is its PID 1.
    New,
    /// An existing one (exec into a running container, `--pid container:`).
    Join(OwnedFd),
    /// The daemon's own (`--pid host`).
    Host,
}

/// `/proc/<pid>/ns/<name>` of a running process, opened in the daemon.
pub(crate) fn open_ns(pid: Pid, name: &str) -> Result<OwnedFd, LaunchError> {
    open(
        format!("/proc/{pid}/ns/{name}").as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .stage(format!("open {name} namespace of {pid}"))
}

/// Fork a child in the requested PID namespace and run `body` in it after
/// the sync handshake; see the module doc for the protocol. `keep`: fds
/// the child keeps open besides its stdio and the pipes.
///
/// The child is born non-dumpable and stays so until its execve: until then
/// it is a copy of the daemon's memory, and it may already be visible in a
/// running container's PID namespace, whose root must not read its
/// `/proc/PID/mem` or reach the host binary through `/proc/PID/exe`.
#[cfg(test)]
pub(crate) fn spawn(
    pid_ns: PidNs,
    stdio: &StdioSpec,
    keep: &[RawFd],
    join: &mut dyn FnMut(Pid) -> std::io::Result<()>,
    body: impl FnOnce(RawFd) -> Result<Infallible, LaunchError>,
) -> Result<Pid, LaunchError> {
    wait_report(spawn_pending(pid_ns, stdio, keep, join, Box::new(body))?)
}

/// What the child runs after the handshake (the container's or the exec's
/// setup). Boxed: one copy of the fork and child setup serves every caller.
pub(crate) type ChildBody<'a> = Box<dyn FnOnce(RawFd) -> Result<Infallible, LaunchError> + 'a>;

/// `spawn` up to the release of the child: the report is left to the caller.
pub(crate) fn spawn_pending(
    pid_ns: PidNs,
    stdio: &StdioSpec,
    keep: &[RawFd],
    join: &mut dyn FnMut(Pid) -> std::io::Result<()>,
    body: ChildBody<'_>,
) -> Result<PendingLaunch, LaunchError> {
    let (sync_r, sync_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).stage("sync pipe")?;
    let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).stage("error pipe")?;
    let own_ns = open(
        "/proc/thread-self/ns/pid",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .stage("open own pid namespace")?;
    match &pid_ns {
        PidNs::New => unshare(CloneFlags::CLONE_NEWPID).stage("unshare pid namespace")?,
        PidNs::Join(fd) => setns(fd, CloneFlags::CLONE_NEWPID).stage("join pid namespace")?,
        PidNs::Host => {}
    }
    let dumpable = NonDumpable::enter();
    // SAFETY: glibc fork; the child runs `child_entry` and never returns.
    let forked = unsafe { fork() };
    if !matches!(forked, Ok(ForkResult::Child)) {
        drop(dumpable);
    }
    let restored = setns(&own_ns, CloneFlags::CLONE_NEWPID);
    let child = match forked {
        Ok(ForkResult::Child) => {
            drop(sync_w);
            drop(err_r);
            let mut keep = keep.to_vec();
            keep.extend([sync_r.as_raw_fd(), err_w.as_raw_fd()]);
            child_entry(sync_r.as_raw_fd(), err_w.as_raw_fd(), &keep, stdio, body)
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => {
            restored.stage("restore pid namespace")?;
            return Err(e).stage("fork");
        }
    };
    drop(sync_r);
    drop(err_w);
    if let Err(e) = restored {
        reap(child, true);
        return Err(e).stage("restore pid namespace");
    }
    if let Err(e) = join(child) {
        reap(child, true);
        // A child that failed before the handshake explains itself better.
        return Err(LaunchError::decode(&read_all(&err_r))
            .unwrap_or(LaunchError::Setup(format!("join: {e}"))));
    }
    // The child may already be gone (EPIPE); its error pipe tells why.
    let _ = nix::unistd::write(&sync_w, b"G");
    drop(sync_w);
    Ok(PendingLaunch {
        pid: child,
        report: err_r,
    })
}

/// The daemon made non-dumpable for the duration of a fork, so the child
/// is non-dumpable from its first instruction (execve makes the program
/// dumpable again). Dropping it restores the daemon's setting.
struct NonDumpable(libc::c_int);

impl NonDumpable {
    fn enter() -> NonDumpable {
        // SAFETY: prctl with integer arguments.
        let before = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
        // SAFETY: as above.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        NonDumpable(before.max(0))
    }
}

impl Drop for NonDumpable {
    fn drop(&mut self) {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, self.0 as libc::c_ulong, 0, 0, 0) };
    }
}

pub(crate) fn reap(pid: Pid, kill_first: bool) {
    if kill_first {
        let _ = kill(pid, Signal::SIGKILL);
    }
    while let Err(Errno::EINTR) = waitpid(pid, None) {}
}

fn read_all(fd: &OwnedFd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        }
        if out.len() > 64 * 1024 {
            break;
        }
    }
    out
}

/// The child side of `spawn`: never returns. A panic is reported like any
/// other failure and ends the child (it must never unwind into the
/// caller's frames, which belong to the parent's logic): the panic hook
/// reports it and `_exit`s before any unwinding starts, so nothing here
/// needs to catch one. The shipped binary (`-Cpanic=immediate-abort`,
/// scripts/build-static.sh) runs no hook: a panic there traps at once, and
/// the child dies by SIGILL with no report (docs/RELEASING.md).
fn child_entry(
    sync_r: RawFd,
    err_w: RawFd,
    keep: &[RawFd],
    stdio: &StdioSpec,
    body: ChildBody<'_>,
) -> ! {
    // Report from the hook and _exit there: `panic = "abort"` builds run it
    // before aborting, unwinding builds before the unwind starts.
    std::panic::set_hook(Box::new(move |info| {
        let bytes = LaunchError::Setup(format!("container setup panicked: {info}")).encode();
        // SAFETY: raw write of our own buffer to our own fd, then _exit.
        unsafe {
            libc::write(err_w, bytes.as_ptr().cast(), bytes.len());
            libc::_exit(128)
        }
    }));
    let run = || -> Result<Infallible, LaunchError> {
        reset_signals();
        take_stdio(stdio)?;
        close_fds(keep)?;
        wait_sync(sync_r)?;
        body(err_w)
    };
    let err = match run() {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let bytes = err.encode();
    // SAFETY: raw write of our own buffer to our own fd, then _exit.
    unsafe {
        libc::write(err_w, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(err.exit_code())
    }
}

/// Default dispositions and an empty mask (the daemon blocks signals for
/// its signalfd and ignores SIGPIPE).
fn reset_signals() {
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: resetting a disposition; invalid numbers just fail.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // SAFETY: umask cannot fail. Exact modes during setup; 022 before exec.
    unsafe {
        libc::umask(0);
    }
}

/// dup the daemon's fds onto 0, 1, 2 (via fds ≥ 3, so overlaps are safe),
/// start a new session, and with a tty make it the controlling terminal.
fn take_stdio(s: &StdioSpec) -> Result<(), LaunchError> {
    let stdin = match s.stdin {
        Some(fd) => fd,
        None => open("/dev/null", OFlag::O_RDWR, Mode::empty())
            .stage("open /dev/null")?
            .into_raw_fd_keep(),
    };
    let mut tmp = [0; 3];
    for (i, fd) in [stdin, s.stdout, s.stderr].into_iter().enumerate() {
        // SAFETY: fcntl on a caller-provided fd.
        let r = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        tmp[i] = Errno::result(r).stage(format!("dup stdio fd {fd}"))?;
    }
    for (i, fd) in tmp.iter().enumerate() {
        // SAFETY: dup2 onto 0..2.
        let r = unsafe { libc::dup2(*fd, i as RawFd) };
        Errno::result(r).stage("dup2 stdio")?;
    }
    nix::unistd::setsid().stage("setsid")?;
    if s.tty {
        // SAFETY: fd 0 is the pty slave.
        let r = unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
        Errno::result(r).stage("set controlling terminal")?;
    }
    Ok(())
}

trait KeepFd {
    fn into_raw_fd_keep(self) -> RawFd;
}
impl KeepFd for OwnedFd {
    fn into_raw_fd_keep(self) -> RawFd {
        std::os::fd::IntoRawFd::into_raw_fd(self)
    }
}

/// Close every fd ≥ 3 except `keep` (close_range; /proc/self/fd fallback).
fn close_fds(keep: &[RawFd]) -> Result<(), LaunchError> {
    let mut keep: Vec<u32> = keep.iter().map(|k| *k as u32).collect();
    crate::sort::sort(&mut keep);
    let mut from = 3u32;
    let mut ranges = Vec::new();
    for k in keep.iter().copied().filter(|k| *k >= 3) {
        if k > from {
            ranges.push((from, k - 1));
        }
        from = k + 1;
    }
    ranges.push((from, u32::MAX));
    for (lo, hi) in ranges {
        // SAFETY: close_range only closes fds.
        let r = unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0u32) };
        if r != 0 {
            return close_fds_slow(&keep);
        }
    }
    Ok(())
}

fn close_fds_slow(keep: &[u32]) -> Result<(), LaunchError> {
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .stage("list /proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds {
        if fd >= 3 && !keep.contains(&(fd as u32)) {
            // SAFETY: closing an fd; the dir fd of read_dir is already gone.
            unsafe {
                libc::close(fd);
            }
        }
    }
    Ok(())
}

fn wait_sync(fd: RawFd) -> Result<(), LaunchError> {
    let mut b = [0u8; 1];
    loop {
        // SAFETY: read into a local buffer.
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) };
        if n == 1 {
            break;
        }
        if n < 0 && Errno::last() == Errno::EINTR {
            continue;
        }
        return setup("launch aborted by the daemon");
    }
    // SAFETY: our own fd.
    unsafe {
        libc::close(fd);
    }
    Ok(())
}

/// Everything the container's first process does after the handshake.
fn container_main(
    spec: &LaunchSpec,
    caps: u64,
    last: u32,
    confine: &Confine,
    err_fd: RawFd,
    init_bin: Option<RawFd>,
    remap: Option<(RawFd, &IdMap)>,
) -> Result<Infallible, LaunchError> {
    // Into the container's cgroup first (before the cgroup namespace, which
    // takes it as its root): the process moves itself, so the daemon's
    // loop does not wait on the move (by PID it waited up to tens of ms for
    // the kernel's cgroup lock on a busy host).
    for d in &spec.cgroup_view {
        join_cgroup(&d.dir)?;
    }
    let mut ns = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS;
    if spec.network == NetworkMode::None {
        ns |= CloneFlags::CLONE_NEWNET;
    }
    // The parent placed us in our cgroup before the handshake: it becomes
    // the namespace's root.
    if spec.cgroupns {
        ns |= CloneFlags::CLONE_NEWCGROUP;
    }
    match spec.ipc_ns {
        NsMode::Private => ns |= CloneFlags::CLONE_NEWIPC,
        NsMode::Host => {}
        NsMode::Join(pid) => {
            setns(open_ns(pid, "ipc")?, CloneFlags::CLONE_NEWIPC).stage("join ipc namespace")?
        }
    }
    if let NetworkMode::Join(fd) = spec.network {
        // SAFETY: the daemon keeps this fd open until the launch is over.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        setns(fd, CloneFlags::CLONE_NEWNET).stage("join network namespace")?;
    }
    unshare(ns).stage("unshare namespaces")?;
    if spec.network == NetworkMode::None {
        netns::loopback_up()?;
    }
    if !spec.hostname.is_empty() {
        nix::unistd::sethostname(&spec.hostname).stage("sethostname")?;
    }
    if !spec.domainname.is_empty() {
        let name = &spec.domainname;
        // SAFETY: pointer and length of a live string.
        let r = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
        Errno::result(r).stage("setdomainname")?;
    }

    mounts::make_rslave()?;
    match remap {
        None => super::rootfs::mount_rootfs(&spec.rootfs)?,
        Some((fd, map)) => {
            super::rootfs::mount_rootfs(&userns::idmapped_rootfs(&spec.rootfs, fd, map)?)?;
            let etc = [&spec.etc_hostname, &spec.etc_hosts, &spec.etc_resolv_conf];
            userns::give_to_root(&etc, map)?;
            userns::act_as_remapped_root(map)?;
        }
    }
    let root = spec.rootfs.merged_dir.as_path();
    mounts::standard_mounts(spec, root)?;
    mounts::user_mounts(&spec.mounts, root)?;
    devices::make_nodes(root, &spec.devices)?;
    if spec.privileged {
        devices::make_nodes(root, &devices::host_devices())?;
    }
    let mut fin = Finish::of(spec, caps, last, confine.clone());
    fin.userns_fd = remap.map(|(fd, _)| fd);
    fin.userns_root = remap.map(|(_, m)| (m.root_uid(), m.root_gid()));
    match init_bin {
        None => {
            let env = fin.run(root, &spec.env)?;
            super::program::exec_program(&spec.args, &env)
        }
        Some(bin) => {
            nix::unistd::chdir(root).stage("chdir to rootfs")?;
            init::exec_init(bin, err_fd, spec.stdio.tty, &fin, &spec.args, &spec.env)
        }
    }
}

/// Move the calling (single-threaded) process into cgroup `dir`.
pub(crate) fn join_cgroup(dir: &Path) -> Result<(), LaunchError> {
    let procs = dir.join("cgroup.procs");
    let fd = open(&procs, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
        .stage(format!("join cgroup {}", dir.display()))?;
    nix::unistd::write(&fd, b"0")
        .map(drop)
        .stage(format!("join cgroup {}", dir.display()))
}

/// dockerd creates a missing working dir as root, mode 0755.
pub(crate) fn make_cwd(cwd: &str) -> Result<(), LaunchError> {
    if !cwd.starts_with('/') {
        return setup(format!(
            "the working directory '{cwd}' is invalid, it needs to be an absolute path"
        ));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(cwd)
        .stage(format!("mkdir {cwd}"))
}

/// Bounding set, groups/gid/uid, then effective/permitted; umask 022.
pub(crate) fn become_user(caps: u64, last: u32, u: &user::ExecUser) -> Result<(), LaunchError> {
    caps::drop_bounding(caps, last)?;
    user::switch(u)?;
    caps::apply_after_setuid(caps, u.uid)?;
    // SAFETY: umask cannot fail.
    unsafe {
        libc::umask(0o022);
    }
    Ok(())
}
