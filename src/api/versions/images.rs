//! Older shapes of the image endpoints, from the newest JSON.

use crate::json;
use serde_json::Value;

/// Image IDs before content addressing (v1.10) had no `sha256:` prefix.
fn bare_id(id: &Value) -> Value {
    let s = id.as_str().unwrap_or("");
    json!(s.strip_prefix("sha256:").unwrap_or(s))
}

/// v1.0-v1.6 `GET /images/json`: one row per tag, `Repository` and `Tag`
/// split; an untagged image is `<none>:<none>`.
pub fn list_v1_0(rows: Value) -> Value {
    let mut out = Vec::new();
    for img in rows.as_array().into_iter().flatten() {
        let tags: Vec<&str> = img["RepoTags"]
            .as_array()
            .map(|t| t.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let row = |repo: &str, tag: &str| {
            json!({
                "Repository": repo,
                "Tag": tag,
                "Id": bare_id(&img["Id"]),
                "Created": img["Created"],
                "Size": img["Size"],
                "VirtualSize": img["Size"],
            })
        };
        if tags.is_empty() {
            out.push(row("<none>", "<none>"));
        }
        for t in tags {
            // The tag follows the last ':' after the last '/' (a registry
            // port is not a tag).
            let slash = t.rfind('/').map_or(0, |i| i + 1);
            match t[slash..].rfind(':') {
                Some(i) => out.push(row(&t[..slash + i], &t[slash + i + 1..])),
                None => out.push(row(t, "latest")),
            }
        }
    }
    Value::Array(out)
}

/// v1.7-v1.43 rows: `VirtualSize` beside `Size`.
pub fn list_v1_7(mut rows: Value) -> Value {
    for img in rows.as_array_mut().into_iter().flatten() {
        img["VirtualSize"] = img["Size"].clone();
    }
    rows
}

/// v1.0-v1.11 inspect: the image's own JSON keys, lowercase.
pub fn inspect_v1_0(v: Value) -> Value {
    json!({
        "id": bare_id(&v["Id"]),
        "parent": bare_id(&v["Parent"]),
        "created": v["Created"],
        "container": v["Container"].as_str().unwrap_or(""),
        "container_config": v.get("ContainerConfig").unwrap_or(&v["Config"]),
        "config": v["Config"],
        "docker_version": v["DockerVersion"],
        "author": v["Author"],
        "comment": v["Comment"],
        "architecture": v["Architecture"],
        "os": v["Os"],
        "Size": v["Size"],
        "VirtualSize": v["Size"],
    })
}

/// v1.12-v1.43 inspect: `VirtualSize` beside `Size`.
pub fn inspect_v1_12(v: Value) -> Value {
    let mut v = inspect_v1_44(v);
    v["VirtualSize"] = v["Size"].clone();
    v
}

/// v1.44 inspect: `Container` and `ContainerConfig` (an image made here
/// was not committed from a container: its own config stands in).
pub fn inspect_v1_44(mut v: Value) -> Value {
    if v.get("ContainerConfig").is_none() {
        v["ContainerConfig"] = v["Config"].clone();
    }
    if v.get("Container").is_none() {
        v["Container"] = json!("");
    }
    v
}
