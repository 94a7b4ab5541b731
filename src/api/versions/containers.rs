//! Older shapes of the container endpoints, from the newest JSON.

use crate::json;
use serde_json::{Map, Value};

/// v1.0-v1.4 `docker ps` rows: `Ports` as dockerd 0.x wrote it
/// ("8080->80, 5353->53/udp": published ports only, sorted), and the
/// old `Status`.
pub fn list_v1_0(rows: Value) -> Value {
    let mut rows = list_v1_5(rows);
    if let Some(list) = rows.as_array_mut() {
        for row in list {
            let text = ports_text(&row["Ports"]);
            row["Ports"] = json!(text);
        }
    }
    rows
}

/// v1.5-v1.11 rows: an exited container's `Status` is "Exit N" (the v1.3
/// and v1.11 docs), not "Exited (N) 5 minutes ago".
pub fn list_v1_5(mut rows: Value) -> Value {
    for row in rows.as_array_mut().into_iter().flatten() {
        let old = row["Status"].as_str().and_then(|s| {
            let code = s.strip_prefix("Exited (")?.split(')').next()?;
            Some(format!("Exit {code}"))
        });
        if let Some(old) = old {
            row["Status"] = json!(old);
        }
    }
    rows
}

fn ports_text(ports: &Value) -> String {
    let mut mapped: Vec<String> = ports
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let public = p["PublicPort"].as_u64()?;
            let private = p["PrivatePort"].as_u64().unwrap_or(0);
            Some(match p["Type"].as_str() {
                Some("udp") => format!("{public}->{private}/udp"),
                _ => format!("{public}->{private}"),
            })
        })
        .collect();
    crate::sort::sort(&mut mapped);
    mapped.dedup();
    mapped.join(", ")
}

/// v1.0-v1.11 inspect: the v1.3 keys beside the newer ones (an old client
/// reads its keys and ignores the others).
pub fn inspect_v1_0(v: Value) -> Value {
    let mut v = inspect_v1_12(v);
    v["State"]["Ghost"] = json!(false);
    let net = &v["NetworkSettings"];
    let old_net = json!({
        "IpAddress": net["IPAddress"].as_str().unwrap_or(""),
        "IpPrefixLen": net["IPPrefixLen"].as_u64().unwrap_or(0),
        "Gateway": net["Gateway"].as_str().unwrap_or(""),
        "Bridge": net["Bridge"].as_str().unwrap_or(""),
        "PortMapping": null,
    });
    if let (Some(obj), Value::Object(old)) = (v["NetworkSettings"].as_object_mut(), old_net) {
        obj.extend(old);
    }
    v["SysInitPath"] = json!("");
    // v1.8-v1.11's HostConfig keys, where nothing newer fills them.
    if let Some(hc) = v["HostConfig"].as_object_mut() {
        for (k, default) in [
            ("ContainerIDFile", json!("")),
            ("LxcConf", json!([])),
            ("PortBindings", json!({})),
            ("Links", Value::Null),
            ("PublishAllPorts", json!(false)),
        ] {
            hc.entry(k).or_insert(default);
        }
    }
    v
}

/// v1.12-v1.19 inspect: `Volumes` and `VolumesRW` (destination -> source /
/// writable), from `Mounts`.
pub fn inspect_v1_12(mut v: Value) -> Value {
    let mut volumes = Map::new();
    let mut rw = Map::new();
    for m in v["Mounts"].as_array().into_iter().flatten() {
        if let Some(dest) = m["Destination"].as_str() {
            volumes.insert(dest.into(), m["Source"].clone());
            rw.insert(dest.into(), json!(m["RW"].as_bool().unwrap_or(true)));
        }
    }
    v["Volumes"] = Value::Object(volumes);
    v["VolumesRW"] = Value::Object(rw);
    v
}

/// v1.3 `top`: one `{PID, Tty, Time, Cmd}` object per process, from the
/// `ps -ef` table.
pub fn top_v1_0(v: Value) -> Value {
    let titles: Vec<&str> = v["Titles"]
        .as_array()
        .map(|t| t.iter().map(|s| s.as_str().unwrap_or("")).collect())
        .unwrap_or_default();
    let col = |names: &[&str]| titles.iter().position(|t| names.contains(t));
    let (pid, tty, time, cmd) = (
        col(&["PID"]),
        col(&["TTY", "TT"]),
        col(&["TIME"]),
        col(&["CMD", "COMMAND"]),
    );
    let cell = |row: &Value, i: Option<usize>| {
        i.and_then(|i| row.get(i))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let rows: Vec<Value> = v["Processes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| {
            json!({
                "PID": cell(row, pid),
                "Tty": cell(row, tty),
                "Time": cell(row, time),
                "Cmd": cell(row, cmd),
            })
        })
        .collect();
    Value::Array(rows)
}
