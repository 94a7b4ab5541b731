//! The one `/proc/self/mountinfo` parser, used by the cgroup layout probe and
//! by `check-config`.

/// One line of `/proc/self/mountinfo`, the fields the daemon needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// The mounted subtree of its filesystem (`/` unless a bind mount).
    pub root: String,
    pub mount_point: String,
    pub fs_type: String,
    pub super_opts: Vec<String>,
}

/// Parse a mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let (pre, post) = line.split_once(" - ")?;
    let mut pre = pre.split_whitespace();
    let root = pre.nth(3)?;
    let mount_point = pre.next()?;
    let mut post = post.split_whitespace();
    let (fs_type, _source) = (post.next()?, post.next()?);
    let super_opts = post
        .next()
        .map(|o| o.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    Some(MountEntry {
        root: unescape(root),
        mount_point: unescape(mount_point),
        fs_type: fs_type.to_string(),
        super_opts,
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push((v & 0xff) as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_escapes() {
        let m =
            parse("garbage\n36 25 0:31 /sub /mnt/a\\040b rw,relatime - cgroup cgroup rw,memory\n");
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].root, "/sub");
        assert_eq!(m[0].mount_point, "/mnt/a b");
        assert_eq!(m[0].fs_type, "cgroup");
        assert_eq!(m[0].super_opts, vec!["rw", "memory"]);
    }
}
