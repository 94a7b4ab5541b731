//! The NETLINK_NETFILTER socket a batch goes through. The kernel handles a
//! batch inside `sendmsg` and queues every ack before it returns, so the acks
//! are read with `MSG_DONTWAIT` until the queue is empty: nothing waits.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::batch::Batch;
use super::msg::NLMSG_HDRLEN;
use super::NftError;

const NETLINK_NETFILTER: i32 = 12;
const NLMSG_ERROR: u16 = 2;

fn last_errno() -> io::Error {
    io::Error::last_os_error()
}

/// A bound netfilter netlink socket.
pub struct Socket {
    fd: OwnedFd,
}

impl Socket {
    /// Open and bind; a kernel without nfnetlink answers `EPROTONOSUPPORT`.
    pub fn open() -> Result<Socket, NftError> {
        // SAFETY: socket(2) with constant arguments; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            let e = last_errno();
            return Err(match e.raw_os_error() {
                Some(libc::EPROTONOSUPPORT) | Some(libc::EAFNOSUPPORT) => {
                    NftError::Unavailable(format!("no nfnetlink in this kernel: {e}"))
                }
                _ => NftError::Io(format!("netfilter netlink socket: {e}")),
            });
        }
        // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: a zeroed sockaddr_nl is valid (family set below, pid 0 = let
        // the kernel choose).
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: sa is a valid sockaddr_nl of the given length.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc < 0 {
            return Err(NftError::Io(format!(
                "bind netfilter netlink: {}",
                last_errno()
            )));
        }
        Ok(Socket { fd })
    }

    fn force_buf(&self, opt: i32, size: usize) {
        let v = size.min(i32::MAX as usize) as i32;
        // SAFETY: setsockopt with a valid int option value; failure only
        // leaves the default size, which the send or recv then reports.
        unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &v as *const i32 as *const libc::c_void,
                std::mem::size_of::<i32>() as u32,
            );
        }
    }

    /// Send a batch and check that the kernel acked every message.
    pub fn commit(&self, batch: &Batch) -> Result<(), NftError> {
        let bytes = batch.bytes();
        // Big port maps: the whole batch must fit one sendmsg, and each ack
        // costs the receive queue about a kilobyte.
        if bytes.len() > 128 * 1024 {
            self.force_buf(libc::SO_SNDBUFFORCE, bytes.len() * 2);
        }
        self.force_buf(libc::SO_RCVBUFFORCE, 64 * 1024 + batch.len() * 1024);
        // SAFETY: a zeroed sockaddr_nl addresses the kernel (pid 0).
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: bytes is a live buffer of the given length; sa is valid.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                bytes.as_ptr() as *const libc::c_void,
                bytes.len(),
                0,
                &sa as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if sent < 0 {
            return Err(NftError::Io(format!(
                "send nftables batch ({} bytes): {}",
                bytes.len(),
                last_errno()
            )));
        }
        self.read_acks(batch)
    }

    fn read_acks(&self, batch: &Batch) -> Result<(), NftError> {
        let mut acked = std::collections::HashSet::new();
        let mut first_err: Option<NftError> = None;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: buf is a live, writable buffer of its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = last_errno();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => break,
                    Some(libc::EINTR) => continue,
                    _ => return Err(NftError::Io(format!("read nftables acks: {e}"))),
                }
            }
            if n == 0 {
                break;
            }
            for (seq, errno) in parse_acks(&buf[..n as usize]) {
                if errno == 0 {
                    acked.insert(seq);
                } else if first_err.is_none() {
                    first_err = Some(classify(batch, seq, errno));
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let missing = batch.seqs().filter(|s| !acked.contains(s)).count();
        if missing > 0 {
            return Err(NftError::Io(format!(
                "the kernel did not acknowledge {missing} of {} nftables messages",
                batch.len()
            )));
        }
        Ok(())
    }
}

/// (sequence number, errno) of every `NLMSG_ERROR` in a datagram; 0 is an ack.
pub fn parse_acks(mut d: &[u8]) -> Vec<(u32, i32)> {
    let mut out = Vec::new();
    while d.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([d[0], d[1], d[2], d[3]]) as usize;
        let kind = u16::from_ne_bytes([d[4], d[5]]);
        if len < NLMSG_HDRLEN || len > d.len() {
            break;
        }
        // struct nlmsgerr: int error; struct nlmsghdr msg (seq at +8).
        if kind == NLMSG_ERROR && len >= NLMSG_HDRLEN + 4 + NLMSG_HDRLEN {
            let p = &d[NLMSG_HDRLEN..];
            let err = i32::from_ne_bytes([p[0], p[1], p[2], p[3]]);
            let seq = u32::from_ne_bytes([p[12], p[13], p[14], p[15]]);
            out.push((seq, -err));
        }
        let step = (len + 3) & !3;
        if step >= d.len() {
            break;
        }
        d = &d[step..];
    }
    out
}

/// A kernel refusal, or nf_tables missing: the batch's begin (seq 0) or its
/// first message (the table) refused as unknown.
pub(super) fn classify(batch: &Batch, seq: u32, errno: i32) -> NftError {
    let err = io::Error::from_raw_os_error(errno);
    let missing = matches!(
        errno,
        libc::ENOENT | libc::EOPNOTSUPP | libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT
    );
    if missing && (seq == 0 || seq == 1) {
        return NftError::Unavailable(format!("nf_tables is not available: {err}"));
    }
    NftError::Kernel {
        errno,
        what: batch.describe(seq).unwrap_or("nftables batch").to_string(),
    }
}
