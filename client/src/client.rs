//! [`Client`]: an async gateway client for terminals, the CLI, benchmarks and tests.
//!
//! One TCP connection (plain, or TLS with [`Client::connect_tls`]), shared by
//! every clone. Calls are multiplexed: each
//! gets a fresh correlation id, a reader task routes response frames to the
//! waiting call, and a writer task batches outgoing frames. Thousands of
//! concurrent calls on one connection are fine (the gateway applies
//! backpressure beyond its in-flight limit).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use hts_proto::v1::{
    CancelOrderRequest, CancelOrderResponse, Code, ErrorResponse, Heartbeat, LoginRequest,
    LoginResponse, PlaceOrderRequest, PlaceOrderResponse, QueryOrderRequest, QueryOrderResponse,
};
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::rustls::ClientConfig;
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::tls::{TlsConnector, TlsError};
use hts_proto::codec::{FrameCodec, FrameError};
use hts_proto::frame::{Frame, MsgType, DEFAULT_MAX_BODY_LEN};

/// Outgoing frames queued ahead of the socket.
const WRITE_QUEUE: usize = 1024;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting (or the TLS handshake) failed.
    #[error("connect failed: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS settings are unusable (e.g. an invalid server name).
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The connection is closed; the call's outcome is unknown.
    #[error("connection closed")]
    Closed,
    /// The gateway answered with an ERROR frame.
    #[error("gateway error {code:?}: {message}")]
    Gateway {
        /// Error code.
        code: Code,
        /// Human-readable reason.
        message: String,
    },
    /// The response body did not decode.
    #[error("undecodable response: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The request cannot be framed (e.g. its body is too large).
    #[error("cannot send request: {0}")]
    Frame(#[from] FrameError),
    /// The response carried an unexpected msg_type.
    #[error("unexpected response msg_type {0}")]
    UnexpectedResponse(u16),
}

type PendingMap = Mutex<HashMap<u64, oneshot::Sender<Frame>>>;

#[derive(Debug)]
struct Inner {
    tx: mpsc::Sender<Frame>,
    pending: Arc<PendingMap>,
    closed: Arc<AtomicBool>,
    next_id: AtomicU64,
}

/// A cheaply clonable connection to the gateway.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Connects to the gateway at `addr`.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<Client, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        Ok(Client::start(read, write))
    }

    /// Connects to the gateway at `addr` over TLS; the gateway's certificate
    /// must be valid for `server_name` (a DNS name or an IP address) and
    /// chain to a root of `config`.
    pub async fn connect_tls(
        addr: impl ToSocketAddrs,
        server_name: &str,
        config: Arc<ClientConfig>,
    ) -> Result<Client, ClientError> {
        let name = crate::tls::server_name(server_name)?;
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let stream = TlsConnector::from(config).connect(name, stream).await?;
        let (read, write) = tokio::io::split(stream);
        Ok(Client::start(read, write))
    }

    /// Starts the reader and writer tasks over a connected stream's halves.
    fn start<R, W>(read: R, write: W) -> Client
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let pending: Arc<PendingMap> = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(write_loop(
            FramedWrite::new(write, FrameCodec::default()),
            rx,
        ));
        tokio::spawn(read_loop(
            FramedRead::new(read, FrameCodec::default()),
            pending.clone(),
            closed.clone(),
        ));
        Client {
            inner: Arc::new(Inner {
                tx,
                pending,
                closed,
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// Whether the connection has been closed.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// Sends one request and waits for its response frame. An ERROR frame
    /// becomes [`ClientError::Gateway`].
    pub async fn call(&self, msg_type: MsgType, body: &impl Message) -> Result<Frame, ClientError> {
        let len = body.encoded_len();
        if len > DEFAULT_MAX_BODY_LEN {
            return Err(FrameError::BodyTooLarge {
                len: u32::try_from(len).unwrap_or(u32::MAX),
                max: DEFAULT_MAX_BODY_LEN,
            }
            .into());
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (done, answer) = oneshot::channel();
        lock(&self.inner.pending).insert(id, done);
        // The reader sets `closed` before failing pending calls, so checking
        // after inserting never leaves this call waiting forever.
        if self.is_closed() {
            lock(&self.inner.pending).remove(&id);
            return Err(ClientError::Closed);
        }
        if self
            .inner
            .tx
            .send(Frame::request(msg_type, id, body))
            .await
            .is_err()
        {
            lock(&self.inner.pending).remove(&id);
            return Err(ClientError::Closed);
        }
        let frame = answer.await.map_err(|_| ClientError::Closed)?;
        if frame.kind() == Some(MsgType::Error) {
            let e: ErrorResponse = frame.decode_body()?;
            return Err(ClientError::Gateway {
                code: Code::try_from(e.code).unwrap_or(Code::Unspecified),
                message: e.message,
            });
        }
        if frame.msg_type != msg_type.as_u16() {
            return Err(ClientError::UnexpectedResponse(frame.msg_type));
        }
        Ok(frame)
    }

    async fn typed<R: Message + Default>(
        &self,
        msg_type: MsgType,
        body: &impl Message,
    ) -> Result<R, ClientError> {
        Ok(self.call(msg_type, body).await?.decode_body()?)
    }

    /// Logs the connection in (`account_id` may be empty: the token's subject).
    pub async fn login(&self, account_id: &str, token: &str) -> Result<LoginResponse, ClientError> {
        let req = LoginRequest {
            account_id: account_id.to_owned(),
            token: token.to_owned(),
            ..LoginRequest::default()
        };
        self.typed(MsgType::Login, &req).await
    }

    /// Resumes the session `session_id` (returned by an earlier token login,
    /// possibly on another gateway) without a token.
    pub async fn resume(
        &self,
        account_id: &str,
        session_id: &str,
    ) -> Result<LoginResponse, ClientError> {
        let req = LoginRequest {
            account_id: account_id.to_owned(),
            token: String::new(),
            session_id: session_id.to_owned(),
            ..LoginRequest::default()
        };
        self.typed(MsgType::Login, &req).await
    }

    /// Places an order.
    pub async fn place(&self, req: PlaceOrderRequest) -> Result<PlaceOrderResponse, ClientError> {
        self.typed(MsgType::PlaceOrder, &req).await
    }

    /// Cancels an order.
    pub async fn cancel(
        &self,
        req: CancelOrderRequest,
    ) -> Result<CancelOrderResponse, ClientError> {
        self.typed(MsgType::CancelOrder, &req).await
    }

    /// Looks up an order.
    pub async fn query(&self, req: QueryOrderRequest) -> Result<QueryOrderResponse, ClientError> {
        self.typed(MsgType::QueryOrder, &req).await
    }

    /// Sends a heartbeat stamped with the current time; returns the echo.
    pub async fn heartbeat(&self) -> Result<Heartbeat, ClientError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        self.typed(
            MsgType::Heartbeat,
            &Heartbeat {
                sent_at_unix_nanos: now,
            },
        )
        .await
    }
}

fn lock(m: &PendingMap) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Frame>>> {
    // The map stays consistent even if a holder panicked.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut sink: FramedWrite<W, FrameCodec>,
    mut rx: mpsc::Receiver<Frame>,
) {
    while let Some(frame) = rx.recv().await {
        let batch = async {
            sink.feed(frame).await?;
            while let Ok(more) = rx.try_recv() {
                sink.feed(more).await?;
            }
            sink.flush().await
        };
        if batch.await.is_err() {
            break;
        }
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut frames: FramedRead<R, FrameCodec>,
    pending: Arc<PendingMap>,
    closed: Arc<AtomicBool>,
) {
    while let Some(next) = frames.next().await {
        match next {
            Ok(frame) => {
                let waiter = lock(&pending).remove(&frame.correlation_id);
                match waiter {
                    Some(w) => {
                        let _ = w.send(frame);
                    }
                    None => log_unmatched(&frame),
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "gateway stream error");
                break;
            }
        }
    }
    closed.store(true, Ordering::SeqCst);
    // Dropping the senders fails every waiting call with `Closed`.
    lock(&pending).clear();
}

fn log_unmatched(frame: &Frame) {
    if frame.kind() == Some(MsgType::Error) {
        let e = frame.decode_body::<ErrorResponse>().unwrap_or_default();
        tracing::warn!(code = e.code, message = %e.message, "gateway closed the connection");
    } else {
        tracing::debug!(correlation_id = frame.correlation_id, "unmatched response");
    }
}
