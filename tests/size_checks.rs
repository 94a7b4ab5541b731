//! Issue 15 (size, idle memory, cold start): what the trimming changed that a
//! client or the disk can see. One daemon, a few seconds.
//!
//! - A restart after a clean stop rewrites no network record but the
//!   default bridge's (it used to write and fsync every
//!   `networks/<id>.json` at each start-up).
//! - The TLS listener speaks what `http/tls_provider.rs` keeps: TLS 1.3 with
//!   AES-GCM; no ChaCha20-Poly1305 suite; TLS 1.2 (ECDHE, AES-GCM) in a build
//!   with the `tls12` feature (the default). Checked with `openssl s_client`.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{free_port, temp_dir, Daemon};

/// (inode, mtime in ns) of each network record but the default bridge's
/// (written at each start: its bridge is made anew, maybe under another name).
fn records(root: &Path) -> Vec<(String, u64, i64)> {
    let mut v: Vec<_> = std::fs::read_dir(root.join("networks"))
        .expect("networks dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter(|e| {
            !std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .contains("com.docker.network.bridge.default_bridge")
        })
        .map(|e| {
            let m = e.metadata().expect("stat a network record");
            (
                e.file_name().to_string_lossy().into_owned(),
                m.ino(),
                m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn restart_rewrites_no_network_record() {
    let mut d = Daemon::start();
    d.wait_serving();
    let r = d.request(
        "POST",
        "/networks/create",
        Some(r#"{"Name":"size-checks-net"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    d.terminate();
    let before = records(&d.data_root);
    assert!(before.len() >= 3, "{before:?}"); // host, none, ours

    d.restart();
    d.wait_serving();
    let r = d.request("GET", "/networks/size-checks-net", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(records(&d.data_root), before, "a record was written again");
    let r = d.request("DELETE", "/networks/size-checks-net", None);
    assert_eq!(r.status, 204, "{}", r.body);
}

/// `openssl s_client` against `port` with `args`: (handshake done, output).
#[cfg(feature = "tls")]
fn s_client(port: u16, args: &[&str]) -> (bool, String) {
    let o = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-brief",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success() && out.contains("Protocol version"), out)
}

#[cfg(feature = "tls")]
#[test]
fn tls_listener_suites_and_versions() {
    let dir = temp_dir("size-tls");
    let sh = "openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 2 \
              -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1";
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(sh)
        .current_dir(&dir)
        .output()
        .expect("run openssl req");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let port = free_port();
    let host = format!("tcp://127.0.0.1:{port}");
    let file = |n: &str| dir.join(n).to_str().expect("utf-8 path").to_string();
    let (cert, key) = (file("cert.pem"), file("key.pem"));
    let mut d = Daemon::start_with(
        &["-H", &host, "--tls", "--tlscert", &cert, "--tlskey", &key],
        false,
    );
    d.wait_serving();

    for suite in ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"] {
        let (ok, out) = s_client(port, &["-tls1_3", "-ciphersuites", suite]);
        assert!(ok && out.contains(suite), "{suite}: {out}");
    }
    let (ok, out) = s_client(
        port,
        &["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"],
    );
    assert!(!ok, "ChaCha20-Poly1305 was negotiated: {out}");

    let tls12 = |cipher: &str| s_client(port, &["-tls1_2", "-cipher", cipher]);
    let (ok, out) = tls12("ECDHE-RSA-AES128-GCM-SHA256");
    assert_eq!(ok, cfg!(feature = "tls12"), "TLS 1.2 with AES-GCM: {out}");
    let (ok, out) = tls12("ECDHE-RSA-CHACHA20-POLY1305");
    assert!(!ok, "TLS 1.2 ChaCha20-Poly1305 was negotiated: {out}");

    // The daemon still answers over TLS 1.3 after the refused handshakes.
    let o = std::process::Command::new("curl")
        .args(["-sk", &format!("https://127.0.0.1:{port}/_ping")])
        .output()
        .expect("run curl");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "OK");
    d.terminate();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sh scripts/build-static.sh ARGS` in the repository with `env` set:
/// (success, stdout + stderr).
fn build_static(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> (bool, String) {
    let o = std::process::Command::new("sh")
        .arg("scripts/build-static.sh")
        .args(args)
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run scripts/build-static.sh");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), out)
}

/// The active toolchain's sysroot (rustc from PATH, as the script finds it).
fn sysroot() -> std::path::PathBuf {
    let o = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .expect("run rustc --print sysroot");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().into()
}

/// A rustup toolchain directory made of the active toolchain's compiler and
/// target libraries but without its `rust-src` component: hard links (rustc
/// finds its sysroot from where its driver library is, so symbolic links would
/// lead it back to the real one), copies across file systems.
fn toolchain_without_rust_src(dir: &Path) -> std::path::PathBuf {
    let real = sysroot();
    let fake = dir.join("toolchain");
    let link = |from: &Path, to: &Path| {
        if std::fs::hard_link(from, to).is_err() {
            std::fs::copy(from, to).expect("copy a toolchain file");
        }
    };
    std::fs::create_dir_all(fake.join("bin")).expect("mkdir bin");
    std::fs::create_dir_all(fake.join("lib/rustlib")).expect("mkdir lib/rustlib");
    for b in ["rustc", "cargo"] {
        link(&real.join("bin").join(b), &fake.join("bin").join(b));
    }
    for e in std::fs::read_dir(real.join("lib"))
        .expect("read lib")
        .flatten()
    {
        let to = fake.join("lib").join(e.file_name());
        match std::fs::read_link(e.path()) {
            Ok(target) => std::os::unix::fs::symlink(target, &to).expect("symlink"),
            Err(_) if e.path().is_file() => link(&e.path(), &to),
            Err(_) => {}
        }
    }
    // Every target's libraries, but not src/ (rust-src).
    for e in std::fs::read_dir(real.join("lib/rustlib"))
        .expect("read rustlib")
        .flatten()
    {
        if e.path().is_dir() && e.file_name() != "src" {
            let to = fake.join("lib/rustlib").join(e.file_name());
            std::os::unix::fs::symlink(e.path(), to).expect("symlink a target");
        }
    }
    assert!(!fake.join("lib/rustlib/src").exists());
    fake
}

/// The shipped pipeline builds std from source with the size flags; a toolchain
/// without rust-src (which rustup cannot extend: a toolchain given by path) gets
/// today's prebuilt-std build and a loud warning, not a failure. `--dry-run`
/// says how it would build and builds nothing.
#[test]
fn build_static_std_from_source_or_loud_fallback() {
    let (ok, out) = build_static(&["--dry-run"], &[]);
    assert!(ok, "{out}");
    assert!(out.contains("with std from source"), "{out}");
    for flag in [
        "RUSTC_BOOTSTRAP=1",
        "-Z build-std=std,panic_abort",
        "optimize_for_size",
        "-Cpanic=immediate-abort",
        "-C target-feature=+crt-static",
    ] {
        assert!(out.contains(flag), "{flag} missing: {out}");
    }
    assert!(!out.contains("WARNING"), "{out}");

    let dir = temp_dir("size-no-rust-src");
    let fake = toolchain_without_rust_src(&dir);
    let (ok, out) = build_static(&["--dry-run"], &[("RUSTUP_TOOLCHAIN", fake.as_os_str())]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "{out}");
    assert!(out.contains("has no rust-src component"), "{out}");
    assert!(out.contains("PREBUILT standard library"), "{out}");
    assert!(out.contains("scripts/size-budget will fail"), "{out}");
    assert!(out.contains("with the prebuilt std"), "{out}");
    assert!(!out.contains("-Cpanic=immediate-abort"), "{out}");
    assert!(!out.contains("RUSTC_BOOTSTRAP"), "{out}");
}
