//! One client connection: the read loop and the dispatch of each frame.
//!
//! The reader owns the stream's read half (a plain TCP half, or one half of
//! a TLS stream: the code is generic, so plain TCP pays nothing for TLS) and
//! a buffer and decodes frames itself (mini-redis style), which lets it apply
//! four timers: `frame_read_timeout` from the first byte of a partial frame
//! (not reset by later bytes), `idle_timeout` since the last complete frame,
//! `login_timeout` since accept, and the session token's expiry. Responses
//! go through a bounded channel to the writer task ([`crate::writer`]).
//!
//! Each decoded frame goes to one place: LOGIN to [`crate::login`] (whose
//! outcome becomes the answer), HEARTBEAT back as its echo, PLACE / CANCEL /
//! QUERY through the pure checks of [`crate::request::admit`] to
//! [`crate::forward`], which carries it to a backend and its answer back.
//!
//! Every request takes slots of the per-connection in-flight semaphore
//! (`max_in_flight_per_connection` slots) before it is handled: one slot per
//! started [`SLOT_BYTES`] of frame, so a small request costs one and one with a
//! 64 KiB body costs 17. The slots travel with the response and are released once
//! that response is written. A client that pipelines beyond the limit
//! therefore stops being read (TCP backpressure), what one connection holds
//! in flight stays within `max_in_flight_per_connection × SLOT_BYTES` of
//! frames (1 MiB by default; at least one frame) however large its frames,
//! and the writer channel, sized
//! above the slot count, always has room for an answer. Backend calls run in
//! their own tasks: the read loop never awaits a gRPC call.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use hts_proto::v1::{Code, LoginRequest};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use crate::codec::{peek_correlation_id, FrameCodec};
use crate::forward::{forward, Forward, NotForwarded};
use crate::frame::{Frame, MsgType, FLAG_RESPONSE};
use crate::login::{login, LoginOutcome, Session};
use crate::request::{admit, decode_request, ClientRequest};
use crate::shared::Shared;
use crate::upstream::BackendRequest;
use crate::writer::{run_writer, Outbound};

/// Time beyond the request deadline a draining connection waits for the
/// TIMEOUT answer of a request forwarded just before shutdown to be written.
const DRAIN_ANSWER_MARGIN: Duration = Duration::from_secs(1);
/// Writer channel slots beyond the in-flight permits (closing frames).
const OUTBOUND_SLACK: usize = 8;
/// Frame bytes one in-flight slot covers.
pub(crate) const SLOT_BYTES: usize = 4096;
/// Initial read buffer size. Small on purpose: an idle logged-in terminal
/// needs only a few hundred bytes, and `read_buf` grows the buffer for a
/// busy one (10k idle connections must fit in 100 MiB).
const READ_BUF: usize = 512;
/// How long a connection closed for a protocol error keeps discarding input,
/// so the peer reads our ERROR frame instead of a reset.
const LINGER: Duration = Duration::from_secs(1);

/// What the read loop should do next.
enum Flow {
    Continue,
    /// A closing frame was queued; stop reading and close.
    Close,
    /// The writer is gone (client stalled or socket failed).
    WriterGone,
}

/// Why the read loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Client closed its side or the socket failed: deliver what is in flight.
    Eof,
    /// Gateway shutdown: deliver what is in flight.
    Shutdown,
    /// A closing ERROR frame was queued.
    Fatal,
    /// The writer stopped; nothing more can be delivered.
    WriterGone,
    /// The session's token expired: deliver what is in flight, then a
    /// closing ERROR frame.
    SessionExpired,
}

/// Which timer a read wait may hit.
#[derive(Debug, Clone, Copy)]
enum Timer {
    PartialFrame,
    Idle,
    Login,
    SessionExpiry,
}

struct Connection<R> {
    id: u64,
    peer: SocketAddr,
    shared: Arc<Shared>,
    read: R,
    buf: BytesMut,
    codec: FrameCodec,
    tx: mpsc::Sender<Outbound>,
    in_flight: Arc<Semaphore>,
    /// Slots of `in_flight`.
    max_in_flight: usize,
    session: Option<Session>,
    failed_logins: u32,
    /// Gateway ids this connection registered (pruned as they complete).
    outstanding: HashSet<u64>,
    accepted_at: Instant,
    last_frame: Instant,
    frame_started: Option<Instant>,
}

/// Serves one accepted client (its stream split in `read` and `write`) until
/// it disconnects, misbehaves or the gateway shuts down.
pub(crate) async fn serve<R, W>(
    read: R,
    write: W,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let id = shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
    let config = &shared.config;
    let max_in_flight = config.max_in_flight_per_connection.max(1);
    let (tx, rx) = mpsc::channel(max_in_flight + OUTBOUND_SLACK);
    let codec = FrameCodec::new(config.max_body_len);
    let writer = tokio::spawn(run_writer(write, codec, rx, *config.write_timeout_ms));
    let now = Instant::now();
    let mut conn = Connection {
        id,
        peer,
        shared: shared.clone(),
        read,
        buf: BytesMut::with_capacity(READ_BUF),
        codec,
        tx,
        in_flight: Arc::new(Semaphore::new(max_in_flight)),
        max_in_flight,
        session: None,
        failed_logins: 0,
        outstanding: HashSet::new(),
        accepted_at: now,
        last_frame: now,
        frame_started: None,
    };
    let end = conn.read_loop(&shutdown).await;
    tracing::debug!(conn = id, ?end, "connection read loop ended");
    if matches!(end, End::Eof | End::Shutdown | End::SessionExpired) {
        conn.drain(max_in_flight).await;
    }
    if end == End::SessionExpired {
        let message = "session token expired: log in again with a fresh token".to_owned();
        tracing::info!(conn = id, "closing connection: session token expired");
        conn.fatal(0, Code::Unauthenticated, message).await;
    }
    let Connection {
        read,
        tx,
        outstanding,
        ..
    } = conn;
    shared.table.remove_connection(id, outstanding);
    drop(tx);
    match writer.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(conn = id, error = %e, "connection writer stopped"),
        Err(e) => tracing::error!(conn = id, error = %e, "connection writer panicked"),
    }
    if matches!(end, End::Fatal | End::SessionExpired) {
        linger(read).await;
    }
}

/// Discards input for a short while after a closing ERROR frame, so the
/// peer sees our frame and FIN rather than a reset.
async fn linger<R: AsyncRead + Unpin>(mut read: R) {
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(n) = read.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// In-flight slots a request with a `body_len`-byte body takes: one per
/// started [`SLOT_BYTES`] of frame, at most all of them.
fn slots_for(body_len: usize, max_in_flight: usize) -> u32 {
    let frame = crate::frame::HEADER_LEN + body_len;
    let slots = frame.div_ceil(SLOT_BYTES).clamp(1, max_in_flight.max(1));
    u32::try_from(slots).unwrap_or(u32::MAX)
}

fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

impl<R: AsyncRead + Unpin> Connection<R> {
    async fn read_loop(&mut self, shutdown: &CancellationToken) -> End {
        loop {
            // Handle every complete frame already buffered.
            loop {
                match self.codec.decode(&mut self.buf) {
                    Ok(Some(frame)) => {
                        let now = Instant::now();
                        self.last_frame = now;
                        self.frame_started = (!self.buf.is_empty()).then_some(now);
                        match self.handle_frame(frame).await {
                            Flow::Continue => {}
                            Flow::Close => return End::Fatal,
                            Flow::WriterGone => return End::WriterGone,
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let corr = peek_correlation_id(&self.buf).unwrap_or(0);
                        tracing::info!(conn = self.id, error = %e, "protocol error");
                        return self.fatal(corr, Code::ProtocolError, e.to_string()).await;
                    }
                }
            }
            if shutdown.is_cancelled() {
                return End::Shutdown;
            }
            let (deadline, timer) = self.next_deadline();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return End::Shutdown,
                _ = self.tx.closed() => return End::WriterGone,
                read = self.read.read_buf(&mut self.buf) => match read {
                    Ok(0) => return End::Eof,
                    Ok(_) => {
                        if self.frame_started.is_none() {
                            self.frame_started = Some(Instant::now());
                        }
                    }
                    Err(e) => {
                        tracing::debug!(conn = self.id, error = %e, "read failed");
                        return End::Eof;
                    }
                },
                _ = tokio::time::sleep_until(deadline) => return self.timed_out(timer).await,
            }
        }
    }

    fn next_deadline(&self) -> (Instant, Timer) {
        let c = &self.shared.config;
        let mut best = (self.last_frame + *c.idle_timeout_secs, Timer::Idle);
        if self.session.is_none() {
            let login = self.accepted_at + *c.login_timeout_secs;
            if login < best.0 {
                best = (login, Timer::Login);
            }
        }
        if let Some(session) = &self.session {
            if session.expires_at < best.0 {
                best = (session.expires_at, Timer::SessionExpiry);
            }
        }
        if let Some(started) = self.frame_started {
            let frame = started + *c.frame_read_timeout_ms;
            if frame < best.0 {
                best = (frame, Timer::PartialFrame);
            }
        }
        best
    }

    async fn timed_out(&mut self, timer: Timer) -> End {
        let c = &self.shared.config;
        let (code, message) = match timer {
            Timer::PartialFrame => (
                Code::ProtocolError,
                format!(
                    "frame not completed within {}",
                    secs(*c.frame_read_timeout_ms)
                ),
            ),
            Timer::Idle => (
                Code::Timeout,
                format!(
                    "no frame received within {}: closing idle connection",
                    secs(*c.idle_timeout_secs)
                ),
            ),
            Timer::Login => (
                Code::Unauthenticated,
                format!("not logged in within {}", secs(*c.login_timeout_secs)),
            ),
            Timer::SessionExpiry => return End::SessionExpired,
        };
        tracing::info!(conn = self.id, %message, "closing connection");
        self.fatal(0, code, message).await
    }

    /// Queues a closing ERROR frame.
    async fn fatal(&mut self, correlation_id: u64, code: Code, message: String) -> End {
        self.shared.stats.record(code as i32);
        let frame = Frame::error(correlation_id, code, message);
        match self.tx.send(Outbound::closing(frame, None)).await {
            Ok(()) => End::Fatal,
            Err(_) => End::WriterGone,
        }
    }

    /// Waits until every in-flight response is written, bounded by
    /// `drain_timeout` but never shorter than the request deadline (plus a
    /// margin to write the answer): every request already forwarded gets
    /// its answer (OK, or TIMEOUT at its deadline) before the connection
    /// closes, so no order is stored that its client was not told about.
    async fn drain(&mut self, max_in_flight: usize) {
        let all = u32::try_from(max_in_flight).unwrap_or(u32::MAX);
        let everything = self.in_flight.clone().acquire_many_owned(all);
        let config = &self.shared.config;
        let limit = config
            .drain_timeout_ms
            .get()
            .max(*config.request_timeout_ms + DRAIN_ANSWER_MARGIN);
        tokio::select! {
            _ = tokio::time::timeout(limit, everything) => {}
            _ = self.tx.closed() => {}
        }
    }

    async fn handle_frame(&mut self, frame: Frame) -> Flow {
        if frame.is_response() {
            let msg = "RESPONSE flag set on a request frame".to_owned();
            return match self
                .fatal(frame.correlation_id, Code::ProtocolError, msg)
                .await
            {
                End::Fatal => Flow::Close,
                _ => Flow::WriterGone,
            };
        }
        // Backpressure: stop reading while too much is in flight.
        let slots = slots_for(frame.body.len(), self.max_in_flight);
        let permit = tokio::select! {
            biased;
            _ = self.tx.closed() => return Flow::WriterGone,
            permit = self.in_flight.clone().acquire_many_owned(slots) => match permit {
                Ok(p) => p,
                Err(_) => return Flow::WriterGone,
            },
        };
        let corr = frame.correlation_id;
        match decode_request(frame.msg_type, frame.body.clone()) {
            Ok(ClientRequest::Login(req)) => self.login(corr, req, permit).await,
            Ok(ClientRequest::Heartbeat(_)) => {
                let echo = Frame {
                    flags: FLAG_RESPONSE,
                    ..frame
                };
                self.send(Outbound::reply(echo, permit)).await
            }
            Ok(ClientRequest::Backend(req)) => self.backend_request(corr, req, permit).await,
            Err(e) => self.invalid(corr, e.to_string(), permit).await,
        }
    }

    async fn send(&mut self, out: Outbound) -> Flow {
        match self.tx.send(out).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::WriterGone,
        }
    }

    async fn invalid(&mut self, corr: u64, message: String, permit: OwnedSemaphorePermit) -> Flow {
        self.shared.stats.record(Code::InvalidRequest as i32);
        let frame = Frame::error(corr, Code::InvalidRequest, message);
        self.send(Outbound::reply(frame, permit)).await
    }

    /// Answers a LOGIN with [`login`]'s outcome.
    async fn login(&mut self, corr: u64, req: LoginRequest, permit: OwnedSemaphorePermit) -> Flow {
        let outcome = login(
            &self.shared,
            self.id,
            self.peer.ip(),
            self.session.as_ref(),
            &mut self.failed_logins,
            req,
        )
        .await;
        self.shared.stats.record(outcome.code());
        match outcome {
            LoginOutcome::Opened { session, response } => {
                self.session = Some(session);
                let frame = Frame::response(MsgType::Login, corr, &response);
                self.send(Outbound::reply(frame, permit)).await
            }
            LoginOutcome::Refused { response, close } => {
                let frame = Frame::response(MsgType::Login, corr, &response);
                if !close {
                    return self.send(Outbound::reply(frame, permit)).await;
                }
                match self.send(Outbound::closing(frame, Some(permit))).await {
                    Flow::Continue => Flow::Close,
                    other => other,
                }
            }
        }
    }

    /// Checks a PLACE/CANCEL/QUERY against the session and forwards it.
    async fn backend_request(
        &mut self,
        corr: u64,
        request: BackendRequest,
        permit: OwnedSemaphorePermit,
    ) -> Flow {
        let account = match admit(self.session.as_ref().map(|s| &s.account), &request) {
            Ok(account) => account.clone(),
            Err(refused) => {
                return self
                    .refuse(corr, &request, refused.code, refused.message, permit)
                    .await
            }
        };
        let f = Forward {
            conn_id: self.id,
            correlation_id: corr,
            account,
            request,
            permit,
            reply: self.tx.clone(),
        };
        match forward(&self.shared, f) {
            Ok(id) => {
                self.track(id);
                Flow::Continue
            }
            Err(NotForwarded { request, permit }) => {
                self.refuse(
                    corr,
                    &request,
                    NotForwarded::CODE,
                    NotForwarded::MESSAGE,
                    permit,
                )
                .await
            }
        }
    }

    async fn refuse(
        &mut self,
        corr: u64,
        req: &BackendRequest,
        code: Code,
        message: &str,
        permit: OwnedSemaphorePermit,
    ) -> Flow {
        self.shared.stats.record(code as i32);
        let frame = req.failure(code, message).into_frame(corr);
        self.send(Outbound::reply(frame, permit)).await
    }

    /// Remembers `id` for disconnect cleanup, pruning completed ids so the
    /// set stays bounded by the in-flight limit.
    fn track(&mut self, id: u64) {
        let limit = 2 * self.shared.config.max_in_flight_per_connection.max(1);
        if self.outstanding.len() >= limit {
            let table = &self.shared.table;
            self.outstanding.retain(|id| table.contains(*id));
        }
        self.outstanding.insert(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_grow_with_frame_size_and_never_exceed_the_limit() {
        assert_eq!(slots_for(0, 256), 1);
        assert_eq!(slots_for(SLOT_BYTES - crate::frame::HEADER_LEN, 256), 1);
        assert_eq!(slots_for(SLOT_BYTES, 256), 2);
        assert_eq!(slots_for(65_536, 256), 17);
        assert_eq!(
            slots_for(65_536, 4),
            4,
            "a big frame still fits a small limit"
        );
        assert_eq!(slots_for(10, 0), 1);
    }
}
