//! nf_tables through nfnetlink, by hand: no `nft` binary, no libnftnl.
//!
//! Public API:
//! - [`Batch`]: build a transaction (`add_table`, `del_table`, `add_chain`,
//!   `add_set`, `add_elems`, `del_elems`, `add_rule`) of [`Expr`]essions
//!   (meta, payload, cmp, bitwise, immediate, lookup, nat, masq, ct,
//!   counter, fib; helpers `meta_cmp`, `ip_in`, `ct_has`, `daddr_is_local`).
//! - [`commit`]: send it over a NETLINK_NETFILTER socket kept open between
//!   commits (see [`commit`]) and check the kernel acked every message. The
//!   kernel applies a batch atomically.
//! - [`NftError`]: `Unavailable` when the kernel has no nf_tables (the daemon
//!   logs it, reports it in check-config and falls back to the userland
//!   proxy), `Kernel` with the refused message, `Io`.
//!
//! Everything here is a syscall or two on the caller's thread; the kernel
//! answers within `sendmsg`, so a commit never waits on anything.

pub mod batch;
pub mod expr;
pub mod msg;
pub mod socket;

#[cfg(test)]
mod tests;

use std::fmt;

pub use batch::{Batch, Chain, ChainType, Hook, Set};
pub use expr::{CmpOp, CtKey, Expr, MetaKey, Verdict};

/// A failed nftables transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NftError {
    /// The kernel has no nf_tables (or no netfilter netlink at all).
    Unavailable(String),
    /// The kernel refused a message of the batch; nothing was applied.
    Kernel { errno: i32, what: String },
    /// The socket itself failed.
    Io(String),
}

impl fmt::Display for NftError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NftError::Unavailable(m) | NftError::Io(m) => f.write_str(m),
            NftError::Kernel { errno, what } => write!(
                f,
                "nftables: the kernel refused to {what}: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
        }
    }
}

/// Apply a batch atomically.
///
/// The socket outlives the commit: closing a NETLINK_NETFILTER socket right
/// after a commit waits in the kernel (its release flushes the work that
/// frees the committed transaction, which waits for an RCU grace period:
/// 6-30 ms, most of the daemon's cold start). So each thread keeps the one
/// it made, for the network namespace it was in then: the daemon's thread
/// commits only from the host's (it enters a container's namespace only to
/// make a socket there); unit tests commit from threads that joined a test
/// namespace first. A thread's socket is closed when the process exits.
pub fn commit(batch: &Batch) -> Result<(), NftError> {
    thread_local! {
        static KEPT: std::cell::Cell<Option<socket::Socket>> =
            const { std::cell::Cell::new(None) };
    }
    if batch.is_empty() {
        return Ok(());
    }
    let sock = match KEPT.take() {
        Some(sock) => sock,
        None => socket::Socket::open()?,
    };
    let result = sock.commit(batch);
    // A socket that failed is not trusted again (unread acks): closed.
    if !matches!(result, Err(NftError::Io(_))) {
        KEPT.set(Some(sock));
    }
    result
}
