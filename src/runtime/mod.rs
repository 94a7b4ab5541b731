//! Launching and confining container processes: namespaces, rootfs and
//! mounts, capabilities, users, cgroups. Knows nothing of HTTP or of the
//! container store; `spec::LaunchSpec` is everything it is told.

pub mod caps;
pub mod cgroups;
pub mod confine;
pub mod copyup;
pub mod devices;
pub mod errors;
pub mod exec;
pub mod finish;
pub mod init;
pub mod inroot;
pub mod launch;
pub mod mount_options;
pub mod mountinfo;
pub mod mounts;
pub mod netns;
pub mod program;
pub mod report;
pub mod rlimits;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod subids;
pub mod user;
pub mod userns;

#[cfg(test)]
mod tests;
