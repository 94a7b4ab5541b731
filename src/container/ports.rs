//! `Config.ExposedPorts`, `HostConfig.PortBindings` and
//! `HostConfig.PublishAllPorts` parsed and checked as dockerd does, into a
//! `network::portmap::PortRequest`.
//!
//! Public API: [`parse`] (from the create request's `extra` maps, where the
//! typed config keeps these fields) and [`parse_values`] (from the JSON
//! values themselves). Errors are `ContainerError::Invalid` (400) with
//! dockerd's texts: `invalid port specification: "X"`, `invalid proto: X`,
//! `invalid IP address: X`.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::error::ContainerError;
use crate::network::portmap::{ContainerPort, HostBinding, PortRequest, Proto};

fn invalid_spec(s: &str) -> ContainerError {
    ContainerError::Invalid(format!("invalid port specification: {s:?}"))
}

/// nat.SplitProtoPort: "80/udp" -> ("udp", "80"); no protocol means tcp.
fn split_proto_port(raw: &str) -> (&str, &str) {
    let mut parts = raw.split('/');
    let port = parts.next().unwrap_or("");
    if raw.is_empty() || port.is_empty() {
        return ("", "");
    }
    match parts.next() {
        None | Some("") => ("tcp", port),
        Some(proto) => (proto, port),
    }
}

fn is_decimal(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A container port key: "80", "80/tcp", "53/udp".
pub fn container_port(raw: &str) -> Result<ContainerPort, ContainerError> {
    let (proto, port) = split_proto_port(raw);
    let n = is_decimal(port)
        .then(|| port.parse::<u16>().ok())
        .flatten()
        .filter(|n| *n != 0)
        .ok_or_else(|| invalid_spec(port))?;
    // The CLI lowercases the protocol; any case is accepted, not refused.
    let proto = Proto::parse(&proto.to_ascii_lowercase())
        .ok_or_else(|| ContainerError::Invalid(format!("invalid proto: {proto}")))?;
    Ok(ContainerPort { port: n, proto })
}

/// A binding's HostPort: "" (ephemeral), "8080", "8000-8010".
fn host_port(raw: &str) -> Result<Option<(u16, u16)>, ContainerError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let (_, ports) = split_proto_port(raw);
    let num = |s: &str| {
        is_decimal(s)
            .then(|| s.parse::<u16>().ok())
            .flatten()
            .ok_or_else(|| invalid_spec(raw))
    };
    let (a, b) = match ports.split_once('-') {
        None => {
            let p = num(ports)?;
            (p, p)
        }
        Some((a, b)) => (num(a)?, num(b)?),
    };
    if b < a {
        return Err(invalid_spec(raw));
    }
    // Port 0 asks for an ephemeral port, as with dockerd.
    Ok((a != 0).then_some((a, b)))
}

fn host_ip(raw: &str) -> Result<Option<IpAddr>, ContainerError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let bare = raw
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(raw);
    bare.parse::<IpAddr>()
        .map(Some)
        .map_err(|_| ContainerError::Invalid(format!("invalid IP address: {raw}")))
}

fn binding(v: &Value) -> Result<HostBinding, ContainerError> {
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    Ok(HostBinding {
        host_ip: host_ip(field("HostIp"))?,
        host_port: host_port(field("HostPort"))?,
    })
}

/// Parse the three fields from their JSON values (any may be absent/null).
pub fn parse_values(
    exposed: Option<&Value>,
    bindings: Option<&Value>,
    publish_all: Option<&Value>,
) -> Result<PortRequest, ContainerError> {
    let mut req = PortRequest {
        publish_all: publish_all.and_then(Value::as_bool).unwrap_or(false),
        ..PortRequest::default()
    };
    if let Some(Value::Object(m)) = exposed {
        for k in m.keys() {
            req.exposed.insert(container_port(k)?);
        }
    }
    match bindings {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                let cp = container_port(k)?;
                let list = match v {
                    Value::Null => Vec::new(),
                    Value::Array(a) => a.iter().map(binding).collect::<Result<_, _>>()?,
                    _ => return Err(invalid_spec(k)),
                };
                req.bindings.entry(cp).or_default().extend(list);
            }
        }
        Some(_) => {
            return Err(ContainerError::Invalid(
                "json: cannot unmarshal PortBindings: expected an object".into(),
            ))
        }
    }
    Ok(req)
}

/// Parse from the create request's kept fields: `Config.extra` and
/// `HostConfig.extra` (at start, by the networking merge).
pub fn parse(
    config_extra: &Map<String, Value>,
    host_extra: &Map<String, Value>,
) -> Result<PortRequest, ContainerError> {
    parse_values(
        config_extra.get("ExposedPorts"),
        host_extra.get("PortBindings"),
        host_extra.get("PublishAllPorts"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(exposed: Value, bindings: Value) -> String {
        match parse_values(Some(&exposed), Some(&bindings), None) {
            Err(e) => e.to_string(),
            Ok(r) => panic!("accepted: {r:?}"),
        }
    }

    #[test]
    fn dockerd_texts_for_bad_ports() {
        assert_eq!(
            err(json!({}), json!({"abc/tcp": []})),
            "invalid port specification: \"abc\""
        );
        assert_eq!(
            err(json!({}), json!({"70000": null})),
            "invalid port specification: \"70000\""
        );
        assert_eq!(
            err(json!({}), json!({"80-81/tcp": null})),
            "invalid port specification: \"80-81\""
        );
        assert_eq!(
            err(json!({}), json!({"80/tcp": [{"HostPort": "x1"}]})),
            "invalid port specification: \"x1\""
        );
        assert_eq!(
            err(json!({}), json!({"80/tcp": [{"HostPort": "90-80"}]})),
            "invalid port specification: \"90-80\""
        );
        assert_eq!(
            err(json!({}), json!({"80/foo": null})),
            "invalid proto: foo"
        );
        assert_eq!(
            err(
                json!({}),
                json!({"80": [{"HostIp": "300.1.1.1", "HostPort": "8080"}]})
            ),
            "invalid IP address: 300.1.1.1"
        );
        assert_eq!(
            err(json!({"x/udp": {}}), json!({})),
            "invalid port specification: \"x\""
        );
    }

    #[test]
    fn bindings_ranges_ephemeral_and_defaults() {
        let r = parse_values(
            Some(&json!({"80/tcp": {}, "53/udp": {}})),
            Some(&json!({
                "80": [{"HostIp": "", "HostPort": "18080"}, {"HostIp": "127.0.0.1", "HostPort": "8000-8010"}],
                "443/tcp": [{"HostPort": ""}, {"HostIp": "::1", "HostPort": "0"}],
                "53/udp": null
            })),
            Some(&json!(true)),
        )
        .expect("valid");
        assert!(r.publish_all);
        let tcp80 = ContainerPort {
            port: 80,
            proto: Proto::Tcp,
        };
        assert_eq!(
            r.bindings[&tcp80],
            vec![
                HostBinding {
                    host_ip: None,
                    host_port: Some((18080, 18080))
                },
                HostBinding {
                    host_ip: Some("127.0.0.1".parse().unwrap()),
                    host_port: Some((8000, 8010))
                },
            ]
        );
        let tcp443 = ContainerPort {
            port: 443,
            proto: Proto::Tcp,
        };
        assert_eq!(r.bindings[&tcp443][0].host_port, None);
        assert_eq!(r.bindings[&tcp443][1].host_ip, Some("::1".parse().unwrap()));
        assert_eq!(r.bindings[&tcp443][1].host_port, None);
        assert!(r.bindings[&ContainerPort {
            port: 53,
            proto: Proto::Udp
        }]
            .is_empty());
        assert_eq!(r.all_ports().len(), 3);
        assert_eq!(
            parse_values(None, Some(&Value::Null), None).expect("none"),
            PortRequest::default()
        );
    }
}
