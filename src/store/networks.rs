//! Networks on disk: `<data-root>/networks/<id>.json`, one record per
//! network with its IPAM state (the endpoints and their addresses), each
//! written atomically, so no address is handed out twice across a restart
//! or a `kill -9`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::network::ipam::Subnet;

/// One container's attachment to a network.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Endpoint {
    pub endpoint_id: String,
    /// The container's name (without `/`), for DNS and inspect.
    pub name: String,
    pub ip: String,
    pub mac: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The address was asked for (`--ip`): kept while the container exists.
    #[serde(default)]
    pub static_ip: bool,
    /// The host end of the veth while the container runs.
    #[serde(default)]
    pub veth: String,
    /// The endpoint is live (the container runs); else only reserved.
    #[serde(default)]
    pub active: bool,
    /// Its IPv6 address on an `--ipv6` network.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ip6: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub created: String,
    pub driver: String,
    pub subnet: String,
    pub gateway: String,
    #[serde(default)]
    pub ip_range: String,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// The Linux bridge's name.
    pub bridge: String,
    /// `--ipv6`: the IPv6 subnet (`fd00:1::/64`) and gateway, else empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subnet6: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway6: String,
    /// By container ID.
    #[serde(default)]
    pub endpoints: BTreeMap<String, Endpoint>,
}

impl Network {
    pub fn subnet(&self) -> Option<Subnet> {
        Subnet::parse(&self.subnet)
    }

    pub fn gateway_ip(&self) -> Option<Ipv4Addr> {
        self.gateway.parse().ok()
    }

    /// The IPv6 subnet (base, prefix) and gateway of an `--ipv6` network.
    pub fn subnet6(&self) -> Option<(std::net::Ipv6Addr, u8, std::net::Ipv6Addr)> {
        let (base, prefix) = self.subnet6.split_once('/')?;
        Some((
            base.parse().ok()?,
            prefix.parse().ok()?,
            self.gateway6.parse().ok()?,
        ))
    }

    pub fn ip_range(&self) -> Option<Subnet> {
        Subnet::parse(&self.ip_range)
    }

    pub fn in_use(&self, ip: Ipv4Addr) -> bool {
        let s = ip.to_string();
        self.endpoints.values().any(|e| e.ip == s)
    }

    /// The network is the daemon's default `bridge`.
    pub fn is_default(&self) -> bool {
        self.name == "bridge"
    }
}

#[derive(Debug)]
pub struct NetworkStore {
    dir: PathBuf,
    /// By network ID.
    pub nets: BTreeMap<String, Network>,
}

impl NetworkStore {
    pub fn open(data_root: &Path) -> io::Result<NetworkStore> {
        let dir = data_root.join("networks");
        fs::create_dir_all(&dir)?;
        atomic::remove_temp_leftovers(&dir)?;
        let mut nets = BTreeMap::new();
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Network>(&b).ok())
            {
                Some(n) => {
                    nets.insert(n.id.clone(), n);
                }
                None => log::warn!("network record {} is unreadable; ignored", path.display()),
            }
        }
        Ok(NetworkStore { dir, nets })
    }

    /// Network `id`'s record file.
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Network `id`'s record file and the bytes it should hold.
    pub fn record(&self, id: &str) -> io::Result<Option<(PathBuf, Vec<u8>)>> {
        let Some(n) = self.nets.get(id) else {
            return Ok(None);
        };
        let bytes = serde_json::to_vec_pretty(n).map_err(io::Error::other)?;
        Ok(Some((self.path(id), bytes)))
    }

    pub fn save(&self, id: &str) -> io::Result<()> {
        let Some((path, bytes)) = self.record(id)? else {
            return Ok(());
        };
        // Start-up saves every record (endpoints reset, the default bridge
        // re-made): one already on disk as is costs no write and no fsync.
        if std::fs::read(&path).is_ok_and(|b| b == bytes) {
            return Ok(());
        }
        atomic::write_file(&path, &bytes)?;
        crate::failpoint!("network.saved");
        Ok(())
    }

    pub fn insert(&mut self, n: Network) -> io::Result<()> {
        let id = n.id.clone();
        self.nets.insert(id.clone(), n);
        let r = self.save(&id);
        if r.is_err() {
            self.nets.remove(&id);
        }
        r
    }

    pub fn remove(&mut self, id: &str) -> io::Result<()> {
        match fs::remove_file(self.dir.join(format!("{id}.json"))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        crate::failpoint!("network.rm_record_removed");
        self.nets.remove(id);
        atomic::sync_dir(&self.dir)
    }

    pub fn by_name(&self, name: &str) -> Option<&Network> {
        self.nets.values().find(|n| n.name == name)
    }

    /// dockerd's lookup: full ID, then exact name, then unique ID prefix.
    pub fn resolve(&self, key: &str) -> Result<String, Lookup> {
        if self.nets.contains_key(key) {
            return Ok(key.to_string());
        }
        if let Some(n) = self.by_name(key) {
            return Ok(n.id.clone());
        }
        let hits: Vec<&String> = self.nets.keys().filter(|id| id.starts_with(key)).collect();
        match hits.as_slice() {
            [one] if !key.is_empty() => Ok((*one).clone()),
            [] | [_] => Err(Lookup::NotFound),
            _ => Err(Lookup::Ambiguous),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    NotFound,
    Ambiguous,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopen() {
        let dir = std::env::temp_dir().join(format!("coracle-nets-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut s = NetworkStore::open(&dir).unwrap();
        let mut n = Network {
            id: "ab".repeat(32),
            name: "appnet".into(),
            subnet: "172.18.0.0/16".into(),
            ..Default::default()
        };
        n.endpoints.insert(
            "c1".into(),
            Endpoint {
                ip: "172.18.0.2".into(),
                ..Default::default()
            },
        );
        s.insert(n).unwrap();
        let s = NetworkStore::open(&dir).unwrap();
        let n = s.by_name("appnet").unwrap();
        assert!(n.in_use("172.18.0.2".parse().unwrap()));
        assert_eq!(s.resolve("abab").unwrap(), n.id);
        assert_eq!(s.resolve("zz"), Err(Lookup::NotFound));
        fs::remove_dir_all(&dir).unwrap();
    }
}
