//! Putting a compiled filter on the container's process, in runc's order
//! relative to dropping privileges.

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use crate::runtime::errors::{LaunchError, Stage};
use crate::runtime::launch::become_user;
use crate::runtime::user::ExecUser;

/// The seccomp filter (compiled in the daemon) and no_new_privs. The
/// program is kept packed (code << 48 | jt << 40 | jf << 32 | k) so that
/// `--init`, which finishes the setup after an exec, gets it in its argv.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Confine {
    pub filter: Option<Vec<u64>>,
    pub no_new_privs: bool,
}

impl Confine {
    pub fn new(filter: Option<Vec<libc::sock_filter>>, no_new_privs: bool) -> Confine {
        let pack = |i: &libc::sock_filter| {
            u64::from(i.code) << 48 | u64::from(i.jt) << 40 | u64::from(i.jf) << 32 | u64::from(i.k)
        };
        Confine {
            filter: filter.map(|f| f.iter().map(pack).collect()),
            no_new_privs,
        }
    }

    /// `become_user` wrapped as runc orders it: without no_new_privs the
    /// filter goes in first, while CAP_SYS_ADMIN is still held; with it,
    /// no_new_privs and the filter come last, just before the exec.
    pub fn become_user(&self, caps: u64, last: u32, u: &ExecUser) -> Result<(), LaunchError> {
        if !self.no_new_privs {
            if let Some(f) = &self.filter {
                install(f)?;
            }
        }
        become_user(caps, last, u)?;
        if self.no_new_privs {
            set_no_new_privs()?;
            if let Some(f) = &self.filter {
                install(f)?;
            }
        }
        Ok(())
    }
}

/// Whether the kernel has seccomp filters (CONFIG_SECCOMP_FILTER), probed
/// as dockerd does: setting filter mode with a null program answers EFAULT
/// where filters exist, EINVAL where they do not.
pub fn supported() -> bool {
    static S: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *S.get_or_init(|| {
        // SAFETY: PR_SET_SECCOMP with a null program pointer only probes:
        // the kernel fails with EFAULT before installing anything.
        let r = unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                std::ptr::null::<libc::sock_fprog>(),
                0,
                0,
            )
        };
        r == -1 && Errno::last() == Errno::EFAULT
    })
}

/// `PR_SET_NO_NEW_PRIVS`: execve no longer grants privileges (setuid
/// bits, file capabilities).
fn set_no_new_privs() -> Result<(), LaunchError> {
    // SAFETY: prctl with integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    Errno::result(r).map(drop).stage("set no_new_privs")
}

/// Installs the packed `program` on the calling thread; it is inherited
/// by children and kept across execve. Needs no_new_privs or CAP_SYS_ADMIN.
fn install(program: &[u64]) -> Result<(), LaunchError> {
    let filter: Vec<libc::sock_filter> = program
        .iter()
        .map(|p| libc::sock_filter {
            code: (p >> 48) as u16,
            jt: (p >> 40) as u8,
            jf: (p >> 32) as u8,
            k: *p as u32,
        })
        .collect();
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `filter`, alive for the call; the kernel
    // copies the program.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const libc::sock_fprog,
        )
    };
    Errno::result(r).map(drop).stage("install seccomp filter")
}
