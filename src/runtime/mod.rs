//! Launching and confining container processes: namespaces, rootfs and
//! mounts, capabilities, users, cgroups. Knows nothing of HTTP or of the
//! container store; `spec::LaunchSpec` is everything it is told.

pub mod cgroups;
pub mod spec;
