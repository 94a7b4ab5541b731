//! The one seam between HTTP and what answers it: the connection state
//! machine calls a `Handler` (implemented by `api/`), and knows nothing else
//! above it. The handler is also the context long responses run against.

use super::request::Request;
use crate::reply::{BodySink, ConnId, Response};

/// What the handler wants once a request head is known.
pub enum Begin<H: Handler> {
    /// Answer now (errors, and requests without a body).
    Respond(Response<H>),
    /// Collect the body (up to `MAX_BUFFERED_BODY`), then call
    /// `Handler::handle` with what `begin` decided about the request.
    Buffer(H::Routed),
    /// Hand the body to this sink piece by piece.
    Sink(Box<dyn BodySink<H>>),
}

pub trait Handler: Sized {
    /// What `begin` learnt about a request (its route), kept while the body
    /// is buffered so the request is not resolved twice.
    type Routed;
    /// A request head has arrived: answer now or ask for its body.
    fn begin(&mut self, conn: ConnId, req: &Request) -> Begin<Self>;
    /// A buffered request body is complete.
    fn handle(
        &mut self,
        conn: ConnId,
        req: &Request,
        routed: Self::Routed,
        body: Vec<u8>,
    ) -> Response<Self>;
    /// The error response for protocol-level failures (malformed heads,
    /// oversized bodies, too many connections).
    fn error_response(status: u16, message: &str) -> Response<Self>;
    /// Headers every response carries (API version, server): applied to each
    /// response as its head is written, including deferred ones.
    fn common_headers(resp: Response<Self>) -> Response<Self>;
}
