//! The container's own network namespace: bring `lo` up (SIOCSIFFLAGS).

use super::errors::{LaunchError, Stage};
use nix::errno::Errno;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

// ioctl's request argument is `unsigned long` in glibc and `int` in musl: `libc::Ioctl`.
const SIOCGIFFLAGS: libc::Ioctl = 0x8913;
const SIOCSIFFLAGS: libc::Ioctl = 0x8914;

/// Set IFF_UP on the loopback device of the calling process's netns.
pub fn loopback_up() -> Result<(), LaunchError> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    let sock = Errno::result(fd).stage("network: socket")?;
    // SAFETY: `sock` is a fresh fd we own.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    // SAFETY: ifreq is plain old data; zeroed is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: ioctls with a valid ifreq.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCGIFFLAGS, &mut ifr as *mut libc::ifreq) };
    Errno::result(r).stage("network: get lo flags")?;
    // SAFETY: ifru_flags is the member SIOCGIFFLAGS filled in.
    unsafe {
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: as above.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCSIFFLAGS, &ifr as *const libc::ifreq) };
    Errno::result(r).stage("network: set lo up")?;
    Ok(())
}
