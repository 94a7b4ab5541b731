//! The minimal init (`--init`): PID 1 forks the program, forwards
//! SIGTERM/SIGINT/SIGHUP/SIGUSR1/SIGUSR2/SIGQUIT/SIGWINCH to it, reaps every
//! zombie, and exits with the program's status (128+signal if killed), as
//! tini/docker-init do.
//!
//! It is never a fork of the daemon (whose memory holds every container's
//! config): the container's first process execs a sealed memfd copy of this
//! binary (`binary_fd`) in init mode (`INIT_FLAG`, dispatched by `main`
//! before anything else runs). The memfd is sealed against writes, so the
//! container reaches neither the host's binary file (runc's CVE-2019-5736)
//! nor the daemon's memory through `/proc/1/{exe,mem}`. It is exec()ed
//! before pivot_root and finishes the setup itself (`finish::Finish`).

use super::errors::{LaunchError, Stage};
use super::finish::Finish;
use nix::errno::Errno;
use nix::sys::signal::{kill, signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

/// argv[1] that selects init mode: `init --coracle-init ERRFD TTY -- ARGS...`.
pub const INIT_FLAG: &str = "--coracle-init";

const FORWARDED: &[Signal] = &[
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGQUIT,
    Signal::SIGWINCH,
];

/// The sealed memfd copy of our own executable, made on first use and kept
/// for the daemon's lifetime (close-on-exec: only an exec of it carries it,
/// and the exec closes it).
pub fn binary_fd() -> Result<RawFd, LaunchError> {
    static FD: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(fd) = FD.get() {
        return Ok(fd.as_raw_fd());
    }
    let fd = sealed_copy().map_err(|e| LaunchError::Setup(format!("init binary: {e}")))?;
    Ok(FD.get_or_init(|| fd).as_raw_fd())
}

fn sealed_copy() -> std::io::Result<OwnedFd> {
    let name = c"init";
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: memfd_create with a valid C string; MFD_EXEC (6.3+) keeps it
    // executable under vm.memfd_noexec=1; older kernels refuse the flag.
    let mut raw = unsafe { libc::memfd_create(name.as_ptr(), base | libc::MFD_EXEC) };
    if raw < 0 && Errno::last() == Errno::EINVAL {
        // SAFETY: as above.
        raw = unsafe { libc::memfd_create(name.as_ptr(), base) };
    }
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut file = std::fs::File::from(fd);
    let mut exe = std::fs::File::open(source_path())?;
    // std::io::copy uses copy_file_range/sendfile: no user-space buffer.
    std::io::copy(&mut exe, &mut file)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on our own fd.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(OwnedFd::from(file))
}

/// Our own executable. Under unit tests that is the test harness, which
/// `test_harness_init_mode` below teaches init mode.
fn source_path() -> std::path::PathBuf {
    "/proc/self/exe".into()
}

/// In the container's first process, after every setup step: exec the
/// sealed binary in init mode. `err_fd` (the launch error pipe) is passed
/// on so that the pipe still reports the program's exec, not init's.
pub fn exec_init(
    binary: RawFd,
    err_fd: RawFd,
    tty: bool,
    finish: &Finish,
    args: &[String],
    env: &[String],
) -> Result<Infallible, LaunchError> {
    if let Some(fd) = finish.userns_fd {
        // SAFETY: clearing FD_CLOEXEC on the user namespace fd we hold:
        // the init enters it after pivot_root.
        Errno::result(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) })
            .stage("init: keep user namespace")?;
    }
    let finish = serde_json::to_string(finish)
        .map_err(|e| LaunchError::Setup(format!("init: encode setup: {e}")))?;
    let mut argv = vec![
        "init".to_string(),
        INIT_FLAG.to_string(),
        err_fd.to_string(),
        if tty { "1" } else { "0" }.to_string(),
        finish,
        "--".to_string(),
    ];
    argv.extend(args.iter().cloned());
    let cstr = |v: &[String]| -> Result<Vec<CString>, LaunchError> {
        v.iter()
            .map(|s| {
                CString::new(s.as_bytes())
                    .map_err(|_| LaunchError::Setup("argument contains a NUL byte".into()))
            })
            .collect()
    };
    let argv = cstr(&argv)?;
    let envp = cstr(env)?;
    // SAFETY: clearing FD_CLOEXEC on our own pipe end.
    Errno::result(unsafe { libc::fcntl(err_fd, libc::F_SETFD, 0) })
        .stage("init: keep error pipe")?;
    let mut argp: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argp.push(std::ptr::null());
    let mut envpp: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envpp.push(std::ptr::null());
    // SAFETY: NULL-terminated arrays of live C strings; only returns on error.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            binary,
            c"".as_ptr(),
            argp.as_ptr(),
            envpp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    Err(Errno::last()).stage("exec init")
}

/// `main` in init mode (`args` after argv[0]); never returns.
pub fn main(args: &[String]) -> ! {
    let (err_fd, tty, finish, program) = match args {
        [flag, fd, tty, finish, sep, program @ ..] if flag == INIT_FLAG && sep == "--" => (
            fd.parse::<RawFd>().unwrap_or(-1),
            tty == "1",
            serde_json::from_slice::<Finish>(finish.as_bytes()),
            program,
        ),
        _ => {
            eprintln!("coracle init: bad arguments");
            exit(125)
        }
    };
    if err_fd >= 0 {
        // SAFETY: the program's exec must close our copy of the pipe.
        unsafe {
            libc::fcntl(err_fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
    let finish = match finish {
        Ok(f) => f,
        Err(e) => report(err_fd, &LaunchError::Setup(format!("init: bad setup: {e}"))),
    };
    let env: Vec<String> = std::env::vars_os()
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    // The launcher left us in the container's rootfs, its mounts done.
    let env = match finish.run(std::path::Path::new("."), &env) {
        Ok(env) => env,
        Err(e) => report(err_fd, &e),
    };
    // Not PID 1 under `--pid host`: adopt the program's orphans anyway.
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let err = match run(err_fd, tty, || super::program::exec_program(program, &env)) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    report(err_fd, &err)
}

fn report(err_fd: RawFd, err: &LaunchError) -> ! {
    let bytes = err.encode();
    if err_fd >= 0 {
        // SAFETY: raw write of our own buffer to the inherited pipe.
        unsafe {
            libc::write(err_fd, bytes.as_ptr().cast(), bytes.len());
        }
    } else {
        eprintln!("coracle init: {}", err.message());
    }
    exit(err.exit_code())
}

/// Fork; the child runs `program` (which execs or returns its error), the
/// parent becomes the init loop and never returns. `err_fd` is the launch
/// error pipe: init closes its copy so that the pipe reports the program's
/// exec, not init's.
fn run(
    err_fd: RawFd,
    tty: bool,
    program: impl FnOnce() -> Result<Infallible, LaunchError>,
) -> Result<Infallible, LaunchError> {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(*s);
    }
    set.add(Signal::SIGCHLD);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).stage("init: block signals")?;
    // SAFETY: single-threaded; the child only execs (or reports and exits).
    match unsafe { fork() }.stage("init: fork")? {
        ForkResult::Child => {
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .stage("init: unblock signals")?;
            // Rust's start-up ignores SIGPIPE in init mode; an ignored
            // signal would stay ignored in the program.
            // SAFETY: setting a disposition to SIG_DFL.
            unsafe {
                let _ = signal(Signal::SIGPIPE, SigHandler::SigDfl);
            }
            if tty {
                // Become the terminal's foreground process group.
                // SAFETY: setting a disposition to SIG_IGN/SIG_DFL.
                unsafe {
                    let _ = signal(Signal::SIGTTOU, SigHandler::SigIgn);
                }
                let me = nix::unistd::getpid();
                let _ = nix::unistd::setpgid(me, me);
                // SAFETY: fd 0 is the pty.
                let _ = unsafe { libc::tcsetpgrp(0, me.as_raw()) };
                // SAFETY: as above.
                unsafe {
                    let _ = signal(Signal::SIGTTOU, SigHandler::SigDfl);
                }
            }
            match program() {
                Ok(never) => match never {},
                Err(e) => report(err_fd, &e),
            }
        }
        ForkResult::Parent { child } => {
            if err_fd >= 0 {
                let _ = nix::unistd::close(err_fd);
            }
            supervise(child, &set)
        }
    }
}

fn supervise(child: Pid, set: &SigSet) -> ! {
    loop {
        let sig = match set.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            let _ = kill(child, sig);
            continue;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => exit(code),
                Ok(WaitStatus::Signaled(pid, s, _)) if pid == child => exit(128 + s as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit never returns; nothing to flush in init.
    unsafe { libc::_exit(code) }
}

/// Unit tests launch `--init` containers from the test harness itself:
/// libtest owns its `main`, so init mode is dispatched from an ELF
/// constructor (an `.init_array` entry, run before libtest sees the
/// arguments; they are read from /proc/self/cmdline, as musl passes a
/// constructor none). This keeps the tests independent of where cargo put
/// the daemon binary, or whether it built it at all.
#[cfg(test)]
mod test_harness_init_mode {
    extern "C" fn dispatch() {
        let Ok(raw) = std::fs::read("/proc/self/cmdline") else {
            return;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .skip(1)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.first().map(String::as_str) == Some(super::INIT_FLAG) {
            // cmdline ends with a NUL: drop the empty last piece.
            let end = args.len() - usize::from(args.last().is_some_and(String::is_empty));
            super::main(&args[..end]);
        }
    }

    #[used]
    #[link_section = ".init_array"]
    static DISPATCH: extern "C" fn() = dispatch;
}
