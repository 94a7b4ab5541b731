//! The archive API behind `docker cp`: HEAD/GET/PUT
//! `/containers/{id}/archive`, driven by the docker CLI (both ways, `-`,
//! `-a`, `-L`, binds, stopped containers) and by raw HTTP (stat header,
//! dockerd's errors); a container swapping a directory for a symlink to `/`
//! while we copy never gets a byte outside its root (CVE-2018-15664); a
//! 1 GiB copy both ways keeps the daemon's memory flat.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cli::*;
use common::Daemon;
use serde_json::Value;

fn b64decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for ch in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in ch.iter().enumerate() {
            n |= (val(c) as u32) << (18 - 6 * i);
        }
        for i in 0..ch.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

fn stat_of(d: &Daemon, c: &str, path: &str) -> (u16, Option<Value>) {
    let r = d.request_bytes(
        "HEAD",
        &format!("/containers/{c}/archive?path={}", common::url_encode(path)),
        &[],
        None,
    );
    let stat = r
        .header("x-docker-container-path-stat")
        .map(|h| serde_json::from_slice(&b64decode(h)).expect("stat header is base64 JSON"));
    (r.status, stat)
}

/// A tar holding `entries` (path, content; a trailing `/` makes a directory).
fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_gnu();
        if path.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, path, std::io::empty()).unwrap();
        } else {
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, *data).unwrap();
        }
    }
    b.into_inner().unwrap()
}

fn put(d: &Daemon, c: &str, path: &str, query: &str, body: &[u8]) -> common::RawResponse {
    d.request_bytes(
        "PUT",
        &format!(
            "/containers/{c}/archive?path={}{query}",
            common::url_encode(path)
        ),
        &[("Content-Type", "application/x-tar")],
        Some(body),
    )
}

/// `cap_net_raw=ep` as the kernel stores it (VFS_CAP_REVISION_2).
const CAP_NET_RAW: [u8; 20] = [
    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

fn set_capability(p: &Path) {
    let path = std::ffi::CString::new(p.display().to_string()).unwrap();
    // SAFETY: NUL-terminated strings, a buffer of the given length.
    let rc = unsafe {
        libc::setxattr(
            path.as_ptr(),
            c"security.capability".as_ptr(),
            CAP_NET_RAW.as_ptr().cast(),
            CAP_NET_RAW.len(),
            0,
        )
    };
    assert_eq!(rc, 0, "setxattr: {}", std::io::Error::last_os_error());
}

fn get_capability(p: &Path) -> Vec<u8> {
    let path = std::ffi::CString::new(p.display().to_string()).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: NUL-terminated strings; the kernel writes at most 64 bytes.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            c"security.capability".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    buf[..n.max(0) as usize].to_vec()
}

/// A host directory removed when the test ends, passed or failed.
struct HostDir(std::path::PathBuf);

impl Drop for HostDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn exec_out(d: &Daemon, c: &str, script: &str) -> String {
    ok(d, &["exec", c, "sh", "-c", script])
}

#[test]
fn docker_cp_both_ways_with_dockerds_answers_and_no_escape() {
    let host_dir = HostDir(common::temp_dir("cp-host"));
    let d = Daemon::with_busybox();
    let host = host_dir.0.clone();
    let bind = host.join("bind");
    std::fs::create_dir_all(&bind).unwrap();
    let bind_arg = format!("{}:/mnt/bind", bind.display());
    ok(
        &d,
        &[
            "run", "-d", "--name", "c", "-v", &bind_arg, "busybox", "sleep", "1000",
        ],
    );
    exec_out(
        &d,
        "c",
        "mkdir -p /data/sub && echo hello > /data/f && echo deep > /data/sub/g \
         && ln -s /data /lnk && ln -s f /data/rel",
    );

    // Out of a running container: a file, a directory, through a symlink.
    let out = host.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let o = |p: &str| out.join(p).display().to_string();
    ok(&d, &["cp", "c:/data/f", &o("f")]);
    assert_eq!(std::fs::read_to_string(out.join("f")).unwrap(), "hello\n");
    ok(&d, &["cp", "c:/data", &o("data")]);
    assert_eq!(
        std::fs::read_to_string(out.join("data/sub/g")).unwrap(),
        "deep\n"
    );
    assert_eq!(
        std::fs::read_link(out.join("data/rel")).unwrap(),
        Path::new("f")
    );
    ok(&d, &["cp", "c:/lnk", &o("lnk")]);
    assert_eq!(
        std::fs::read_link(out.join("lnk")).unwrap(),
        Path::new("/data")
    );
    ok(&d, &["cp", "-L", "c:/lnk", &o("followed")]);
    assert_eq!(
        std::fs::read_to_string(out.join("followed/f")).unwrap(),
        "hello\n"
    );
    // `-` writes the tar to stdout.
    let t = dk(&d, &["cp", "c:/data/sub", "-"]);
    assert!(t.status.success(), "{}", show(&t));
    let names: Vec<String> = tar::Archive::new(&t.stdout[..])
        .entries()
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .unwrap()
                .display()
                .to_string()
                .trim_end_matches('/')
                .to_string()
        })
        .collect();
    assert_eq!(names, ["sub", "sub/g"], "{names:?}");

    // The whole root of a running container: its /proc and /sys are mount
    // points only (dockerd's view), so the copy neither aborts on processes
    // that come and go nor ships kernel files.
    let t = dk(&d, &["cp", "c:/", "-"]);
    assert!(t.status.success(), "{}", show(&t));
    let names: Vec<String> = tar::Archive::new(&t.stdout[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(
        names.iter().any(|n| n == "/bin/sh"),
        "{:?}",
        &names[..names.len().min(20)]
    );
    assert!(
        names.iter().any(|n| n == "/proc/"),
        "{:?}",
        &names[..names.len().min(20)]
    );
    assert!(!names
        .iter()
        .any(|n| n.starts_with("/proc/1") || n.starts_with("/sys/k")));

    // Into it: a file, a new name, a directory, a tar on stdin, a bind mount.
    std::fs::write(host.join("in.txt"), "to-container\n").unwrap();
    let inp = host.join("in.txt").display().to_string();
    ok(&d, &["cp", &inp, "c:/data/"]);
    ok(&d, &["cp", &inp, "c:/data/renamed"]);
    std::fs::create_dir_all(host.join("indir/x")).unwrap();
    std::fs::write(host.join("indir/x/y"), "yy").unwrap();
    ok(
        &d,
        &["cp", &host.join("indir").display().to_string(), "c:/data/"],
    );
    let tar = tar_of(&[("st/", b""), ("st/one", b"1")]);
    let o2 = dk_in(&d, &["cp", "-", "c:/data"], Some(tar), 30);
    assert!(o2.status.success(), "{}", show(&o2));
    ok(&d, &["cp", &inp, "c:/mnt/bind/"]);
    assert_eq!(
        exec_out(
            &d,
            "c",
            "cat /data/in.txt /data/renamed /data/indir/x/y /data/st/one"
        ),
        "to-container\nto-container\nyy1"
    );
    assert_eq!(
        std::fs::read_to_string(bind.join("in.txt")).unwrap(),
        "to-container\n",
        "a copy into a bind mount lands on the host directory"
    );

    // -a: owned by the container's user; without: as in the tar.
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "u",
            "--user",
            "1000:1000",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    ok(&d, &["cp", "-a", &inp, "u:/tmp/a"]);
    let tar = tar_of(&[("plain", b"p")]);
    assert_eq!(put(&d, "u", "/tmp", "", &tar).status, 200);
    assert_eq!(
        exec_out(&d, "u", "stat -c '%u:%g' /tmp/a /tmp/plain"),
        "1000:1000\n0:0\n"
    );

    // The stat header.
    let (s, st) = stat_of(&d, "c", "/data");
    let st = st.expect("stat header");
    assert_eq!(s, 200);
    assert_eq!(st["name"], "data");
    assert_eq!(st["mode"].as_u64().unwrap() >> 31, 1, "a directory: {st}");
    let (_, st) = stat_of(&d, "c", "/lnk");
    let st = st.unwrap();
    assert_eq!(st["linkTarget"], "/data");
    assert_ne!(st["mode"].as_u64().unwrap() & (1 << 27), 0, "{st}");
    let (_, st) = stat_of(&d, "c", "/data/f");
    assert_eq!(st.unwrap()["size"], 6);

    // dockerd's errors.
    let r = d.request_bytes("GET", "/containers/c/archive?path=/nope", &[], None);
    assert_eq!(r.status, 404);
    assert_eq!(r.message(), "Could not find the file /nope in container c");
    let cli = dk(&d, &["cp", "c:/nope", &o("x")]);
    assert!(!cli.status.success());
    assert!(
        String::from_utf8_lossy(&cli.stderr)
            .contains("Could not find the file /nope in container c"),
        "{}",
        show(&cli)
    );
    assert_eq!(stat_of(&d, "c", "/nope").0, 404);
    assert_eq!(
        stat_of(&d, "c", "/data/f/").0,
        404,
        "a file named as a directory"
    );
    let r = d.request_bytes("GET", "/containers/c/archive", &[], None);
    assert_eq!(
        (r.status, r.message()),
        (400, "bad parameter: path cannot be empty".into())
    );
    let r = d.request_bytes("GET", "/containers/ghost/archive?path=/", &[], None);
    assert_eq!(
        (r.status, r.message()),
        (404, "No such container: ghost".into())
    );
    let r = put(&d, "c", "/data/f", "", &tar_of(&[("z", b"z")]));
    assert_eq!(
        (r.status, r.message()),
        (400, "extraction point is not a directory".into())
    );
    let r = put(&d, "c", "/nowhere", "", &tar_of(&[("z", b"z")]));
    assert_eq!(r.status, 404, "{}", r.text());
    // noOverwriteDirNonDir: a file may not replace the directory /data/sub.
    let r = put(
        &d,
        "c",
        "/data",
        "&noOverwriteDirNonDir=true",
        &tar_of(&[("sub", b"f")]),
    );
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        r.message().contains("cannot overwrite directory"),
        "{}",
        r.message()
    );
    assert_eq!(exec_out(&d, "c", "cat /data/sub/g"), "deep\n");
    // Read-only rootfs: refused, except into a writable mount.
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "ro",
            "--read-only",
            "-v",
            &bind_arg,
            "busybox",
            "sleep",
            "1000",
        ],
    );
    let r = put(&d, "ro", "/tmp", "", &tar_of(&[("z", b"z")]));
    assert_eq!(
        (r.status, r.message()),
        (400, "container rootfs is marked read-only".into())
    );
    assert_eq!(
        put(&d, "ro", "/mnt/bind", "", &tar_of(&[("viaro", b"v")])).status,
        200
    );
    assert!(bind.join("viaro").exists());

    // A read-only bind refuses, whatever the rootfs.
    let ro_bind = format!("{}:/mnt/robind:ro", bind.display());
    ok(
        &d,
        &[
            "run", "-d", "--name", "rob", "-v", &ro_bind, "busybox", "sleep", "1000",
        ],
    );
    let r = put(&d, "rob", "/mnt/robind", "", &tar_of(&[("z", b"z")]));
    assert_eq!(
        (r.status, r.message()),
        (400, "mounted volume is marked read-only".into())
    );

    // File capabilities travel both ways (moby's SCHILY.xattr record).
    let capfile = host.join("capfile");
    std::fs::write(&capfile, "cap").unwrap();
    set_capability(&capfile);
    ok(
        &d,
        &["cp", &capfile.display().to_string(), "c:/data/capfile"],
    );
    ok(&d, &["cp", "c:/data/capfile", &o("capback")]);
    assert_eq!(get_capability(&out.join("capback")), CAP_NET_RAW.to_vec());

    // A stopped container, both ways, binds included.
    ok(&d, &["stop", "-t", "0", "c"]);
    ok(&d, &["cp", &inp, "c:/data/while-stopped"]);
    ok(&d, &["cp", "c:/data/sub/g", &o("g-stopped")]);
    assert_eq!(
        std::fs::read_to_string(out.join("g-stopped")).unwrap(),
        "deep\n"
    );
    ok(&d, &["cp", "c:/mnt/bind/in.txt", &o("bind-stopped")]);
    ok(&d, &["start", "c"]);
    assert_eq!(
        exec_out(&d, "c", "cat /data/while-stopped"),
        "to-container\n"
    );

    // Events, as dockerd names them.
    let acts: Vec<String> = d
        .events(Some(r#"{"type":["container"]}"#))
        .iter()
        .filter_map(|e| e["Action"].as_str().map(String::from))
        .collect();
    assert!(acts.iter().any(|a| a == "archive-path"), "{acts:?}");
    assert!(acts.iter().any(|a| a == "extract-to-dir"), "{acts:?}");

    swap_race(&d, &host);
}

/// CVE-2018-15664: the container keeps swapping /w/d between a directory
/// and a symlink to `/` while we copy into and out of `/w/d/<host path>`.
/// Had a lookup followed the link on the host, the write would land on the
/// host's canary and the read would return the host's secret.
fn swap_race(d: &Daemon, host: &Path) {
    let canary = host.join("canary");
    let secret = host.join("secret");
    std::fs::write(&canary, "untouched").unwrap();
    std::fs::write(&secret, "host-secret").unwrap();
    ok(
        d,
        &[
            "run",
            "-d",
            "--name",
            "swap",
            "busybox",
            "sh",
            "-c",
            "mkdir -p /w/d; while true; do mv /w/d /w/d2; ln -s / /w/d; \
             mv /w/d /w/dl; mv /w/d2 /w/d; rm /w/dl; done",
        ],
    );
    let rel = canary.strip_prefix("/").unwrap().display().to_string();
    let rel_secret = secret.strip_prefix("/").unwrap().display().to_string();
    let payload = tar_of(&[(rel.as_str(), b"ESCAPED")]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut puts, mut gets) = (0, 0);
    while puts < 150 && Instant::now() < deadline {
        let r = put(d, "swap", "/w/d", "", &payload);
        assert!(matches!(r.status, 200 | 404 | 500), "{}", r.text());
        puts += 1;
        let g = d.request_bytes(
            "GET",
            &format!("/containers/swap/archive?path=/w/d/{rel_secret}"),
            &[],
            None,
        );
        assert!(
            !String::from_utf8_lossy(&g.body).contains("host-secret"),
            "a read through the swapped link reached the host"
        );
        gets += 1;
    }
    assert_eq!(
        std::fs::read_to_string(&canary).unwrap(),
        "untouched",
        "a write through the swapped link reached the host"
    );
    // The race was run: some writes went through the link, inside the
    // container's own root.
    let inside = format!("/{rel}");
    let o = dk(d, &["exec", "swap", "cat", &inside]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "ESCAPED",
        "no copy went through the symlink in {puts} puts / {gets} gets: {}",
        show(&o)
    );
}

fn max_rss_while(pid: i32, f: impl FnOnce()) -> (u64, u64) {
    let base = common::vm_rss_kib(pid).expect("daemon VmRSS");
    let stop = Arc::new(AtomicBool::new(false));
    let max = Arc::new(Mutex::new(base));
    let sampler = {
        let (stop, max) = (stop.clone(), max.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Some(r) = common::vm_rss_kib(pid) {
                    let mut m = max.lock().unwrap();
                    *m = (*m).max(r);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    f();
    stop.store(true, Ordering::SeqCst);
    sampler.join().unwrap();
    let m = *max.lock().unwrap();
    (base, m)
}

#[test]
fn a_gib_copied_both_ways_keeps_the_daemon_small() {
    const SIZE: u64 = 1 << 30;
    let d = Daemon::with_busybox();
    ok(
        &d,
        &["run", "-d", "--name", "big", "busybox", "sleep", "1000"],
    );
    let pid = d.pid();
    let (base, max) = max_rss_while(pid, || {
        // PUT a 1 GiB file, streamed from here (header, zeros, end).
        let mut h = tar::Header::new_gnu();
        h.set_path("big").unwrap();
        h.set_mode(0o644);
        h.set_size(SIZE);
        h.set_cksum();
        let total = 512 + SIZE + 1024;
        let mut s = d.connect();
        s.set_write_timeout(Some(Duration::from_secs(120))).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        write!(
            s,
            "PUT /containers/big/archive?path=/tmp HTTP/1.1\r\nHost: d\r\n\
             Content-Type: application/x-tar\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        s.write_all(h.as_bytes()).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..(SIZE >> 20) {
            s.write_all(&zeros).unwrap();
        }
        s.write_all(&[0u8; 1024]).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

        // GET it back, counting the bytes.
        let mut s = d.connect();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        write!(
            s,
            "GET /containers/big/archive?path=/tmp/big HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => n += k as u64,
                Err(e) => panic!("reading the archive: {e}"),
            }
        }
        assert!(n > SIZE, "the GET sent {n} bytes");
    });
    assert_eq!(
        exec_out(&d, "big", "stat -c %s /tmp/big"),
        format!("{SIZE}\n")
    );
    // The bytes flow worker <-> socket in bounded pieces: the daemon grows
    // by a few buffers at most. The issue's absolute 8 MiB holds for the
    // release binary (CORACLE_BIN, as CI runs it).
    assert!(
        max < base + 2048,
        "daemon VmRSS reached {max} KiB (started at {base} KiB) copying 1 GiB"
    );
    if std::env::var_os("CORACLE_BIN").is_some() {
        assert!(max < 8 * 1024, "release daemon VmRSS reached {max} KiB");
    }
}
