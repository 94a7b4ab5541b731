//! Registry pulls over HTTPS against Debian's `docker-registry` serving TLS
//! only, with a CA and certificates this test makes with openssl. The
//! registries live in their own network namespace on a non-loopback
//! address (loopback is insecure by default, and an insecure registry is
//! not verified), joined to the host by a veth. Checked: `docker pull`
//! through `--registry-certs-dir` (dockerd's `certs.d` layout: a CA and a
//! client certificate), docker-py's `images.pull`, `docker push`, an unknown authority
//! refused in dockerd's words unless the registry is listed as insecure,
//! and a clock faked to 1970 (debug builds read `CORACLE_FAKE_CLOCK`):
//! certificates are then checked as at the build date, so a certificate
//! issued before it passes and one issued after it does not.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::netlab::NetLab as Lab;
use common::{busybox_tar, docker_py, temp_dir, Daemon};

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run(cmd: &mut Command) -> Output {
    let o = cmd.output().expect("run a tool");
    assert!(o.status.success(), "{cmd:?}: {}", text(&o));
    o
}

/// The registries' network namespace (`common::netlab`), with the CA
/// and certificates this test makes in its directory.
impl Lab {
    /// `openssl` in the lab's directory.
    fn openssl(&self, args: &[&str]) {
        run(Command::new("openssl").current_dir(&self.dir).args(args));
    }

    /// A CA: `NAME.key`, `NAME.crt`, and its `openssl ca` state.
    fn make_ca(&self, name: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-subj",
            &format!("/CN=coracle test {name}"),
            "-days",
            "3650",
        ]);
        let state = self.dir.join(format!("{name}-state"));
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(state.join("index.txt"), "").unwrap();
        std::fs::write(state.join("serial"), "1000\n").unwrap();
        let cnf = format!(
            "[ca]\ndefault_ca = d\n[d]\ndir = {s}\ndatabase = {s}/index.txt\nnew_certs_dir = {s}\nserial = {s}/serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\n[p]\ncommonName = supplied\n",
            s = state.display()
        );
        std::fs::write(self.dir.join(format!("{name}.cnf")), cnf).unwrap();
    }

    /// A certificate `NAME.crt` / `NAME.key` signed by `ca`, valid from
    /// `start` (openssl's `YYYYMMDDHHMMSSZ`; None: now) for `ext`.
    fn make_cert(&self, ca: &str, name: &str, ext: &str, start: Option<&str>) {
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ]);
        std::fs::write(self.dir.join(format!("{name}.ext")), ext).unwrap();
        let mut args = vec![
            "ca".to_string(),
            "-batch".into(),
            "-notext".into(),
            "-config".into(),
            format!("{ca}.cnf"),
            "-cert".into(),
            format!("{ca}.crt"),
            "-keyfile".into(),
            format!("{ca}.key"),
            "-in".into(),
            format!("{name}.csr"),
            "-out".into(),
            format!("{name}.crt"),
            "-extfile".into(),
            format!("{name}.ext"),
            "-enddate".into(),
            "20991231000000Z".into(),
        ];
        if let Some(s) = start {
            args.push("-startdate".into());
            args.push(s.into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.openssl(&args);
    }

    /// A `docker-registry` serving TLS only on `port` in the namespace,
    /// with `cert`, sharing one storage; `client_ca` requires client
    /// certificates it signed.
    fn registry(&mut self, port: u16, cert: &str, client_ca: Option<&str>) {
        let d = self.dir.display();
        let clientcas = client_ca
            .map(|ca| format!("    clientcas:\n      - {d}/{ca}.crt\n"))
            .unwrap_or_default();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {d}/storage\nhttp:\n  addr: {a}:{port}\n  tls:\n    certificate: {d}/{cert}.crt\n    key: {d}/{cert}.key\n{clientcas}",
            a = self.addr()
        );
        let file = self.dir.join(format!("registry-{port}.yml"));
        std::fs::write(&file, config).unwrap();
        let log = std::fs::File::create(self.dir.join(format!("registry-{port}.log"))).unwrap();
        let child = self
            .exec("docker-registry")
            .arg("serve")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("docker-registry must be installed (apt-get install docker-registry)");
        self.keep_serving(child, port, "docker-registry");
    }
}

fn pull(d: &Daemon, image: &str) -> Output {
    d.docker(&["pull", "-q", image])
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
}

#[test]
fn pulls_over_https_verify_certificates() {
    let mut lab = Lab::new("rtls", 193, temp_dir("regtls"));
    let a = lab.addr();
    lab.make_ca("ca");
    lab.make_ca("rogue");
    let san = format!("subjectAltName = IP:{a}\n");
    // Issued long before this binary was built, and just now (after it).
    lab.make_cert("ca", "old", &san, Some("20200101000000Z"));
    lab.make_cert("ca", "new", &san, None);
    lab.make_cert("rogue", "rogue-srv", &san, Some("20200101000000Z"));
    lab.make_cert(
        "ca",
        "client",
        "extendedKeyUsage = clientAuth\n",
        Some("20200101000000Z"),
    );
    lab.registry(5000, "old", Some("ca"));
    lab.registry(5001, "new", None);
    lab.registry(5002, "rogue-srv", None);
    let o = run(Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("docker-archive:{}", busybox_tar().display()))
        .arg(format!("docker://{a}:5002/busybox:latest")));
    drop(o);

    // certs.d: the CA for both registries of this CA; a client pair for
    // the one that asks for it.
    let certs = lab.dir.join("certs.d");
    for port in [5000, 5001] {
        let h = certs.join(format!("{a}:{port}"));
        std::fs::create_dir_all(&h).unwrap();
        copy(&lab.dir.join("ca.crt"), &h.join("ca.crt"));
    }
    let mtls = certs.join(format!("{a}:5000"));
    copy(&lab.dir.join("client.crt"), &mtls.join("client.cert"));
    copy(&lab.dir.join("client.key"), &mtls.join("client.key"));
    let certs_flag = certs.to_str().unwrap().to_string();

    let d = Daemon::start_with(&["--registry-certs-dir", &certs_flag], false);
    // Through certs.d, with the client certificate.
    let o = pull(&d, &format!("{a}:5000/busybox"));
    assert!(o.status.success(), "pull (mutual TLS): {}", text(&o));
    let o = pull(&d, &format!("{a}:5001/busybox"));
    assert!(o.status.success(), "pull (certs.d CA): {}", text(&o));
    // Without its client certificate the registry refuses the handshake.
    std::fs::rename(mtls.join("client.cert"), lab.dir.join("aside.cert")).unwrap();
    std::fs::rename(mtls.join("client.key"), lab.dir.join("aside.key")).unwrap();
    d.docker(&["rmi", &format!("{a}:5000/busybox")]);
    let o = pull(&d, &format!("{a}:5000/busybox"));
    assert!(
        !o.status.success(),
        "pull without a client cert: {}",
        text(&o)
    );
    std::fs::rename(lab.dir.join("aside.cert"), mtls.join("client.cert")).unwrap();
    std::fs::rename(lab.dir.join("aside.key"), mtls.join("client.key")).unwrap();
    // A certificate from a CA nobody trusts: dockerd's words.
    let o = pull(&d, &format!("{a}:5002/busybox"));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        stderr(&o).contains(&format!(
            "Get \"https://{a}:5002/v2/\": tls: failed to verify certificate: x509: certificate signed by unknown authority"
        )),
        "{}",
        text(&o)
    );
    // docker-py.
    d.docker(&["rmi", &format!("{a}:5001/busybox")]);
    let py = format!(
        "import docker\nc = docker.DockerClient(base_url='unix://{}')\nimg = c.images.pull('{a}:5001/busybox', tag='latest')\nprint(img.attrs['RepoDigests'])\n",
        d.sock.display()
    );
    let o = Command::new(docker_py())
        .arg("-c")
        .arg(&py)
        .output()
        .unwrap();
    assert!(o.status.success(), "docker-py: {}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("{a}:5001/busybox@sha256:")),
        "{}",
        text(&o)
    );
    // A push over HTTPS: blob uploads and the manifest through the same TLS.
    let o = d.docker(&[
        "tag",
        &format!("{a}:5001/busybox"),
        &format!("{a}:5001/pushed:v1"),
    ]);
    assert!(o.status.success(), "tag: {}", text(&o));
    let o = d.docker(&["push", &format!("{a}:5001/pushed:v1")]);
    assert!(o.status.success(), "push over HTTPS: {}", text(&o));
    d.docker(&["rmi", &format!("{a}:5001/pushed:v1")]);
    let o = pull(&d, &format!("{a}:5000/pushed:v1"));
    assert!(o.status.success(), "pull what was pushed: {}", text(&o));
    drop(d);

    // A clock in 1970 (no RTC): checked as at the build date.
    if std::env::var_os("CORACLE_BIN").is_some() {
        eprintln!("CORACLE_BIN: a release binary cannot fake its clock; 1970 checks skipped");
        return;
    }
    std::env::set_var("CORACLE_FAKE_CLOCK", "86400");
    let insecure = format!("{a}:5002");
    let d = Daemon::start_with(
        &[
            "--registry-certs-dir",
            &certs_flag,
            "--insecure-registry",
            &insecure,
        ],
        false,
    );
    std::env::remove_var("CORACLE_FAKE_CLOCK");
    let o = pull(&d, &format!("{a}:5000/busybox"));
    assert!(o.status.success(), "pull with a 1970 clock: {}", text(&o));
    let log = d.log_text();
    assert!(
        log.contains(
            "the system clock reads 1970-01-02T00:00:00Z, before this binary's build date"
        ),
        "{log}"
    );
    // Issued after the build date: not yet valid at it.
    let o = pull(&d, &format!("{a}:5001/busybox"));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        stderr(&o).contains("x509: certificate has expired or is not yet valid: current time "),
        "{}",
        text(&o)
    );
    // An insecure registry: HTTPS without verification (it speaks nothing else).
    let o = pull(&d, &format!("{a}:5002/busybox"));
    assert!(
        o.status.success(),
        "pull from an insecure registry: {}",
        text(&o)
    );
}
