//! Containers driven over the raw API (create, start, wait, attach with
//! its stdcopy stream): shared by the I/O path test files.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::Value;

use super::Daemon;

pub fn create(d: &Daemon, name: &str, body: &Value) -> String {
    let r = d.request(
        "POST",
        &format!("/containers/create?name={name}"),
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 201, "create {name}: {r:?}");
    r.json()["Id"].as_str().expect("Id").to_string()
}

pub fn start(d: &Daemon, name: &str) {
    let r = d.request("POST", &format!("/containers/{name}/start"), None);
    assert_eq!(r.status, 204, "start {name}: {r:?}");
}

pub fn wait_exit(d: &Daemon, name: &str) -> i64 {
    let r = d.request("POST", &format!("/containers/{name}/wait"), None);
    assert_eq!(r.status, 200, "wait {name}: {r:?}");
    r.json()["StatusCode"].as_i64().expect("StatusCode")
}

/// Open `POST /containers/NAME/attach` (Upgrade: tcp); returns the stream
/// positioned after the 101 head, and any bytes read past it.
pub fn attach(d: &Daemon, name: &str) -> (UnixStream, Vec<u8>) {
    let mut s = d.connect();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let req = format!(
        "POST /containers/{name}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = s.read(&mut chunk).expect("read attach head");
        assert!(n > 0, "attach closed before its head: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "attach head: {head}");
    (s, buf[end..].to_vec())
}

/// Split a multiplexed (stdcopy) stream into stdout and stderr.
pub fn demux(raw: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < raw.len() {
        assert!(i + 8 <= raw.len(), "truncated frame header at byte {i}");
        let h = &raw[i..i + 8];
        assert!(
            matches!(h[0], 1 | 2) && h[1..4] == [0, 0, 0],
            "bad frame header {h:?} at byte {i}"
        );
        let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
        assert!(
            i + 8 + len <= raw.len(),
            "frame at byte {i} runs past the end"
        );
        let dest = if h[0] == 1 { &mut out } else { &mut err };
        dest.extend_from_slice(&raw[i + 8..i + 8 + len]);
        i += 8 + len;
    }
    (out, err)
}
