//! The minimal init (`--init`): PID 1 forks the program, forwards
//! SIGTERM/SIGINT/SIGHUP/SIGUSR1/SIGUSR2/SIGQUIT/SIGWINCH to it, reaps every
//! zombie, and exits with the program's status (128+signal if killed).
//! It runs in-process (a fork of the daemon, no exec), with the container's
//! user and capabilities already applied, like docker-init would have.

use super::errors::{LaunchError, Stage};
use nix::sys::signal::{kill, signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::convert::Infallible;
use std::os::fd::RawFd;

const FORWARDED: &[Signal] = &[
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGQUIT,
    Signal::SIGWINCH,
];

/// Fork; the child runs `program` (which execs or returns its error), the
/// parent becomes the init loop and never returns. `err_fd` is the launch
/// error pipe: init closes its copy so that the pipe reports the program's
/// exec, not init's.
pub fn run(
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
    // SAFETY: the child only execs (or reports and exits).
    match unsafe { fork() }.stage("init: fork")? {
        ForkResult::Child => {
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .stage("init: unblock signals")?;
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
            program()
        }
        ForkResult::Parent { child } => {
            let _ = nix::unistd::close(err_fd);
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
