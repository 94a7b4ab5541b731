//! Capabilities by Docker's names: the default set, CapAdd/CapDrop with
//! "ALL", and applying them (bounding set, capset, ambient) via prctl/capset.

use super::errors::{setup, LaunchError, Stage};
use nix::errno::Errno;

/// Index = capability number (linux/capability.h).
pub const CAP_NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// dockerd's default set (oci/caps/defaults.go).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// "net_admin" / "NET_ADMIN" / "CAP_NET_ADMIN" → "CAP_NET_ADMIN".
fn normalize(name: &str) -> String {
    let up = name.trim().to_ascii_uppercase();
    if up == "ALL" || up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

fn bit(name: &str) -> Result<u64, String> {
    CAP_NAMES
        .iter()
        .position(|n| *n == name)
        .map(|i| 1u64 << i)
        .ok_or_else(|| format!("unknown capability: \"{name}\""))
}

/// A capability's bit, by any of Docker's spellings.
pub fn bit_of(name: &str) -> Option<u64> {
    bit(&normalize(name)).ok()
}

/// dockerd's `NormalizeLegacyCapabilities` as a check: every name (any
/// case, with or without `CAP_`, or `ALL`) must be a capability we know.
pub fn check_names(names: &[String]) -> Result<(), String> {
    for n in names {
        let n = normalize(n);
        if n != "ALL" {
            bit(&n)?;
        }
    }
    Ok(())
}

/// Highest capability the kernel knows (/proc/sys/kernel/cap_last_cap).
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|n| *n < 64)
        .unwrap_or(CAP_NAMES.len() as u32 - 1)
}

fn all_caps(last: u32) -> u64 {
    if last >= 63 {
        u64::MAX
    } else {
        (1u64 << (last + 1)) - 1
    }
}

/// The container's capability set as a bit mask, moby's TweakCapabilities:
/// add "ALL" starts from every capability; drop "ALL" starts from none;
/// then drops are removed and adds added.
pub fn resolve(
    privileged: bool,
    add: &[String],
    drop: &[String],
    last: u32,
) -> Result<u64, String> {
    let all = all_caps(last);
    if privileged {
        return Ok(all);
    }
    let add: Vec<String> = add.iter().map(|s| normalize(s)).collect();
    let drop: Vec<String> = drop.iter().map(|s| normalize(s)).collect();
    let mut set = 0u64;
    if add.iter().any(|a| a == "ALL") {
        set = all;
    } else {
        for n in DEFAULT_CAPS {
            set |= bit(n)?;
        }
    }
    if drop.iter().any(|d| d == "ALL") {
        set = 0;
    } else {
        for d in &drop {
            set &= !bit(d)?;
        }
    }
    for a in add.iter().filter(|a| *a != "ALL") {
        set |= bit(a)?;
    }
    Ok(set & all)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;

/// (effective, permitted, inheritable) of the calling thread.
pub fn get() -> Result<(u64, u64, u64), Errno> {
    let mut hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget with a v3 header writes two CapData entries.
    let r = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    Errno::result(r)?;
    let join = |lo: u32, hi: u32| (lo as u64) | ((hi as u64) << 32);
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
        join(data[0].inheritable, data[1].inheritable),
    ))
}

pub fn set(effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
    let mut hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: capset reads a v3 header and two CapData entries.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    Errno::result(r).map(drop)
}

/// Drop every capability outside `keep` from the bounding set.
/// Needs CAP_SETPCAP, so runs before the user switch.
pub fn drop_bounding(keep: u64, last: u32) -> Result<(), LaunchError> {
    for c in 0..=last.min(63) {
        if keep & (1u64 << c) != 0 {
            continue;
        }
        // SAFETY: plain prctl.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, c as libc::c_ulong, 0, 0, 0) };
        if r != 0 {
            let e = Errno::last();
            if e != Errno::EINVAL {
                return Err(e).stage(format!(
                    "drop {} from bounding set",
                    CAP_NAMES.get(c as usize).unwrap_or(&"capability")
                ));
            }
        }
    }
    Ok(())
}

/// After the user switch: root keeps `caps` (clipped to what we hold) as
/// effective and permitted; a non-root user has none (the kernel cleared
/// them at setuid; dockerd/runc give non-root users empty sets). Inheritable
/// and ambient are always empty (dockerd since 20.10.14).
pub fn apply_after_setuid(caps: u64, uid: u32) -> Result<(), LaunchError> {
    let (_, permitted, _) = get().stage("capget")?;
    let want = if uid == 0 { caps & permitted } else { 0 };
    set(want, want, 0).stage("capset")?;
    const PR_CAP_AMBIENT: libc::c_int = 47;
    const PR_CAP_AMBIENT_CLEAR_ALL: libc::c_ulong = 4;
    // SAFETY: plain prctl.
    let r = unsafe { libc::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) };
    if r != 0 && Errno::last() != Errno::EINVAL {
        return setup(format!("clear ambient capabilities: {}", Errno::last()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn default_set_matches_dockerd() {
        assert_eq!(resolve(false, &[], &[], 40).unwrap(), 0xa80425fb);
    }

    #[test]
    fn add_drop_all() {
        let net_admin = 1u64 << 12;
        assert_eq!(
            resolve(false, &s(&["net_admin"]), &[], 40).unwrap(),
            0xa80425fb | net_admin
        );
        assert_eq!(
            resolve(false, &s(&["NET_ADMIN"]), &s(&["ALL"]), 40).unwrap(),
            net_admin
        );
        assert_eq!(
            resolve(false, &s(&["ALL"]), &s(&["CAP_CHOWN"]), 40).unwrap(),
            (1u64 << 41) - 2
        );
        assert_eq!(
            resolve(false, &[], &s(&["chown", "KILL"]), 40).unwrap(),
            0xa80425fb & !1 & !(1 << 5)
        );
        assert_eq!(
            resolve(true, &[], &s(&["ALL"]), 40).unwrap(),
            (1u64 << 41) - 1
        );
        assert_eq!(
            resolve(false, &s(&["FOO"]), &[], 40).unwrap_err(),
            "unknown capability: \"CAP_FOO\""
        );
    }
}
