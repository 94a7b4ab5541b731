//! The classic builder through the CLI, and build contexts: shared by the
//! build test files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::Daemon;

/// The CLI's classic builder (DOCKER_BUILDKIT=0) against this daemon.
pub fn docker_build(d: &Daemon, args: &[&str]) -> Output {
    Command::new("docker")
        .arg("build")
        .args(args)
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", d.dir.join("docker-config"))
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_API_VERSION")
        .output()
        .expect("docker CLI")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A context directory with these files.
pub fn context(tag: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = super::temp_dir(tag);
    for (name, body) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    dir
}

/// `tar c` of a directory.
pub fn tar_of(dir: &Path) -> Vec<u8> {
    tar_with("cf", dir)
}

/// `tar cz` of a directory.
pub fn tar_gz_of(dir: &Path) -> Vec<u8> {
    tar_with("czf", dir)
}

fn tar_with(mode: &str, dir: &Path) -> Vec<u8> {
    let out = Command::new("tar")
        .args([mode, "-", "-C"])
        .arg(dir)
        .arg(".")
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}
