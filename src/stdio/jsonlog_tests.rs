//! Tests of the json-file log writer and reader.

use super::*;

#[test]
fn json_strings_match_serde_json() {
    let mut all: Vec<u8> = (0u8..=0x7f).collect();
    all.extend_from_slice("é€😀 \u{7f}\u{80}".as_bytes());
    let mut noisy = Vec::new();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noisy.push(x as u8);
    }
    for input in [
        &b""[..],
        &b"plain text\n"[..],
        &all[..],
        &noisy[..],
        &[0u8; 300][..],
    ] {
        let text = String::from_utf8_lossy(input);
        let mut ours = Vec::new();
        push_json_str(&mut ours, &text);
        let theirs = serde_json::to_vec(&*text).unwrap();
        assert_eq!(ours, theirs, "input {:?}", &input[..input.len().min(40)]);
    }
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
