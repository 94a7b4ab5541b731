//! Tests of the json-file log writer and reader.

use super::*;

/// The records of `pieces` written in turn to a fresh log, with one time.
fn records_of(pieces: &[(StreamKind, &[u8])], exit: bool) -> Vec<u8> {
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("coracle-jsonlog-rec-{}-{seq}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let p = dir.join("c-json.log");
    let mut w = LogWriter::open(&p, 0, 1).unwrap();
    let mut batch = crate::stdio::jsonstr::RecordBuf::default();
    for (kind, data) in pieces {
        w.write_at(*kind, data, "T", &mut batch).unwrap();
    }
    if exit {
        w.flush_partial_at("T").unwrap();
    }
    let out = fs::read(&p).unwrap();
    fs::remove_dir_all(&dir).unwrap();
    out
}

fn rec(log: &str, stream: &str) -> String {
    format!("{{\"log\":{log},\"stream\":\"{stream}\",\"time\":\"T\"}}\n")
}

/// dockerd's copier: a line per record, lines of 16 KiB or more cut into
/// 16 KiB records (a line of exactly 16 KiB leaves a record of just its
/// newline), the unfinished rest written without a newline at exit.
#[test]
fn records_are_cut_as_dockerd_cuts_them() {
    let a16 = "a".repeat(MAX_LINE);
    let long = format!("{a16}{a16}bc\n");
    let exact = format!("{a16}\n");
    let got = records_of(
        &[
            (StreamKind::Stdout, b"x\r\ny\n"),
            (StreamKind::Stdout, long.as_bytes()),
            (StreamKind::Stdout, exact.as_bytes()),
            (StreamKind::Stderr, b"e\tf"),
        ],
        true,
    );
    let q = |s: &str| format!("\"{s}\"");
    let want = [
        rec(r#""x\r\n""#, "stdout"),
        rec(r#""y\n""#, "stdout"),
        rec(&q(&a16), "stdout"),
        rec(&q(&a16), "stdout"),
        rec(r#""bc\n""#, "stdout"),
        rec(&q(&a16), "stdout"),
        rec(r#""\n""#, "stdout"),
        rec(r#""e\u0009f""#, "stderr"),
    ]
    .concat();
    let got = String::from_utf8(got).unwrap();
    let short = |s: &str| {
        s.lines()
            .map(|l| l.chars().take(60).collect::<String>())
            .collect::<Vec<_>>()
    };
    assert_eq!(short(&got), short(&want));
    assert!(got == want, "records differ");
}

/// The records do not depend on the pieces the output arrives in (pipe
/// reads of any size), as dockerd's do not.
#[test]
fn records_do_not_depend_on_read_sizes() {
    let mut data = Vec::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..200_000usize {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.push(match x % 7 {
            0 if i % 3 == 0 => b'\n',
            1 => 0,
            2 => x as u8,
            _ => b'a' + (x % 26) as u8,
        });
    }
    // Some lines far longer than 16 KiB, one of exactly 16 KiB.
    data.extend_from_slice(&vec![b'z'; 3 * MAX_LINE + 5]);
    data.push(b'\n');
    data.extend_from_slice(&vec![0u8; MAX_LINE]);
    data.push(b'\n');
    data.extend_from_slice(b"tail without newline");
    let whole = records_of(&[(StreamKind::Stdout, &data)], true);
    for size in [1usize, 7, 2048, 4096, 16_383, 16_384, 16_385, 65_536] {
        let pieces: Vec<(StreamKind, &[u8])> =
            data.chunks(size).map(|c| (StreamKind::Stdout, c)).collect();
        assert!(
            records_of(&pieces, true) == whole,
            "records differ when read {size} bytes at a time"
        );
    }
    // And they carry the bytes: each invalid UTF-8 byte read back as U+FFFD.
    let p = std::env::temp_dir().join(format!("coracle-jsonlog-rb-{}", std::process::id()));
    fs::write(&p, &whole).unwrap();
    let back: String = read_all(&p).into_iter().map(|e| e.line).collect();
    fs::remove_file(&p).unwrap();
    let mut want = String::new();
    let mut rest = &data[..];
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                want.push_str(s);
                break;
            }
            Err(e) => {
                let (ok, bad) = rest.split_at(e.valid_up_to());
                want.push_str(std::str::from_utf8(ok).unwrap());
                want.push('\u{fffd}');
                rest = &bad[1..];
            }
        }
    }
    assert_eq!(back.len(), want.len());
    assert!(back == want, "the log does not read back as the output");
}

#[test]
fn write_errors_are_counted_not_silent() {
    // /dev/full: every write fails with ENOSPC, as on a full disk.
    let mut w = LogWriter::open(Path::new("/dev/full"), 0, 1).unwrap();
    let e = w.write(StreamKind::Stdout, b"a\nb\nc").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
    assert_eq!(w.lost().lines, 2);
    assert!(w.flush_partial().is_err());
    assert_eq!(w.lost().lines, 3);
}

#[test]
fn lines_partials_and_rotation() {
    let dir = std::env::temp_dir().join(format!("coracle-jsonlog-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let p = dir.join("c-json.log");
    let mut w = LogWriter::open(&p, 2000, 2).unwrap();
    w.write(StreamKind::Stdout, b"hel").unwrap();
    w.write(StreamKind::Stdout, b"lo\nwor").unwrap();
    w.write(StreamKind::Stderr, b"err\n").unwrap();
    w.flush_partial().unwrap();
    let e = read_all(&p);
    assert_eq!(e.len(), 3);
    assert_eq!(e[0].line, "hello\n");
    assert_eq!(e[1].kind, StreamKind::Stderr);
    assert_eq!(e[2].line, "wor");
    for _ in 0..200 {
        w.write(
            StreamKind::Stdout,
            b"0123456789012345678901234567890123456789\n",
        )
        .unwrap();
    }
    let total: u64 = files(&p)
        .iter()
        .map(|f| fs::metadata(f).unwrap().len())
        .sum();
    assert!(files(&p).len() <= 2, "{:?}", files(&p));
    assert!(total <= 4000, "{total}");
    assert_eq!(parse_size("10m"), Some(10 << 20));
    assert_eq!(parse_size("512k"), Some(512 << 10));
    assert_eq!(parse_size("100"), Some(100));
    assert_eq!(parse_size("x"), None);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cursor_tail_and_snapshot() {
    let dir = std::env::temp_dir().join(format!("coracle-cursor-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let p = dir.join("c-json.log");
    let mut w = LogWriter::open(&p, 4000, 3).unwrap();
    for i in 0..300 {
        let kind = if i % 3 == 0 {
            StreamKind::Stderr
        } else {
            StreamKind::Stdout
        };
        w.write(kind, format!("line {i}\n").as_bytes()).unwrap();
    }
    let all = read_all(&p);
    assert!(files(&p).len() > 1, "rotated: {:?}", files(&p));
    let keep_out = |e: &Entry| e.kind == StreamKind::Stdout;
    for n in [1usize, 5, 17, 10_000] {
        let mut c = LogCursor::open(&p);
        c.start_tail();
        let mut left = n;
        // A tiny budget: the scan takes many steps.
        while !c.seek_tail(&mut left, 100, &keep_out) {}
        let mut got = Vec::new();
        while c.next(100, &mut got) {}
        let got: Vec<String> = got
            .into_iter()
            .filter(|e| keep_out(e))
            .map(|e| e.line)
            .collect();
        let want: Vec<String> = all
            .iter()
            .filter(|e| keep_out(e))
            .map(|e| e.line.clone())
            .collect();
        let want = want[want.len().saturating_sub(n)..].to_vec();
        assert_eq!(got, want, "tail {n}");
    }
    // Lines written after opening are not part of the snapshot.
    let mut c = LogCursor::open(&p);
    w.write(StreamKind::Stdout, b"later\n").unwrap();
    let mut got = Vec::new();
    while c.next(1 << 20, &mut got) {}
    assert_eq!(got.len(), all.len());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn max_file_above_the_bound_keeps_the_retention() {
    assert_eq!(bounded(10_000, 3), (10_000, 3));
    assert_eq!(bounded(10_000, 99), (10_000, 99));
    assert_eq!(bounded(9_900, 100), (10_000, 99));
    assert_eq!(bounded(0, 1000), (0, 99));
    assert_eq!(bounded(u64::MAX, u32::MAX).1, 99);
    assert_eq!(bounded(1, 0), (1, 1));
}
