//! dockerd's json-file log driver: one `{"log":..,"stream":..,"time":..}`
//! line per output line, with size-based rotation (`max-size`, `max-file`)
//! so flash storage never fills up. Also the reader for `docker logs`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::jsonstr::RecordBuf;
use super::stdcopy::StreamKind;

/// A line of this many bytes or more is written as several records: dockerd's
/// copier reads a line into a 16 KiB buffer and logs it as a partial
/// record whenever the buffer fills without a newline.
const MAX_LINE: usize = 16 * 1024;

pub struct LogWriter {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    /// 0 = unlimited.
    max_size: u64,
    max_files: u32,
    /// Bytes of an unfinished line, per stream (fewer than `MAX_LINE`).
    partial: [Vec<u8>; 3],
    /// The time of the first record of a line cut into several, per stream.
    partial_time: [Option<String>; 3],
    /// Records that could not be written (a full disk), since it was opened.
    lost: LogLoss,
}

/// Log records kept out of the log because writing failed (a full disk):
/// counted, never silent. `LogLoss` in a container's inspect.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LogLoss {
    #[serde(rename = "Lines")]
    pub lines: u64,
    #[serde(rename = "Bytes")]
    pub bytes: u64,
}

impl LogLoss {
    pub fn add(&mut self, other: LogLoss) {
        self.lines += other.lines;
        self.bytes += other.bytes;
    }

    pub fn since(self, earlier: LogLoss) -> LogLoss {
        LogLoss {
            lines: self.lines.saturating_sub(earlier.lines),
            bytes: self.bytes.saturating_sub(earlier.bytes),
        }
    }
}

/// Parse docker's size strings: "10m", "512k", "1g", "100" (bytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.trim_end_matches('b');
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1024u64),
        'm' => (&s[..s.len() - 1], 1024 * 1024),
        'g' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    let n: f64 = num.trim().parse().ok()?;
    (n >= 0.0).then_some((n * mult as f64) as u64)
}

/// The most files one log is kept in (the current one and `.1`..`.98`):
/// a rotation renames each of them, so this bounds its cost.
pub const MAX_FILES: u32 = 99;

/// `max-size` x `max-file` as asked, in at most `MAX_FILES` files: a larger
/// count keeps the same retention in fewer, larger files (dockerd accepts
/// any positive `max-file`; its rotation renames every file).
pub fn bounded(max_size: u64, max_files: u32) -> (u64, u32) {
    let files = max_files.max(1);
    if files <= MAX_FILES || max_size == 0 {
        return (max_size, files.min(MAX_FILES));
    }
    let total = max_size.saturating_mul(u64::from(files));
    (total / u64::from(MAX_FILES), MAX_FILES)
}

impl LogWriter {
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> io::Result<LogWriter> {
        let (max_size, max_files) = bounded(max_size, max_files);
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file: Some(file),
            size,
            max_size,
            max_files,
            partial: Default::default(),
            partial_time: Default::default(),
            lost: LogLoss::default(),
        })
    }

    /// Record output of one stream; its records are written at once, in
    /// one write per call (a chatty container must not cost a syscall per
    /// line). On a write error (a full disk) the records of this call are
    /// counted in `lost` and the error returned; the next call tries again,
    /// so logging resumes once there is room.
    pub fn write(&mut self, kind: StreamKind, data: &[u8]) -> io::Result<()> {
        self.write_with(kind, data, &mut RecordBuf::default())
    }

    /// `write`, building the records in `batch` (left empty, its capacity
    /// kept): the pump passes one buffer for every container, so a chatty
    /// one neither allocates per read nor keeps a buffer of its own.
    pub fn write_with(
        &mut self,
        kind: StreamKind,
        data: &[u8],
        batch: &mut RecordBuf,
    ) -> io::Result<()> {
        let now = crate::timefmt::rfc3339_nano(SystemTime::now());
        self.write_at(kind, data, &now, batch)
    }

    /// `write` with the time of its records given: the records are those
    /// dockerd's copier makes, whatever pieces the output arrives in. A
    /// line is one record; a line longer than `MAX_LINE` is cut into
    /// records of exactly `MAX_LINE` bytes without a newline (partial
    /// records, all with the time of the first), then the rest with its
    /// newline; a line of exactly `MAX_LINE` bytes is one partial record
    /// and a record of just its newline.
    pub(crate) fn write_at(
        &mut self,
        kind: StreamKind,
        mut data: &[u8],
        now: &str,
        batch: &mut RecordBuf,
    ) -> io::Result<()> {
        let idx = kind as usize;
        batch.clear();
        let mut result = Ok(());
        while !data.is_empty() {
            let held = self.partial[idx].len();
            let room = MAX_LINE - held;
            let window = &data[..data.len().min(room)];
            let end = match window.iter().position(|&b| b == b'\n') {
                Some(i) => i + 1,
                None if window.len() == room => room,
                None => {
                    self.partial[idx].extend_from_slice(window);
                    break;
                }
            };
            let complete = data[end - 1] == b'\n';
            // A line cut into records keeps its first record's time.
            let first_time = self.partial_time[idx].take();
            let time = first_time.as_deref().unwrap_or(now);
            let step = if held == 0 {
                self.record(batch, kind, &data[..end], time)
            } else {
                let mut line = std::mem::take(&mut self.partial[idx]);
                line.extend_from_slice(&data[..end]);
                let step = self.record(batch, kind, &line, time);
                line.clear();
                self.partial[idx] = line;
                step
            };
            keep_first(&mut result, step);
            if !complete {
                self.partial_time[idx] = Some(first_time.unwrap_or_else(|| now.to_string()));
            }
            data = &data[end..];
        }
        let flushed = self.flush_batch(batch);
        result.and(flushed)
    }

    /// Write what is left of unfinished lines (the container exited): a
    /// partial record without a newline, as dockerd's.
    pub fn flush_partial(&mut self) -> io::Result<()> {
        let now = crate::timefmt::rfc3339_nano(SystemTime::now());
        self.flush_partial_at(&now)
    }

    /// `flush_partial` with the time of a record that has none yet.
    pub(crate) fn flush_partial_at(&mut self, now: &str) -> io::Result<()> {
        let mut batch = RecordBuf::default();
        let mut result = Ok(());
        for kind in [StreamKind::Stdout, StreamKind::Stderr] {
            let idx = kind as usize;
            let rest = std::mem::take(&mut self.partial[idx]);
            let time = self.partial_time[idx]
                .take()
                .unwrap_or_else(|| now.to_string());
            if !rest.is_empty() {
                keep_first(&mut result, self.record(&mut batch, kind, &rest, &time));
            }
        }
        let flushed = self.flush_batch(&mut batch);
        result.and(flushed)
    }

    /// Records that could not be written since the log was opened.
    pub fn lost(&self) -> LogLoss {
        self.lost
    }

    /// Append one record to `batch`, rotating first when it would not fit.
    /// The record always ends up in `batch` (written or counted as lost by
    /// the next flush), whatever happened to what preceded it.
    fn record(
        &mut self,
        batch: &mut RecordBuf,
        kind: StreamKind,
        line: &[u8],
        time: &str,
    ) -> io::Result<()> {
        let before = batch.len();
        batch.push(b"{\"log\":");
        batch.push_log_str(line);
        batch.push(b",\"stream\":\"");
        batch.push(kind.name().as_bytes());
        batch.push(b"\",\"time\":\"");
        batch.push(time.as_bytes());
        batch.push(b"\"}\n");
        let len = (batch.len() - before) as u64;
        let pending = before as u64;
        let mut result = Ok(());
        if self.max_size > 0 && self.size + pending > 0 && self.size + pending + len > self.max_size
        {
            // Flush what precedes this record into the old file, then rotate.
            let rec = batch.as_slice()[before..].to_vec();
            batch.truncate(before);
            result = self.flush_batch(batch);
            if result.is_ok() && self.size > 0 {
                result = self.rotate();
            }
            batch.push(&rec);
        }
        result
    }

    /// Append `batch` to the file and empty it. On failure its records are
    /// counted as lost and a torn record is cut off again, so the file
    /// holds whole records only.
    fn flush_batch(&mut self, batch: &mut RecordBuf) -> io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let result = self.append(batch.as_slice());
        if result.is_err() {
            let records = batch.as_slice().iter().filter(|&&b| b == b'\n').count();
            self.lost.lines += records as u64;
            self.lost.bytes += batch.len() as u64;
        }
        batch.clear();
        result
    }

    fn append(&mut self, batch: &[u8]) -> io::Result<()> {
        let file = match self.file.as_mut() {
            Some(f) => f,
            None => {
                // A rotation could not reopen the log: try again now.
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?;
                self.size = f.metadata()?.len();
                self.file.insert(f)
            }
        };
        if let Err(e) = file.write_all(batch) {
            let _ = file.set_len(self.size);
            return Err(e);
        }
        self.size += batch.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let name = |n: u32| {
            if n == 0 {
                self.path.clone()
            } else {
                PathBuf::from(format!("{}.{n}", self.path.display()))
            }
        };
        if self.max_files <= 1 {
            let _ = fs::remove_file(&self.path);
        } else {
            let _ = fs::remove_file(name(self.max_files - 1));
            for n in (0..self.max_files - 1).rev() {
                let _ = fs::rename(name(n), name(n + 1));
                crate::failpoint!("log.rotate_renamed");
            }
        }
        self.file = Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?,
        );
        self.size = 0;
        crate::failpoint!("log.rotate_reopened");
        Ok(())
    }
}

/// Keep the first error of several steps.
fn keep_first(result: &mut io::Result<()>, step: io::Result<()>) {
    if result.is_ok() {
        *result = step;
    }
}

/// One record read back from the log.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: StreamKind,
    pub line: String,
    pub time: String,
}

/// All files of a log, oldest first.
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for n in (1..MAX_FILES).rev() {
        let p = PathBuf::from(format!("{}.{n}", path.display()));
        if p.exists() {
            out.push(p);
        }
    }
    if path.exists() {
        out.push(path.to_path_buf());
    }
    out
}

/// Read every record of a log (rotated files included), oldest first;
/// malformed lines are skipped. Whole-file: for small logs (`attach?logs=1`);
/// `docker logs` reads through a `LogCursor`.
pub fn read_all(path: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    for p in files(path) {
        let Ok(f) = File::open(&p) else { continue };
        for line in BufReader::new(f).lines().map_while(Result::ok) {
            if let Some(e) = parse_line(line.as_bytes()) {
                out.push(e);
            }
        }
    }
    out
}

/// One json-file line as a record (None when malformed).
pub fn parse_line(line: &[u8]) -> Option<Entry> {
    #[derive(serde::Deserialize)]
    struct Record<'a> {
        #[serde(default)]
        log: String,
        #[serde(default, borrow)]
        stream: Option<std::borrow::Cow<'a, str>>,
        #[serde(default)]
        time: String,
    }
    let r: Record = serde_json::from_slice(line).ok()?;
    let kind = match r.stream.as_deref() {
        Some("stderr") => StreamKind::Stderr,
        _ => StreamKind::Stdout,
    };
    Some(Entry {
        kind,
        line: r.log,
        time: r.time,
    })
}

/// A position-keeping reader over a log's files as they were when it was
/// opened (each open file up to its length then, so lines written later,
/// which a follower gets live, are not read twice). Reads are bounded per
/// call, and `seek_tail` walks back from the end, so neither memory nor one
/// loop turn grows with the size of the log.
pub struct LogCursor {
    files: Vec<(File, u64)>,
    /// Forward position: file index and offset.
    idx: usize,
    pos: u64,
    partial: Vec<u8>,
    /// Tail scan: where it has reached, and the bytes of a line whose start
    /// is in a block not read yet.
    back: Option<(usize, u64)>,
    carry: Vec<u8>,
}

/// Bytes read from disk per step.
const BLOCK: usize = 64 * 1024;

impl LogCursor {
    pub fn open(path: &Path) -> LogCursor {
        let files = files(path)
            .into_iter()
            .filter_map(|p| {
                let f = File::open(p).ok()?;
                let len = f.metadata().ok()?.len();
                Some((f, len))
            })
            .collect();
        LogCursor {
            files,
            idx: 0,
            pos: 0,
            partial: Vec::new(),
            back: None,
            carry: Vec::new(),
        }
    }

    /// Start a tail scan (`seek_tail`): the forward reading will begin at
    /// the `n`th last record that `keep` accepts.
    pub fn start_tail(&mut self) {
        let last = self.files.len().saturating_sub(1);
        let end = self.files.last().map(|f| f.1).unwrap_or(0);
        self.back = Some((last, end));
        self.carry.clear();
    }

    /// One step of the tail scan (at most `budget` bytes read). Returns
    /// true when the scan is over (`*n` records found, or the start reached).
    pub fn seek_tail(
        &mut self,
        n: &mut usize,
        budget: usize,
        keep: &dyn Fn(&Entry) -> bool,
    ) -> bool {
        use std::os::unix::fs::FileExt;
        let mut read = 0;
        while let Some((idx, end)) = self.back {
            if *n == 0 {
                self.back = None;
                return true;
            }
            if read >= budget {
                return false;
            }
            let Some((f, _)) = self.files.get(idx) else {
                self.back = None;
                return true;
            };
            let start = end.saturating_sub(BLOCK as u64);
            let mut block = vec![0u8; (end - start) as usize];
            if f.read_exact_at(&mut block, start).is_err() {
                block.clear();
            }
            read += block.len();
            block.extend_from_slice(&self.carry);
            self.carry.clear();
            // Complete lines after the first newline, newest first; what
            // precedes it continues in the block before (unless at 0).
            let first_nl = if start == 0 {
                None
            } else {
                block.iter().position(|&b| b == b'\n')
            };
            let from = first_nl.map(|i| i + 1).unwrap_or(0);
            let region = &block[from..];
            let mut lines = Vec::new();
            let mut ls = 0;
            for (i, &b) in region.iter().enumerate() {
                if b == b'\n' {
                    lines.push((ls, i));
                    ls = i + 1;
                }
            }
            if ls < region.len() {
                lines.push((ls, region.len()));
            }
            let mut found = None;
            for &(a, b) in lines.iter().rev() {
                if parse_line(&region[a..b]).is_some_and(|e| keep(&e)) {
                    *n -= 1;
                    if *n == 0 {
                        found = Some(start + (from + a) as u64);
                        break;
                    }
                }
            }
            if let Some(at) = found {
                self.idx = idx;
                self.pos = at;
                self.back = None;
                return true;
            }
            match first_nl {
                Some(i) => {
                    self.carry = block[..=i].to_vec();
                    self.back = Some((idx, start));
                }
                None if idx > 0 => {
                    let prev = idx - 1;
                    self.back = Some((prev, self.files[prev].1));
                }
                None => {
                    // The start of the log: everything is in the tail.
                    self.idx = 0;
                    self.pos = 0;
                    self.back = None;
                    return true;
                }
            }
        }
        true
    }

    /// The next records (at most `budget` bytes read). Returns false once
    /// the snapshot is exhausted.
    pub fn next(&mut self, budget: usize, out: &mut Vec<Entry>) -> bool {
        use std::os::unix::fs::FileExt;
        let mut read = 0;
        while read < budget {
            let Some((f, limit)) = self.files.get(self.idx) else {
                return false;
            };
            if self.pos >= *limit {
                self.idx += 1;
                self.pos = 0;
                self.partial.clear();
                continue;
            }
            let len = BLOCK.min((*limit - self.pos) as usize);
            let mut buf = vec![0u8; len];
            if f.read_exact_at(&mut buf, self.pos).is_err() {
                self.pos = *limit;
                continue;
            }
            self.pos += len as u64;
            read += len;
            self.partial.extend_from_slice(&buf);
            let mut start = 0;
            while let Some(i) = self.partial[start..].iter().position(|&b| b == b'\n') {
                if let Some(e) = parse_line(&self.partial[start..start + i]) {
                    out.push(e);
                }
                start += i + 1;
            }
            self.partial.drain(..start);
        }
        true
    }
}

#[cfg(test)]
#[path = "jsonlog_tests.rs"]
mod tests;
