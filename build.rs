//! Stamps the binary with its git commit, build time and compiler version
//! (shown by `/version`). Build-time only: the daemon itself runs no programs.

use std::process::Command;

fn run(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    let commit =
        run("git", &["rev-parse", "--short=7", "HEAD"]).unwrap_or_else(|| "unknown".into());
    // The commit's time keeps builds of one commit reproducible.
    let time = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .or_else(|| run("git", &["log", "-1", "--format=%cI"]))
        .unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = run(&rustc, &["--version"]).unwrap_or_else(|| "rustc".into());
    println!("cargo:rustc-env=CORACLE_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=CORACLE_BUILD_TIME={time}");
    println!("cargo:rustc-env=CORACLE_RUSTC_VERSION={rustc_version}");
    // The build date in Unix seconds: the floor of the clock that checks
    // registry certificates (a device without an RTC boots in 1970).
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .filter(|s| s.parse::<u64>().is_ok())
        .or_else(|| run("git", &["log", "-1", "--format=%ct"]))
        .filter(|s| s.parse::<u64>().is_ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.map_or(0, |d| d.as_secs()).to_string()
        });
    println!("cargo:rustc-env=CORACLE_BUILD_EPOCH={epoch}");
    watch_git();
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    release_link_script();
}

/// Rebuild when the commit changes: the checkout's HEAD, and the ref of its branch in the
/// repository it belongs to. In a git worktree `.git` is a file and both live elsewhere (HEAD in
/// `--git-dir`, refs in `--git-common-dir`), so git names them. Only existing paths are named (a
/// missing one would make cargo run this script on every build); without git or a repository
/// (a tarball build) nothing is watched.
fn watch_git() {
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let dir = |arg: &str| run("git", &["rev-parse", arg]).map(|d| root.join(d));
    let (Some(git_dir), Some(common)) = (dir("--git-dir"), dir("--git-common-dir")) else {
        return;
    };
    // The branch HEAD names (none when detached: HEAD itself then changes),
    // not all of refs/heads, which other worktrees' commits touch.
    let branch = run("git", &["symbolic-ref", "-q", "HEAD"]).map(|r| common.join(r));
    let watched = [
        Some(git_dir.join("HEAD")),
        branch,
        Some(common.join("packed-refs")),
    ];
    let watched = watched.iter().flatten();
    for path in watched.filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// The shipped binary (release profile, musl) drops its unwind tables at link time: see
/// scripts/release-link.ld. This relies on `panic = "abort"` in `[profile.release]`.
/// Only the `coracle` binary gets it, never the test executables (they unwind to report
/// failed assertions), and not debug builds.
fn release_link_script() {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("PROFILE") == "release" && var("CARGO_CFG_TARGET_ENV") == "musl" {
        let script =
            std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("scripts/release-link.ld");
        println!("cargo:rerun-if-changed={}", script.display());
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
        // rust-lld (what scripts/build-static.sh links musl with) folds
        // functions whose code is identical (generic copies over types of one
        // layout, ring's twin C routines) into one. Rust promises no distinct
        // addresses for functions, and nothing here compares them. Another
        // linker (CARGO_TARGET_<TRIPLE>_LINKER) links without it.
        if std::path::Path::new(&var("RUSTC_LINKER"))
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains("lld"))
        {
            println!("cargo:rustc-link-arg-bins=--icf=all");
            // The functions start-up runs first in .text, together
            // (scripts/startup-order.sh made the list): the kernel maps the
            // binary 64 KiB around each page fault, so the idle daemon's RSS
            // is the windows start-up touched. Stale names are ignored.
            let order =
                std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("scripts/startup-order.txt");
            if order.exists() {
                println!("cargo:rerun-if-changed={}", order.display());
                println!(
                    "cargo:rustc-link-arg-bins=--symbol-ordering-file={}",
                    order.display()
                );
                println!("cargo:rustc-link-arg-bins=--no-warn-symbol-ordering");
            }
        }
    }
}
