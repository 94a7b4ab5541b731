//! Debian's `docker-registry` (distribution 2.8) on a free loopback port,
//! plain HTTP, with its own config and storage: started the same way by
//! every registry test, killed and its storage removed on drop.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, temp_dir};

pub struct Registry {
    child: Option<Child>,
    pub dir: PathBuf,
    pub port: u16,
}

impl Registry {
    /// A registry with no auth.
    pub fn start() -> Registry {
        Registry::with_auth("")
    }

    /// `auth` is an extra YAML block (htpasswd) or empty.
    pub fn with_auth(auth: &str) -> Registry {
        let dir = temp_dir("registry");
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("docker-registry must be installed (apt-get install docker-registry)");
        let r = Registry {
            child: Some(child),
            dir,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `skopeo copy` an archive into the registry (as schema 2, or OCI).
    pub fn push_archive(&self, archive: &Path, repo_tag: &str, oci: bool, creds: Option<&str>) {
        let mut cmd = Command::new("skopeo");
        cmd.arg("copy").arg("--dest-tls-verify=false");
        if oci {
            cmd.args(["--format", "oci"]);
        }
        if let Some(c) = creds {
            cmd.args(["--dest-creds", c]);
        }
        let o = cmd
            .arg(format!("docker-archive:{}", archive.display()))
            .arg(format!("docker://{}/{repo_tag}", self.host()))
            .output()
            .expect("skopeo must be installed (apt-get install skopeo)");
        assert!(
            o.status.success(),
            "skopeo copy: status {}\nstdout: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Registry {
    /// One HTTP/1.1 exchange with the registry (`Connection: close`):
    /// status, lower-cased headers, body (not chunked: the registry answers
    /// these with a length).
    pub fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<(String, String)>, Vec<u8>) {
        use std::io::{Read, Write};
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to registry");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.host(),
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        let text = String::from_utf8_lossy(&raw[..end]).into_owned();
        let mut lines = text.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .expect("a status");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        (status, headers, raw[end + 4..].to_vec())
    }

    /// Upload `data` as a blob of `repo` (monolithic); returns its digest.
    pub fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        let digest = format!("sha256:{:x}", Sha256::digest(data));
        let (st, h, _) = self.exchange("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"");
        assert_eq!(st, 202, "upload start");
        let loc = h
            .iter()
            .find(|(k, _)| k == "location")
            .map(|(_, v)| v.clone())
            .expect("upload location");
        let path = match loc.find("/v2/") {
            Some(i) => loc[i..].to_string(),
            None => loc,
        };
        let sep = if path.contains('?') { '&' } else { '?' };
        let (st, _, b) = self.exchange(
            "PUT",
            &format!("{path}{sep}digest={}", digest.replace(':', "%3A")),
            &[("Content-Type", "application/octet-stream")],
            data,
        );
        assert_eq!(st, 201, "blob put: {}", String::from_utf8_lossy(&b));
        digest
    }

    /// A schema 2 image of `layers` (gzip blobs, each with its diff ID):
    /// blobs, config, manifest under `repo:tag`. Returns the image ID.
    pub fn push_gzip_image(&self, repo: &str, tag: &str, layers: &[(Vec<u8>, String)]) -> String {
        use sha2::{Digest, Sha256};
        let mut descs = Vec::new();
        for (gz, _) in layers {
            let d = self.push_blob(repo, gz);
            descs.push(serde_json::json!({
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": gz.len(),
                "digest": d,
            }));
        }
        let diff_ids: Vec<&str> = layers.iter().map(|(_, d)| d.as_str()).collect();
        let config = serde_json::json!({
            "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        })
        .to_string();
        let cd = self.push_blob(repo, config.as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": config.len(),
                "digest": cd,
            },
            "layers": descs,
        })
        .to_string();
        let (st, _, b) = self.exchange(
            "PUT",
            &format!("/v2/{repo}/manifests/{tag}"),
            &[(
                "Content-Type",
                "application/vnd.docker.distribution.manifest.v2+json",
            )],
            manifest.as_bytes(),
        );
        assert_eq!(st, 201, "manifest put: {}", String::from_utf8_lossy(&b));
        format!("sha256:{:x}", Sha256::digest(config.as_bytes()))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
