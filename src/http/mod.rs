//! HTTP/1.1 for the Engine API: request heads (httparse), streamed request
//! bodies, responses (fixed-length and chunked) and the per-connection state
//! machine. Nothing here knows about containers or images.

pub mod body;
pub mod client;
pub mod conn;
pub mod handler;
pub mod limits;
pub mod query;
pub mod request;
pub mod response;
pub mod tls_client;
#[cfg(feature = "tls")]
pub mod tls_provider;
#[cfg(feature = "tls")]
pub mod tls_verify;
pub mod websocket;
