//! The standard streams of a container or exec process: three pipes, or a
//! pty when `Tty` is set. Returns the child's ends (for the launcher, closed
//! by us once it has started) and the daemon's ends (non-blocking, for the
//! output pump).

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};

use crate::runtime::spec::StdioSpec;
use crate::stdio::output::{set_window_size, Stdio};

pub struct ChildEnds {
    pub spec: StdioSpec,
    /// Keep alive until the launcher returns, then drop.
    pub fds: Vec<OwnedFd>,
}

fn nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

fn cloexec(fd: &OwnedFd) -> std::io::Result<()> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(())
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC)?)
}

/// `console`: initial (height, width) of a TTY.
pub fn make(
    tty: bool,
    open_stdin: bool,
    console: Option<(u16, u16)>,
) -> std::io::Result<(ChildEnds, Stdio)> {
    if tty {
        let pty = nix::pty::openpty(None, None)?;
        cloexec(&pty.master)?;
        cloexec(&pty.slave)?;
        if let Some((h, w)) = console.filter(|(h, w)| *h > 0 && *w > 0) {
            set_window_size(pty.master.as_raw_fd(), h, w)?;
        }
        let input = if open_stdin {
            let dup = pty.master.try_clone()?;
            nonblocking(&dup)?;
            Some(File::from(dup))
        } else {
            None
        };
        nonblocking(&pty.master)?;
        let slave = pty.slave.as_raw_fd();
        let spec = StdioSpec {
            stdin: Some(slave),
            stdout: slave,
            stderr: slave,
            tty: true,
        };
        let parent = Stdio {
            stdout: File::from(pty.master),
            stderr: None,
            stdin: input,
            tty: true,
        };
        return Ok((
            ChildEnds {
                spec,
                fds: vec![pty.slave],
            },
            parent,
        ));
    }
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let stdin = if open_stdin { Some(pipe()?) } else { None };
    for fd in [&out_r, &err_r] {
        nonblocking(fd)?;
    }
    let spec = StdioSpec {
        stdin: stdin.as_ref().map(|(r, _)| r.as_raw_fd()),
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
        tty: false,
    };
    let mut fds = vec![out_w, err_w];
    let stdin_w = match stdin {
        Some((r, w)) => {
            nonblocking(&w)?;
            fds.push(r);
            Some(File::from(w))
        }
        None => None,
    };
    let parent = Stdio {
        stdout: File::from(out_r),
        stderr: Some(File::from(err_r)),
        stdin: stdin_w,
        tty: false,
    };
    Ok((ChildEnds { spec, fds }, parent))
}
