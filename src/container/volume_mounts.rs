//! A container's volume mount points, planned at create time as dockerd's
//! `registerMountPoints` does: `--volumes-from`, named volumes in `Binds`
//! (`-v name:/path`), `Mounts` of type volume, and the anonymous volumes of
//! `Config.Volumes` (`-v /path`, the image's `VOLUME`). Pure: the engine
//! creates the volumes the plan names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::{ContainerConfig, HostConfig};
use super::error::ContainerError;

/// One volume (or, copied by `--volumes-from`, bind) mounted in a container,
/// persisted in its record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountPoint {
    /// "volume" or "bind".
    #[serde(rename = "Type")]
    pub kind: String,
    /// The volume's name ("" for a bind).
    pub name: String,
    /// Host path: the volume's data dir, or the bind's source.
    pub source: String,
    pub destination: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    /// As inspect shows it ("z" for `-v name:/path`, "" otherwise).
    pub mode: String,
    /// Created for this container (`-v /path`, `VOLUME`): `rm -v` removes it.
    pub anonymous: bool,
    /// The volume is filled from the image's content at `destination` on the
    /// first start if it is empty then (no `nocopy`); cleared once started.
    pub copy_up: bool,
    /// `--mount ...,volume-subpath=`: a directory inside the volume.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subpath: String,
}

/// A volume the plan needs: created with these settings if missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRequest {
    /// None: anonymous, the engine picks a name.
    pub name: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub driver: String,
    pub options: Option<BTreeMap<String, String>>,
}

/// A planned mount point and, for a volume, what to create.
pub struct Planned {
    pub point: MountPoint,
    pub volume: Option<VolumeRequest>,
}

fn invalid(m: String) -> ContainerError {
    ContainerError::Invalid(m)
}

fn clean_dest(d: &str) -> String {
    let t = d.trim_end_matches('/');
    if t.is_empty() {
        "/".into()
    } else {
        t.to_string()
    }
}

/// Another container's volume mount points and `Binds`, for `--volumes-from`.
pub type VolumesFrom<'a> =
    &'a dyn Fn(&str) -> Result<(Vec<MountPoint>, Vec<String>), ContainerError>;

/// The plan, in dockerd's order of precedence: a later source replaces an
/// earlier one's mount at the same destination (`--volumes-from` first).
/// `volumes_from` gives another container's mount points and binds.
pub fn plan(
    config: &ContainerConfig,
    h: &HostConfig,
    volumes_from: VolumesFrom,
) -> Result<Vec<Planned>, ContainerError> {
    let mut out: Vec<Planned> = Vec::new();
    let set = |out: &mut Vec<Planned>, p: Planned| {
        out.retain(|o| o.point.destination != p.point.destination);
        out.push(p);
    };
    // --volumes-from c[:ro|rw]
    let from: Vec<String> = h
        .extra
        .get("VolumesFrom")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for spec in &from {
        let (cid, mode) = match spec.split_once(':') {
            Some((c, m)) => (c, m),
            None => (spec.as_str(), ""),
        };
        let rw_override = match mode {
            "" => None,
            "rw" => Some(true),
            "ro" => Some(false),
            other => return Err(invalid(format!("invalid mode: {other}"))),
        };
        let (points, binds) = volumes_from(cid)?;
        for mut p in points {
            p.anonymous = false;
            p.copy_up = false;
            if let Some(rw) = rw_override {
                p.rw = rw;
            }
            set(
                &mut out,
                Planned {
                    point: p,
                    volume: None,
                },
            );
        }
        for b in binds {
            let (src, dst, ro) = super::create::parse_bind(&b)?;
            if !src.starts_with('/') {
                continue;
            }
            let rw = rw_override.unwrap_or(!ro);
            let point = MountPoint {
                kind: "bind".into(),
                source: src,
                destination: clean_dest(&dst),
                rw,
                mode: if rw { String::new() } else { "ro".into() },
                ..Default::default()
            };
            set(
                &mut out,
                Planned {
                    point,
                    volume: None,
                },
            );
        }
    }
    // `--volume-driver`: the driver of the volumes `-v` and `VOLUME` create.
    let default_driver = h
        .extra
        .get("VolumeDriver")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
        .unwrap_or("local")
        .to_string();
    let mut own: Vec<String> = Vec::new();
    let mut claim = |dest: &str| -> Result<(), ContainerError> {
        if own.iter().any(|d| d == dest) {
            return Err(invalid(format!("Duplicate mount point: {dest}")));
        }
        own.push(dest.to_string());
        Ok(())
    };
    // Binds: host paths stay with the bind code; names are volumes.
    for b in &h.binds {
        let (src, dst, ro) = super::create::parse_bind(b)?;
        let dest = clean_dest(&dst);
        claim(&dest)?;
        if src.starts_with('/') {
            out.retain(|o| o.point.destination != dest);
            continue;
        }
        let opts = b.splitn(3, ':').nth(2).unwrap_or("");
        let nocopy = opts.split(',').any(|o| o == "nocopy");
        let point = MountPoint {
            kind: "volume".into(),
            name: src.clone(),
            destination: dest,
            rw: !ro,
            mode: if opts.is_empty() {
                "z".into()
            } else {
                opts.into()
            },
            copy_up: !nocopy,
            ..Default::default()
        };
        let volume = VolumeRequest {
            name: Some(src),
            labels: None,
            driver: default_driver.clone(),
            options: None,
        };
        set(
            &mut out,
            Planned {
                point,
                volume: Some(volume),
            },
        );
    }
    for m in &h.mounts {
        let dest = clean_dest(&m.target);
        claim(&dest)?;
        if m.kind != "volume" {
            out.retain(|o| o.point.destination != dest);
            continue;
        }
        let vo = m.extra.get("VolumeOptions").cloned().unwrap_or(Value::Null);
        let strmap = |v: &Value| -> Option<BTreeMap<String, String>> {
            v.as_object().map(|o| {
                o.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
        };
        let driver = vo["DriverConfig"]["Name"]
            .as_str()
            .filter(|d| !d.is_empty())
            .unwrap_or(&default_driver)
            .to_string();
        let subpath = vo["Subpath"].as_str().unwrap_or("").to_string();
        if subpath.starts_with('/') || subpath.split('/').any(|s| s == "..") {
            return Err(invalid(format!(
                "invalid mount config for type \"volume\": subpath must be a relative path within the volume: {subpath}"
            )));
        }
        let anonymous = m.source.is_empty();
        let point = MountPoint {
            kind: "volume".into(),
            name: m.source.clone(),
            destination: dest,
            rw: !m.read_only,
            mode: String::new(),
            anonymous,
            copy_up: !vo["NoCopy"].as_bool().unwrap_or(false) && subpath.is_empty(),
            subpath,
            ..Default::default()
        };
        let mut labels = strmap(&vo["Labels"]);
        if anonymous {
            labels
                .get_or_insert_with(BTreeMap::new)
                .insert(crate::store::volumes::ANONYMOUS_LABEL.into(), String::new());
        }
        let volume = VolumeRequest {
            name: (!anonymous).then(|| m.source.clone()),
            labels,
            driver,
            options: strmap(&vo["DriverConfig"]["Options"]),
        };
        set(
            &mut out,
            Planned {
                point,
                volume: Some(volume),
            },
        );
    }
    for t in h.tmpfs.keys() {
        let dest = clean_dest(t);
        out.retain(|o| o.point.destination != dest);
        own.push(dest);
    }
    // Config.Volumes: anonymous volumes where nothing else is mounted.
    if let Some(vols) = config.extra.get("Volumes").and_then(Value::as_object) {
        for dest in vols.keys() {
            if !dest.starts_with('/') {
                return Err(invalid(format!(
                    "invalid volume specification: '{dest}': invalid mount config for type \"volume\": invalid mount path: '{dest}' mount path must be absolute"
                )));
            }
            let dest = clean_dest(dest);
            if own.contains(&dest) || out.iter().any(|o| o.point.destination == dest) {
                continue;
            }
            let point = MountPoint {
                kind: "volume".into(),
                destination: dest,
                rw: true,
                anonymous: true,
                copy_up: true,
                ..Default::default()
            };
            let volume = VolumeRequest {
                name: None,
                labels: Some(
                    [(
                        crate::store::volumes::ANONYMOUS_LABEL.to_string(),
                        String::new(),
                    )]
                    .into(),
                ),
                driver: default_driver.clone(),
                options: None,
            };
            set(
                &mut out,
                Planned {
                    point,
                    volume: Some(volume),
                },
            );
        }
    }
    Ok(out)
}

/// dockerd applies mounts parents first: sorted (stably) by the depth of
/// their destination.
pub fn depth(dest: &std::path::Path) -> usize {
    dest.components().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(binds: &[&str]) -> HostConfig {
        HostConfig {
            binds: binds.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn binds_mounts_and_image_volumes() {
        let mut config = ContainerConfig::default();
        config.extra.insert(
            "Volumes".into(),
            serde_json::json!({"/data": {}, "/named": {}, "/host": {}, "/anon": {}}),
        );
        let mut h = hc(&["vol1:/named:ro,nocopy", "/tmp:/host"]);
        h.mounts = serde_json::from_value(serde_json::json!([
            {"Type": "volume", "Target": "/m", "VolumeOptions": {"NoCopy": true}},
            {"Type": "volume", "Source": "v2", "Target": "/n", "VolumeOptions": {"Labels": {"a": "b"}}}
        ]))
        .unwrap();
        let none = |_: &str| -> Result<(Vec<MountPoint>, Vec<String>), ContainerError> {
            Err(ContainerError::NotFound("x".into()))
        };
        let p = plan(&config, &h, &none).unwrap();
        let by = |d: &str| p.iter().find(|x| x.point.destination == d).unwrap();
        assert_eq!(
            p.len(),
            5,
            "{:?}",
            p.iter().map(|x| &x.point).collect::<Vec<_>>()
        );
        let named = by("/named");
        assert_eq!(named.point.name, "vol1");
        assert!(!named.point.rw && !named.point.copy_up && !named.point.anonymous);
        assert!(by("/m").point.anonymous && !by("/m").point.copy_up);
        assert_eq!(
            by("/n").volume.as_ref().unwrap().labels.as_ref().unwrap()["a"],
            "b"
        );
        assert!(by("/data").point.anonymous && by("/data").point.copy_up);
        assert!(by("/data").volume.as_ref().unwrap().name.is_none());
        assert!(!p.iter().any(|x| x.point.destination == "/host"));
        let dup = plan(&config, &hc(&["a1:/x", "b1:/x"]), &none);
        assert!(matches!(dup, Err(ContainerError::Invalid(m)) if m == "Duplicate mount point: /x"));
    }

    #[test]
    fn volumes_from_copies_and_overrides() {
        let config = ContainerConfig::default();
        let mut h = hc(&["mine:/b"]);
        h.extra
            .insert("VolumesFrom".into(), serde_json::json!(["src:ro"]));
        let from = |c: &str| {
            assert_eq!(c, "src");
            let p = MountPoint {
                kind: "volume".into(),
                name: "anonX".into(),
                destination: "/a".into(),
                rw: true,
                anonymous: true,
                ..Default::default()
            };
            let q = MountPoint {
                destination: "/b".into(),
                ..p.clone()
            };
            Ok((vec![p, q], vec!["/srv:/s".to_string()]))
        };
        let p = plan(&config, &h, &from).unwrap();
        let a = p.iter().find(|x| x.point.destination == "/a").unwrap();
        assert!(!a.point.rw && !a.point.anonymous);
        let b = p.iter().find(|x| x.point.destination == "/b").unwrap();
        assert_eq!(b.point.name, "mine");
        let s = p.iter().find(|x| x.point.destination == "/s").unwrap();
        assert_eq!((s.point.kind.as_str(), s.point.rw), ("bind", false));
    }
}
