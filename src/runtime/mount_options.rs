//! Mount option words (`ro`, `noexec`, `size=64m`, ...) split into mount
//! flags and the filesystem's data string: `--tmpfs`, `--mount` tmpfs and
//! local-driver volumes.

use nix::mount::MsFlags;

/// Split "size=64m,mode=1777,exec" into mount flags and fs data. Docker's
/// tmpfs defaults are noexec,nosuid,nodev unless "exec"/"suid"/"dev" given.
pub(crate) fn tmpfs_options(opts: &str) -> (MsFlags, String) {
    mount_options(
        opts,
        MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
    )
}

/// Mount option words split into flags (starting from `defaults`) and the
/// filesystem's data string.
pub(crate) fn mount_options(opts: &str, defaults: MsFlags) -> (MsFlags, String) {
    let mut flags = defaults;
    let mut data = Vec::new();
    for o in opts.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        match o {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags &= !MsFlags::MS_RDONLY,
            "exec" => flags &= !MsFlags::MS_NOEXEC,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "suid" => flags &= !MsFlags::MS_NOSUID,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "dev" => flags &= !MsFlags::MS_NODEV,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "strictatime" => flags |= MsFlags::MS_STRICTATIME,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "dirsync" => flags |= MsFlags::MS_DIRSYNC,
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "bind"
            | "rbind" => {}
            other => data.push(other.to_string()),
        }
    }
    (flags, data.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmpfs_option_parsing() {
        let (f, d) = tmpfs_options("size=64m,mode=1777");
        assert_eq!(
            f,
            MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID | MsFlags::MS_NODEV
        );
        assert_eq!(d, "size=64m,mode=1777");
        let (f, d) = tmpfs_options("exec,ro,uid=5");
        assert_eq!(
            f,
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_RDONLY
        );
        assert_eq!(d, "uid=5");
    }
}
