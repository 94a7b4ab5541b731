//! The networks API in the engine: `docker network` create, inspect, remove,
//! connect, disconnect, prune; and the networks' state.

use serde_json::Value;

use crate::container::model::Container;
use crate::network::bridge::HostLock;
use crate::store::networks::{Endpoint, Network, NetworkStore};

/// The default bridge's name unless daemon.json says otherwise.
pub const DEFAULT_BRIDGE: &str = "coracle0";

/// The networks' state: records and the host locks this daemon holds.
#[derive(Debug)]
pub struct Networks {
    pub store: NetworkStore,
    locks: Vec<HostLock>,
}

impl Networks {
    pub fn hold(&mut self, lock: HostLock) {
        self.locks.push(lock);
    }

    pub fn release_locks(&mut self) {
        self.locks.clear();
    }

    pub fn open(data_root: &std::path::Path) -> Result<Networks, String> {
        let store = NetworkStore::open(data_root)
            .map_err(|e| format!("open network store under {}: {e}", data_root.display()))?;
        Ok(Networks {
            store,
            locks: Vec::new(),
        })
    }

    /// The default bridge network's record.
    pub fn default_net(&self) -> Option<&Network> {
        self.store.by_name("bridge")
    }

    /// The networks container `id` has an endpoint on.
    pub fn of_container<'a>(
        &'a self,
        id: &'a str,
    ) -> impl Iterator<Item = (&'a Network, &'a Endpoint)> + 'a {
        self.store
            .nets
            .values()
            .filter_map(move |n| n.endpoints.get(id).map(|e| (n, e)))
    }
}

/// The endpoint settings the create request gave for network `net`
/// (`NetworkingConfig.EndpointsConfig`, by name or ID).
pub fn endpoint_config<'a>(c: &'a Container, net: &Network) -> Option<&'a Value> {
    let m = c.networking.as_ref()?.as_object()?;
    // The CLI names the default network `default` when no --network is given.
    m.get(&net.name)
        .or_else(|| m.get(&net.id))
        .or_else(|| m.get("default").filter(|_| net.is_default()))
}
