//! End-to-end tests: a real account service and TWO order-service servers
//! sharing one SQLite file, exercised through gRPC clients.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hts_account_client::AccountClient;
use hts_account_service::AccountServiceConfig;
use hts_order_core::OrderServiceConfig;
use hts_proto::v1::order_service_client::OrderServiceClient;
use hts_proto::v1::{
    CancelOrderCall, CancelOrderRequest, CancelOrderResponse, Code, OrderStatus, OrderType,
    PlaceOrderCall, PlaceOrderRequest, PlaceOrderResponse, QueryOrderCall, QueryOrderRequest,
    QueryOrderResponse, Side,
};
use hts_proto::CASH_ASSET;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

const DEMO_CASH: i64 = 1_000_000_000;
/// Generous bound for anything eventually consistent (background releases).
const EVENTUALLY: Duration = Duration::from_secs(20);

/// A running server and the means to stop it.
struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Server {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("server did not stop")
            .expect("server task panicked")
            .expect("server failed");
    }
}

async fn bind(addr: SocketAddr) -> TcpListener {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("bind {addr} failed ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot bind {addr}: {e}"),
        }
    }
}

async fn start_account(addr: SocketAddr, db: &Path) -> Server {
    let listener = bind(addr).await;
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let config = AccountServiceConfig {
        store_url: format!("sqlite:{}", db.display()),
        seed_demo: true,
        db_pool_size: 4,
        lanes: hts_account_service::store::DEFAULT_LANES,
        init: true,
    };
    let task = tokio::spawn(hts_account_service::serve(listener, config, async move {
        let _ = stopped.await;
    }));
    Server { addr, stop, task }
}

async fn start_order(db: &Path, account: SocketAddr) -> Server {
    let listener = bind("127.0.0.1:0".parse().unwrap()).await;
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let config = OrderServiceConfig {
        release_retry_interval: Duration::from_millis(200),
        init: true,
        ..OrderServiceConfig::new(
            format!("sqlite:{}", db.display()),
            format!("http://{account}"),
        )
    };
    let task = tokio::spawn(hts_order_core::serve(listener, config, async move {
        let _ = stopped.await;
    }));
    Server { addr, stop, task }
}

struct Cluster {
    _dir: tempfile::TempDir,
    account_db: PathBuf,
    order_db: PathBuf,
    account: Option<Server>,
    account_addr: SocketAddr,
    orders: Vec<Server>,
    clients: Vec<OrderServiceClient<Channel>>,
    accounts: AccountClient,
}

impl Cluster {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let account_db = dir.path().join("accounts.db");
        let order_db = dir.path().join("orders.db");
        let account = start_account("127.0.0.1:0".parse().unwrap(), &account_db).await;
        let account_addr = account.addr;
        let mut orders = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..2 {
            let server = start_order(&order_db, account_addr).await;
            let channel =
                tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
                    .unwrap()
                    .timeout(Duration::from_secs(30))
                    .connect_lazy();
            clients.push(OrderServiceClient::new(channel));
            orders.push(server);
        }
        let accounts = AccountClient::connect_lazy(&format!("http://{account_addr}")).unwrap();
        Self {
            _dir: dir,
            account_db,
            order_db,
            account: Some(account),
            account_addr,
            orders,
            clients,
            accounts,
        }
    }

    fn client(&self, i: usize) -> OrderServiceClient<Channel> {
        self.clients[i % self.clients.len()].clone()
    }

    async fn place(
        &self,
        server: usize,
        account: &str,
        req: PlaceOrderRequest,
    ) -> PlaceOrderResponse {
        self.client(server)
            .place_order(PlaceOrderCall {
                account_id: account.into(),
                request: Some(req),
                correlation_id: 1,
            })
            .await
            .expect("PlaceOrder transport failure")
            .into_inner()
    }

    async fn cancel(&self, server: usize, account: &str, order_id: &str) -> CancelOrderResponse {
        self.client(server)
            .cancel_order(CancelOrderCall {
                account_id: account.into(),
                request: Some(CancelOrderRequest {
                    request_id: format!("cancel-{order_id}"),
                    order_id: order_id.into(),
                }),
                correlation_id: 2,
            })
            .await
            .expect("CancelOrder transport failure")
            .into_inner()
    }

    async fn query(&self, server: usize, account: &str, order_id: &str) -> QueryOrderResponse {
        self.client(server)
            .query_order(QueryOrderCall {
                account_id: account.into(),
                request: Some(QueryOrderRequest {
                    order_id: order_id.into(),
                }),
                correlation_id: 3,
            })
            .await
            .expect("QueryOrder transport failure")
            .into_inner()
    }

    /// (available, reserved) of `asset` on `account`, read from the service.
    async fn balance(&self, account: &str, asset: &str) -> (i64, i64) {
        let resp = self
            .accounts
            .get_account(account)
            .await
            .expect("GetAccount");
        assert!(resp.found, "account {account} not found");
        let b = resp
            .balances
            .iter()
            .find(|b| b.asset == asset)
            .expect("asset balance");
        (b.available, b.reserved)
    }

    async fn eventually_reserved(&self, account: &str, asset: &str, expected: i64) {
        let deadline = tokio::time::Instant::now() + EVENTUALLY;
        loop {
            let (_, reserved) = match self.accounts.get_account(account).await {
                Ok(_) => self.balance(account, asset).await,
                Err(_) => (0, i64::MIN),
            };
            if reserved == expected {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "reserved stayed {reserved}, expected {expected}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn order_rows(&self) -> i64 {
        let conn = rusqlite::Connection::open(&self.order_db).unwrap();
        conn.query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0))
            .unwrap()
    }

    fn pending_release_rows(&self) -> i64 {
        let conn = rusqlite::Connection::open(&self.order_db).unwrap();
        conn.query_row("SELECT COUNT(*) FROM pending_releases", [], |r| r.get(0))
            .unwrap()
    }

    async fn stop_account(&mut self) {
        if let Some(account) = self.account.take() {
            account.stop().await;
        }
    }

    async fn restart_account(&mut self) {
        assert!(self.account.is_none());
        self.account = Some(start_account(self.account_addr, &self.account_db).await);
    }

    async fn shutdown(mut self) {
        for server in self.orders.drain(..) {
            server.stop().await;
        }
        self.stop_account().await;
    }
}

fn buy(request_id: &str, price: i64, quantity: i64) -> PlaceOrderRequest {
    PlaceOrderRequest {
        request_id: request_id.into(),
        account_id: String::new(),
        symbol: "005930".into(),
        side: Side::Buy as i32,
        order_type: OrderType::Limit as i32,
        price,
        quantity,
    }
}

fn code(c: i32) -> Code {
    Code::try_from(c).unwrap_or(Code::Unspecified)
}

fn status(s: i32) -> OrderStatus {
    OrderStatus::try_from(s).unwrap_or(OrderStatus::Unspecified)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn place_and_replay_on_either_server() {
    let cluster = Cluster::start().await;
    let first = cluster.place(0, "ACC-0001", buy("r-1", 70_000, 10)).await;
    assert_eq!(code(first.code), Code::Ok, "{first:?}");
    assert_eq!(status(first.status), OrderStatus::Accepted);
    assert!(!first.replayed);
    assert!(!first.order_id.is_empty());
    for server in 0..2 {
        let again = cluster
            .place(server, "ACC-0001", buy("r-1", 70_000, 10))
            .await;
        assert_eq!(code(again.code), Code::Ok);
        assert!(again.replayed);
        assert_eq!(again.order_id, first.order_id);
    }
    assert_eq!(
        cluster.balance("ACC-0001", CASH_ASSET).await,
        (DEMO_CASH - 700_000, 700_000)
    );
    // SELL reserves shares.
    let mut sell = buy("r-2", 70_000, 25);
    sell.side = Side::Sell as i32;
    let sold = cluster.place(1, "ACC-0001", sell).await;
    assert_eq!(code(sold.code), Code::Ok, "{sold:?}");
    assert_eq!(
        cluster.balance("ACC-0001", "005930").await,
        (1_000_000 - 25, 25)
    );
    let queried = cluster.query(1, "ACC-0001", &first.order_id).await;
    assert_eq!(code(queried.code), Code::Ok);
    let order = queried.order.unwrap();
    assert_eq!(
        (order.price, order.quantity, order.symbol.as_str()),
        (70_000, 10, "005930")
    );
    assert_eq!(status(order.status), OrderStatus::Accepted);
    assert_eq!(order.request_id, "r-1");
    assert!(order.created_at_unix_ms > 0);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reused_request_id_with_other_parameters_conflicts() {
    let cluster = Cluster::start().await;
    let first = cluster.place(0, "ACC-0002", buy("r-1", 100, 10)).await;
    assert_eq!(code(first.code), Code::Ok);
    let conflict = cluster.place(1, "ACC-0002", buy("r-1", 101, 10)).await;
    assert_eq!(code(conflict.code), Code::DuplicateConflict, "{conflict:?}");
    assert!(
        conflict.message.contains(&first.order_id),
        "{}",
        conflict.message
    );
    assert_eq!(cluster.order_rows(), 1);
    assert_eq!(cluster.balance("ACC-0002", CASH_ASSET).await.1, 1_000);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn insufficient_balance_is_stored_and_replayed() {
    let cluster = Cluster::start().await;
    let req = buy("big", 1_000_000, 10_000); // 1e10 > 1e9 of demo cash
    let first = cluster.place(0, "ACC-0003", req.clone()).await;
    assert_eq!(code(first.code), Code::InsufficientBalance, "{first:?}");
    assert_eq!(status(first.status), OrderStatus::Rejected);
    assert!(!first.order_id.is_empty());
    let again = cluster.place(1, "ACC-0003", req).await;
    assert_eq!(code(again.code), Code::InsufficientBalance);
    assert!(again.replayed);
    assert_eq!(again.order_id, first.order_id);
    assert_eq!(
        cluster.balance("ACC-0003", CASH_ASSET).await,
        (DEMO_CASH, 0)
    );
    // A rejected order cannot be canceled.
    let cancel = cluster.cancel(0, "ACC-0003", &first.order_id).await;
    assert_eq!(code(cancel.code), Code::InvalidRequest);
    assert_eq!(status(cancel.status), OrderStatus::Rejected);
    assert_eq!(cluster.order_rows(), 1);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_fields_and_foreign_accounts_are_refused() {
    let cluster = Cluster::start().await;
    let cases: Vec<(PlaceOrderRequest, Code, &str)> = vec![
        (buy("", 1, 1), Code::InvalidRequest, "request_id"),
        (
            PlaceOrderRequest {
                symbol: "bad!".into(),
                ..buy("r", 1, 1)
            },
            Code::InvalidRequest,
            "symbol",
        ),
        (
            PlaceOrderRequest {
                side: 0,
                ..buy("r", 1, 1)
            },
            Code::InvalidRequest,
            "side",
        ),
        (
            PlaceOrderRequest {
                order_type: 0,
                ..buy("r", 1, 1)
            },
            Code::InvalidRequest,
            "order_type",
        ),
        (buy("r", 0, 1), Code::InvalidRequest, "price"),
        (buy("r", 1, -1), Code::InvalidRequest, "quantity"),
        (buy("r", i64::MAX, 2), Code::InvalidRequest, "overflow"),
        (
            PlaceOrderRequest {
                account_id: "ACC-0002".into(),
                ..buy("r", 1, 1)
            },
            Code::Forbidden,
            "account_id",
        ),
    ];
    for (req, expected, field) in cases {
        let resp = cluster.place(0, "ACC-0001", req).await;
        assert_eq!(code(resp.code), expected, "{field}: {resp:?}");
        assert!(resp.message.contains(field), "{field}: {}", resp.message);
    }
    let missing = cluster
        .client(0)
        .place_order(PlaceOrderCall {
            account_id: "ACC-0001".into(),
            request: None,
            correlation_id: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(missing.code), Code::InvalidRequest);
    // Unknown to the account service: FORBIDDEN, nothing stored.
    let unknown = cluster.place(1, "ACC-9999", buy("r", 1, 1)).await;
    assert_eq!(code(unknown.code), Code::Forbidden, "{unknown:?}");
    assert_eq!(cluster.order_rows(), 0);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_identical_places_make_one_order() {
    let cluster = Cluster::start().await;
    let mut calls = Vec::new();
    for i in 0..100 {
        let mut client = cluster.client(i);
        calls.push(tokio::spawn(async move {
            client
                .place_order(PlaceOrderCall {
                    account_id: "ACC-0004".into(),
                    request: Some(buy("storm", 5_000, 7)),
                    correlation_id: i as u64,
                })
                .await
                .map(|r| r.into_inner())
        }));
    }
    let mut responses = Vec::new();
    for call in futures::future::join_all(calls).await {
        responses.push(call.unwrap().expect("PlaceOrder transport failure"));
    }
    assert!(
        responses.iter().all(|r| code(r.code) == Code::Ok),
        "{responses:?}"
    );
    let order_id = &responses[0].order_id;
    assert!(responses.iter().all(|r| &r.order_id == order_id));
    assert_eq!(responses.iter().filter(|r| !r.replayed).count(), 1);
    assert_eq!(cluster.order_rows(), 1);
    assert_eq!(
        cluster.balance("ACC-0004", CASH_ASSET).await,
        (DEMO_CASH - 35_000, 35_000)
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_releases_once() {
    let cluster = Cluster::start().await;
    let placed = cluster.place(0, "ACC-0005", buy("c-1", 1_000, 3)).await;
    assert_eq!(code(placed.code), Code::Ok);
    assert_eq!(cluster.balance("ACC-0005", CASH_ASSET).await.1, 3_000);
    let canceled = cluster.cancel(1, "ACC-0005", &placed.order_id).await;
    assert_eq!(code(canceled.code), Code::Ok, "{canceled:?}");
    assert_eq!(status(canceled.status), OrderStatus::Canceled);
    cluster.eventually_reserved("ACC-0005", CASH_ASSET, 0).await;
    let again = cluster.cancel(0, "ACC-0005", &placed.order_id).await;
    assert_eq!(code(again.code), Code::Ok);
    assert_eq!(status(again.status), OrderStatus::Canceled);
    assert_eq!(
        cluster.balance("ACC-0005", CASH_ASSET).await,
        (DEMO_CASH, 0)
    );
    assert_eq!(cluster.pending_release_rows(), 0);
    let queried = cluster.query(0, "ACC-0005", &placed.order_id).await;
    assert_eq!(status(queried.order.unwrap().status), OrderStatus::Canceled);
    // Replaying the original place reports the order's current state.
    let replay = cluster.place(1, "ACC-0005", buy("c-1", 1_000, 3)).await;
    assert!(replay.replayed);
    assert_eq!(status(replay.status), OrderStatus::Canceled);
    assert_eq!(
        cluster.balance("ACC-0005", CASH_ASSET).await,
        (DEMO_CASH, 0)
    );

    // Concurrent cancels on both servers: both OK, one release.
    let placed = cluster.place(0, "ACC-0005", buy("c-2", 10, 10)).await;
    let (a, b) = tokio::join!(
        cluster.cancel(0, "ACC-0005", &placed.order_id),
        cluster.cancel(1, "ACC-0005", &placed.order_id)
    );
    for r in [a, b] {
        assert_eq!(
            (code(r.code), status(r.status)),
            (Code::Ok, OrderStatus::Canceled)
        );
    }
    cluster.eventually_reserved("ACC-0005", CASH_ASSET, 0).await;
    assert_eq!(
        cluster.balance("ACC-0005", CASH_ASSET).await,
        (DEMO_CASH, 0)
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_and_foreign_orders() {
    let cluster = Cluster::start().await;
    let placed = cluster.place(0, "ACC-0006", buy("mine", 10, 1)).await;
    assert_eq!(code(placed.code), Code::Ok);
    assert_eq!(
        code(cluster.cancel(1, "ACC-0006", "no-such-order").await.code),
        Code::NotFound
    );
    assert_eq!(
        code(cluster.query(1, "ACC-0006", "no-such-order").await.code),
        Code::NotFound
    );
    assert_eq!(
        code(cluster.query(1, "ACC-0006", "").await.code),
        Code::InvalidRequest
    );
    assert_eq!(
        code(cluster.cancel(1, "ACC-0006", "").await.code),
        Code::InvalidRequest
    );
    // Another account's order is answered exactly like a missing one, so
    // the answer does not tell whether the order id exists.
    let missing_cancel = cluster.cancel(0, "ACC-0007", "no-such-order").await;
    let foreign_cancel = cluster.cancel(0, "ACC-0007", &placed.order_id).await;
    assert_eq!(code(foreign_cancel.code), Code::NotFound);
    assert_eq!(foreign_cancel.message, missing_cancel.message);
    assert_eq!(foreign_cancel.status, missing_cancel.status);
    let missing_query = cluster.query(1, "ACC-0007", "no-such-order").await;
    let foreign_query = cluster.query(1, "ACC-0007", &placed.order_id).await;
    assert_eq!(code(foreign_query.code), Code::NotFound);
    assert_eq!(foreign_query.message, missing_query.message);
    assert!(foreign_query.order.is_none());
    // The foreign cancel changed nothing.
    let mine = cluster.query(0, "ACC-0006", &placed.order_id).await;
    assert_eq!(status(mine.order.unwrap().status), OrderStatus::Accepted);
    assert_eq!(cluster.balance("ACC-0006", CASH_ASSET).await.1, 10);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn account_service_down_then_back() {
    let mut cluster = Cluster::start().await;
    // Warm up the connection so the outage is a real disconnect.
    assert_eq!(
        code(cluster.place(0, "ACC-0008", buy("warm", 1, 1)).await.code),
        Code::Ok
    );
    cluster.stop_account().await;
    for server in 0..2 {
        let down = cluster
            .place(server, "ACC-0008", buy("during-outage", 100, 2))
            .await;
        assert_eq!(code(down.code), Code::ServiceUnavailable, "{down:?}");
        assert!(down.message.contains("account service"), "{}", down.message);
    }
    assert_eq!(cluster.order_rows(), 1);
    cluster.restart_account().await;
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    let ok = loop {
        let resp = cluster
            .place(1, "ACC-0008", buy("during-outage", 100, 2))
            .await;
        if code(resp.code) != Code::ServiceUnavailable || tokio::time::Instant::now() > deadline {
            break resp;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(code(ok.code), Code::Ok, "{ok:?}");
    assert_eq!(cluster.order_rows(), 2);
    assert_eq!(cluster.balance("ACC-0008", CASH_ASSET).await.1, 201);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_during_outage_is_released_in_background() {
    let mut cluster = Cluster::start().await;
    let placed = cluster.place(0, "ACC-0009", buy("c", 1_000, 5)).await;
    assert_eq!(code(placed.code), Code::Ok);
    cluster.stop_account().await;
    let canceled = cluster.cancel(1, "ACC-0009", &placed.order_id).await;
    assert_eq!(code(canceled.code), Code::Ok, "{canceled:?}");
    assert_eq!(status(canceled.status), OrderStatus::Canceled);
    assert_eq!(cluster.pending_release_rows(), 1);
    cluster.restart_account().await;
    cluster.eventually_reserved("ACC-0009", CASH_ASSET, 0).await;
    assert_eq!(
        cluster.balance("ACC-0009", CASH_ASSET).await,
        (DEMO_CASH, 0)
    );
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    while cluster.pending_release_rows() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pending release never completed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.shutdown().await;
}
