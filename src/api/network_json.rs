//! Network shapes: a container's `NetworkSettings`, and the networks
//! themselves (`docker network inspect` / `ls`), as dockerd writes them.

use crate::json;
use serde_json::{Map, Value};

use crate::container::model::Container;
use crate::engine::networks::endpoint_config;
use crate::engine::Engine;
use crate::store::networks::{Endpoint, Network};

/// One entry of `NetworkSettings.Networks`.
fn endpoint_settings(c: &Container, net: Option<&Network>, ep: Option<&Endpoint>) -> Value {
    let live = ep.filter(|e| e.active);
    let prefix = net.and_then(Network::subnet).map(|s| s.prefix).unwrap_or(0);
    let epc = net.and_then(|n| endpoint_config(c, n));
    let ipam = epc
        .and_then(|v| v.get("IPAMConfig"))
        .filter(|v| v.is_object())
        .cloned();
    let aliases = epc
        .and_then(|v| v.get("Aliases"))
        .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
        .cloned();
    let user_net = net.is_some_and(|n| !n.is_default());
    let dns_names = live.filter(|_| user_net).map(|e| {
        let mut names = vec![e.name.clone(), c.short_id().to_string()];
        names.extend(e.aliases.iter().cloned());
        names
    });
    json!({
        "IPAMConfig": ipam,
        "Links": null,
        "Aliases": aliases,
        "MacAddress": live.map(|e| e.mac.as_str()).unwrap_or(""),
        "DriverOpts": null,
        "NetworkID": net.map(|n| n.id.as_str()).unwrap_or(""),
        "EndpointID": live.map(|e| e.endpoint_id.as_str()).unwrap_or(""),
        "Gateway": if live.is_some() { net.map(|n| n.gateway.as_str()).unwrap_or("") } else { "" },
        "IPAddress": live.map(|e| e.ip.as_str()).unwrap_or(""),
        "IPPrefixLen": if live.is_some() { prefix } else { 0 },
        "IPv6Gateway": live.filter(|e| !e.ip6.is_empty()).and(net).map(|n| n.gateway6.as_str()).unwrap_or(""),
        "GlobalIPv6Address": live.map(|e| e.ip6.as_str()).unwrap_or(""),
        "GlobalIPv6PrefixLen": live.filter(|e| !e.ip6.is_empty()).and(net).and_then(Network::subnet6).map(|(_, p, _)| p).unwrap_or(0),
        "DNSNames": dns_names,
    })
}

/// A container's `NetworkSettings`: the default bridge's endpoint also at
/// the top level, as dockerd shows it.
pub fn container_network_settings(engine: &Engine, c: &Container) -> Value {
    let mode = crate::container::create::network_mode(&c.host_config.network_mode)
        .unwrap_or("none")
        .to_string();
    let mut networks = Map::new();
    let nets = &engine.networks.store;
    // The network the container was created on, then any connected later.
    let primary = nets.resolve(&mode).ok().and_then(|id| nets.nets.get(&id));
    let mut listed: Vec<&Network> = Vec::new();
    if let Some(n) = primary {
        listed.push(n);
    }
    listed.extend(
        nets.nets
            .values()
            .filter(|n| n.endpoints.contains_key(&c.id) && primary.is_none_or(|p| p.id != n.id)),
    );
    if listed.is_empty() && !mode.starts_with("container:") {
        networks.insert(mode.clone(), endpoint_settings(c, None, None));
    }
    for n in &listed {
        networks.insert(
            n.name.clone(),
            endpoint_settings(c, Some(n), n.endpoints.get(&c.id)),
        );
    }
    let top = listed
        .iter()
        .find(|n| n.is_default())
        .and_then(|n| networks.get(&n.name))
        .cloned()
        .unwrap_or_else(|| endpoint_settings(c, None, None));
    let running = c.state.pid > 0;
    let (ports, _) = engine.port_shapes(c);
    json!({
        "Bridge": "",
        "SandboxID": if running { c.id.as_str() } else { "" },
        "SandboxKey": if running && !listed.is_empty() { format!("/proc/{}/ns/net", c.state.pid) } else { String::new() },
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports,
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": top["EndpointID"],
        "Gateway": top["Gateway"],
        "GlobalIPv6Address": top["GlobalIPv6Address"],
        "GlobalIPv6PrefixLen": top["GlobalIPv6PrefixLen"],
        "IPAddress": top["IPAddress"],
        "IPPrefixLen": top["IPPrefixLen"],
        "IPv6Gateway": top["IPv6Gateway"],
        "MacAddress": top["MacAddress"],
        "Networks": networks,
    })
}

/// One network as `GET /networks/{id}` shows it; `containers` fills
/// `Containers` (the list leaves it empty, as dockerd does).
pub fn network_json(engine: &Engine, n: &Network, containers: bool) -> Value {
    let mut eps = Map::new();
    if containers {
        let prefix = n.subnet().map(|s| s.prefix).unwrap_or(0);
        for (cid, e) in n.endpoints.iter().filter(|(_, e)| e.active) {
            let name = engine
                .containers
                .get(cid)
                .map(|x| x.c.name.trim_start_matches('/').to_string())
                .unwrap_or_else(|| e.name.clone());
            eps.insert(
                cid.clone(),
                json!({
                    "Name": name,
                    "EndpointID": e.endpoint_id,
                    "MacAddress": e.mac,
                    "IPv4Address": format!("{}/{prefix}", e.ip),
                    "IPv6Address": match n.subnet6() {
                        Some((_, p, _)) if !e.ip6.is_empty() => format!("{}/{p}", e.ip6),
                        _ => String::new(),
                    },
                }),
            );
        }
    }
    let mut config = Map::new();
    if !n.subnet.is_empty() {
        config.insert("Subnet".into(), n.subnet.clone().into());
        if !n.ip_range.is_empty() {
            config.insert("IPRange".into(), n.ip_range.clone().into());
        }
        config.insert("Gateway".into(), n.gateway.clone().into());
    }
    let mut configs: Vec<Value> = if config.is_empty() {
        Vec::new()
    } else {
        vec![Value::Object(config)]
    };
    if !n.subnet6.is_empty() {
        configs.push(json!({"Subnet": n.subnet6, "Gateway": n.gateway6}));
    }
    let predefined = crate::engine::networks::is_predefined(&n.name);
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv4": true,
        "EnableIPv6": !n.subnet6.is_empty(),
        "IPAM": {
            "Driver": "default",
            "Options": if predefined { Value::Null } else { json!({}) },
            "Config": configs,
        },
        "Internal": n.internal,
        "Attachable": n.attachable,
        "Ingress": false,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": eps,
        "Options": n.options,
        "Labels": n.labels,
    })
}
