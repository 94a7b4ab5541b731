//! Audit lines written when the answer's status is known: at once for a
//! plain answer, when a deferred answer (`Pending`) or an upload
//! (`BodySink`) finishes, or with status 0 when the client leaves first.

use crate::access::AuditCtx;
use crate::engine::{Engine, Response};
use crate::http::handler::Begin;
use crate::reply::{Body, BodySink, ConnId, Pending};

/// Audit the request `begun` starts (`ctx` says what it was).
pub fn begin(
    engine: &mut Engine,
    conn: ConnId,
    ctx: AuditCtx,
    begun: Begin<Engine>,
) -> Begin<Engine> {
    match begun {
        Begin::Respond(r) => Begin::Respond(answer(engine, ctx, r)),
        Begin::Buffer(routed) => {
            engine.access.pending.insert(conn, ctx);
            Begin::Buffer(routed)
        }
        Begin::Sink(inner) => Begin::Sink(Box::new(AuditedSink { inner, ctx })),
    }
}

/// A buffered request's answer: audit it if `begin` said so.
pub fn buffered(engine: &mut Engine, conn: ConnId, resp: Response) -> Response {
    match engine.access.pending.remove(&conn) {
        Some(ctx) => answer(engine, ctx, resp),
        None => resp,
    }
}

fn answer(engine: &mut Engine, ctx: AuditCtx, resp: Response) -> Response {
    match resp.body {
        Body::Later(inner) => Response {
            body: Body::Later(Box::new(AuditedPending {
                inner,
                ctx: Some(ctx),
            })),
            ..resp
        },
        _ => {
            engine.access.record(&ctx, resp.status);
            resp
        }
    }
}

struct AuditedPending {
    inner: Box<dyn Pending<Engine>>,
    ctx: Option<AuditCtx>,
}

impl Pending<Engine> for AuditedPending {
    fn poll(&mut self, cx: &mut Engine, me: ConnId) -> Option<Response> {
        let resp = self.inner.poll(cx, me)?;
        Some(match self.ctx.take() {
            Some(ctx) => answer(cx, ctx, resp),
            None => resp,
        })
    }

    fn cancel(&mut self, cx: &mut Engine, me: ConnId) {
        self.inner.cancel(cx, me);
        if let Some(ctx) = self.ctx.take() {
            cx.access.record(&ctx, 0);
        }
    }
}

struct AuditedSink {
    inner: Box<dyn BodySink<Engine>>,
    ctx: AuditCtx,
}

impl BodySink<Engine> for AuditedSink {
    fn write(&mut self, cx: &mut Engine, me: ConnId, data: &[u8]) -> Result<usize, Response> {
        self.inner
            .write(cx, me, data)
            .inspect_err(|r| cx.access.record(&self.ctx, r.status))
    }

    fn finish(self: Box<Self>, cx: &mut Engine, me: ConnId) -> Response {
        let resp = self.inner.finish(cx, me);
        answer(cx, self.ctx, resp)
    }

    fn cancel(self: Box<Self>, cx: &mut Engine, me: ConnId) {
        self.inner.cancel(cx, me);
        cx.access.record(&self.ctx, 0);
    }
}
