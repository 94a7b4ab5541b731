//! The certificate checks of both TLS ends, which are ours over webpki
//! (src/http/tls_verify.rs) rather than rustls's CRL-parsing verifiers:
//! they must refuse what those refused. The `--tlsverify` listener (on
//! loopback, driven by curl and openssl): a client certificate chained
//! through an intermediate is accepted, one from an unknown CA, one for
//! server authentication only, an expired one and none at all are refused
//! with the alert rustls always sent; the CertificateRequest names the CA.
//! The registry client (`docker pull` against `openssl s_server` in a
//! network namespace, as loopback registries are never verified): a
//! certificate for another address and one for client authentication only
//! are refused, a chain through a P-384 intermediate to an RSA root passes.
//! Certificates are made with openssl: RSA root, P-384 intermediate, P-256
//! leaves.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::netlab::NetLab as Lab;
use common::{free_port, temp_dir, Daemon};

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A root CA (RSA), a rogue root (P-256), an intermediate under the root
/// (P-384) and the leaves (P-256) named in `leaves`: (name, issuer,
/// extensions, expired). Each is `NAME.crt` / `NAME.key` in `dir`;
/// `NAME-chain.crt` is the leaf followed by its issuer when that is the
/// intermediate.
fn make_pki(dir: &Path, leaves: &[(&str, &str, &str, bool)]) {
    let mut sh = String::from(
        r#"set -e
ca_state() {
    mkdir -p $1-state; : > $1-state/index.txt; echo 1000 > $1-state/serial
    printf '[ca]\ndefault_ca = d\n[d]\ndir = %s\ndatabase = %s/index.txt\nnew_certs_dir = %s\nserial = %s/serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\n[p]\ncommonName = supplied\n' \
        $PWD/$1-state $PWD/$1-state $PWD/$1-state $PWD/$1-state > $1.cnf
}
# sign NAME ISSUER EXTENSIONS START END
sign() {
    printf "$3" > $1.ext
    openssl ca -batch -notext -config $2.cnf -cert $2.crt -keyfile $2.key -in $1.csr -out $1.crt \
        -extfile $1.ext -startdate $4 -enddate $5 2>/dev/null
}
openssl req -x509 -newkey rsa:2048 -nodes -keyout root.key -out root.crt -days 3 -subj '/CN=coracle size-tls root' 2>/dev/null
ca_state root
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout rogue.key -out rogue.crt -days 3 -subj '/CN=coracle size-tls rogue' 2>/dev/null
ca_state rogue
openssl req -newkey ec -pkeyopt ec_paramgen_curve:secp384r1 -nodes -keyout inter.key -out inter.csr -subj '/CN=coracle size-tls intermediate' 2>/dev/null
sign inter root 'basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\n' 20200101000000Z 20991231000000Z
ca_state inter
"#,
    );
    for (name, issuer, ext, expired) in leaves {
        let (start, end) = if *expired {
            ("20200101000000Z", "20210101000000Z")
        } else {
            ("20200101000000Z", "20991231000000Z")
        };
        sh.push_str(&format!(
            "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout {name}.key -out {name}.csr -subj /CN={name} 2>/dev/null\n\
             sign {name} {issuer} '{ext}' {start} {end}\n\
             cat {name}.crt > {name}-chain.crt\n"
        ));
        if *issuer == "inter" {
            sh.push_str(&format!("cat inter.crt >> {name}-chain.crt\n"));
        }
    }
    let o = Command::new("sh")
        .arg("-c")
        .arg(&sh)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(o.status.success(), "openssl: {}", text(&o));
}

/// curl over TLS 1.2 (the client certificate is then checked inside the
/// handshake, so the alert is what curl reports) to `/_ping`, presenting
/// `cert` when given; returns curl's exit code and its words.
fn curl_ping(dir: &Path, port: u16, cert: Option<&str>) -> (i32, String) {
    let mut c = Command::new("curl");
    c.args([
        "-sS",
        "-m",
        "10",
        "--tlsv1.2",
        "--tls-max",
        "1.2",
        "--cacert",
    ])
    .arg(dir.join("root.crt"));
    if let Some(name) = cert {
        c.arg("--cert")
            .arg(dir.join(format!("{name}-chain.crt")))
            .arg("--key")
            .arg(dir.join(format!("{name}.key")));
    }
    let o = c
        .arg(format!("https://127.0.0.1:{port}/_ping"))
        .output()
        .expect("curl must be installed");
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// `openssl s_client` over TLS 1.2 presenting `cert` (with its chain)
/// when given, sending nothing; its output and errors.
fn s_client(dir: &Path, port: u16, cert: Option<&str>) -> String {
    let mut c = Command::new("timeout");
    c.args(["10", "openssl", "s_client", "-tls1_2", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-CAfile")
        .arg(dir.join("root.crt"));
    if let Some(name) = cert {
        c.arg("-cert")
            .arg(dir.join(format!("{name}.crt")))
            .arg("-key")
            .arg(dir.join(format!("{name}.key")));
    }
    let o = c.stdin(Stdio::null()).output().expect("openssl");
    text(&o)
}

#[test]
fn tlsverify_listener_checks_client_certificates() {
    let dir = temp_dir("size-tls-listener");
    make_pki(
        &dir,
        &[
            (
                "server",
                "root",
                "subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n",
                false,
            ),
            ("laptop", "inter", "extendedKeyUsage=clientAuth\\n", false),
            ("outsider", "rogue", "extendedKeyUsage=clientAuth\\n", false),
            (
                "wrongusage",
                "root",
                "extendedKeyUsage=serverAuth\\n",
                false,
            ),
            ("stale", "root", "extendedKeyUsage=clientAuth\\n", true),
        ],
    );
    let port = free_port();
    let arg = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let mut d = Daemon::start_with(
        &[
            "-H",
            &format!("tcp://127.0.0.1:{port}"),
            "--tlsverify",
            "--tlscacert",
            &arg("root.crt"),
            "--tlscert",
            &arg("server-chain.crt"),
            "--tlskey",
            &arg("server.key"),
        ],
        false,
    );
    // Through the intermediate the client sends: accepted, on TLS 1.2 and 1.3.
    let (code, out) = curl_ping(&dir, port, Some("laptop"));
    assert_eq!((code, out.as_str()), (0, "OK"), "{out}");
    let o = Command::new("curl")
        .args(["-sS", "-m", "10", "--tlsv1.3", "--cacert", &arg("root.crt")])
        .args([
            "--cert",
            &arg("laptop-chain.crt"),
            "--key",
            &arg("laptop.key"),
        ])
        .arg(format!("https://127.0.0.1:{port}/_ping"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "OK", "{}", text(&o));
    // Refused, each with the alert rustls's own verifier sent (openssl
    // names it; curl words an expired one as its own verification failure).
    for (cert, alert) in [
        ("outsider", "alert unknown ca"),
        ("wrongusage", "alert unsupported certificate"),
        ("stale", "alert certificate expired"),
    ] {
        let (code, out) = curl_ping(&dir, port, Some(cert));
        assert_ne!(code, 0, "{cert} accepted: {out}");
        let out = s_client(&dir, port, Some(cert));
        assert!(out.contains(alert), "{cert}: want {alert:?}: {out}");
    }
    let (code, out) = curl_ping(&dir, port, None);
    assert_ne!(code, 0, "no certificate, accepted: {out}");
    // The CertificateRequest names the root as the acceptable CA.
    let out = s_client(&dir, port, None);
    let names = out
        .split("Acceptable client certificate CA names")
        .nth(1)
        .unwrap_or_else(|| panic!("no CA names: {out}"));
    assert!(
        names
            .lines()
            .nth(1)
            .unwrap_or("")
            .contains("coracle size-tls root"),
        "{out}"
    );
    // And the daemon still serves.
    let (code, out) = curl_ping(&dir, port, Some("laptop"));
    assert_eq!((code, out.as_str()), (0, "OK"), "{out}");
    d.terminate();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `openssl s_server`s' network namespace (`common::netlab`).
impl Lab {
    /// `openssl s_server -www` on `port` with `name`'s certificate and
    /// key, and the intermediate after it when `chain`.
    fn serve(&mut self, port: u16, name: &str, chain: bool) {
        let d = &self.dir;
        let mut c = self.exec("openssl");
        c.args(["s_server", "-quiet", "-www"])
            .arg("-accept")
            .arg(format!("{}:{port}", self.addr()))
            .arg("-cert")
            .arg(d.join(format!("{name}.crt")))
            .arg("-key")
            .arg(d.join(format!("{name}.key")));
        if chain {
            c.arg("-cert_chain").arg(d.join("inter.crt"));
        }
        let child = c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl");
        self.keep_serving(child, port, "s_server");
    }
}

#[test]
fn registry_client_checks_server_certificates() {
    let mut lab = Lab::new("stls", 194, temp_dir("size-tls-client"));
    let a = lab.addr();
    let other = lab.host(9);
    make_pki(
        &lab.dir,
        &[
            (
                "elsewhere",
                "root",
                &format!("subjectAltName=IP:{other}\\nextendedKeyUsage=serverAuth\\n"),
                false,
            ),
            (
                "clientonly",
                "root",
                &format!("subjectAltName=IP:{a}\\nextendedKeyUsage=clientAuth\\n"),
                false,
            ),
            (
                "chained",
                "inter",
                &format!("subjectAltName=IP:{a}\\nextendedKeyUsage=serverAuth\\n"),
                false,
            ),
        ],
    );
    let certs = lab.dir.join("certs.d");
    for (port, name) in [(6000, "elsewhere"), (6001, "clientonly"), (6002, "chained")] {
        lab.serve(port, name, name == "chained");
        let h = certs.join(format!("{a}:{port}"));
        std::fs::create_dir_all(&h).unwrap();
        std::fs::copy(lab.dir.join("root.crt"), h.join("ca.crt")).unwrap();
    }
    let d = Daemon::start_with(&["--registry-certs-dir", certs.to_str().unwrap()], false);
    let pull = |port: u16| {
        let o = d.docker(&["pull", "-q", &format!("{a}:{port}/busybox")]);
        assert!(!o.status.success(), "s_server is no registry: {}", text(&o));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let err = pull(6000);
    assert!(
        err.contains(&format!(
            "tls: failed to verify certificate: x509: certificate is valid for {other}, not {a}"
        )),
        "{err}"
    );
    let err = pull(6001);
    assert!(
        err.contains("tls: failed to verify certificate: x509: "),
        "{err}"
    );
    // The handshake passes; what fails is s_server's status page as a registry.
    let err = pull(6002);
    assert!(!err.contains("tls:") && !err.contains("x509"), "{err}");
}
