//! `--userns-remap`'s value resolved to an id mapping from the subordinate
//! id files (`/etc/subuid`, `/etc/subgid`), as dockerd does: `default`
//! (user and group `dockremap`, whose ranges are made when missing),
//! `USER[:GROUP]` or `UID[:GID]`. dockerd runs `useradd` for `default`;
//! coracle runs no programs, so it appends 65,536 ids after the highest
//! range in each file itself (and says so in the log); /etc/passwd is left
//! alone (the ranges need no account).

use super::user;
use super::userns::{IdMap, IdRange};
use std::path::{Path, PathBuf};

/// dockerd's user (and group) for `--userns-remap default`.
pub const DEFAULT_USER: &str = "dockremap";
/// Ids given to a range made for `default`; the lowest start, as
/// login.defs' SUB_UID_MIN.
const NEW_RANGE: u32 = 65536;
const MIN_START: u32 = 100000;
const MAX_FILE: usize = 1 << 20;

/// Where the subordinate id files are. Debug builds let a test point at
/// its own copies (`CORACLE_DEBUG_SUBID_DIR`), so no test edits /etc.
pub fn files() -> (PathBuf, PathBuf) {
    #[cfg(debug_assertions)]
    if let Some(dir) = std::env::var_os("CORACLE_DEBUG_SUBID_DIR") {
        let dir = PathBuf::from(dir);
        return (dir.join("subuid"), dir.join("subgid"));
    }
    (PathBuf::from("/etc/subuid"), PathBuf::from("/etc/subgid"))
}

/// `name:start:count` lines (comments and malformed lines skipped).
fn parse(text: &str) -> Vec<(&str, u32, u32)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let mut it = l.split(':');
            let name = it.next().filter(|n| !n.is_empty())?;
            let start = it.next()?.trim().parse().ok()?;
            let count = it.next()?.trim().parse().ok()?;
            (it.next().is_none() && count > 0).then_some((name, start, count))
        })
        .collect()
}

/// The ranges of any of `names`, mapped from container id 0 upwards in
/// file order.
fn ranges_of(text: &str, names: &[String]) -> Vec<IdRange> {
    let mut inner = 0u32;
    let mut out = Vec::new();
    for (name, start, count) in parse(text) {
        if names.iter().any(|n| n == name) {
            out.push(IdRange {
                inner,
                outer: start,
                count,
            });
            inner = inner.saturating_add(count);
        }
    }
    out
}

/// The first id after every range in the file (at least `MIN_START`).
fn next_free(text: &str) -> u32 {
    parse(text)
        .iter()
        .map(|(_, s, c)| s.saturating_add(*c))
        .fold(MIN_START, u32::max)
}

/// The names a `USER` (or `GROUP`) part is known by in the id files: the
/// name and its number, whichever was given.
fn aliases(
    given: &str,
    account_file: Option<&str>,
    by_id: fn(&str, u32) -> Option<String>,
    by_name: fn(&str, &str) -> Option<u32>,
) -> Vec<String> {
    let mut v = vec![given.to_string()];
    if let Some(text) = account_file {
        match given.parse::<u32>() {
            Ok(id) => v.extend(by_id(text, id)),
            Err(_) => v.extend(by_name(text, given).map(|id| id.to_string())),
        }
    }
    v
}

fn read(path: &Path) -> Result<String, String> {
    match std::fs::read(path) {
        Ok(b) if b.len() > MAX_FILE => Err(format!("{} is too large", path.display())),
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(format!("read {}: {e}", path.display())),
    }
}

/// Append `name:start:65536` after the highest range of the file.
fn add_range(path: &Path, text: &str, name: &str) -> Result<u32, String> {
    let start = next_free(text);
    if start.checked_add(NEW_RANGE).is_none() {
        return Err(format!("no room for a new range in {}", path.display()));
    }
    let mut new = text.to_string();
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str(&format!("{name}:{start}:{NEW_RANGE}\n"));
    crate::atomic::write_file(path, new.as_bytes())
        .map_err(|e| format!("write {}: {e}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644));
    Ok(start)
}

/// `--userns-remap VALUE` to the mapping its containers get.
pub fn resolve(value: &str) -> Result<IdMap, String> {
    let (subuid, subgid) = files();
    let passwd = std::fs::read_to_string("/etc/passwd").ok();
    let group = std::fs::read_to_string("/etc/group").ok();
    resolve_with(value, &subuid, &subgid, passwd.as_deref(), group.as_deref())
}

fn resolve_with(
    value: &str,
    subuid: &Path,
    subgid: &Path,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<IdMap, String> {
    let (u, g) = match value.split_once(':') {
        Some((u, g)) => (u, g),
        None => (value, value),
    };
    if u.is_empty() || g.is_empty() {
        return Err(format!(
            "invalid userns-remap value {value:?}: USER[:GROUP] expected"
        ));
    }
    let default = value == "default";
    let (u, g) = if default {
        (DEFAULT_USER, DEFAULT_USER)
    } else {
        (u, g)
    };
    let uids = aliases(u, passwd, user::name_by_uid, user::uid_by_name);
    let gids = aliases(g, group, user::name_by_gid, user::gid_by_name);
    let mut uid_text = read(subuid)?;
    let mut gid_text = read(subgid)?;
    for (path, text, names, what) in [
        (subuid, &mut uid_text, &uids, "subuid"),
        (subgid, &mut gid_text, &gids, "subgid"),
    ] {
        if !ranges_of(text, names).is_empty() {
            continue;
        }
        if !default {
            return Err(format!(
                "can't create ID mappings: no {what} ranges found for {} {:?}",
                if what == "subuid" { "user" } else { "group" },
                names[0]
            ));
        }
        let start = add_range(path, text, DEFAULT_USER)?;
        log::info!(
            "userns-remap default: {DEFAULT_USER}:{start}:{NEW_RANGE} added to {} (dockerd's useradd would have)",
            path.display()
        );
        *text = read(path)?;
    }
    IdMap::new(ranges_of(&uid_text, &uids), ranges_of(&gid_text, &gids))
        .ok_or_else(|| format!("can't create ID mappings for {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("coracle-subids-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn default_adds_ranges_after_the_highest_once() {
        let d = tmp("default");
        let (su, sg) = (d.join("subuid"), d.join("subgid"));
        std::fs::write(&su, "alice:100000:65536\nbob:300000:1000\n").unwrap();
        let m = resolve_with("default", &su, &sg, None, None).unwrap();
        assert_eq!(m.root_uid(), 301000);
        assert_eq!(m.root_gid(), 100000);
        assert_eq!(
            std::fs::read_to_string(&su).unwrap(),
            "alice:100000:65536\nbob:300000:1000\ndockremap:301000:65536\n"
        );
        // The second time the ranges are found, nothing is added.
        let again = resolve_with("default", &su, &sg, None, None).unwrap();
        assert_eq!(again, m);
        assert_eq!(
            std::fs::read_to_string(&sg).unwrap(),
            "dockremap:100000:65536\n"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn users_groups_and_numbers() {
        let d = tmp("named");
        let (su, sg) = (d.join("subuid"), d.join("subgid"));
        std::fs::write(&su, "# c\nweb:200000:10\n1001:500000:5\nweb:600000:3\n").unwrap();
        std::fs::write(&sg, "www:700000:65536\n").unwrap();
        let pw = "web:x:1001:33::/:/bin/sh\n";
        let gr = "www:x:33:\n";
        let m = resolve_with("web:www", &su, &sg, Some(pw), Some(gr)).unwrap();
        assert_eq!(m.root_uid(), 200000);
        assert_eq!(m.host_uid(10), Some(500000));
        assert_eq!(m.host_uid(16), Some(600001));
        assert_eq!(m.root_gid(), 700000);
        let by_number = resolve_with("1001:33", &su, &sg, Some(pw), Some(gr)).unwrap();
        assert_eq!(by_number, m);
        let e = resolve_with("nobody", &su, &sg, Some(pw), Some(gr)).unwrap_err();
        assert!(
            e.contains("no subuid ranges found for user \"nobody\""),
            "{e}"
        );
        assert!(resolve_with(":x", &su, &sg, None, None).is_err());
        // Named users never get ranges made for them.
        assert_eq!(std::fs::read_to_string(&sg).unwrap(), "www:700000:65536\n");
        let _ = std::fs::remove_dir_all(&d);
    }
}
