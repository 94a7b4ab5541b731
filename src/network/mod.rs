//! Networking: nftables through nfnetlink, the daemon's firewall table,
//! published ports (reservation and their API shapes) and the userland
//! port proxy.
// Wired into container start/stop by the networking merge; until then the
// public API of these modules is exercised by their own tests.
#![allow(dead_code)]

pub mod firewall;
pub mod nftables;
pub mod portmap;
pub mod proxy;

#[cfg(test)]
mod firewall_tests;
#[cfg(test)]
mod portmap_tests;
#[cfg(test)]
mod proxy_tests;
#[cfg(test)]
mod testns;
