//! Volumes and disk usage (issue 13): `docker volume` create/ls/inspect/rm/
//! prune, named and anonymous volumes in containers (copy-up from the image,
//! nocopy, --mount, --volumes-from, rm -v), `Mounts` in inspect, data kept
//! across runs and a daemon restart, `docker system df [-v]` against `du`,
//! `docker system prune`. One daemon serves the whole journey; the real
//! docker CLI, raw HTTP and Python's http.client drive it.

mod common;

use std::process::{Command, Output};

use common::{url_encode, Daemon};

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(d: &Daemon, args: &[&str]) -> String {
    let o = d.docker(args);
    assert!(o.status.success(), "docker {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn fails(d: &Daemon, args: &[&str]) -> String {
    let o = d.docker(args);
    assert!(
        !o.status.success(),
        "docker {args:?} should fail: {}",
        text(&o)
    );
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

/// `GET /volumes` through Python's http.client (a second, buffered client).
fn python_list(d: &Daemon, filters: &str) -> serde_json::Value {
    let script = r#"
import http.client, socket, sys, json
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(sys.argv[1])
c = C("localhost")
c.request("GET", "/v1.45/volumes?filters=" + sys.argv[2])
r = c.getresponse()
body = r.read()
print(json.dumps({"status": r.status, "body": json.loads(body)}))
"#;
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&d.sock)
        .arg(url_encode(filters))
        .output()
        .expect("python3 must be installed");
    assert!(o.status.success(), "python3: {}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("python output");
    assert_eq!(v["status"], 200, "{v}");
    v["body"].clone()
}

fn names(list: &serde_json::Value) -> Vec<String> {
    let mut n: Vec<String> = list["Volumes"]
        .as_array()
        .expect("Volumes is a list")
        .iter()
        .map(|v| v["Name"].as_str().unwrap_or("").to_string())
        .collect();
    n.sort();
    n
}

/// An image like busybox with `VOLUME /data` holding a file with its own
/// owner and mode, in a directory of mode 1777.
fn make_volume_image(d: &Daemon) {
    ok(
        d,
        &[
            "run", "--name", "mkimg", "busybox", "sh", "-c",
            "mkdir -p /data/sub && echo img > /data/hello && chown 1000:2000 /data/hello && chmod 640 /data/hello && chmod 1777 /data && echo s > /data/sub/x",
        ],
    );
    let tar = d.dir.join("vimg.tar");
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!("docker export mkimg > {}", tar.display()))
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .output()
        .expect("run docker export");
    assert!(o.status.success(), "export: {}", text(&o));
    ok(d, &["rm", "mkimg"]);
    let tar = tar.to_str().expect("utf-8").to_string();
    ok(
        d,
        &[
            "import",
            "--change",
            "VOLUME /data",
            "--change",
            "CMD [\"sh\"]",
            &tar,
            "vimg",
        ],
    );
}

#[test]
fn volume_api_shapes_and_errors() {
    let d = Daemon::start();
    // Create through the CLI and through raw HTTP.
    assert_eq!(ok(&d, &["volume", "create", "--label", "a=b", "v1"]), "v1");
    let r = d.request(
        "POST",
        "/v1.45/volumes/create",
        Some(r#"{"Name":"v2","DriverOpts":{"type":"tmpfs","device":"tmpfs","o":"size=1m"}}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.json();
    assert_eq!(v["Name"], "v2");
    assert_eq!(v["Driver"], "local");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Options"]["type"], "tmpfs");
    assert!(v["Labels"].is_null(), "{v}");
    assert_eq!(
        v["Mountpoint"],
        d.data_root.join("volumes/v2/_data").display().to_string()
    );
    assert!(v["CreatedAt"].as_str().unwrap_or("").ends_with('Z'), "{v}");
    // Creating an existing volume answers it as it is.
    let again = d.request("POST", "/volumes/create", Some(r#"{"Name":"v1"}"#));
    assert_eq!(again.status, 201);
    assert_eq!(again.json()["Labels"]["a"], "b");
    // Unnamed: a 64-hex name, not anonymous.
    let gen = d.request("POST", "/volumes/create", Some("{}"));
    assert_eq!(gen.status, 201);
    let gen_name = gen.json()["Name"].as_str().unwrap_or("").to_string();
    assert_eq!(gen_name.len(), 64, "{}", gen.body);

    let inspect = ok(&d, &["volume", "inspect", "v1"]);
    let iv: serde_json::Value = serde_json::from_str(&inspect).expect("inspect JSON");
    assert_eq!(iv[0]["Labels"]["a"], "b");

    // dockerd's errors, statuses and words.
    let cases: &[(&str, &str, u16, &str)] = &[
        ("POST", r#"{"Name":"bad$name"}"#, 400, "create bad$name: \"bad$name\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"),
        ("POST", r#"{"Name":"x1","Driver":"nfsplug"}"#, 404, "create x1: error looking up volume plugin nfsplug: plugin \"nfsplug\" not found"),
        ("POST", r#"{"Name":"x2","DriverOpts":{"foo":"1"}}"#, 400, "create x2: invalid option: \"foo\""),
        ("POST", r#"{"Name":"x3","DriverOpts":{"type":"tmpfs"}}"#, 400, "create x3: missing required option: \"device\""),
        ("POST", r#"{"Name":"x4","Labels":{"a":1}}"#, 400, ""),
    ];
    for (m, body, status, msg) in cases {
        let r = d.request(m, "/volumes/create", Some(body));
        assert_eq!(r.status, *status, "{body}: {}", r.body);
        if !msg.is_empty() {
            assert_eq!(r.json()["message"], *msg, "{body}");
        }
    }
    for n in ["x1", "x2", "x3", "x4"] {
        assert!(
            !d.data_root.join("volumes").join(n).exists(),
            "{n} half-made"
        );
    }
    let r = d.request("GET", "/volumes/nosuch", None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "get nosuch: no such volume");
    let r = d.request("DELETE", "/volumes/nosuch", None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "get nosuch: no such volume");
    assert_eq!(
        d.request("DELETE", "/volumes/nosuch?force=1", None).status,
        204
    );
    let err = fails(&d, &["volume", "create", "-d", "nfsplug", "x5"]);
    assert!(err.contains("plugin \"nfsplug\" not found"), "{err}");

    // ls and its filters, through Python's client.
    assert_eq!(names(&python_list(&d, "{}")), {
        let mut v = vec!["v1".to_string(), "v2".into(), gen_name.clone()];
        v.sort();
        v
    });
    assert_eq!(names(&python_list(&d, r#"{"name":["v"]}"#)), ["v1", "v2"]);
    assert_eq!(names(&python_list(&d, r#"{"label":["a=b"]}"#)), ["v1"]);
    assert_eq!(names(&python_list(&d, r#"{"label":["a=c"]}"#)).len(), 0);
    assert_eq!(names(&python_list(&d, r#"{"driver":["local"]}"#)).len(), 3);
    assert_eq!(names(&python_list(&d, r#"{"dangling":["true"]}"#)).len(), 3);
    let r = d.request(
        "GET",
        &format!(
            "/volumes?filters={}",
            url_encode(r#"{"dangling":["maybe"]}"#)
        ),
        None,
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "invalid filter 'dangling=[maybe]'");
    let r = d.request(
        "GET",
        &format!("/volumes?filters={}", url_encode(r#"{"bogus":["x"]}"#)),
        None,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let ls = ok(&d, &["volume", "ls", "--format", "{{.Driver}} {{.Name}}"]);
    assert!(ls.lines().any(|l| l == "local v1"), "{ls}");

    // Removal; a removed volume's directory is gone.
    ok(&d, &["volume", "rm", "v2", &gen_name]);
    assert!(!d.data_root.join("volumes/v2").exists());
    assert_eq!(names(&python_list(&d, "{}")), ["v1"]);
}

#[test]
fn volumes_in_containers() {
    let mut d = Daemon::with_busybox();
    make_volume_image(&d);

    // A named volume is created on first use and keeps its data across
    // `run --rm` runs and a daemon restart.
    ok(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            "keep:/k",
            "busybox",
            "sh",
            "-c",
            "echo persisted > /k/f",
        ],
    );
    assert_eq!(
        ok(
            &d,
            &["run", "--rm", "-v", "keep:/k", "busybox", "cat", "/k/f"]
        ),
        "persisted"
    );
    d.terminate();
    d.restart();
    assert_eq!(
        ok(
            &d,
            &["run", "--rm", "-v", "keep:/k:ro", "busybox", "cat", "/k/f"]
        ),
        "persisted"
    );
    // mount and unmount events, with dockerd's attributes.
    let evs = d.events(Some(r#"{"type":["volume"]}"#));
    let mount = evs
        .iter()
        .find(|e| e["Action"] == "mount")
        .unwrap_or_else(|| panic!("no mount event: {evs:?}"));
    assert_eq!(mount["Actor"]["ID"], "keep");
    let attrs = &mount["Actor"]["Attributes"];
    assert_eq!(attrs["destination"], "/k");
    assert_eq!(attrs["read/write"], "false");
    assert_eq!(attrs["driver"], "local");
    let cid = attrs["container"].as_str().unwrap_or("").to_string();
    assert_eq!(cid.len(), 64, "{mount}");
    assert!(
        evs.iter()
            .any(|e| e["Action"] == "unmount"
                && e["Actor"]["Attributes"]["container"] == cid.as_str()),
        "{evs:?}"
    );
    let err = fails(
        &d,
        &[
            "run",
            "--rm",
            "-v",
            "keep:/k:ro",
            "busybox",
            "touch",
            "/k/x",
        ],
    );
    assert!(
        err.contains("Read-only file system") || err.is_empty(),
        "{err}"
    );

    // The image's VOLUME: a fresh anonymous volume filled with the image's
    // content, owners and modes kept.
    let out = ok(
        &d,
        &[
            "run",
            "--name",
            "c1",
            "vimg",
            "sh",
            "-c",
            "stat -c '%u:%g %a' /data/hello /data; cat /data/hello /data/sub/x",
        ],
    );
    assert_eq!(out, "1000:2000 640\n0:0 1777\nimg\ns", "{out}");
    let mounts: serde_json::Value =
        serde_json::from_str(&ok(&d, &["inspect", "c1", "--format", "{{json .Mounts}}"]))
            .expect("Mounts JSON");
    let m = &mounts[0];
    assert_eq!(m["Type"], "volume", "{mounts}");
    assert_eq!(m["Destination"], "/data");
    assert_eq!(m["Driver"], "local");
    assert_eq!(m["RW"], true);
    assert_eq!(m["Mode"], "");
    assert_eq!(m["Propagation"], "");
    let anon = m["Name"].as_str().expect("Name").to_string();
    assert_eq!(anon.len(), 64);
    let src = d.data_root.join(format!("volumes/{anon}/_data"));
    assert_eq!(m["Source"], src.display().to_string());
    assert_eq!(
        std::fs::read_to_string(src.join("hello")).expect("copied up"),
        "img\n"
    );
    let av = d.request("GET", &format!("/volumes/{anon}"), None).json();
    assert_eq!(av["Labels"]["com.docker.volume.anonymous"], "", "{av}");

    // In use: 409 with the users; force does not override that.
    let r = d.request("DELETE", &format!("/volumes/{anon}?force=1"), None);
    assert_eq!(r.status, 409);
    let id = ok(&d, &["inspect", "c1", "--format", "{{.Id}}"]);
    assert_eq!(
        r.json()["message"],
        format!("remove {anon}: volume is in use - [{id}]")
    );

    // nocopy, --mount, a tmpfs volume, and -v over an image volume.
    ok(
        &d,
        &[
            "volume",
            "create",
            "-o",
            "type=tmpfs",
            "-o",
            "device=tmpfs",
            "-o",
            "o=size=2m",
            "tv",
        ],
    );
    let out = ok(
        &d,
        &[
            "run",
            "--name",
            "c2",
            "-v",
            "keep:/data:nocopy",
            "-v",
            "/anon",
            "--mount",
            "type=volume,dst=/m,volume-nocopy",
            "--mount",
            "type=volume,src=tv,dst=/t",
            "--mount",
            "type=volume,src=labelled,dst=/l,volume-label=x=y",
            "vimg",
            "sh",
            "-c",
            "ls /data; grep ' /t ' /proc/mounts",
        ],
    );
    assert!(
        out.starts_with("f\n"),
        "named volume kept, nothing copied: {out}"
    );
    assert!(
        out.contains("tmpfs /t tmpfs") && out.contains("size=2048k"),
        "{out}"
    );
    // A tmpfs volume is one mount on the host shared by the containers
    // running with it, gone once none runs.
    let writer = ok(
        &d,
        &[
            "run",
            "-d",
            "-v",
            "tv:/t",
            "busybox",
            "sh",
            "-c",
            "echo shared > /t/s; sleep 30",
        ],
    );
    let mut seen = String::new();
    for _ in 0..100 {
        let o = d.docker(&["run", "--rm", "-v", "tv:/t", "busybox", "cat", "/t/s"]);
        seen = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if seen == "shared" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(seen, "shared");
    let tv_data = d.data_root.join("volumes/tv/_data");
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(tv_data.to_str().unwrap_or("")))
    };
    assert!(mounted());
    ok(&d, &["rm", "-f", &writer]);
    assert!(!mounted(), "the tmpfs stays mounted with no user");
    assert_eq!(
        d.request("GET", "/volumes/labelled", None).json()["Labels"]["x"],
        "y"
    );
    let c2: serde_json::Value =
        serde_json::from_str(&ok(&d, &["inspect", "c2", "--format", "{{json .Mounts}}"]))
            .expect("Mounts JSON");
    let by = |dst: &str| {
        c2.as_array()
            .and_then(|a| a.iter().find(|m| m["Destination"] == dst))
            .cloned()
            .unwrap_or_else(|| panic!("no mount at {dst}: {c2}"))
    };
    assert_eq!(by("/data")["Name"], "keep");
    assert_eq!(by("/data")["Mode"], "nocopy");
    let c2_anon: Vec<String> = ["/anon", "/m"]
        .iter()
        .map(|p| by(p)["Name"].as_str().unwrap_or("").to_string())
        .collect();

    // volume-subpath: a directory inside the volume; a symlink in the
    // volume resolves inside it, never to the host's tree.
    ok(&d, &["volume", "create", "sp"]);
    let sp = d.data_root.join("volumes/sp/_data");
    std::fs::create_dir_all(sp.join("sub")).expect("mkdir");
    std::fs::write(sp.join("sub/in"), b"inside").expect("write");
    std::os::unix::fs::symlink("/", sp.join("esc")).expect("symlink");
    assert_eq!(
        ok(
            &d,
            &[
                "run",
                "--rm",
                "--mount",
                "type=volume,src=sp,dst=/s,volume-subpath=sub",
                "busybox",
                "cat",
                "/s/in"
            ]
        ),
        "inside"
    );
    let esc = ok(
        &d,
        &[
            "run",
            "--rm",
            "--mount",
            "type=volume,src=sp,dst=/s,volume-subpath=esc",
            "busybox",
            "ls",
            "/s",
        ],
    );
    assert_eq!(esc, "esc\nsub", "the symlink must stay inside the volume");
    let err = fails(
        &d,
        &[
            "run",
            "--rm",
            "--mount",
            "type=volume,src=sp,dst=/s,volume-subpath=nope",
            "busybox",
            "true",
        ],
    );
    assert!(err.contains("cannot access path"), "{err}");
    ok(&d, &["volume", "rm", "sp"]);
    // --volume-driver names a driver this daemon does not have.
    let err = fails(
        &d,
        &[
            "create",
            "--volume-driver",
            "nfsplug",
            "-v",
            "dv:/x",
            "busybox",
        ],
    );
    assert!(err.contains("plugin \"nfsplug\" not found"), "{err}");
    assert_eq!(d.request("GET", "/volumes/dv", None).status, 404);

    // A create that fails after its volumes were made (the container store
    // refuses the write: the directory is immutable) leaves no anonymous
    // volume behind.
    struct Mutable(std::path::PathBuf);
    impl Drop for Mutable {
        fn drop(&mut self) {
            let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
        }
    }
    let store = d.data_root.join("containers");
    let before = names(&d.request("GET", "/volumes", None).json());
    let st = Command::new("chattr")
        .arg("+i")
        .arg(&store)
        .status()
        .expect("run chattr");
    assert!(st.success(), "chattr +i {}", store.display());
    let guard = Mutable(store);
    fails(&d, &["create", "-v", "/lost", "busybox"]);
    drop(guard);
    assert_eq!(names(&d.request("GET", "/volumes", None).json()), before);

    // ps --filter volume= matches a volume's name.
    assert_eq!(
        ok(
            &d,
            &[
                "ps",
                "-a",
                "--filter",
                "volume=tv",
                "--format",
                "{{.Names}}"
            ]
        ),
        "c2"
    );
    // `run --rm` takes its anonymous volumes with it, not the named ones.
    let before = names(&d.request("GET", "/volumes", None).json());
    ok(
        &d,
        &[
            "run", "--rm", "-v", "/gone", "-v", "keep:/k", "busybox", "true",
        ],
    );
    assert_eq!(names(&d.request("GET", "/volumes", None).json()), before);

    // --volumes-from takes c2's volumes (read-only here).
    let out = ok(
        &d,
        &[
            "run",
            "--rm",
            "--volumes-from",
            "c2:ro",
            "busybox",
            "sh",
            "-c",
            "cat /data/f; touch /m/x 2>&1 || true",
        ],
    );
    assert!(
        out.starts_with("persisted") && out.contains("Read-only"),
        "{out}"
    );

    // rm -v removes the anonymous volumes only.
    ok(&d, &["rm", "-v", "c2"]);
    for a in &c2_anon {
        assert_eq!(
            d.request("GET", &format!("/volumes/{a}"), None).status,
            404,
            "{a}"
        );
    }
    for n in ["keep", "tv", "labelled"] {
        assert_eq!(
            d.request("GET", &format!("/volumes/{n}"), None).status,
            200,
            "{n}"
        );
    }
    // Without -v the anonymous volume stays, now dangling.
    ok(&d, &["rm", "c1"]);
    assert_eq!(
        d.request("GET", &format!("/volumes/{anon}"), None).status,
        200
    );

    // docker system df -v: volume sizes as `du` counts them (within 1%).
    ok(&d, &["run", "--rm", "-v", "big:/b", "busybox", "sh", "-c", "dd if=/dev/zero of=/b/blob bs=1024 count=3000 2>/dev/null; mkdir /b/d; echo x > /b/d/y"]);
    let du = Command::new("du")
        .args(["-sb", "--apparent-size"])
        .arg(d.data_root.join("volumes/big/_data"))
        .output()
        .expect("du");
    let du: u64 = String::from_utf8_lossy(&du.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("du output");
    let df = d.request("GET", "/system/df", None);
    assert_eq!(df.status, 200, "{}", df.body);
    let df = df.json();
    let big = df["Volumes"]
        .as_array()
        .and_then(|a| a.iter().find(|v| v["Name"] == "big"))
        .cloned()
        .expect("big in df");
    let size = big["UsageData"]["Size"].as_u64().expect("Size");
    assert!(
        (size as f64 - du as f64).abs() <= du as f64 * 0.01,
        "df {size} vs du {du}"
    );
    assert_eq!(big["UsageData"]["RefCount"], 0);
    assert!(df["LayersSize"].as_u64().unwrap_or(0) > 0, "{df}");
    assert!(df["BuildCache"].as_array().is_some_and(|a| a.is_empty()));
    assert!(
        df["Images"].as_array().is_some_and(|a| a.len() == 2),
        "{df}"
    );
    let only = d.request("GET", "/system/df?type=volume", None).json();
    assert!(
        only.get("Images").is_none() && only["Volumes"].is_array(),
        "{only}"
    );
    let bad = d.request("GET", "/system/df?type=bogus", None);
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["message"], "unknown object type: bogus");
    let table = ok(&d, &["system", "df"]);
    for row in ["Images", "Containers", "Local Volumes", "Build Cache"] {
        assert!(table.contains(row), "{table}");
    }
    let verbose = ok(&d, &["system", "df", "-v"]);
    assert!(
        verbose.contains("Local Volumes space usage") && verbose.contains("big"),
        "{verbose}"
    );

    // Prune: anonymous volumes only, unless all (API 1.42+); older API
    // versions prune every unused volume.
    let pruned = ok(&d, &["volume", "prune", "-f"]);
    assert!(
        pruned.contains(&anon) && !pruned.contains("keep"),
        "{pruned}"
    );
    let r = d.request(
        "POST",
        &format!(
            "/v1.45/volumes/prune?filters={}",
            url_encode(r#"{"label":["x=y"],"all":["true"]}"#)
        ),
        Some(""),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["VolumesDeleted"], serde_json::json!(["labelled"]));
    let r = d.request(
        "POST",
        &format!(
            "/v1.41/volumes/prune?filters={}",
            url_encode(r#"{"label!":["nothing"]}"#)
        ),
        Some(""),
    );
    let deleted = r.json()["VolumesDeleted"].clone();
    assert_eq!(
        deleted,
        serde_json::json!(["big", "keep", "tv"]),
        "{}",
        r.body
    );
    assert!(r.json()["SpaceReclaimed"].as_u64().unwrap_or(0) >= 3000 * 1024);

    // docker system prune runs end to end (networks and build cache have
    // nothing to prune yet).
    // system prune's until (a Go duration, as dockerd takes it) and label
    // filters reach every prune.
    ok(
        &d,
        &[
            "run", "--label", "x=1", "--name", "young", "busybox", "true",
        ],
    );
    let out = ok(&d, &["system", "prune", "-f", "--filter", "until=1h"]);
    assert!(!out.contains("Deleted Containers"), "{out}");
    let out = ok(&d, &["system", "prune", "-f", "--filter", "label=x=2"]);
    assert!(!out.contains("Deleted Containers"), "{out}");
    let out = ok(
        &d,
        &[
            "system",
            "prune",
            "-f",
            "--filter",
            "label=x=1",
            "--filter",
            "until=0s",
        ],
    );
    assert!(out.contains("Deleted Containers"), "{out}");
    let r = d.request(
        "POST",
        &format!(
            "/images/prune?filters={}",
            url_encode(r#"{"until":["soon"]}"#)
        ),
        Some(""),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "invalid until: soon");
    ok(
        &d,
        &["run", "-v", "/x", "--name", "gone", "busybox", "true"],
    );
    let out = ok(&d, &["system", "prune", "-f", "--volumes"]);
    assert!(
        out.contains("Deleted Containers") && out.contains("Deleted Volumes"),
        "{out}"
    );
    assert_eq!(names(&d.request("GET", "/volumes", None).json()).len(), 0);
}

/// `/system/df` walks 200,000 files in a forked worker: the loop keeps
/// answering `/_ping` quickly meanwhile.
#[test]
fn df_walk_leaves_the_loop_free() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let d = Daemon::start();
    assert_eq!(ok(&d, &["volume", "create", "many"]), "many");
    let data = d.data_root.join("volumes/many/_data");
    // The files live on a tmpfs (mounted by the test, unmounted by a guard
    // dropped before the daemon): making 200,000 of them on a busy disk
    // would cost minutes; the walk is the same.
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256m", "tmpfs"])
        .arg(&data)
        .status()
        .expect("run mount");
    assert!(st.success(), "mount tmpfs on {}", data.display());
    let _unmount = Unmount(data.clone());
    for i in 0..200 {
        let sub = data.join(format!("d{i}"));
        std::fs::create_dir(&sub).expect("mkdir");
        for j in 0..1000 {
            std::fs::File::create(sub.join(format!("f{j}"))).expect("create file");
        }
    }
    std::fs::write(data.join("d0/f0"), b"12345").expect("write");
    let ping = || {
        let t = Instant::now();
        assert_eq!(d.request("GET", "/_ping", None).status, 200);
        t.elapsed()
    };
    // The floor on this machine now: the 99th percentile of pings with no
    // walk (a loaded CI host is slow at times without the loop being
    // blocked).
    let p99 = |mut v: Vec<Duration>| {
        v.sort();
        v[(v.len() * 99 / 100).min(v.len() - 1)]
    };
    let floor = p99((0..200).map(|_| ping()).collect());
    let limit = Duration::from_millis(50) + floor;
    let mut df = d.connect();
    df.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    df.write_all(b"GET /system/df?type=volume HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        .expect("send df");
    let started = Instant::now();
    let mut during = Vec::new();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = df.read_to_string(&mut out);
        (out, Instant::now())
    });
    while !reader.is_finished() && started.elapsed() < Duration::from_secs(60) {
        during.push(ping());
        std::thread::sleep(Duration::from_millis(2));
    }
    let (out, done) = reader.join().expect("df reader");
    let walk = done - started;
    let body = common::parse_response(&out);
    assert_eq!(body.status, 200, "{out}");
    let v = body.json();
    assert_eq!(v["Volumes"][0]["UsageData"]["Size"], 5, "{v}");
    assert!(!during.is_empty(), "df answered before any ping ({walk:?})");
    let pings = during.len();
    let worst = during.iter().copied().max().unwrap_or_default();
    // A walk on the loop would hold pings for the walk's whole length.
    assert!(
        walk > limit * 4,
        "the walk ({walk:?}) is too short to tell against {limit:?}"
    );
    assert!(
        worst < walk / 2,
        "a /_ping waited {worst:?} during a {walk:?} df walk: the loop was held"
    );
    let p = p99(during);
    assert!(
        p < limit,
        "99th percentile /_ping {p:?} (floor {floor:?}) during a {walk:?} df walk ({pings} pings, slowest {worst:?})"
    );
}
