//! Legacy `--link name:alias` on the default bridge, the pure half: the
//! link spec parsed as dockerd's `opts.ParseLink` does, the environment a
//! link gives (`ALIAS_PORT_80_TCP=tcp://IP:80`, `ALIAS_NAME`,
//! `ALIAS_ENV_*`, as moby's `links.Link.ToEnv`) and the /etc/hosts names.

use serde::{Deserialize, Serialize};

/// One link of a container (the parent) to another (the child).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Link {
    /// The alias, without the parent's name (`db` of `/web/db`).
    pub alias: String,
    /// The child's container ID.
    pub child: String,
}

/// `name:alias`, `name` (alias = name) or the inspect form
/// `/name:/parent/alias`, with dockerd's texts.
pub fn parse(spec: &str) -> Result<(String, String), String> {
    if spec.is_empty() {
        return Err("empty string specified for links".into());
    }
    let parts: Vec<&str> = spec.splitn(3, ':').collect();
    match parts.as_slice() {
        [name] => Ok((name.to_string(), name.to_string())),
        [name, alias] => match name.strip_prefix('/') {
            Some(n) => {
                let alias = alias.rsplit('/').next().unwrap_or(alias);
                Ok((n.to_string(), alias.to_string()))
            }
            None => Ok((name.to_string(), alias.to_string())),
        },
        _ => Err(format!("bad format for links: {spec}")),
    }
}

/// An exposed port as (number, proto) from an `ExposedPorts` key.
fn port_of(key: &str) -> Option<(u16, String)> {
    let (p, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    Some((p.parse().ok()?, proto.to_ascii_lowercase()))
}

/// The environment a link `full_name` (`/parent/alias`) to a child at `ip`
/// with `child_env` and exposed ports `exposed` gives the parent.
pub fn env(full_name: &str, ip: &str, child_env: &[String], exposed: &[String]) -> Vec<String> {
    let alias_part = full_name.rsplit('/').next().unwrap_or(full_name);
    let alias = alias_part.to_ascii_uppercase().replace('-', "_");
    let mut ports: Vec<(u16, String)> = exposed.iter().filter_map(|k| port_of(k)).collect();
    // By number, tcp first among equals (moby's withTCPPriority).
    crate::sort::sort_by(&mut ports, |a, b| {
        a.0.cmp(&b.0).then((a.1 != "tcp").cmp(&(b.1 != "tcp")))
    });
    ports.dedup();
    let mut out = Vec::new();
    if let Some((p, proto)) = ports.first() {
        out.push(format!("{alias}_PORT={proto}://{ip}:{p}"));
    }
    let mut i = 0;
    while i < ports.len() {
        let (p, proto) = &ports[i];
        let up = proto.to_ascii_uppercase();
        let j = next_contiguous(&ports, i);
        if j > i + 1 {
            let (q, qproto) = &ports[j];
            let qup = qproto.to_ascii_uppercase();
            out.push(format!("{alias}_PORT_{p}_{up}_START={proto}://{ip}:{p}"));
            out.push(format!("{alias}_PORT_{p}_{up}_ADDR={ip}"));
            out.push(format!("{alias}_PORT_{p}_{up}_PROTO={proto}"));
            out.push(format!("{alias}_PORT_{p}_{up}_PORT_START={p}"));
            out.push(format!("{alias}_PORT_{p}_{qup}_END={qproto}://{ip}:{q}"));
            out.push(format!("{alias}_PORT_{p}_{qup}_PORT_END={q}"));
            i = j + 1;
            continue;
        }
        out.push(format!("{alias}_PORT_{p}_{up}={proto}://{ip}:{p}"));
        out.push(format!("{alias}_PORT_{p}_{up}_ADDR={ip}"));
        out.push(format!("{alias}_PORT_{p}_{up}_PORT={p}"));
        out.push(format!("{alias}_PORT_{p}_{up}_PROTO={proto}"));
        i += 1;
    }
    out.push(format!("{alias}_NAME={full_name}"));
    for v in child_env {
        let Some((name, val)) = v.split_once('=') else {
            continue;
        };
        // Build-time variables of no use to the parent.
        if name == "HOME" || name == "PATH" {
            continue;
        }
        out.push(format!("{alias}_ENV_{name}={val}"));
    }
    out
}

/// Add link variables to a process environment; the container's own
/// variables of the same name win (dockerd's `ReplaceOrAppendEnvValues`).
pub fn merge_env(env: &mut Vec<String>, link_env: Vec<String>) {
    for v in link_env {
        let key = v.split('=').next().unwrap_or("");
        if !env.iter().any(|e| e.split('=').next() == Some(key)) {
            env.push(v);
        }
    }
}

/// moby's `nextContiguous`: the last index of the run of consecutive port
/// numbers starting at `index`.
fn next_contiguous(ports: &[(u16, String)], index: usize) -> usize {
    let start = u32::from(ports[index].0);
    for (k, p) in ports.iter().enumerate().skip(index + 1) {
        // moby's `value` grows by one per port looked at.
        let value = start + (k - index - 1) as u32;
        if u32::from(p.0) > value + 1 {
            return k - 1;
        }
    }
    ports.len() - 1
}

/// The names of the child's /etc/hosts line in the parent: the alias, the
/// child's hostname, and its name unless the alias is the name.
pub fn host_names(alias: &str, child_hostname: &str, child_name: &str) -> String {
    let name = child_name.trim_start_matches('/');
    if alias == name {
        format!("{alias} {child_hostname}")
    } else {
        format!("{alias} {child_hostname} {name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_specs_parse_as_dockerd() {
        assert_eq!(parse("db:alias"), Ok(("db".into(), "alias".into())));
        assert_eq!(parse("db"), Ok(("db".into(), "db".into())));
        assert_eq!(parse("/db:/web/x"), Ok(("db".into(), "x".into())));
        assert_eq!(parse("a:b:c"), Err("bad format for links: a:b:c".into()));
        assert_eq!(parse(""), Err("empty string specified for links".into()));
    }

    #[test]
    fn env_as_moby_writes_it() {
        let exposed = ["6379/tcp".to_string(), "53/udp".into(), "53/tcp".into()];
        let env = env(
            "/web/my-db",
            "172.17.0.2",
            &["PATH=/bin".into(), "PASSWORD=x=y".into(), "bad".into()],
            &exposed,
        );
        assert_eq!(
            env,
            [
                "MY_DB_PORT=tcp://172.17.0.2:53",
                "MY_DB_PORT_53_TCP=tcp://172.17.0.2:53",
                "MY_DB_PORT_53_TCP_ADDR=172.17.0.2",
                "MY_DB_PORT_53_TCP_PORT=53",
                "MY_DB_PORT_53_TCP_PROTO=tcp",
                "MY_DB_PORT_53_UDP=udp://172.17.0.2:53",
                "MY_DB_PORT_53_UDP_ADDR=172.17.0.2",
                "MY_DB_PORT_53_UDP_PORT=53",
                "MY_DB_PORT_53_UDP_PROTO=udp",
                "MY_DB_PORT_6379_TCP=tcp://172.17.0.2:6379",
                "MY_DB_PORT_6379_TCP_ADDR=172.17.0.2",
                "MY_DB_PORT_6379_TCP_PORT=6379",
                "MY_DB_PORT_6379_TCP_PROTO=tcp",
                "MY_DB_NAME=/web/my-db",
                "MY_DB_ENV_PASSWORD=x=y",
            ]
        );
        // A run of ports is summarised by its ends.
        let range: Vec<String> = (8000..8003).map(|p| format!("{p}/tcp")).collect();
        let env = super::env("/p/r", "10.0.0.2", &[], &range);
        assert_eq!(
            env,
            [
                "R_PORT=tcp://10.0.0.2:8000",
                "R_PORT_8000_TCP_START=tcp://10.0.0.2:8000",
                "R_PORT_8000_TCP_ADDR=10.0.0.2",
                "R_PORT_8000_TCP_PROTO=tcp",
                "R_PORT_8000_TCP_PORT_START=8000",
                "R_PORT_8000_TCP_END=tcp://10.0.0.2:8002",
                "R_PORT_8000_TCP_PORT_END=8002",
                "R_NAME=/p/r",
            ]
        );
    }

    #[test]
    fn hosts_names() {
        assert_eq!(host_names("db", "abc", "/db"), "db abc");
        assert_eq!(host_names("x", "abc", "/db"), "x abc db");
    }
}
