//! Shared harness of the gateway's integration tests: a `Gateway` on
//! 127.0.0.1:0 in front of an in-process tonic OrderService test double
//! (the real order service is another crate), a multiplexing client, and a
//! raw byte-level connection.
//!
//! The double answers real responses built from the request and can delay:
//! a PlaceOrder whose symbol is `DELAY-<ms>` sleeps that long. It echoes the
//! account the gateway sent in `PlaceOrderResponse.message` and
//! `Order.account_id`, so tests can see which account a request ran as.

#![allow(dead_code)]

pub mod pki;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use hts_client::Client;
use hts_gateway::codec::FrameCodec;
use hts_gateway::frame::{Frame, MsgType};
use hts_gateway::{mint_token, Gateway, GatewayConfig, GatewayStats};
use hts_proto::v1::order_service_server::{OrderService, OrderServiceServer};
use hts_proto::v1::{
    CancelOrderCall, CancelOrderResponse, Code, ErrorResponse, Heartbeat, LoginRequest,
    LoginResponse, Order, OrderStatus, PlaceOrderCall, PlaceOrderRequest, PlaceOrderResponse,
    QueryOrderCall, QueryOrderResponse,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::codec::{Decoder, Encoder};
use tonic::{Request, Response, Status};

pub const SECRET: &[u8] = b"integration-test-secret";
pub const ACCOUNT: &str = "ACC-1";
/// Generous bound for anything that should happen "promptly".
pub const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- backend

#[derive(Debug, Default)]
pub struct FakeOrders;

#[tonic::async_trait]
impl OrderService for FakeOrders {
    async fn place_order(
        &self,
        request: Request<PlaceOrderCall>,
    ) -> Result<Response<PlaceOrderResponse>, Status> {
        let call = request.into_inner();
        let r = call.request.unwrap_or_default();
        if let Some(ms) = r.symbol.strip_prefix("DELAY-") {
            let ms: u64 = ms.parse().map_err(|_| Status::invalid_argument("delay"))?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        Ok(Response::new(PlaceOrderResponse {
            code: Code::Ok as i32,
            message: call.account_id,
            order_id: format!("ord-{}", r.request_id),
            request_id: r.request_id,
            status: OrderStatus::Accepted as i32,
            ..Default::default()
        }))
    }

    async fn cancel_order(
        &self,
        request: Request<CancelOrderCall>,
    ) -> Result<Response<CancelOrderResponse>, Status> {
        let r = request.into_inner().request.unwrap_or_default();
        Ok(Response::new(CancelOrderResponse {
            code: Code::Ok as i32,
            message: String::new(),
            order_id: r.order_id,
            status: OrderStatus::Canceled as i32,
            ..Default::default()
        }))
    }

    async fn query_order(
        &self,
        request: Request<QueryOrderCall>,
    ) -> Result<Response<QueryOrderResponse>, Status> {
        let call = request.into_inner();
        let r = call.request.unwrap_or_default();
        if r.order_id == "missing" {
            return Ok(Response::new(QueryOrderResponse {
                code: Code::NotFound as i32,
                message: "no such order".into(),
                ..Default::default()
            }));
        }
        Ok(Response::new(QueryOrderResponse {
            code: Code::Ok as i32,
            message: String::new(),
            order: Some(Order {
                order_id: r.order_id,
                account_id: call.account_id,
                status: OrderStatus::Accepted as i32,
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}

pub async fn start_backend() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<OrderServiceServer<FakeOrders>>().await;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(OrderServiceServer::new(FakeOrders))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    format!("http://{addr}")
}

/// A URL nobody listens on.
pub async fn dead_backend() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

// ---------------------------------------------------------------- gateway

pub struct TestGateway {
    /// Client listener address.
    pub addr: SocketAddr,
    /// The gateway's counters.
    pub stats: GatewayStats,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl TestGateway {
    /// Shuts the gateway down and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(PATIENCE, self.task).await??
    }
}

pub fn config(backend: String) -> GatewayConfig {
    let mut c = GatewayConfig::new(vec![backend], SECRET.to_vec());
    // Generous: the machine running the tests is shared and noisy.
    c.request_timeout_ms = Duration::from_secs(5).into();
    // These tests pipeline hundreds of requests to one backend; the bulkhead
    // and the adaptive limit are tested in the resilience tests.
    c.resilience.max_in_flight_per_backend = 4096;
    c.resilience.adaptive_limit = false;
    c
}

pub async fn start_gateway(config: GatewayConfig) -> TestGateway {
    let listener =
        hts_gateway::server::bind_listener(([127, 0, 0, 1], 0).into(), config.listen_backlog)
            .unwrap();
    let gateway = Gateway::from_listener(listener, config).unwrap();
    let addr = gateway.local_addr();
    let stats = gateway.stats();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(gateway.run(async move {
        let _ = rx.await;
    }));
    TestGateway {
        addr,
        stats,
        shutdown: Some(tx),
        task,
    }
}

pub async fn default_gateway() -> TestGateway {
    start_gateway(config(start_backend().await)).await
}

pub fn token(account: &str) -> String {
    mint_token(SECRET, account, Duration::from_secs(600)).unwrap()
}

pub async fn logged_in(addr: SocketAddr) -> Client {
    let client = Client::connect(addr).await.unwrap();
    let resp = client.login(ACCOUNT, &token(ACCOUNT)).await.unwrap();
    assert_eq!(resp.code, Code::Ok as i32, "{resp:?}");
    client
}

pub fn place(request_id: &str, symbol: &str) -> PlaceOrderRequest {
    PlaceOrderRequest {
        request_id: request_id.into(),
        account_id: String::new(),
        symbol: symbol.into(),
        side: 1,
        order_type: 1,
        price: 100,
        quantity: 10,
    }
}

pub async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(PATIENCE, f)
        .await
        .expect("operation did not finish in time")
}

// ------------------------------------------------------------ raw client

/// A raw TCP connection for byte-level tests.
pub struct Raw {
    /// The socket.
    pub stream: TcpStream,
    /// Bytes read and not yet decoded.
    pub buf: BytesMut,
    codec: FrameCodec,
}

impl Raw {
    /// Connects from 127.0.0.1.
    pub async fn connect(addr: SocketAddr) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: BytesMut::new(),
            codec: FrameCodec::default(),
        }
    }

    /// Connects from `source` (any 127.0.0.0/8 address is loopback on Linux),
    /// so tests can act as several client addresses.
    pub async fn connect_from(addr: SocketAddr, source: std::net::IpAddr) -> Raw {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(source, 0)).unwrap();
        Raw {
            stream: socket.connect(addr).await.unwrap(),
            buf: BytesMut::new(),
            codec: FrameCodec::default(),
        }
    }

    /// A frame's bytes.
    pub fn encode(frame: Frame) -> BytesMut {
        let mut b = BytesMut::new();
        FrameCodec::default().encode(frame, &mut b).unwrap();
        b
    }

    /// Sends one frame.
    pub async fn send(&mut self, frame: Frame) {
        self.send_bytes(&Raw::encode(frame)).await;
    }

    /// Sends raw bytes.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Next frame, or `None` on EOF.
    pub async fn recv(&mut self) -> Option<Frame> {
        within(async {
            loop {
                if let Some(f) = self.codec.decode(&mut self.buf).unwrap() {
                    return Some(f);
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
    }

    /// Asserts the gateway closes the connection with nothing more to read.
    pub async fn expect_eof(&mut self) {
        assert_eq!(self.recv().await, None, "expected the gateway to close");
        assert!(self.buf.is_empty());
    }

    /// Logs in as [`ACCOUNT`].
    pub async fn login(&mut self) {
        let resp = self.login_with(&token(ACCOUNT)).await;
        assert_eq!(resp.code, Code::Ok as i32, "{resp:?}");
    }

    /// Sends LOGIN with `token` (correlation id 1) and returns the answer.
    pub async fn login_with(&mut self, token: &str) -> LoginResponse {
        let req = LoginRequest {
            account_id: String::new(),
            token: token.to_owned(),
            ..Default::default()
        };
        self.send(Frame::request(MsgType::Login, 1, &req)).await;
        let f = self.recv().await.expect("login answer");
        assert_eq!(f.msg_type, MsgType::Login.as_u16(), "{f:?}");
        f.decode_body().unwrap()
    }
}

/// The body of an ERROR frame (asserting it is one).
pub fn error_of(frame: &Frame) -> ErrorResponse {
    assert_eq!(frame.msg_type, MsgType::Error.as_u16());
    assert!(frame.is_response());
    frame.decode_body().unwrap()
}

/// A HEARTBEAT request's bytes.
pub fn heartbeat_bytes(corr: u64) -> BytesMut {
    Raw::encode(Frame::request(
        MsgType::Heartbeat,
        corr,
        &Heartbeat {
            sent_at_unix_nanos: 1,
        },
    ))
}

/// Decodes the next complete frame buffered in `buf`, if any (panics on
/// bytes that are not a frame).
pub fn next_frame(buf: &mut BytesMut) -> Option<Frame> {
    FrameCodec::default().decode(buf).expect("a valid frame")
}
