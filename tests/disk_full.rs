//! A full disk: the data root on a small tmpfs mounted by the test (the real
//! kernel's ENOSPC). A load or import bigger than the space fails with
//! dockerd's "no space left on device", leaves nothing behind, and the daemon
//! keeps serving; a create that hits ENOSPC leaves no half-made container; a
//! logging container keeps running while its log cannot be written, the loss
//! is counted (daemon log warning, `LogLoss` in inspect) and logging resumes
//! once space is freed; every earlier container starts again.

mod common;

use common::Daemon;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs of `mib` MiB mounted for the test; unmounted on drop (after the
/// daemon using it, which is declared later and so dropped first).
struct SmallFs {
    dir: PathBuf,
}

impl SmallFs {
    fn mount(mib: u64) -> SmallFs {
        let dir = common::temp_dir("diskfull-fs");
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m,mode=0711")])
            .arg("tmpfs")
            .arg(&dir)
            .output()
            .expect("run mount");
        assert!(o.status.success(), "mount tmpfs: {o:?}");
        SmallFs { dir }
    }

    /// Bytes free on the filesystem.
    fn free(&self) -> u64 {
        let (bsize, bavail, _) = statvfs(&self.dir);
        bsize * bavail
    }

    /// Bytes in use on the filesystem.
    fn used(&self) -> u64 {
        let (bsize, bavail, blocks) = statvfs(&self.dir);
        bsize * (blocks - bavail)
    }
}

fn statvfs(p: &Path) -> (u64, u64, u64) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: c is a valid NUL-terminated path; st is plain old data we own.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    assert_eq!(r, 0, "statvfs {}", p.display());
    (st.f_frsize, st.f_bavail, st.f_blocks)
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        // Container mounts below it are the daemon's (gone by now); lazily
        // detach whatever a failed test left.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every path under `root`, relative (the store's shape, to compare).
fn tree(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            // Container trees (upper dirs, logs) are not the store's shape.
            if rel.starts_with("containers/") && rel.matches('/').count() > 1 {
                continue;
            }
            if e.file_type().is_ok_and(|t| t.is_dir() && !t.is_symlink()) {
                stack.push(p);
            }
            out.insert(rel);
        }
    }
    out
}

/// A stream of pseudo-random bytes (incompressible, never sparse).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn sha256_file(p: &Path) -> String {
    use sha2::Digest;
    let data = std::fs::read(p).expect("read");
    let d = sha2::Sha256::digest(&data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn tar(dir: &Path, out: &Path, members: &[&str]) {
    let o = Command::new("tar")
        .arg("-cf")
        .arg(out)
        .arg("-C")
        .arg(dir)
        .args(members)
        .output()
        .expect("run tar");
    assert!(o.status.success(), "tar: {o:?}");
}

/// A rootfs tar with one `mib` MiB file, and a docker-save archive
/// (`big:latest`) whose one layer is that tar.
fn big_archives(work: &Path, mib: usize) -> (PathBuf, PathBuf) {
    let rootfs = work.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::write(rootfs.join("blob"), noise(mib << 20, 0x9e3779b97f4a7c15)).unwrap();
    let layer = work.join("layer.tar");
    tar(&rootfs, &layer, &["blob"]);
    let diff = sha256_file(&layer);
    let save = work.join("save");
    std::fs::create_dir_all(save.join(&diff)).unwrap();
    std::fs::rename(&layer, save.join(&diff).join("layer.tar")).unwrap();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/blob"]}},"rootfs":{{"type":"layers","diff_ids":["sha256:{diff}"]}}}}"#
    );
    std::fs::write(save.join("config.json"), &config).unwrap();
    let config_id = sha256_file(&save.join("config.json"));
    std::fs::rename(
        save.join("config.json"),
        save.join(format!("{config_id}.json")),
    )
    .unwrap();
    std::fs::write(
        save.join("manifest.json"),
        format!(
            r#"[{{"Config":"{config_id}.json","RepoTags":["big:latest"],"Layers":["{diff}/layer.tar"]}}]"#
        ),
    )
    .unwrap();
    let archive = work.join("big-save.tar");
    let cfg = format!("{config_id}.json");
    tar(&save, &archive, &[&cfg, &diff, "manifest.json"]);
    let layer_again = save.join(&diff).join("layer.tar");
    let rootfs_tar = work.join("big-rootfs.tar");
    std::fs::rename(layer_again, &rootfs_tar).unwrap();
    let _ = std::fs::remove_dir_all(&save);
    let _ = std::fs::remove_dir_all(&rootfs);
    (archive, rootfs_tar)
}

fn out_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// Fill the filesystem with a file until the kernel says ENOSPC.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).expect("create filler");
    let chunk = vec![0x5au8; 64 << 10];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filler: {e}"),
        }
    }
}

fn inspect(d: &Daemon, name: &str) -> serde_json::Value {
    let r = d.request("GET", &format!("/containers/{name}/json"), None);
    assert_eq!(r.status, 200, "inspect {name}: {r:?}");
    r.json()
}

fn ok(d: &Daemon, args: &[&str]) -> String {
    let o = d.docker(args);
    assert!(o.status.success(), "docker {args:?}: {}", out_text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn full_disk_fails_cleanly_and_recovers() {
    let work = common::temp_dir("diskfull-work");
    let (save_tar, rootfs_tar) = big_archives(&work, 40);
    let fs = SmallFs::mount(32);
    let mut d = Daemon::start_on(&fs.dir, &[]);
    d.load_busybox();
    d.wait_serving();

    // Earlier containers: one created, one that ran and exited.
    let created = ok(&d, &["create", "--name", "earlier", "busybox", "true"]);
    ok(&d, &["run", "--name", "ran", "busybox", "true"]);

    // 1. A load and an import bigger than the space: dockerd's message,
    //    nothing left behind, the daemon still serving.
    let before = tree(&fs.dir);
    let used_before = fs.used();
    let images_before = ok(&d, &["images", "-q", "--no-trunc"]);
    for (what, args) in [
        ("load", vec!["load", "-i", save_tar.to_str().unwrap()]),
        (
            "import",
            vec!["import", rootfs_tar.to_str().unwrap(), "bigimport:latest"],
        ),
    ] {
        let o = d.docker(&args);
        let text = out_text(&o);
        assert!(!o.status.success(), "{what} should fail: {text}");
        assert!(
            text.contains("no space left on device"),
            "{what}: dockerd's ENOSPC wording expected: {text}"
        );
        assert!(!text.contains("os error"), "{what}: Rust's wording: {text}");
        assert_eq!(d.request("GET", "/_ping", None).status, 200);
        // Nothing partial: the store's shape as before, the space given back.
        wait_until(
            &format!("{what}'s leftovers to go"),
            Duration::from_secs(10),
            || tree(&fs.dir) == before && fs.used() <= used_before + (1 << 20),
        );
        assert_eq!(ok(&d, &["images", "-q", "--no-trunc"]), images_before);
    }
    let tmp: Vec<_> = tree(&fs.dir)
        .into_iter()
        .filter(|p| p.contains(".tmp") || p.contains("partial"))
        .collect();
    assert!(tmp.is_empty(), "temp files left: {tmp:?}");

    // 2. A logging container, then the disk fills up under it.
    let logger = ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "logger",
            "busybox",
            "sh",
            "-c",
            "i=0; while true; do echo line-$i; i=$((i+1)); usleep 20000; done",
        ],
    );
    wait_until("first log lines", Duration::from_secs(10), || {
        ok(&d, &["logs", "logger"]).contains("line-3")
    });
    let filler = fs.dir.join("filler");
    fill(&filler);
    assert!(fs.free() < 64 << 10, "disk full: {} free", fs.free());
    wait_until("counted log loss", Duration::from_secs(10), || {
        inspect(&d, "logger")["LogLoss"]["Lines"]
            .as_u64()
            .is_some_and(|n| n > 5)
    });
    let st = inspect(&d, "logger");
    assert_eq!(st["State"]["Running"], true, "logger keeps running: {st}");
    assert!(
        d.log_text().contains("log lines lost"),
        "a warning in the daemon log:\n{}",
        d.log_text()
    );

    // 3. A create on the full disk: ENOSPC, no half-made directory.
    let containers_before = tree(&fs.dir.join("containers"));
    let o = d.docker(&["create", "--name", "nospace", "busybox", "true"]);
    let text = out_text(&o);
    assert!(!o.status.success(), "create on a full disk: {text}");
    assert!(text.contains("no space left on device"), "create: {text}");
    assert_eq!(tree(&fs.dir.join("containers")), containers_before);
    let r = d.request("GET", "/containers/nospace/json", None);
    assert_eq!(r.status, 404, "no half-made container: {r:?}");

    // 4. Space freed: logging resumes, the loss stays counted.
    std::fs::remove_file(&filler).unwrap();
    let lost = inspect(&d, "logger")["LogLoss"]["Lines"]
        .as_u64()
        .unwrap_or(0);
    assert!(lost > 5);
    let last_before = ok(&d, &["logs", "logger"])
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    wait_until("logging to resume", Duration::from_secs(10), || {
        let logs = ok(&d, &["logs", "logger"]);
        logs.lines().skip_while(|l| *l != last_before).count() > 5
    });
    assert!(
        d.log_text().contains("logging resumed"),
        "the resumption logged with the count:\n{}",
        d.log_text()
    );
    // No torn record: every line of the log file is whole JSON.
    let log_path = inspect(&d, "logger")["LogPath"]
        .as_str()
        .unwrap()
        .to_string();
    for line in std::fs::read_to_string(&log_path).unwrap().lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "torn log record: {line:?}"
        );
    }
    let logs = ok(&d, &["logs", "logger"]);
    assert!(
        logs.lines().all(|l| l.starts_with("line-")),
        "only whole lines"
    );

    // 5. Every earlier container starts; a create works again.
    ok(&d, &["start", &created]);
    ok(&d, &["start", "ran"]);
    ok(&d, &["create", "--name", "after", "busybox", "true"]);
    ok(&d, &["start", "after"]);
    ok(&d, &["rm", "-f", &logger]);

    d.remove_all_containers();
    drop(d);
    drop(fs);
    let _ = std::fs::remove_dir_all(&work);
}

fn nofile() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    // rlim_t is not u64 on every target.
    #[allow(clippy::unnecessary_cast)]
    (lim.rlim_cur as u64, lim.rlim_max as u64)
}

fn set_nofile(soft: u64, hard: u64) {
    let lim = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct we own.
    let r = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    assert_eq!(r, 0, "setrlimit NOFILE {soft}:{hard}");
}

/// One `GET /_ping` on a kept-alive connection, its answer read whole.
fn ping(s: &mut std::os::unix::net::UnixStream) -> Result<(), String> {
    use std::io::Read;
    s.write_all(b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"\r\n\r\nOK") {
        match s.read(&mut buf) {
            Ok(0) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&got))),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    if !got.starts_with(b"HTTP/1.1 200") {
        return Err(String::from_utf8_lossy(&got).into_owned());
    }
    Ok(())
}

/// `--max-connections 4096` on a daemon started with a soft open-file limit
/// of 1024 (a device's default): it raises its own limit and serves more
/// than 1024 kept-alive connections at once; its containers still get the
/// limit it was started with. (Raising the hard limit too needs
/// CAP_SYS_RESOURCE, which this test machine's root lacks: `fdlimit::plan`'s
/// unit test covers that choice.)
#[test]
fn more_than_1024_keep_alive_connections() {
    const CONNS: usize = 1100;
    let (soft, hard) = nofile();
    // Only the daemon starts under the low limit; this process (the
    // clients) gets its own back at once.
    set_nofile(1024, hard);
    let started =
        std::panic::catch_unwind(|| Daemon::start_with(&["--max-connections", "4096"], false));
    set_nofile(soft, hard);
    let mut d = started.expect("daemon started");
    d.load_busybox();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        nums.len() >= 2 && nums[0] >= 4096 + 512 && nums[1] >= nums[0],
        "daemon's limit raised to fit: {line}"
    );
    assert!(d.log_text().contains("open-file limit raised"));

    let mut conns = Vec::with_capacity(CONNS);
    for i in 0..CONNS {
        let mut s = d.connect();
        ping(&mut s).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        conns.push(s);
    }
    // Every one still open and served: a second request on each.
    for (i, s) in conns.iter_mut().enumerate() {
        ping(s).unwrap_or_else(|e| panic!("connection {i}, second request: {e}"));
    }
    let r = d.request("GET", "/containers/json", None);
    assert_eq!(r.status, 200, "{r:?}");
    drop(conns);

    // A container sees the limit the daemon was started with.
    let o = d.docker(&["run", "--rm", "busybox", "sh", "-c", "ulimit -n"]);
    assert!(o.status.success(), "{}", out_text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1024");
}
