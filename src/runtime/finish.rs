//! The last steps of a container's first process, after its mounts:
//! pivot_root, sysctls, working dir, masked and read-only paths, read-only
//! root, rlimits, user and capabilities. The launcher runs them itself, or,
//! under `--init`, hands them to the freshly exec()ed init (serialized in
//! its argv): the init is exec()ed before pivot_root, while the host's
//! dynamic loader is still reachable for a dynamically linked build.

use super::confine;
use super::errors::{LaunchError, Stage};
use super::launch::make_cwd;
use super::rlimits;
use super::seccomp::Confine;
use super::spec::{LaunchSpec, NetworkMode, Ulimit};
use super::user;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finish {
    pub sysctls: BTreeMap<String, String>,
    pub host_network: bool,
    /// Absolute working directory ("/" when empty).
    pub cwd: String,
    pub privileged: bool,
    pub readonly_rootfs: bool,
    pub ulimits: Vec<Ulimit>,
    pub user: String,
    pub group_add: Vec<String>,
    /// Resolved capability set and the host's last capability.
    pub caps: u64,
    pub last: u32,
    /// The seccomp filter and no_new_privs, applied around `become_user`.
    pub confine: Confine,
    /// A remapped container's user namespace (an fd the launcher keeps
    /// open), entered after the host-side setup, before the user switch.
    #[serde(default)]
    pub userns_fd: Option<i32>,
    /// Its root's host uid and gid: files the setup makes are theirs (set
    /// again here for `--init`, whose exec reset the fsuid).
    #[serde(default)]
    pub userns_root: Option<(u32, u32)>,
}

impl Finish {
    pub fn of(spec: &LaunchSpec, caps: u64, last: u32, confine: Confine) -> Finish {
        Finish {
            sysctls: spec.sysctls.clone(),
            host_network: spec.network == NetworkMode::Host,
            cwd: if spec.cwd.is_empty() {
                "/".into()
            } else {
                spec.cwd.clone()
            },
            privileged: spec.privileged,
            readonly_rootfs: spec.rootfs.readonly,
            ulimits: spec.ulimits.clone(),
            user: spec.user.clone(),
            group_add: spec.group_add.clone(),
            caps,
            last,
            confine,
            userns_fd: None,
            userns_root: None,
        }
    }

    /// Pivot into `root` (the merged rootfs; "." when it is the current
    /// directory) and become the container's user. Returns `env` with the
    /// user's HOME.
    pub fn run(&self, root: &Path, env: &[String]) -> Result<Vec<String>, LaunchError> {
        if let Some((uid, gid)) = self.userns_root {
            super::userns::act_as(uid, gid)?;
        }
        confine::pivot(root)?;
        confine::sysctls(&self.sysctls, self.host_network)?;
        make_cwd(&self.cwd)?;
        if !self.privileged {
            confine::mask_and_protect()?;
        }
        if self.readonly_rootfs {
            confine::readonly_root()?;
        }
        rlimits::apply(&self.ulimits)?;
        if let Some(fd) = self.userns_fd {
            super::userns::enter(fd)?;
            // SAFETY: our own copy of the fd, not used again (under
            // --init it would otherwise stay open in the container).
            unsafe {
                libc::close(fd);
            }
        }
        let u = user::resolve_in_container(&self.user, &self.group_add)?;
        let env = user::with_home(env, &u);
        nix::unistd::chdir(self.cwd.as_str()).stage(format!("chdir {}", self.cwd))?;
        self.confine.become_user(self.caps, self.last, &u)?;
        Ok(env)
    }
}
