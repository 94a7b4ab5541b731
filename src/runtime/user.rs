//! `User` and `GroupAdd` resolved against the container's own /etc/passwd
//! and /etc/group (moby/sys/user GetExecUser semantics), then the switch:
//! setgroups, setgid, setuid.

use super::errors::{LaunchError, Stage};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (implicit memberships + GroupAdd).
    pub groups: Vec<u32>,
    pub home: String,
}

struct Passwd<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct Group<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = Passwd<'_>> {
    text.lines().filter_map(|l| {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            return None;
        }
        let f: Vec<&str> = l.split(':').collect();
        Some(Passwd {
            name: f.first().copied().unwrap_or(""),
            uid: f.get(2)?.parse().ok()?,
            gid: f.get(3)?.parse().ok()?,
            home: f.get(5).copied().unwrap_or(""),
        })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = Group<'_>> {
    text.lines().filter_map(|l| {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            return None;
        }
        let f: Vec<&str> = l.split(':').collect();
        Some(Group {
            name: f.first().copied().unwrap_or(""),
            gid: f.get(2)?.parse().ok()?,
            members: f
                .get(3)
                .map(|m| {
                    m.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        })
    })
}

/// The uid of the first passwd entry named `name` (the builder's
/// `--chown`, which looks names up in the image's own files).
pub fn uid_by_name(passwd: &str, name: &str) -> Option<u32> {
    passwd_entries(passwd)
        .find(|p| p.name == name)
        .map(|p| p.uid)
}

/// The gid of the first group entry named `name`.
pub fn gid_by_name(group: &str, name: &str) -> Option<u32> {
    group_entries(group).find(|g| g.name == name).map(|g| g.gid)
}

/// The name of the first passwd entry with `uid` (`--userns-remap UID`).
pub fn name_by_uid(passwd: &str, uid: u32) -> Option<String> {
    passwd_entries(passwd)
        .find(|p| p.uid == uid)
        .map(|p| p.name.to_string())
}

/// The name of the first group entry with `gid`.
pub fn name_by_gid(group: &str, gid: u32) -> Option<String> {
    group_entries(group)
        .find(|g| g.gid == gid)
        .map(|g| g.name.to_string())
}

fn numeric(s: &str) -> Option<u32> {
    s.parse::<u32>().ok()
}

/// Resolve `user` ("", "name", "uid", "name:group", "uid:gid") and
/// `group_add` against the file contents (None: file missing).
pub fn resolve(
    user: &str,
    group_add: &[String],
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<ExecUser, String> {
    let passwd = passwd.unwrap_or("");
    let group = group.unwrap_or("");
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let mut out = ExecUser {
        uid: 0,
        gid: 0,
        groups: Vec::new(),
        home: "/".to_string(),
    };
    let mut name: Option<&str> = None;
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let uid_num = numeric(user_part);
    match passwd_entries(passwd).find(|p| p.name == user_part || Some(p.uid) == uid_num) {
        Some(p) => {
            out.uid = p.uid;
            out.gid = p.gid;
            if !p.home.is_empty() {
                out.home = p.home.to_string();
            }
            name = Some(p.name);
        }
        None => match uid_num {
            Some(u) => out.uid = u,
            None => {
                return Err(format!(
                    "unable to find user {user_part}: no matching entries in passwd file"
                ))
            }
        },
    }
    match group_part {
        Some(g) if !g.is_empty() => {
            let gid_num = numeric(g);
            match group_entries(group).find(|e| e.name == g || Some(e.gid) == gid_num) {
                Some(e) => out.gid = e.gid,
                None => match gid_num {
                    Some(n) => out.gid = n,
                    None => {
                        return Err(format!(
                            "unable to find group {g}: no matching entries in group file"
                        ))
                    }
                },
            }
        }
        _ => {
            if let Some(n) = name {
                out.groups = group_entries(group)
                    .filter(|e| e.members.contains(&n))
                    .map(|e| e.gid)
                    .collect();
            }
        }
    }
    for ag in group_add {
        let gid_num = numeric(ag);
        let gid = match group_entries(group).find(|e| e.name == ag || Some(e.gid) == gid_num) {
            Some(e) => e.gid,
            None => match gid_num {
                Some(n) => n,
                None => {
                    return Err(format!(
                        "Unable to find group {ag}: no matching entries in group file"
                    ))
                }
            },
        };
        if !out.groups.contains(&gid) {
            out.groups.push(gid);
        }
    }
    Ok(out)
}

/// Largest /etc/passwd or /etc/group we read.
const MAX_ACCOUNT_FILE: u64 = 4 * 1024 * 1024;

/// Read an account file the container controls, without letting it stall
/// the launch (the daemon waits for this child): opened non-blocking, only
/// a regular file, at most `MAX_ACCOUNT_FILE` bytes. Anything else counts as
/// missing.
fn read_account_file(path: &str) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut text = String::new();
    f.take(MAX_ACCOUNT_FILE).read_to_string(&mut text).ok()?;
    Some(text)
}

/// Read the container's files (after pivot_root) and resolve.
pub fn resolve_in_container(user: &str, group_add: &[String]) -> Result<ExecUser, LaunchError> {
    let passwd = read_account_file("/etc/passwd");
    let group = read_account_file("/etc/group");
    resolve(user, group_add, passwd.as_deref(), group.as_deref()).map_err(LaunchError::Setup)
}

/// setgroups, setgid, setuid (in that order; needs CAP_SETGID/SETUID).
pub fn switch(u: &ExecUser) -> Result<(), LaunchError> {
    let groups: Vec<nix::unistd::Gid> = u
        .groups
        .iter()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&groups).stage("setgroups")?;
    nix::unistd::setresgid(u.gid.into(), u.gid.into(), u.gid.into())
        .stage(format!("setgid {}", u.gid))?;
    nix::unistd::setresuid(u.uid.into(), u.uid.into(), u.uid.into())
        .stage(format!("setuid {}", u.uid))?;
    Ok(())
}

/// Add HOME from the passwd entry when the environment has none.
pub fn with_home(env: &[String], u: &ExecUser) -> Vec<String> {
    let mut env = env.to_vec();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", u.home));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nweb:x:33:33::/var/www:/bin/sh\n";
    const GR: &str =
        "root:x:0:\nnogroup:x:65534:\nwww:x:33:\naudio:x:29:web,other\nvideo:x:44:web\n";

    fn r(u: &str, add: &[&str]) -> Result<ExecUser, String> {
        let add: Vec<String> = add.iter().map(|s| s.to_string()).collect();
        resolve(u, &add, Some(PW), Some(GR))
    }

    #[test]
    fn names_numbers_and_groups() {
        assert_eq!(
            r("", &[]).unwrap(),
            ExecUser {
                uid: 0,
                gid: 0,
                groups: vec![],
                home: "/root".into()
            }
        );
        let n = r("nobody", &[]).unwrap();
        assert_eq!(
            (n.uid, n.gid, n.home.as_str()),
            (65534, 65534, "/nonexistent")
        );
        let w = r("web", &[]).unwrap();
        assert_eq!((w.uid, w.gid, w.groups.clone()), (33, 33, vec![29, 44]));
        let w = r("33:audio", &["video", "1234"]).unwrap();
        assert_eq!((w.uid, w.gid, w.groups.clone()), (33, 29, vec![44, 1234]));
        let x = r("1000:1000", &[]).unwrap();
        assert_eq!((x.uid, x.gid, x.home.as_str()), (1000, 1000, "/"));
        assert_eq!(r("1000", &[]).unwrap().gid, 0);
        assert_eq!(
            r("bob", &[]).unwrap_err(),
            "unable to find user bob: no matching entries in passwd file"
        );
        assert_eq!(
            r("root:staff", &[]).unwrap_err(),
            "unable to find group staff: no matching entries in group file"
        );
        assert_eq!(
            r("root", &["staff"]).unwrap_err(),
            "Unable to find group staff: no matching entries in group file"
        );
        assert_eq!(resolve("0", &[], None, None).unwrap().uid, 0);
        assert!(resolve("nobody", &[], None, None).is_err());
    }
}
