//! `docker top`'s `ps`, done by reading /proc (the daemon runs no `ps`):
//! `ps_args` parsed the way procps reads them (`-ef`, `aux`, `-o` columns),
//! one row per process, with procps' column titles. dockerd runs the host's
//! `ps` and keeps the container's rows; this is the same table.

use std::collections::HashMap;
use std::fmt;

/// Why a `ps_args` cannot be honoured (dockerd's texts; its own `ps`
/// failures read "ps: ...").
#[derive(Debug, PartialEq, Eq)]
pub enum PsError {
    /// `-o user=PID`: a non-pid column titled like the PID column.
    Disallowed(String),
    /// An option or column this `ps` does not know.
    Unsupported(String),
    /// The columns asked for have no PID column (dockerd needs it).
    NoPid,
}

impl fmt::Display for PsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PsError::Disallowed(kv) => write!(f, "specifying \"{kv}\" is not allowed"),
            PsError::Unsupported(what) => {
                write!(f, "ps: unsupported option or column {what:?}")
            }
            PsError::NoPid => f.write_str("Couldn't find PID field in ps output"),
        }
    }
}

/// One column: what it shows and its title.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    key: Key,
    title: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Pid,
    Ppid,
    Pgid,
    Sid,
    Uid,
    User,
    Gid,
    Comm,
    Args,
    Stat,
    State,
    Tty,
    Time,
    Etime,
    Stime,
    Start,
    Rss,
    Vsz,
    Pcpu,
    Pmem,
    Nice,
    Pri,
    Nlwp,
    C,
}

/// procps' keywords and their default titles.
fn keyword(k: &str) -> Option<(Key, &'static str)> {
    Some(match k {
        "pid" | "tgid" => (Key::Pid, "PID"),
        "ppid" => (Key::Ppid, "PPID"),
        "pgid" | "pgrp" => (Key::Pgid, "PGID"),
        "sid" | "sess" | "session" => (Key::Sid, "SID"),
        "uid" | "euid" => (Key::Uid, "UID"),
        "user" | "euser" | "uname" => (Key::User, "USER"),
        "gid" | "egid" => (Key::Gid, "GID"),
        "comm" | "ucomm" | "ucmd" => (Key::Comm, "COMMAND"),
        "args" | "command" => (Key::Args, "COMMAND"),
        "cmd" => (Key::Args, "CMD"),
        "stat" => (Key::Stat, "STAT"),
        "s" | "state" => (Key::State, "S"),
        "tty" | "tt" | "tname" => (Key::Tty, "TT"),
        "time" | "cputime" => (Key::Time, "TIME"),
        "etime" => (Key::Etime, "ELAPSED"),
        "stime" => (Key::Stime, "STIME"),
        "start" | "start_time" | "bsdstart" => (Key::Start, "START"),
        "rss" | "rsz" | "rssize" => (Key::Rss, "RSS"),
        "vsz" | "vsize" => (Key::Vsz, "VSZ"),
        "%cpu" | "pcpu" => (Key::Pcpu, "%CPU"),
        "%mem" | "pmem" => (Key::Pmem, "%MEM"),
        "nice" | "ni" => (Key::Nice, "NI"),
        "pri" => (Key::Pri, "PRI"),
        "nlwp" | "thcount" => (Key::Nlwp, "NLWP"),
        "c" => (Key::C, "C"),
        _ => return None,
    })
}

fn col(key: Key, title: &str) -> Column {
    Column {
        key,
        title: title.to_string(),
    }
}

/// `ps -ef` (dockerd's default).
fn full() -> Vec<Column> {
    vec![
        col(Key::Uid, "UID"),
        col(Key::Pid, "PID"),
        col(Key::Ppid, "PPID"),
        col(Key::C, "C"),
        col(Key::Stime, "STIME"),
        col(Key::Tty, "TTY"),
        col(Key::Time, "TIME"),
        col(Key::Args, "CMD"),
    ]
}

/// BSD `u` (`ps aux`).
fn bsd_user() -> Vec<Column> {
    vec![
        col(Key::User, "USER"),
        col(Key::Pid, "PID"),
        col(Key::Pcpu, "%CPU"),
        col(Key::Pmem, "%MEM"),
        col(Key::Vsz, "VSZ"),
        col(Key::Rss, "RSS"),
        col(Key::Tty, "TTY"),
        col(Key::Stat, "STAT"),
        col(Key::Start, "START"),
        col(Key::Time, "TIME"),
        col(Key::Args, "COMMAND"),
    ]
}

/// Plain `ps -e` / `ps x`.
fn simple() -> Vec<Column> {
    vec![
        col(Key::Pid, "PID"),
        col(Key::Tty, "TTY"),
        col(Key::Time, "TIME"),
        col(Key::Comm, "CMD"),
    ]
}

/// `-o` list: comma or space separated keywords, each `key` or `key=Title`
/// (a title runs to the end of its argument, as in procps).
fn parse_o(list: &str, out: &mut Vec<Column>) -> Result<(), PsError> {
    let mut rest = list;
    while !rest.is_empty() {
        let (item, tail) = match rest.find([',', ' ']) {
            Some(i) if !rest[..i].contains('=') => (&rest[..i], &rest[i + 1..]),
            _ => (rest, ""),
        };
        rest = tail;
        if item.is_empty() {
            continue;
        }
        let (k, title) = match item.split_once('=') {
            Some((k, t)) => (k, Some(t)),
            None => (item, None),
        };
        let (key, default) =
            keyword(&k.to_ascii_lowercase()).ok_or_else(|| PsError::Unsupported(k.into()))?;
        out.push(col(key, title.unwrap_or(default)));
    }
    Ok(())
}

/// The columns `ps_args` asks for. Selection options (`-e`, `-A`, `a`, `x`)
/// change nothing here: the rows are the container's processes.
fn columns(ps_args: &str) -> Result<Vec<Column>, PsError> {
    let args: Vec<&str> = ps_args.split_ascii_whitespace().collect();
    let (mut full_fmt, mut bsd_u, mut out) = (false, false, Vec::new());
    let mut explicit = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        i += 1;
        let (dash, body) = match a.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, a),
        };
        for (at, ch) in body.char_indices() {
            match ch {
                'o' => {
                    // The list is the rest of this word, or the next word.
                    let list = &body[at + 1..];
                    let list = if list.is_empty() {
                        let next = args.get(i).copied().ok_or_else(|| {
                            PsError::Unsupported(format!("{a}: a column list is required"))
                        })?;
                        i += 1;
                        next
                    } else {
                        list
                    };
                    parse_o(list, &mut out)?;
                    explicit = true;
                    break;
                }
                'e' | 'A' | 'a' | 'x' | 'w' => {}
                'f' if dash => full_fmt = true,
                'u' if !dash => bsd_u = true,
                _ => return Err(PsError::Unsupported(a.into())),
            }
        }
    }
    if explicit {
        return Ok(out);
    }
    Ok(if bsd_u {
        bsd_user()
    } else if full_fmt || args.is_empty() {
        full()
    } else {
        simple()
    })
}

/// dockerd refuses `key=PID...` for any key but pid (it would fake the PID
/// column it filters on).
fn validate(ps_args: &str) -> Result<(), PsError> {
    for word in ps_args.split_ascii_whitespace() {
        for item in word.split(',') {
            if let Some((k, v)) = item.split_once('=') {
                let k = k.trim_start_matches('-').trim_start_matches('o');
                if v.starts_with("PID") && k != "pid" && !k.is_empty() {
                    return Err(PsError::Disallowed(format!("{k}={v}")));
                }
            }
        }
    }
    Ok(())
}

/// What /proc says about one process.
#[derive(Debug, Clone, Default)]
pub struct Proc {
    pid: i32,
    ppid: i64,
    pgid: i64,
    sid: i64,
    tpgid: i64,
    state: char,
    comm: String,
    args: String,
    tty_nr: u64,
    cpu_ticks: u64,
    start_ticks: u64,
    nice: i64,
    priority: i64,
    nlwp: i64,
    vsz_kib: u64,
    rss_kib: u64,
    uid: u32,
    gid: u32,
}

const HZ: u64 = 100;

/// Read a process from /proc (None if it is gone).
pub fn read(pid: i32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let close = stat.rfind(')')?;
    let comm = stat.get(stat.find('(')? + 1..close)?.to_string();
    let f: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    let int = |i: usize| f.get(i).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let uint = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let id_of = |prefix: &str| -> u32 {
        status
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|u| u.parse().ok())
            .unwrap_or(0)
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args = if cmdline.is_empty() {
        format!("[{comm}]")
    } else {
        String::from_utf8_lossy(&cmdline)
            .trim_end_matches('\0')
            .replace('\0', " ")
    };
    let page_kib = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4, |p| (p as u64) / 1024);
    Some(Proc {
        pid,
        state: f.first().and_then(|s| s.chars().next()).unwrap_or('?'),
        ppid: int(1),
        pgid: int(2),
        sid: int(3),
        tty_nr: uint(4),
        tpgid: int(5),
        cpu_ticks: uint(11) + uint(12),
        priority: int(15),
        nice: int(16),
        nlwp: int(17),
        start_ticks: uint(19),
        vsz_kib: uint(20) / 1024,
        rss_kib: uint(21) * page_kib,
        comm,
        args,
        uid: id_of("Uid:"),
        gid: id_of("Gid:"),
    })
}

/// The host facts every row needs, read once per table.
pub struct Host {
    /// Seconds since the epoch at boot.
    boot: u64,
    now: u64,
    mem_total_kib: u64,
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Host {
    pub fn read() -> Host {
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("btime"))?
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()
            })
            .unwrap_or(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Host {
            boot,
            now,
            mem_total_kib: crate::host::mem_total_bytes() / 1024,
            users: crate::host::account_names("/etc/passwd"),
            groups: crate::host::account_names("/etc/group"),
        }
    }
}

fn clock(secs: u64) -> String {
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// `[DD-]HH:MM:SS` (TIME).
fn cpu_time(secs: u64) -> String {
    match secs / 86_400 {
        0 => clock(secs),
        d => format!("{d}-{}", clock(secs % 86_400)),
    }
}

/// `[[DD-]HH:]MM:SS` (ELAPSED).
fn elapsed(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h) {
        (0, 0) => format!("{m:02}:{s:02}"),
        (0, _) => format!("{h:02}:{m:02}:{s:02}"),
        _ => format!("{d}-{h:02}:{m:02}:{s:02}"),
    }
}

/// procps' start time: `HH:MM` within a day, else `MonDD` (UTC).
fn start_of(started: u64, now: u64) -> String {
    if now.saturating_sub(started) < 86_400 {
        let hm = started % 86_400;
        return format!("{:02}:{:02}", hm / 3600, hm / 60 % 60);
    }
    let (_, m, d) = crate::timefmt::civil_from_days((started / 86_400) as i64);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.get((m as usize).wrapping_sub(1)).unwrap_or(&"???");
    format!("{month}{d:02}")
}

fn tty_name(tty_nr: u64) -> String {
    if tty_nr == 0 {
        return "?".into();
    }
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    match major {
        136..=143 => format!("pts/{}", minor + (major - 136) * 256),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        _ => "?".into(),
    }
}

impl Proc {
    fn cell(&self, key: Key, host: &Host) -> String {
        let started = host.boot + self.start_ticks / HZ;
        let age = host.now.saturating_sub(started).max(1);
        let cpu_secs = self.cpu_ticks / HZ;
        // Tenths of a percent, as procps computes them.
        let pcpu = self.cpu_ticks * 1000 / (HZ * age);
        let name = |map: &HashMap<u32, String>, id: u32| {
            map.get(&id).cloned().unwrap_or_else(|| id.to_string())
        };
        match key {
            Key::Pid => self.pid.to_string(),
            Key::Ppid => self.ppid.to_string(),
            Key::Pgid => self.pgid.to_string(),
            Key::Sid => self.sid.to_string(),
            Key::Uid => name(&host.users, self.uid),
            Key::User => name(&host.users, self.uid),
            Key::Gid => name(&host.groups, self.gid),
            Key::Comm => self.comm.clone(),
            Key::Args => self.args.clone(),
            Key::State => self.state.to_string(),
            Key::Stat => {
                let mut s = self.state.to_string();
                if self.nice < 0 {
                    s.push('<');
                } else if self.nice > 0 {
                    s.push('N');
                }
                if i64::from(self.pid) == self.sid {
                    s.push('s');
                }
                if self.nlwp > 1 {
                    s.push('l');
                }
                if self.tpgid >= 0 && self.tpgid == self.pgid {
                    s.push('+');
                }
                s
            }
            Key::Tty => tty_name(self.tty_nr),
            Key::Time => cpu_time(cpu_secs),
            Key::Etime => elapsed(host.now.saturating_sub(started)),
            Key::Stime | Key::Start => start_of(started, host.now),
            Key::Rss => self.rss_kib.to_string(),
            Key::Vsz => self.vsz_kib.to_string(),
            Key::Pcpu => format!("{}.{}", pcpu.min(9999) / 10, pcpu.min(9999) % 10),
            Key::Pmem => {
                let t = (self.rss_kib * 1000)
                    .checked_div(host.mem_total_kib)
                    .unwrap_or(0);
                format!("{}.{}", t / 10, t % 10)
            }
            Key::Nice => self.nice.to_string(),
            Key::Pri => (39 - self.priority).to_string(),
            Key::Nlwp => self.nlwp.to_string(),
            Key::C => (pcpu / 10).min(99).to_string(),
        }
    }
}

/// `docker top`'s table for these processes: titles and rows.
pub fn table(ps_args: &str, pids: &[i32]) -> Result<(Vec<String>, Vec<Vec<String>>), PsError> {
    let ps_args = if ps_args.trim().is_empty() {
        "-ef"
    } else {
        ps_args
    };
    validate(ps_args)?;
    let cols = columns(ps_args)?;
    if !cols.iter().any(|c| c.title == "PID") {
        return Err(PsError::NoPid);
    }
    let host = Host::read();
    let rows = pids
        .iter()
        .filter_map(|&p| read(p))
        .map(|p| cols.iter().map(|c| p.cell(c.key, &host)).collect())
        .collect();
    Ok((cols.into_iter().map(|c| c.title).collect(), rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn titles(args: &str) -> Vec<String> {
        columns(args)
            .unwrap()
            .into_iter()
            .map(|c| c.title)
            .collect()
    }

    #[test]
    fn formats() {
        assert_eq!(
            titles("-ef"),
            ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        );
        assert_eq!(titles("-e -f"), titles("-ef"));
        assert_eq!(
            titles("aux"),
            [
                "USER", "PID", "%CPU", "%MEM", "VSZ", "RSS", "TTY", "STAT", "START", "TIME",
                "COMMAND"
            ]
        );
        assert_eq!(titles("-e"), ["PID", "TTY", "TIME", "CMD"]);
        assert_eq!(titles("-o pid,comm"), ["PID", "COMMAND"]);
        assert_eq!(titles("-eo pid,ppid,args"), ["PID", "PPID", "COMMAND"]);
        assert_eq!(titles("-o pid -o user"), ["PID", "USER"]);
        assert_eq!(titles("-o pid,comm=NAME"), ["PID", "NAME"]);
        // As procps: a title runs to the end of its argument.
        assert_eq!(titles("-o pid=,rss"), [",rss"]);
        assert_eq!(titles("-o pid= -o rss"), ["", "RSS"]);
    }

    #[test]
    fn refusals() {
        assert_eq!(
            columns("-o pid,bogus"),
            Err(PsError::Unsupported("bogus".into()))
        );
        assert!(matches!(columns("-Z"), Err(PsError::Unsupported(_))));
        assert!(matches!(columns("-o"), Err(PsError::Unsupported(_))));
        assert_eq!(
            validate("-o user=PID"),
            Err(PsError::Disallowed("user=PID".into()))
        );
        assert_eq!(validate("-o pid=PID"), Ok(()));
        assert_eq!(table("-o comm", &[]), Err(PsError::NoPid));
    }

    #[test]
    fn own_row() {
        let me = std::process::id() as i32;
        let (t, rows) = table("-o pid,ppid,comm,stat,vsz", &[me]).unwrap();
        assert_eq!(t, ["PID", "PPID", "COMMAND", "STAT", "VSZ"]);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0][0], me.to_string());
        assert!(rows[0][4].parse::<u64>().unwrap() > 0);
    }

    #[test]
    fn times() {
        assert_eq!(cpu_time(3725), "01:02:05");
        assert_eq!(cpu_time(90_000), "1-01:00:00");
        assert_eq!(elapsed(65), "01:05");
        assert_eq!(elapsed(3_700), "01:01:40");
        assert_eq!(start_of(86_400 * 3 + 3600, 86_400 * 3 + 7200), "01:00");
        assert_eq!(start_of(0, 86_400 * 10), "Jan01");
    }
}
