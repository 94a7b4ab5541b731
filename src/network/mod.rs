//! Container networking: rtnetlink, bridges and veth endpoints, IPAM.

pub mod bridge;
pub mod dns;
pub mod endpoint;
pub mod error;
pub mod ipam;
pub mod netlink;
