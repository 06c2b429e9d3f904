//! Forwarding: a logged-in connection's PLACE/CANCEL/QUERY on its way to a
//! backend, and its answer's way back.
//!
//! [`forward`] registers the request in the correlation table (bounded:
//! full means SERVICE_UNAVAILABLE at once) and starts its call in a task of
//! its own, so the connection's read loop never waits on gRPC. What the
//! [`crate::resilience::Router`] decides without waiting (admission, a
//! backend lease or a place in the wait queue) runs in the connection; a
//! refusal is answered right there, without a task. The task waits for the
//! answer of an admitted request and hands the
//! answer to [`answer`], which completes the table entry and queues the
//! response frame (with the request's in-flight permit, released once it is
//! written) on the connection's writer — or counts it as dropped when the
//! client has gone meanwhile.

use std::sync::Arc;

use hts_proto::v1::Code;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::Instant;

use crate::correlation::Pending;
use crate::resilience::router::Start;
use crate::shared::Shared;
use crate::telemetry;
use crate::upstream::{BackendReply, BackendRequest};
use crate::writer::Outbound;

/// One request a connection forwards.
#[derive(Debug)]
pub(crate) struct Forward {
    /// The connection.
    pub(crate) conn_id: u64,
    /// The client's correlation id.
    pub(crate) correlation_id: u64,
    /// The session's account.
    pub(crate) account: Arc<str>,
    /// The request.
    pub(crate) request: BackendRequest,
    /// The request's in-flight slots.
    pub(crate) permit: OwnedSemaphorePermit,
    /// The connection's writer.
    pub(crate) reply: mpsc::Sender<Outbound>,
}

/// The correlation table is full: the request was not forwarded (its
/// permit comes back with it).
#[derive(Debug)]
pub(crate) struct NotForwarded {
    /// The request.
    pub(crate) request: BackendRequest,
    /// Its in-flight slots.
    pub(crate) permit: OwnedSemaphorePermit,
}

impl NotForwarded {
    /// The code of the refusal.
    pub(crate) const CODE: Code = Code::ServiceUnavailable;
    /// The message of the refusal.
    pub(crate) const MESSAGE: &'static str = "gateway is at capacity, retry later";
}

/// Registers `f` and starts its call; returns the gateway id the
/// connection must remember for disconnect clean-up.
pub(crate) fn forward(shared: &Arc<Shared>, f: Forward) -> Result<u64, NotForwarded> {
    let deadline = Instant::now() + *shared.config.request_timeout_ms;
    let msg_type = f.request.msg_type();
    let pending = Pending {
        conn_id: f.conn_id,
        client_correlation_id: f.correlation_id,
        msg_type,
        deadline,
        reply: f.reply,
    };
    let id = match shared.table.register(pending) {
        Ok(id) => id,
        Err(full) => {
            tracing::warn!(conn = f.conn_id, %full, "refusing request");
            return Err(NotForwarded {
                request: f.request,
                permit: f.permit,
            });
        }
    };
    let started_at = std::time::Instant::now();
    let (account, request, permit) = (f.account, f.request, f.permit);
    let counted = shared.stats.account_request(&account);
    let started = match shared.router.start(&account, request, id, deadline) {
        Start::Started(started) => started,
        Start::Answered(reply) => {
            // Refused (or already late): answered here, without a task, so
            // that shedding load costs as little as it can.
            drop(counted);
            telemetry::order_latency(msg_type, reply.code(), started_at.elapsed());
            answer(shared, id, reply, permit);
            return Ok(id);
        }
    };
    let shared = shared.clone();
    tokio::spawn(async move {
        let reply = shared.router.finish(started).await;
        drop(counted);
        telemetry::order_latency(msg_type, reply.code(), started_at.elapsed());
        answer(&shared, id, reply, permit);
    });
    Ok(id)
}

/// The answer's way back: completes entry `id` and queues the frame on its
/// connection's writer. `None` from the table means the client left
/// meanwhile (`complete` counted the drop).
fn answer(shared: &Shared, id: u64, reply: BackendReply, permit: OwnedSemaphorePermit) {
    shared.stats.record(reply.code());
    if let Some(p) = shared.table.complete(id) {
        let frame = reply.into_frame(p.client_correlation_id);
        if p.reply.try_send(Outbound::reply(frame, permit)).is_err() {
            shared.table.record_dropped();
        }
    }
}
