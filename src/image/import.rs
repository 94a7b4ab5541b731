//! `docker import`: a rootfs tar (plain or gzip) becomes a one-layer image
//! whose config comes from Dockerfile-style `changes` lines.

use std::io::Read;

use crate::json;
use serde_json::{Map, Value};

use super::archive_load::{LoadSummary, LoadedImage, TempDirs};
use super::error::{ImageError, Result};
use super::layer_extract::{extract_layer, Budget};
use super::reference::Reference;
use crate::image::layout::Layout;
use crate::timefmt::now_rfc3339;

#[derive(Debug, Default, Clone)]
pub struct ImportOptions {
    /// `repo` query parameter (may include a tag).
    pub repo: Option<String>,
    pub tag: Option<String>,
    /// Commit message (history comment).
    pub message: Option<String>,
    /// `changes` lines, e.g. `CMD ["/bin/sh"]`, `ENV A=b`.
    pub changes: Vec<String>,
}

/// Split on whitespace honouring "double", 'single' quotes and backslashes.
fn words(s: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '"') | (None, '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (_, c) => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if quote.is_some() {
        return Err(ImageError::InvalidArgument(format!(
            "unmatched quote in {s:?}"
        )));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// JSON array form, or shell form wrapped in `/bin/sh -c`.
fn cmd_form(rest: &str, shell: bool) -> Vec<String> {
    if let Ok(v) = serde_json::from_slice::<Vec<String>>(rest.as_bytes()) {
        return v;
    }
    if shell {
        vec!["/bin/sh".into(), "-c".into(), rest.to_string()]
    } else {
        rest.split_whitespace().map(String::from).collect()
    }
}

/// `k=v k2="v 2"` pairs, or the legacy `k v...` single pair.
fn pairs(cmd: &str, rest: &str) -> Result<Vec<(String, String)>> {
    let ws = words(rest)?;
    if ws.is_empty() {
        return Err(ImageError::InvalidArgument(format!(
            "{cmd} requires at least one argument"
        )));
    }
    if !ws[0].contains('=') {
        let mut it = rest.trim().splitn(2, char::is_whitespace);
        let k = it.next().unwrap_or("").to_string();
        let v = it.next().map(str::trim).unwrap_or("");
        if v.is_empty() {
            return Err(ImageError::InvalidArgument(format!(
                "{cmd} must have two arguments"
            )));
        }
        return Ok(vec![(k, words(v)?.join(" "))]);
    }
    ws.into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(ImageError::InvalidArgument(format!(
                "{cmd} names can not be blank"
            ))),
        })
        .collect()
}

fn ports(spec: &str) -> Result<Vec<String>> {
    let bad = || ImageError::InvalidArgument(format!("invalid containerPort: {spec}"));
    let (range, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(ImageError::InvalidArgument(format!(
            "invalid proto: {proto}"
        )));
    }
    let (a, b) = range.split_once('-').unwrap_or((range, range));
    let a: u16 = a.parse().map_err(|_| bad())?;
    let b: u16 = b.parse().map_err(|_| bad())?;
    if a == 0 || b < a {
        return Err(bad());
    }
    Ok((a..=b).map(|p| format!("{p}/{proto}")).collect())
}

/// Apply `changes` to a container config (the `config` object of an image config).
pub fn apply_changes(cfg: &mut Map<String, Value>, changes: &[String]) -> Result<()> {
    let mut cmd_set = false;
    for line in changes {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (cmd, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        let upper = cmd.to_uppercase();
        match upper.as_str() {
            "CMD" => {
                cfg.insert("Cmd".into(), json!(cmd_form(rest, true)));
                cmd_set = true;
            }
            "ENTRYPOINT" => {
                let v = if rest.is_empty() {
                    Value::Null
                } else {
                    json!(cmd_form(rest, true))
                };
                cfg.insert("Entrypoint".into(), v);
                if !cmd_set {
                    cfg.insert("Cmd".into(), Value::Null);
                }
            }
            "ENV" => {
                let mut env: Vec<String> = cfg
                    .get("Env")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                for (k, v) in pairs("ENV", rest)? {
                    let prefix = format!("{k}=");
                    env.retain(|e| !e.starts_with(&prefix) && e != &k);
                    env.push(format!("{k}={v}"));
                }
                cfg.insert("Env".into(), json!(env));
            }
            "LABEL" => {
                let mut labels = cfg
                    .get("Labels")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                for (k, v) in pairs("LABEL", rest)? {
                    labels.insert(k, json!(v));
                }
                cfg.insert("Labels".into(), Value::Object(labels));
            }
            "EXPOSE" => {
                let mut ex = cfg
                    .get("ExposedPorts")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                if rest.is_empty() {
                    return Err(ImageError::InvalidArgument(
                        "EXPOSE requires at least one argument".into(),
                    ));
                }
                for p in rest.split_whitespace() {
                    for port in ports(p)? {
                        ex.insert(port, json!({}));
                    }
                }
                cfg.insert("ExposedPorts".into(), Value::Object(ex));
            }
            "WORKDIR" => {
                if rest.is_empty() {
                    return Err(ImageError::InvalidArgument(
                        "WORKDIR requires exactly one argument".into(),
                    ));
                }
                let cur = cfg
                    .get("WorkingDir")
                    .and_then(Value::as_str)
                    .unwrap_or("/")
                    .to_string();
                let wd = if rest.starts_with('/') {
                    rest.to_string()
                } else {
                    format!("{}/{}", cur.trim_end_matches('/'), rest)
                };
                cfg.insert("WorkingDir".into(), json!(wd));
            }
            "USER" => {
                if rest.is_empty() {
                    return Err(ImageError::InvalidArgument(
                        "USER requires exactly one argument".into(),
                    ));
                }
                cfg.insert("User".into(), json!(rest));
            }
            "VOLUME" => {
                let list = match serde_json::from_slice::<Vec<String>>(rest.as_bytes()) {
                    Ok(v) => v,
                    Err(_) => rest.split_whitespace().map(String::from).collect(),
                };
                if list.is_empty() || list.iter().any(|v| v.trim().is_empty()) {
                    return Err(ImageError::InvalidArgument(
                        "VOLUME specified can not be an empty string".into(),
                    ));
                }
                let mut vols = cfg
                    .get("Volumes")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                for v in list {
                    vols.insert(v, json!({}));
                }
                cfg.insert("Volumes".into(), Value::Object(vols));
            }
            "STOPSIGNAL" => {
                if rest.is_empty() {
                    return Err(ImageError::InvalidArgument(
                        "STOPSIGNAL requires exactly one argument".into(),
                    ));
                }
                cfg.insert("StopSignal".into(), json!(rest));
            }
            "HEALTHCHECK" => {
                cfg.insert("Healthcheck".into(), healthcheck(rest)?);
            }
            "ONBUILD" => {
                let mut ob: Vec<Value> = cfg
                    .get("OnBuild")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                ob.push(json!(rest));
                cfg.insert("OnBuild".into(), Value::Array(ob));
            }
            _ => {
                return Err(ImageError::InvalidArgument(format!(
                    "{upper} is not a valid change command"
                )))
            }
        }
    }
    Ok(())
}

/// `HEALTHCHECK [--interval=.. --timeout=.. --start-period=..
/// --start-interval=.. --retries=N] CMD ...` or `HEALTHCHECK NONE`, as
/// dockerd's builder turns it into a `HealthConfig` (durations in ns).
fn healthcheck(rest: &str) -> Result<Value> {
    let bad = |m: String| ImageError::InvalidArgument(m);
    let mut hc = Map::new();
    let mut rest = rest.trim();
    while let Some(flag) = rest.strip_prefix("--") {
        let (f, tail) = flag.split_once(char::is_whitespace).unwrap_or((flag, ""));
        let (name, val) = f
            .split_once('=')
            .ok_or_else(|| bad(format!("missing a value on flag: {f}")))?;
        let key = match name {
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            "start-interval" => "StartInterval",
            "retries" => "Retries",
            _ => return Err(bad(format!("unknown flag: {name}"))),
        };
        let v = if key == "Retries" {
            val.parse::<i64>()
                .map_err(|_| bad(format!("invalid retries value {val:?}")))?
        } else {
            go_duration_ns(val).ok_or_else(|| bad(format!("time: invalid duration {val:?}")))?
        };
        if v != 0 {
            hc.insert(key.into(), json!(v));
        }
        rest = tail.trim_start();
    }
    let (kind, cmd) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let test = match kind.to_uppercase().as_str() {
        "NONE" if cmd.trim().is_empty() && hc.is_empty() => json!(["NONE"]),
        "NONE" => return Err(bad("HEALTHCHECK NONE takes no arguments".into())),
        "CMD" => match serde_json::from_slice::<Vec<String>>(cmd.trim().as_bytes()) {
            Ok(v) => json!(std::iter::once("CMD".to_string())
                .chain(v)
                .collect::<Vec<_>>()),
            Err(_) => json!(["CMD-SHELL", cmd.trim()]),
        },
        other => {
            return Err(bad(format!(
                "Unknown type {other:?} in HEALTHCHECK (try CMD)"
            )))
        }
    };
    let mut out = Map::new();
    out.insert("Test".into(), test);
    out.extend(hc);
    Ok(Value::Object(out))
}

/// Go's `time.ParseDuration` for the units a healthcheck uses.
fn go_duration_ns(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_end].parse().ok()?;
        let unit_end = rest[num_end..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .map(|i| num_end + i)
            .unwrap_or(rest.len());
        let mult = match &rest[num_end..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Some(total as i64)
}

/// The container config shape dockerd writes (every field present).
fn empty_container_config() -> Map<String, Value> {
    let v = json!({
        "Hostname": "", "Domainname": "", "User": "",
        "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
        "Tty": false, "OpenStdin": false, "StdinOnce": false,
        "Env": null, "Cmd": null, "Image": "", "Volumes": null,
        "WorkingDir": "", "Entrypoint": null, "OnBuild": null, "Labels": null,
    });
    v.as_object().cloned().unwrap_or_default()
}

pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    ("linux", arch)
}

/// Build the image config for an imported rootfs.
pub fn build_config(diff_id: &str, opts: &ImportOptions, created: &str) -> Result<Vec<u8>> {
    let mut cfg = empty_container_config();
    apply_changes(&mut cfg, &opts.changes)?;
    let (os, arch) = host_platform();
    let comment = opts
        .message
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "Imported from -".into());
    let v = json!({
        "architecture": arch,
        "comment": comment,
        "config": cfg,
        "created": created,
        "history": [{ "created": created, "comment": comment }],
        "os": os,
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    });
    serde_json::to_vec(&v).map_err(|e| ImageError::Io(std::io::Error::other(e)))
}

/// The normalised reference for repo/tag, if a repo was given.
pub fn import_reference(repo: Option<&str>, tag: Option<&str>) -> Result<Option<String>> {
    let Some(repo) = repo.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let mut r = Reference::parse(repo)?;
    if r.digest.is_some() {
        return Err(ImageError::InvalidReference(
            "cannot import digest reference".into(),
        ));
    }
    if let Some(t) = tag.filter(|t| !t.is_empty()) {
        if !super::reference::valid_tag(t) {
            return Err(ImageError::InvalidReference(format!(
                "invalid tag format: {t}"
            )));
        }
        r.tag = Some(t.to_string());
    }
    Ok(Some(r.with_default_tag().to_string()))
}

/// Import a rootfs tar stream. Worker side; the daemon applies the summary.
pub fn import_rootfs<R: Read>(
    layout: &Layout,
    input: R,
    opts: &ImportOptions,
    budget: &Budget,
) -> Result<LoadSummary> {
    // Validate everything cheap before reading the body.
    let tag = import_reference(opts.repo.as_deref(), opts.tag.as_deref())?;
    apply_changes(&mut empty_container_config(), &opts.changes)?;
    layout.create_dirs()?;
    let mut temps = TempDirs::default();
    let tmp = layout.new_temp_dir()?;
    temps.0.push(tmp.clone());
    let info = extract_layer(input, &tmp, budget)?;
    crate::failpoint!("import.layer_extracted");
    let config = build_config(&info.diff_id, opts, &now_rfc3339())?;
    publish_image(layout, &mut temps, Some((&tmp, &info)), &config, tag)
}

/// Make a worker's new image durable: its layer (when it has one) moved
/// into the store, then a journal naming its tag, then its config. The
/// daemon indexes it from the summary (`ImageStore::apply_load`).
pub(crate) fn publish_image(
    layout: &Layout,
    temps: &mut TempDirs,
    layer: Option<(&std::path::Path, &super::layer_extract::LayerInfo)>,
    config: &[u8],
    tag: Option<String>,
) -> Result<LoadSummary> {
    let mut new = None;
    if let Some((tmp, info)) = layer {
        if layout.commit_layer(tmp, info)? {
            new = Some(info.diff_id.clone());
        }
        temps.forget(tmp);
    }
    // The config becomes visible only with its tag on record.
    let planned = LoadSummary {
        images: vec![LoadedImage {
            id: crate::image::digest::sha256_digest(config),
            tags: tag.into_iter().collect(),
        }],
        journal: None,
    };
    // An untagged image (a build step's, an untagged commit or import) has
    // no tag for a journal to replay: none is written, so none is removed
    // (and fsynced) by the daemon either.
    let committed = if planned.images.iter().all(|i| i.tags.is_empty()) {
        layout.write_config(config).map(|_| None)
    } else {
        layout
            .write_journal(&planned)
            .and_then(|j| match layout.write_config(config) {
                Ok(_) => Ok(Some(j)),
                Err(e) => {
                    let _ = layout.remove_journal(&j);
                    Err(e)
                }
            })
    };
    match committed {
        Ok(journal) => Ok(LoadSummary { journal, ..planned }),
        Err(e) => {
            if let Some(d) = new {
                let _ = crate::image::layout::remove_layer_dir(layout, &layout.layer_dir(&d));
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(lines: &[&str]) -> Result<Value> {
        let mut c = empty_container_config();
        apply_changes(
            &mut c,
            &lines.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )?;
        Ok(Value::Object(c))
    }

    #[test]
    fn changes_like_dockerd() {
        let c = apply(&[
            r#"CMD ["/bin/sh", "-c", "echo hi"]"#,
            "ENTRYPOINT /entry.sh arg",
            "ENV A=1 B=\"two words\"",
            "ENV LEGACY some value",
            "ENV A=3",
            "EXPOSE 80 53/udp 8000-8001",
            "WORKDIR /app",
            "WORKDIR sub",
            "USER nobody:nogroup",
            "LABEL a=b \"c d\"=e",
            r#"VOLUME ["/data", "/logs"]"#,
            "VOLUME /more",
        ])
        .unwrap();
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "/entry.sh arg"]));
        assert_eq!(c["Env"], json!(["B=two words", "LEGACY=some value", "A=3"]));
        assert_eq!(
            c["ExposedPorts"],
            json!({"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}})
        );
        assert_eq!(c["WorkingDir"], json!("/app/sub"));
        assert_eq!(c["User"], json!("nobody:nogroup"));
        assert_eq!(c["Labels"], json!({"a": "b", "c d": "e"}));
        assert_eq!(c["Volumes"], json!({"/data": {}, "/logs": {}, "/more": {}}));
        // ENTRYPOINT without an earlier CMD resets Cmd, like a Dockerfile.
        let c = apply(&["ENTRYPOINT [\"/x\"]"]).unwrap();
        assert_eq!(c["Cmd"], Value::Null);
        assert_eq!(c["Entrypoint"], json!(["/x"]));
        let c = apply(&[
            "STOPSIGNAL SIGUSR1",
            "HEALTHCHECK --interval=1m30s --retries=2 CMD curl -f http://x/",
        ])
        .unwrap();
        assert_eq!(c["StopSignal"], json!("SIGUSR1"));
        assert_eq!(
            c["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "curl -f http://x/"], "Interval": 90_000_000_000i64, "Retries": 2})
        );
        let c = apply(&["HEALTHCHECK NONE"]).unwrap();
        assert_eq!(c["Healthcheck"], json!({"Test": ["NONE"]}));
    }

    #[test]
    fn bad_changes_are_rejected() {
        for bad in [
            "RUN echo",
            "EXPOSE 99999",
            "EXPOSE 80/xyz",
            "ENV",
            "ENV =x",
            "LABEL \"a=b",
            "USER",
        ] {
            assert!(
                matches!(apply(&[bad]), Err(ImageError::InvalidArgument(_))),
                "{bad}"
            );
        }
        assert_eq!(
            apply(&["RUN x"]).unwrap_err().to_string(),
            "RUN is not a valid change command"
        );
    }
}
