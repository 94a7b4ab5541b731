//! API conformance: for each endpoint coracle serves, one request, and the
//! response keys dockerd (20.10+) returns, read from the Engine API spec
//! (`../shared/api-spec/v1.45.yaml`) minus the keys dockerd itself leaves
//! out (`omit`, each with its reason). A field missing from our answer fails
//! `cargo test` here, with every gap listed at once.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::cli::{dk, dk_in, ok, show};
use common::Daemon;
use serde_json::Value;

/// Just enough YAML to walk the spec: lines with their indentation.
struct Spec {
    lines: Vec<(usize, String)>,
}

impl Spec {
    fn load() -> Spec {
        let path = std::env::var_os("CORACLE_API_SPEC")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/api-spec/v1.45.yaml")
            });
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "the API spec {} is missing ({e}); set CORACLE_API_SPEC",
                path.display()
            )
        });
        let lines = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(|l| (l.len() - l.trim_start().len(), l.trim().to_string()))
            .collect();
        Spec { lines }
    }

    /// The lines nested under line `i`.
    fn block(&self, i: usize) -> std::ops::Range<usize> {
        let ind = self.lines[i].0;
        let end = (i + 1..self.lines.len())
            .find(|&j| self.lines[j].0 <= ind)
            .unwrap_or(self.lines.len());
        i + 1..end
    }

    /// Direct children of line `i` (the least indented lines of its block).
    fn children(&self, i: usize) -> Vec<usize> {
        let b = self.block(i);
        let Some(ind) = b.clone().map(|j| self.lines[j].0).min() else {
            return Vec::new();
        };
        b.filter(|&j| self.lines[j].0 == ind).collect()
    }

    fn key_of(text: &str) -> Option<String> {
        let text = text.strip_prefix("- ").unwrap_or(text);
        let (k, _) = text.split_once(':')?;
        Some(k.trim().trim_matches('"').to_string())
    }

    fn child(&self, i: usize, key: &str) -> Option<usize> {
        self.children(i)
            .into_iter()
            .find(|&j| Spec::key_of(&self.lines[j].1).as_deref() == Some(key))
    }

    fn value(&self, i: usize) -> String {
        let t = &self.lines[i].1;
        t.split_once(':')
            .map(|(_, v)| v.trim().trim_matches('"').to_string())
            .unwrap_or_default()
    }

    fn top(&self, section: &str, name: &str) -> usize {
        let root = (0..self.lines.len())
            .find(|&j| self.lines[j].0 == 0 && self.lines[j].1 == format!("{section}:"))
            .unwrap_or_else(|| panic!("spec has no {section}"));
        self.child(root, name)
            .unwrap_or_else(|| panic!("spec has no {section}/{name}"))
    }

    /// The property names of a schema: `$ref`, `allOf`, `properties`, and
    /// an array's `items`.
    fn schema_keys(&self, i: usize) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        if let Some(r) = self.child(i, "$ref") {
            let v = self.value(r);
            let name = v.rsplit('/').next().unwrap_or_default().to_string();
            return self.schema_keys(self.top("definitions", &name));
        }
        if let Some(p) = self.child(i, "properties") {
            for c in self.children(p) {
                out.extend(Spec::key_of(&self.lines[c].1));
            }
        }
        if let Some(a) = self.child(i, "allOf") {
            for item in self.children(a) {
                let text = &self.lines[item].1;
                if let Some(r) = text.strip_prefix("- $ref:") {
                    let name = r.trim().trim_matches('"').rsplit('/').next().unwrap_or("");
                    out.extend(self.schema_keys(self.top("definitions", name)));
                } else {
                    // An inline item: its keys start on the dash line.
                    let props = self.block(item).find(|&j| self.lines[j].1 == "properties:");
                    if let Some(p) = props {
                        for c in self.children(p) {
                            out.extend(Spec::key_of(&self.lines[c].1));
                        }
                    }
                }
            }
        }
        if out.is_empty() {
            if let Some(items) = self.child(i, "items") {
                return self.schema_keys(items);
            }
        }
        out
    }

    fn definition(&self, name: &str) -> BTreeSet<String> {
        self.schema_keys(self.top("definitions", name))
    }

    /// The keys of `method path`'s `status` response.
    fn response(&self, method: &str, path: &str, status: u16) -> BTreeSet<String> {
        let p = self.top("paths", path);
        let m = self
            .child(p, method)
            .unwrap_or_else(|| panic!("spec: no {method} {path}"));
        let r = self.child(m, "responses").expect("responses");
        let s = self
            .child(r, &status.to_string())
            .unwrap_or_else(|| panic!("spec: {method} {path} has no {status}"));
        let schema = self
            .child(s, "schema")
            .unwrap_or_else(|| panic!("spec: {method} {path} {status} has no schema"));
        self.schema_keys(schema)
    }
}

/// What one endpoint is checked for.
struct Case {
    method: &'static str,
    /// Our request (the spec's path with real names).
    path: &'static str,
    body: Option<&'static str>,
    /// The spec's path template and expected status.
    spec: &'static str,
    status: u16,
    /// Spec keys dockerd does not send for this request (omitempty).
    omit: &'static [&'static str],
    /// Nested objects: JSON pointer in our answer -> spec definition.
    nested: &'static [(&'static str, &'static str, &'static [&'static str])],
}

/// Keys of `v` (of its first element if it is an array).
fn keys(v: &Value) -> BTreeSet<String> {
    let v = match v {
        Value::Array(a) => a.first().cloned().unwrap_or(Value::Null),
        other => other.clone(),
    };
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn missing(spec: BTreeSet<String>, omit: &[&str], ours: &BTreeSet<String>) -> Vec<String> {
    spec.into_iter()
        .filter(|k| !omit.contains(&k.as_str()) && !ours.contains(k))
        .collect()
}

/// HostConfig fields dockerd sends only when set (`omitempty` in its types).
const HOSTCONFIG_OMIT: &[&str] = &["Annotations", "Init", "KernelMemoryTCP", "StorageOpt"];

fn cases() -> Vec<Case> {
    vec![
        Case {
            method: "GET",
            path: "/version",
            body: None,
            spec: "/version",
            status: 200,
            omit: &[],
            nested: &[],
        },
        Case {
            method: "GET",
            path: "/info",
            body: None,
            spec: "/info",
            status: 200,
            // omitempty: sent by licensed builds only.
            omit: &["ProductLicense"],
            nested: &[],
        },
        Case {
            method: "GET",
            path: "/images/json",
            body: None,
            spec: "/images/json",
            status: 200,
            omit: &[],
            nested: &[],
        },
        Case {
            method: "GET",
            path: "/images/busybox/json",
            body: None,
            spec: "/images/{name}/json",
            status: 200,
            // omitempty: only for images that have them.
            omit: &["Variant", "OsVersion"],
            nested: &[("/RootFS", "ImageInspect", &[])],
        },
        Case {
            method: "GET",
            path: "/images/busybox/history",
            body: None,
            spec: "/images/{name}/history",
            status: 200,
            omit: &[],
            nested: &[],
        },
        Case {
            method: "POST",
            path: "/images/prune",
            body: None,
            spec: "/images/prune",
            status: 200,
            omit: &[],
            nested: &[],
        },
        Case {
            method: "POST",
            path: "/containers/create?name=conf2",
            body: Some(r#"{"Image":"busybox","Cmd":["true"]}"#),
            spec: "/containers/create",
            status: 201,
            omit: &[],
            nested: &[],
        },
        Case {
            method: "GET",
            path: "/containers/json?all=1",
            body: None,
            spec: "/containers/json",
            status: 200,
            // Only with size=1.
            omit: &["SizeRw", "SizeRootFs"],
            nested: &[],
        },
        Case {
            method: "GET",
            path: "/containers/conf/json",
            body: None,
            spec: "/containers/{id}/json",
            status: 200,
            // Only with size=1; Node is swarm classic.
            omit: &["SizeRw", "SizeRootFs", "Node"],
            nested: &[
                // Health only with a healthcheck (omitempty).
                ("/State", "ContainerState", &["Health"]),
                ("/HostConfig", "HostConfig", HOSTCONFIG_OMIT),
                ("/NetworkSettings", "NetworkSettings", &[]),
                ("/GraphDriver", "GraphDriverData", &[]),
                (
                    "/Config",
                    "ContainerConfig",
                    // omitempty in dockerd's container.Config.
                    &[
                        "ExposedPorts",
                        "StopSignal",
                        "StopTimeout",
                        "Healthcheck",
                        "ArgsEscaped",
                        "MacAddress",
                        "NetworkDisabled",
                        "Shell",
                    ],
                ),
            ],
        },
        Case {
            method: "GET",
            path: "/containers/conf/top",
            body: None,
            spec: "/containers/{id}/top",
            status: 200,
            omit: &[],
            nested: &[],
        },
        Case {
            method: "GET",
            path: "/containers/conf/changes",
            body: None,
            spec: "/containers/{id}/changes",
            status: 200,
            omit: &[],
            nested: &[],
        },
        Case {
            method: "POST",
            path: "/containers/conf/update",
            body: Some("{}"),
            spec: "/containers/{id}/update",
            status: 200,
            omit: &[],
            nested: &[],
        },
        Case {
            method: "POST",
            path: "/containers/conf/exec",
            body: Some(r#"{"Cmd":["true"]}"#),
            spec: "/containers/{id}/exec",
            status: 201,
            omit: &[],
            nested: &[],
        },
        Case {
            method: "POST",
            path: "/containers/conf2/wait",
            body: None,
            spec: "/containers/{id}/wait",
            status: 200,
            // Error is sent only when the wait itself failed.
            omit: &["Error"],
            nested: &[],
        },
        Case {
            method: "POST",
            path: "/containers/prune",
            body: None,
            spec: "/containers/prune",
            status: 200,
            omit: &[],
            nested: &[],
        },
        Case {
            method: "DELETE",
            path: "/images/conf:tag",
            body: None,
            spec: "/images/{name}",
            status: 200,
            // One row per untag or delete: a row has one of the two.
            omit: &["Deleted"],
            nested: &[],
        },
    ]
}

#[test]
fn responses_carry_dockerds_keys() {
    let spec = Spec::load();
    // The walker itself: a few keys the spec surely lists.
    assert!(spec.definition("ContainerState").contains("OOMKilled"));
    assert!(spec.definition("HostConfig").contains("Memory"), "allOf");
    assert!(spec
        .response("get", "/containers/{id}/top", 200)
        .contains("Processes"));

    let mut d = Daemon::with_busybox();
    d.has_containers = true;
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "conf",
            "busybox",
            "sh",
            "-c",
            "echo hi > /x; sleep 300",
        ],
    );
    ok(&d, &["tag", "busybox", "conf:tag"]);
    common::cli::wait_for("the change", 10, || {
        d.request("GET", "/containers/conf/changes", None)
            .json()
            .to_string()
            .contains("/x")
    });

    let mut gaps = Vec::new();
    for c in cases() {
        let what = format!("{} {}", c.method, c.path);
        let r = d.request(c.method, c.path, c.body);
        if r.status != c.status {
            gaps.push(format!(
                "{what}: status {} (want {}): {}",
                r.status, c.status, r.body
            ));
            continue;
        }
        let v = r.json();
        let method = c.method.to_ascii_lowercase();
        let want = spec.response(&method, c.spec, c.status);
        assert!(!want.is_empty(), "{what}: the spec lists no keys");
        let m = missing(want, c.omit, &keys(&v));
        if !m.is_empty() {
            gaps.push(format!("{what}: missing {m:?}"));
        }
        for (ptr, def, omit) in c.nested {
            let inner = match &v {
                Value::Array(a) => a.first().and_then(|x| x.pointer(ptr)),
                other => other.pointer(ptr),
            };
            let Some(inner) = inner else {
                gaps.push(format!("{what}: no {ptr}"));
                continue;
            };
            let want = if *def == "ImageInspect" {
                // RootFS is inline in ImageInspect: Type and Layers.
                ["Type", "Layers"].iter().map(|s| s.to_string()).collect()
            } else {
                spec.definition(def)
            };
            let m = missing(want, omit, &keys(inner));
            if !m.is_empty() {
                gaps.push(format!("{what} {ptr} ({def}): missing {m:?}"));
            }
        }
    }
    // The exec just created: its inspect.
    let r = d.request("POST", "/containers/conf/exec", Some(r#"{"Cmd":["true"]}"#));
    let id = r.json()["Id"].as_str().unwrap_or_default().to_string();
    let r = d.request("GET", &format!("/exec/{id}/json"), None);
    let want = spec.response("get", "/exec/{id}/json", 200);
    let m = missing(want, &[], &keys(&r.json()));
    if !m.is_empty() {
        gaps.push(format!("GET /exec/{{id}}/json: missing {m:?}"));
    }
    let pc = spec.definition("ProcessConfig");
    let m = missing(pc, &[], &keys(&r.json()["ProcessConfig"]));
    if !m.is_empty() {
        gaps.push(format!(
            "GET /exec/{{id}}/json ProcessConfig: missing {m:?}"
        ));
    }
    // /_ping answers OK with dockerd's headers.
    let r = d.request("GET", "/_ping", None);
    assert_eq!(r.body, "OK");
    for h in [
        "api-version",
        "ostype",
        "docker-experimental",
        "cache-control",
    ] {
        if r.header(h).is_none() {
            gaps.push(format!("GET /_ping: no {h} header"));
        }
    }
    // An event's keys (one container event from the history).
    let evs = d.events(Some(r#"{"type":["container"]}"#));
    let want: BTreeSet<String> = ["Type", "Action", "Actor", "scope", "time", "timeNano"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let spec_ev = spec.definition("EventMessage");
    assert!(want.is_subset(&spec_ev), "EventMessage: {spec_ev:?}");
    match evs.first() {
        Some(e) => {
            let m = missing(want, &[], &keys(e));
            if !m.is_empty() {
                gaps.push(format!("GET /events: missing {m:?}"));
            }
        }
        None => gaps.push("GET /events: no container event".into()),
    }
    plain_endpoints(&d, &mut gaps);
    assert!(
        gaps.is_empty(),
        "differences from dockerd:\n{}",
        gaps.join("\n")
    );
}

/// The endpoints that answer without a JSON body: dockerd's status for one
/// ordinary request each, so every route in the table is exercised.
fn plain_endpoints(d: &Daemon, gaps: &mut Vec<String>) {
    let plain: &[(&str, &str, u16)] = &[
        ("HEAD", "/_ping", 200),
        ("GET", "/images/get?names=busybox", 200),
        ("GET", "/images/busybox/get", 200),
        ("POST", "/images/busybox/tag?repo=conf&tag=t2", 201),
        ("POST", "/containers/conf/pause", 204),
        ("POST", "/containers/conf/unpause", 204),
        ("POST", "/containers/conf/resize?h=20&w=80", 200),
        ("GET", "/containers/conf/logs?stdout=1", 200),
        ("GET", "/containers/conf/export", 200),
        ("POST", "/containers/conf/rename?name=conf3", 204),
        ("POST", "/containers/conf3/rename?name=conf", 204),
        ("POST", "/containers/conf/kill?signal=HUP", 204),
        ("POST", "/containers/conf/stop?t=1", 204),
        ("POST", "/containers/conf/stop", 304),
        ("POST", "/containers/conf/start", 204),
        ("POST", "/containers/conf/restart?t=1", 204),
        ("POST", "/containers/conf/kill", 204),
        ("DELETE", "/containers/conf", 204),
    ];
    for (method, path, status) in plain {
        // Binary bodies (tars): read as bytes.
        let r = d.request_bytes(method, path, &[], None);
        if r.status != *status {
            gaps.push(format!(
                "{method} {path}: status {} (want {status}): {}",
                r.status,
                r.text()
            ));
        }
    }
    // Load and import (streamed bodies), attach and exec start (hijacked).
    let tar = d.dir.join("conf.tar");
    let tar_s = tar.to_str().unwrap().to_string();
    ok(d, &["save", "-o", &tar_s, "busybox"]);
    let o = dk(d, &["load", "-i", &tar_s]);
    if !o.status.success() {
        gaps.push(format!("POST /images/load: {}", show(&o)));
    }
    let data = std::fs::read(&tar).unwrap();
    let o = dk_in(d, &["import", "-", "conf:imported"], Some(data), 60);
    if !o.status.success() {
        gaps.push(format!("POST /images/create: {}", show(&o)));
    }
    let out = ok(
        d,
        &["run", "--name", "conf4", "busybox", "echo", "attached"],
    );
    if out.trim() != "attached" {
        gaps.push(format!("POST /containers/{{id}}/attach: {out:?}"));
    }
    ok(
        d,
        &["run", "-d", "--name", "conf5", "busybox", "sleep", "300"],
    );
    let out = ok(d, &["exec", "conf5", "echo", "exec"]);
    if out.trim() != "exec" {
        gaps.push(format!("POST /exec/{{id}}/start: {out:?}"));
    }
    let r = d.request(
        "POST",
        "/containers/conf5/exec",
        Some(r#"{"Cmd":["sleep","2"],"Tty":true}"#),
    );
    let id = r.json()["Id"].as_str().unwrap_or_default().to_string();
    let r = d.request(
        "POST",
        &format!("/exec/{id}/start"),
        Some(r#"{"Detach":true,"Tty":true}"#),
    );
    if r.status != 200 {
        gaps.push(format!("POST /exec/{{id}}/start detached: {}", r.status));
    }
    let r = d.request("POST", &format!("/exec/{id}/resize?h=20&w=80"), None);
    if !matches!(r.status, 200 | 201) {
        gaps.push(format!("POST /exec/{{id}}/resize: {} {}", r.status, r.body));
    }
}
