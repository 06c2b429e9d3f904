//! Gateway mode: a lean frame-level driver on [`FrameCodec`].
//!
//! Each connection logs in once, then a writer task sends jobs as they come
//! (batching whatever is queued into one flush) with the job's seq as
//! correlation id, and a reader task matches answers by correlation id. The
//! writer never waits for an answer.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{SinkExt, StreamExt};
use hts_gateway::codec::FrameCodec;
use hts_gateway::frame::{Frame, MsgType};
use hts_proto::v1::{
    CancelOrderResponse, Code, ErrorResponse, LoginRequest, LoginResponse, PlaceOrderResponse,
    QueryOrderResponse,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::state::{Job, SharedState};
use crate::recorder::Outcome;
use crate::workload::{build, Body};

/// A logged-in connection, not yet driving load.
pub struct FrameConn {
    read: FramedRead<OwnedReadHalf, FrameCodec>,
    write: FramedWrite<OwnedWriteHalf, FrameCodec>,
}

fn code_of(raw: i32) -> Code {
    Code::try_from(raw).unwrap_or(Code::Unspecified)
}

/// Connects to `addr` and logs in as `account` with `token`.
pub async fn connect(
    addr: &str,
    account: &str,
    token: &str,
    timeout: Duration,
) -> anyhow::Result<FrameConn> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .with_context(|| format!("connecting to {addr} timed out"))?
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let mut conn = FrameConn {
        read: FramedRead::new(read, FrameCodec::default()),
        write: FramedWrite::new(write, FrameCodec::default()),
    };
    let login = LoginRequest {
        account_id: account.to_owned(),
        token: token.to_owned(),
        ..Default::default()
    };
    conn.write
        .send(Frame::request(MsgType::Login, 0, &login))
        .await
        .context("sending LOGIN")?;
    let answer = tokio::time::timeout(timeout, conn.read.next())
        .await
        .context("LOGIN answer timed out")?
        .context("connection closed before the LOGIN answer")?
        .context("reading the LOGIN answer")?;
    if answer.kind() == Some(MsgType::Error) {
        let e: ErrorResponse = answer.decode_body()?;
        bail!(
            "LOGIN of {account} refused with ERROR {:?}: {}",
            code_of(e.code),
            e.message
        );
    }
    let resp: LoginResponse = answer.decode_body().context("decoding the LOGIN answer")?;
    if code_of(resp.code) != Code::Ok {
        bail!(
            "LOGIN of {account} failed: {:?} {}",
            code_of(resp.code),
            resp.message
        );
    }
    Ok(conn)
}

impl FrameConn {
    /// The logged-in connection's two halves, to hold it open without driving load.
    pub fn into_parts(
        self,
    ) -> (
        FramedRead<OwnedReadHalf, FrameCodec>,
        FramedWrite<OwnedWriteHalf, FrameCodec>,
    ) {
        (self.read, self.write)
    }

    /// Starts the writer and reader tasks; the writer ends when `jobs` closes,
    /// the reader when the connection closes or `state` has nothing pending
    /// after the writer ended.
    pub fn drive(
        self,
        jobs: UnboundedReceiver<Job>,
        state: SharedState,
        run_id: String,
        seed: u64,
    ) -> (JoinHandle<()>, JoinHandle<()>) {
        let writer = tokio::spawn(write_loop(self.write, jobs, state.clone(), run_id, seed));
        let reader = tokio::spawn(read_loop(self.read, state));
        (writer, reader)
    }
}

fn encode(seq: u64, body: &Body) -> Frame {
    match body {
        Body::Place(b) => Frame::request(MsgType::PlaceOrder, seq, b),
        Body::Cancel(b) => Frame::request(MsgType::CancelOrder, seq, b),
        Body::Query(b) => Frame::request(MsgType::QueryOrder, seq, b),
    }
}

async fn write_loop(
    mut sink: FramedWrite<OwnedWriteHalf, FrameCodec>,
    mut jobs: UnboundedReceiver<Job>,
    state: SharedState,
    run_id: String,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut broken = false;
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = jobs.try_recv() {
            batch.push(more);
        }
        let frames: Vec<Frame> = {
            let mut s = state.lock();
            let now = Instant::now();
            batch
                .iter()
                .map(|job| {
                    let body = build(&run_id, job.seq, job.kind, &mut s.pool, &mut rng);
                    SharedState::sent(&mut s, job, body.kind(), now);
                    encode(job.seq, &body)
                })
                .collect()
        };
        if !broken {
            let result = async {
                for f in frames {
                    sink.feed(f).await?;
                }
                sink.flush().await
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "writing to the gateway failed");
                broken = true;
            }
        }
        if broken {
            state.fail_all(&Outcome::Transport);
        }
    }
}

fn outcome_of(frame: &Frame) -> (Outcome, Option<String>) {
    let decoded = match frame.kind() {
        Some(MsgType::PlaceOrder) => frame.decode_body::<PlaceOrderResponse>().map(|r| {
            let ok = code_of(r.code) == Code::Ok;
            (Outcome::Code(code_of(r.code)), ok.then_some(r.order_id))
        }),
        Some(MsgType::CancelOrder) => frame
            .decode_body::<CancelOrderResponse>()
            .map(|r| (Outcome::Code(code_of(r.code)), None)),
        Some(MsgType::QueryOrder) => frame
            .decode_body::<QueryOrderResponse>()
            .map(|r| (Outcome::Code(code_of(r.code)), None)),
        Some(MsgType::Error) => frame
            .decode_body::<ErrorResponse>()
            .map(|r| (Outcome::ErrorFrame(code_of(r.code)), None)),
        _ => return (Outcome::Transport, None),
    };
    decoded.unwrap_or((Outcome::Transport, None))
}

async fn read_loop(mut frames: FramedRead<OwnedReadHalf, FrameCodec>, state: SharedState) {
    while let Some(next) = frames.next().await {
        let frame = match next {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "reading from the gateway failed");
                break;
            }
        };
        let (outcome, order_id) = outcome_of(&frame);
        let now = Instant::now();
        let mut s = state.lock();
        if state.finish(&mut s, frame.correlation_id, &outcome, now) {
            if let Some(id) = order_id.filter(|id| !id.is_empty()) {
                s.pool.push(id);
            }
        } else if frame.correlation_id == 0 && frame.kind() == Some(MsgType::Error) {
            tracing::warn!("the gateway closed the connection with an ERROR frame");
        }
    }
    state.fail_all(&Outcome::Transport);
}
