//! The json-file log as dockerd writes it, for output that is hard to log:
//! NUL and other control bytes, `<>&`, invalid UTF-8, U+2028, `\r\n`, lines
//! of exactly and of more than 16 KiB (a multi-byte character cut at the
//! boundary), a partial last line on both streams. The records are compared
//! byte for byte with what dockerd 20.10.24 wrote for the same output (run
//! by hand; the `time` values apart), `docker logs` gives the output back
//! as dockerd's does (invalid UTF-8 as U+FFFD, byte by byte),
//! and an attached reader gets every byte while the log is written.
//!
//! No timings here: the speed of this path is `scripts/bench.sh`'s attach
//! row, against `scripts/bench-io-floor.sh`'s floor.

mod common;

use std::io::Read;

use common::raw_api::{attach, create, demux, start, wait_exit};
use common::Daemon;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const K16: usize = 16 * 1024;

/// The container's stdout: one tricky case per line.
fn tricky_stdout() -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"tab\there <b>&amp; \"q\" back\\slash\r\n");
    out.extend_from_slice(b"\x00\x01\x08\x0c\x1b\x7f\n");
    out.extend_from_slice(
        b"utf8 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 sep\xe2\x80\xa8par\xe2\x80\xa9 fffd\xef\xbf\xbd\n",
    );
    out.extend_from_slice(b"bad \xff\xfe \xe2\x82 \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \x80\n");
    out.extend_from_slice(&[b'a'; K16]);
    out.push(b'\n');
    out.extend_from_slice(&[b'b'; 40_000]);
    out.push(b'\n');
    out.extend_from_slice(&[b'c'; K16 - 1]);
    out.extend_from_slice("é\n".as_bytes());
    out.extend_from_slice(&[0u8; 20_000]);
    out.push(b'\n');
    out.push(b'\n');
    out.extend_from_slice(b"tail without newline");
    out
}

const TRICKY_STDERR: &[u8] = b"err line\nerr tail";

/// The `log` values dockerd writes for `tricky_stdout`, as JSON text.
fn dockerd_stdout_records() -> Vec<String> {
    let q = |s: &str| format!("\"{s}\"");
    let ff = "\\ufffd";
    vec![
        q(r#"tab\u0009here \u003cb\u003e\u0026amp; \"q\" back\\slash\r\n"#),
        q("\\u0000\\u0001\\u0008\\u000c\\u001b\x7f\\n"),
        q("utf8 é € 😀 sep\\u2028par\\u2029 fffd\u{fffd}\\n"),
        q(&format!(
            "bad {ff}{ff} {ff}{ff} {ff}{ff} {ff}{ff}{ff} {ff}{ff}{ff}{ff} {ff}\\n"
        )),
        // A line of exactly 16 KiB: a partial record, then its newline alone.
        q(&"a".repeat(K16)),
        q("\\n"),
        // 40,000 bytes: 16 KiB, 16 KiB, the rest with the newline.
        q(&"b".repeat(K16)),
        q(&"b".repeat(K16)),
        q(&format!("{}\\n", "b".repeat(40_000 - 2 * K16))),
        // "é" cut after its first byte: one invalid byte in each record.
        q(&format!("{}{ff}", "c".repeat(K16 - 1))),
        q(&format!("{ff}\\n")),
        q(&"\\u0000".repeat(K16)),
        q(&format!("{}\\n", "\\u0000".repeat(20_000 - K16))),
        q("\\n"),
        // The unfinished last line, written at exit without a newline.
        q("tail without newline"),
    ]
}

/// What `docker logs` gives back: the output, each byte that starts no
/// valid UTF-8 sequence replaced by U+FFFD (as with dockerd).
fn read_back(data: &[u8]) -> Vec<u8> {
    let mut out = String::new();
    let mut rest = data;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let (ok, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(ok).expect("valid prefix"));
                out.push('\u{fffd}');
                rest = &bad[1..];
            }
        }
    }
    out.into_bytes()
}

/// One record of a json-file log: (stream, the log value's JSON text, time).
/// The whole line must have dockerd's shape: `{"log":..,"stream":..,"time":..}`.
fn parse_record(line: &[u8]) -> (String, String, String) {
    let text = String::from_utf8(line.to_vec()).expect("a log record is UTF-8");
    let body = text
        .strip_prefix("{\"log\":")
        .and_then(|t| t.strip_suffix("\"}"))
        .unwrap_or_else(|| panic!("record shape: {text:.200}"));
    let at = body.rfind(",\"stream\":\"").expect("stream field");
    let (log, rest) = body.split_at(at);
    let rest = &rest[",\"stream\":\"".len()..];
    let (stream, time) = rest
        .split_once("\",\"time\":\"")
        .unwrap_or_else(|| panic!("time field: {rest}"));
    // RFC 3339 in UTC with nanoseconds, trailing zeros cut (Go's RFC3339Nano).
    let fraction = time
        .strip_suffix('Z')
        .and_then(|t| t.split_once('.'))
        .map(|(_, f)| f);
    assert!(
        time.len() >= 20
            && time.ends_with('Z')
            && &time[10..11] == "T"
            && fraction.is_none_or(|f| !f.is_empty() && f.len() <= 9 && !f.ends_with('0')),
        "time {time:?}"
    );
    let v: Value = serde_json::from_str(&text).expect("a record is JSON");
    assert!(v["log"].is_string(), "{text:.200}");
    (stream.to_string(), log.to_string(), time.to_string())
}

fn log_records(d: &Daemon, id: &str) -> Vec<(String, String, String)> {
    let path = d
        .data_root
        .join("containers")
        .join(id)
        .join(format!("{id}-json.log"));
    let data = std::fs::read(&path).expect("the json-file log");
    assert!(data.ends_with(b"\n"), "the log ends with a whole record");
    data.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(parse_record)
        .collect()
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Seeded noise with some structure: NULs, text, newlines, every byte value.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        match x % 5 {
            0 => out.extend_from_slice(&[0u8; 64]),
            1 => out.extend_from_slice(b"some text <&> \"quoted\"\n"),
            _ => out.extend_from_slice(&x.to_le_bytes()),
        }
    }
    out.truncate(len);
    out
}

/// The tricky output through a container: the log's records are dockerd's
/// (per stream, in order; the pieces of a cut line share its first time),
/// `docker logs` gives the output back, and an attached reader got exactly
/// the bytes written. Then 4 MiB of noise: attach and log both carry it all.
#[test]
fn json_file_log_is_dockerds_and_attach_gets_every_byte() {
    let d = Daemon::with_busybox();
    let data = d.dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let out = tricky_stdout();
    std::fs::write(data.join("out.bin"), &out).unwrap();
    std::fs::write(data.join("err.bin"), TRICKY_STDERR).unwrap();
    let binds = json!([format!("{}:/data:ro", data.display())]);

    let id = create(
        &d,
        "tricky",
        &json!({"Image": "busybox", "Cmd": ["sh", "-c", "cat /data/out.bin; cat /data/err.bin >&2"],
                "AttachStdout": true, "AttachStderr": true, "Tty": false,
                "HostConfig": {"Binds": binds}}),
    );
    let (mut s, mut raw) = attach(&d, "tricky");
    start(&d, "tricky");
    s.read_to_end(&mut raw).expect("read the attach stream");
    let (got_out, got_err) = demux(&raw);
    assert!(got_out == out, "attach stdout differs from the output");
    assert_eq!(got_err, TRICKY_STDERR, "attach stderr");
    assert_eq!(wait_exit(&d, "tricky"), 0);

    let records = log_records(&d, &id);
    let logs = |stream: &str| -> Vec<String> {
        records
            .iter()
            .filter(|r| r.0 == stream)
            .map(|r| r.1.clone())
            .collect()
    };
    let want = dockerd_stdout_records();
    let got = logs("stdout");
    let short: Vec<&str> = got.iter().map(|g| &g[..g.len().min(40)]).collect();
    assert_eq!(got.len(), want.len(), "stdout records: {short:?}");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(g == w, "stdout record {i}: got {g:.120}, want {w:.120}");
    }
    assert_eq!(
        logs("stderr"),
        vec!["\"err line\\n\"".to_string(), "\"err tail\"".to_string()]
    );
    assert_eq!(
        records.len(),
        want.len() + 2,
        "only stdout and stderr records"
    );
    // The pieces of a cut line carry the time of its first piece.
    let stdout: Vec<&(String, String, String)> =
        records.iter().filter(|r| r.0 == "stdout").collect();
    for (from, to) in [(4, 5), (6, 8), (9, 10), (11, 12)] {
        assert!(
            stdout[from..=to].iter().all(|r| r.2 == stdout[from].2),
            "records {from}..={to} of one line have different times"
        );
    }

    // `docker logs` (dockerd's too) reads the records back: the "é" cut
    // at 16 KiB comes back as two U+FFFD.
    let o = d.docker(&["logs", "tricky"]);
    assert!(o.status.success(), "docker logs: {o:?}");
    let mut cut = vec![b'c'; K16 - 1];
    cut.extend_from_slice("é".as_bytes());
    let at = out
        .windows(cut.len())
        .position(|w| w == cut)
        .expect("the cut line");
    let mut as_logged = out.clone();
    as_logged[at + K16 - 1..at + K16 + 1].copy_from_slice(&[0xff, 0xff]);
    assert!(
        o.stdout == read_back(&as_logged),
        "docker logs stdout differs"
    );
    assert_eq!(o.stderr, TRICKY_STDERR, "docker logs stderr");

    // 4 MiB of noise on stdout and a little on stderr.
    let big = noise(4 << 20, 0x5eed_1001);
    std::fs::write(data.join("big.bin"), &big).unwrap();
    let id = create(
        &d,
        "noise",
        &json!({"Image": "busybox", "Cmd": ["sh", "-c", "cat /data/big.bin; cat /data/err.bin >&2"],
                "AttachStdout": true, "AttachStderr": true, "Tty": false,
                "HostConfig": {"Binds": json!([format!("{}:/data:ro", data.display())])}}),
    );
    let (mut s, mut raw) = attach(&d, "noise");
    start(&d, "noise");
    s.read_to_end(&mut raw).expect("read the attach stream");
    let (got_out, got_err) = demux(&raw);
    assert_eq!(got_out.len(), big.len(), "attach stdout length");
    assert_eq!(sha256(&got_out), sha256(&big), "attach stdout bytes");
    assert_eq!(got_err, TRICKY_STDERR, "attach stderr");
    assert_eq!(wait_exit(&d, "noise"), 0);
    let records = log_records(&d, &id);
    assert!(
        records
            .iter()
            .all(|r| !r.1.contains('\t') && !r.1.contains('<')),
        "a tab or < written unescaped"
    );
    let o = d.docker(&["logs", "noise"]);
    assert!(o.status.success(), "docker logs: {o:?}");
    let want = read_back(&big);
    assert_eq!(o.stdout.len(), want.len(), "docker logs stdout length");
    assert_eq!(sha256(&o.stdout), sha256(&want), "docker logs stdout bytes");
    assert_eq!(o.stderr, TRICKY_STDERR, "docker logs stderr");
}
