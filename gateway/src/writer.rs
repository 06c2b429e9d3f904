//! The write side of a client connection.
//!
//! One task per connection owns the socket's write half and receives
//! [`Outbound`] frames over a bounded channel. It batches whatever is ready
//! into one flush, bounds every flush by the write timeout (a client that
//! stops reading is disconnected, it never blocks anyone else) and releases
//! the request's in-flight permit only once its response is written. An
//! answer too large for the frame limit is replaced by an ERROR frame for
//! the same request ([`fit`]) instead of failing the connection.

use std::time::Duration;

use futures::SinkExt;
use tokio::io::AsyncWrite;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_util::codec::FramedWrite;

use hts_proto::v1::Code;

use crate::codec::{FrameCodec, FrameError};
use crate::frame::Frame;

/// Most frames written per flush.
const MAX_BATCH: usize = 128;
/// Initial write buffer per connection; grows with the connection's traffic.
const INITIAL_WRITE_BUF: usize = 512;
/// Buffered bytes beyond which feeding a frame flushes first.
const WRITE_BACKPRESSURE_BOUNDARY: usize = 8 * 1024;

/// A frame queued for a client connection.
///
/// Boxed so the channel slot is one pointer: tokio's mpsc allocates its first
/// block of 32 slots when the channel is created, and an unboxed `Outbound`
/// (~72 bytes) would make every idle connection pay ~2.3 KiB for it. The box
/// costs one small allocation per response, beside a gRPC round trip.
#[derive(Debug)]
pub struct Outbound(Box<OutboundParts>);

/// The parts of an [`Outbound`].
#[derive(Debug)]
struct OutboundParts {
    /// The frame to write.
    frame: Frame,
    /// The request's in-flight permit, released once the frame is written.
    permit: Option<OwnedSemaphorePermit>,
    /// Close the connection after writing this frame.
    close_after: bool,
}

impl Outbound {
    /// A frame answering a request that holds `permit`.
    pub fn reply(frame: Frame, permit: OwnedSemaphorePermit) -> Outbound {
        Outbound(Box::new(OutboundParts {
            frame,
            permit: Some(permit),
            close_after: false,
        }))
    }

    /// A final frame after which the connection is closed.
    pub fn closing(frame: Frame, permit: Option<OwnedSemaphorePermit>) -> Outbound {
        Outbound(Box::new(OutboundParts {
            frame,
            permit,
            close_after: true,
        }))
    }
}

/// Why the writer stopped early.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A flush did not finish within the write timeout.
    #[error("client did not accept data within {0:?}")]
    Stalled(Duration),
    /// Encoding or socket error.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// `frame`, or when its body exceeds `max_body_len` (an answer echoing
/// oversized client input, or a backend's long message) an INTERNAL ERROR
/// frame for the same correlation id: the encoder would refuse the frame,
/// and a failed write ends the connection with every other answer in flight.
pub fn fit(frame: Frame, max_body_len: usize) -> Frame {
    if frame.body.len() <= max_body_len {
        return frame;
    }
    tracing::error!(
        msg_type = frame.msg_type,
        len = frame.body.len(),
        max_body_len,
        "answer exceeds the frame limit; sending an ERROR frame instead"
    );
    Frame::error(
        frame.correlation_id,
        Code::Internal,
        format!(
            "the answer ({} bytes) exceeds the {max_body_len}-byte frame limit",
            frame.body.len()
        ),
    )
}

/// Writes frames from `rx` to `io` until the channel closes, a frame asks
/// for the connection to be closed, or writing fails. The write half is shut
/// down (FIN) on a clean finish.
pub async fn run_writer<W>(
    io: W,
    codec: FrameCodec,
    mut rx: mpsc::Receiver<Outbound>,
    write_timeout: Duration,
) -> Result<(), WriteError>
where
    W: AsyncWrite + Unpin,
{
    // Start with a small buffer: most connections are idle terminals, and a
    // busy one grows it on demand. The back-pressure boundary stays at the
    // usual 8 KiB so batching under load is unchanged.
    let max_body_len = codec.max_body_len();
    let mut sink = FramedWrite::with_capacity(io, codec, INITIAL_WRITE_BUF);
    sink.set_backpressure_boundary(WRITE_BACKPRESSURE_BOUNDARY);
    let mut permits = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut close = false;
        let mut next = Some(first);
        let batch = async {
            let mut n = 0;
            while let Some(Outbound(out)) = next.take() {
                let out = *out;
                n += 1;
                close |= out.close_after;
                permits.extend(out.permit);
                sink.feed(fit(out.frame, max_body_len)).await?;
                if close || n >= MAX_BATCH {
                    break;
                }
                next = rx.try_recv().ok();
            }
            sink.flush().await
        };
        match tokio::time::timeout(write_timeout, batch).await {
            Ok(Ok(())) => permits.clear(),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(WriteError::Stalled(write_timeout)),
        }
        if close {
            break;
        }
    }
    // Best effort FIN; the peer may already be gone.
    let _ = tokio::time::timeout(write_timeout, sink.close()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::MsgType;
    use bytes::BytesMut;
    use hts_proto::v1::Heartbeat;
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;
    use tokio::sync::Semaphore;
    use tokio_util::codec::Decoder;

    fn hb(id: u64) -> Frame {
        Frame::response(
            MsgType::Heartbeat,
            id,
            &Heartbeat {
                sent_at_unix_nanos: id,
            },
        )
    }

    #[tokio::test]
    async fn writes_in_order_and_releases_permits() {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (tx, rx) = mpsc::channel(16);
        let sem = Arc::new(Semaphore::new(4));
        let task = tokio::spawn(run_writer(
            server,
            FrameCodec::default(),
            rx,
            Duration::from_secs(5),
        ));
        for id in 0..4 {
            let p = sem.clone().acquire_owned().await.unwrap();
            tx.send(Outbound::reply(hb(id), p)).await.unwrap();
        }
        drop(tx);
        task.await.unwrap().unwrap();
        assert_eq!(sem.available_permits(), 4);
        let mut client = client;
        let mut raw = Vec::new();
        client.read_to_end(&mut raw).await.unwrap();
        let mut buf = BytesMut::from(&raw[..]);
        let mut codec = FrameCodec::default();
        for id in 0..4 {
            assert_eq!(codec.decode(&mut buf).unwrap(), Some(hb(id)));
        }
        assert!(buf.is_empty());
    }

    #[tokio::test]
    async fn close_after_stops_the_writer() {
        let (_client, server) = tokio::io::duplex(64 * 1024);
        let (tx, rx) = mpsc::channel(16);
        let task = tokio::spawn(run_writer(
            server,
            FrameCodec::default(),
            rx,
            Duration::from_secs(5),
        ));
        tx.send(Outbound::closing(hb(1), None)).await.unwrap();
        task.await.unwrap().unwrap();
        assert!(tx.is_closed());
    }

    #[tokio::test]
    async fn oversized_answer_becomes_an_error_frame_and_the_connection_lives() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let (tx, rx) = mpsc::channel(16);
        let sem = Arc::new(Semaphore::new(2));
        let codec = FrameCodec::new(256);
        let task = tokio::spawn(run_writer(server, codec, rx, Duration::from_secs(5)));
        let big = Frame {
            msg_type: 2,
            flags: 1,
            correlation_id: 7,
            body: vec![b'x'; 257].into(),
        };
        let p = sem.clone().acquire_owned().await.unwrap();
        tx.send(Outbound::reply(big, p)).await.unwrap();
        let p = sem.clone().acquire_owned().await.unwrap();
        tx.send(Outbound::reply(hb(8), p)).await.unwrap();
        drop(tx);
        task.await.unwrap().unwrap();
        assert_eq!(sem.available_permits(), 2);
        let mut raw = Vec::new();
        client.read_to_end(&mut raw).await.unwrap();
        let mut buf = BytesMut::from(&raw[..]);
        let mut codec = codec;
        let first = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(first.msg_type, 255);
        assert_eq!(first.correlation_id, 7);
        let e: hts_proto::v1::ErrorResponse = first.decode_body().unwrap();
        assert_eq!(e.code, Code::Internal as i32);
        assert!(e.message.contains("257 bytes"), "{}", e.message);
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(hb(8)));
    }

    #[test]
    fn fit_keeps_frames_within_the_limit() {
        let f = hb(3);
        assert_eq!(fit(f.clone(), f.body.len()), f);
        let replaced = fit(f.clone(), f.body.len() - 1);
        assert_eq!(replaced.msg_type, 255);
        assert_eq!(replaced.correlation_id, 3);
    }

    #[tokio::test]
    async fn stalled_reader_times_out() {
        // A tiny pipe nobody reads from.
        let (_client, server) = tokio::io::duplex(64);
        let (tx, rx) = mpsc::channel(16);
        let sem = Arc::new(Semaphore::new(1));
        let task = tokio::spawn(run_writer(
            server,
            FrameCodec::default(),
            rx,
            Duration::from_millis(100),
        ));
        let p = sem.clone().acquire_owned().await.unwrap();
        let big = Frame {
            msg_type: 2,
            flags: 1,
            correlation_id: 1,
            body: vec![0u8; 4096].into(),
        };
        tx.send(Outbound::reply(big, p)).await.unwrap();
        let res = task.await.unwrap();
        assert!(matches!(res, Err(WriteError::Stalled(_))));
        // The permit is released when the writer gives up.
        assert_eq!(sem.available_permits(), 1);
    }
}
