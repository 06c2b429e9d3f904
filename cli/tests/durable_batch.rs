//! The batched durable path (issue 14).
//!
//! * A batch of places answers every order exactly as placing them one at
//!   a time would: a property test against the one-at-a-time path, on the
//!   embedded SQLite stores and on PostgreSQL. Two independent systems,
//!   each a real account service (gRPC on loopback) and an order store: the
//!   same history is placed and canceled one call at a time on both, then
//!   the same list of places goes to system A as ONE batch
//!   (`place_batch_now`) and to system B one `PlaceOrder` call after the
//!   other. The lists mix accepted orders, insufficient balances (two large
//!   sells or buys of one account exceed its demo holdings), duplicates (a
//!   request_id repeated, before or inside the batch), conflicts (a
//!   request_id reused with other parameters) and retries of canceled
//!   orders. Answers must match one for one (order ids compared by the
//!   order they name), and so must the balances and the stored orders.
//! * SIGKILL of the order service, or of the account service, in the middle
//!   of a burst of concurrent places (the lanes are running batches) loses
//!   no acknowledged order and applies no reservation twice: after a
//!   restart and a retry of every request whose outcome its client did not
//!   learn, every acknowledged order is stored under its acknowledged id,
//!   no request is stored twice, every accepted order holds exactly one
//!   reservation of its amount and every balance adds up.

mod durable_support;
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use durable_support::pg::{assert_orders_backed, PgServer};
use durable_support::stack::order_service;
use hts_account_client::AccountClient;
use hts_account_service::AccountServiceConfig;
use hts_order_core::service::{place_batch_now, OrderContext, OrderGrpc};
use hts_order_core::store::{open_store, StoreOptions, StoredOrder};
use hts_proto::v1::order_service_client::OrderServiceClient;
use hts_proto::v1::order_service_server::OrderService;
use hts_proto::v1::{
    CancelOrderCall, CancelOrderRequest, Code, OrderType, PlaceOrderCall, PlaceOrderRequest,
    PlaceOrderResponse, Side,
};
use proptest::prelude::*;
use support::Proc;

// ---------------------------------------------------------------------------
// A batch answers like one at a time.

/// One system under test: an account service and an order store.
struct System {
    _dir: tempfile::TempDir,
    ctx: OrderContext,
    grpc: OrderGrpc,
    accounts: AccountClient,
}

async fn account_service(store_url: String) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = AccountServiceConfig {
        seed_demo: true,
        db_pool_size: 4,
        init: true,
        ..AccountServiceConfig::new(store_url)
    };
    tokio::spawn(hts_account_service::serve(
        listener,
        config,
        std::future::pending(),
    ));
    addr
}

impl System {
    /// A system on SQLite files, or on the PostgreSQL database `pg_url`.
    async fn start(pg_url: Option<String>) -> System {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = |file: &str| format!("sqlite:{}", dir.path().join(file).display());
        let (account_url, order_url) = match pg_url {
            Some(url) => (url.clone(), url),
            None => (sqlite("accounts.db"), sqlite("orders.db")),
        };
        let addr = account_service(account_url).await;
        let accounts = AccountClient::connect_lazy(&format!("http://{addr}")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while accounts.get_account("ACC-0001").await.is_err() {
            assert!(Instant::now() < deadline, "account service not up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let store = open_store(&order_url, StoreOptions::default())
            .await
            .unwrap();
        let ctx = OrderContext {
            store,
            accounts: accounts.clone(),
        };
        let grpc = OrderGrpc::new(ctx.clone(), 2);
        System {
            _dir: dir,
            ctx,
            grpc,
            accounts,
        }
    }

    async fn place_one(&self, call: PlaceOrderCall) -> PlaceOrderResponse {
        self.grpc
            .place_order(tonic::Request::new(call))
            .await
            .unwrap()
            .into_inner()
    }

    async fn cancel_one(&self, account: &str, order_id: &str) {
        let call = CancelOrderCall {
            account_id: account.to_owned(),
            request: Some(CancelOrderRequest {
                request_id: "cancel".to_owned(),
                order_id: order_id.to_owned(),
            }),
            correlation_id: 0,
        };
        self.grpc
            .cancel_order(tonic::Request::new(call))
            .await
            .unwrap();
    }

    /// (asset, available, reserved) of `account`.
    async fn balances(&self, account: &str) -> Vec<(String, i64, i64)> {
        let r = self.accounts.get_account(account).await.unwrap();
        r.balances
            .into_iter()
            .map(|b| (b.asset, b.available, b.reserved))
            .collect()
    }
}

/// The parameters of one generated place.
#[derive(Debug, Clone)]
struct Place {
    account: usize,
    request: usize,
    sell: bool,
    large: bool,
    price: i64,
}

/// A history step: a place, or a cancel of the order a request placed.
#[derive(Debug, Clone)]
enum Step {
    Place(Place),
    Cancel { account: usize, request: usize },
}

fn place_strategy() -> impl Strategy<Value = Place> {
    (0..2usize, 0..5usize, any::<bool>(), any::<bool>(), 1..3i64).prop_map(
        |(account, request, sell, large, price)| Place {
            account,
            request,
            sell,
            large,
            price,
        },
    )
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => place_strategy().prop_map(Step::Place),
        1 => (0..2usize, 0..5usize)
            .prop_map(|(account, request)| Step::Cancel { account, request }),
    ]
}

fn account_name(base: usize, account: usize) -> String {
    format!("ACC-{:04}", base + account)
}

fn call(base: usize, p: &Place) -> PlaceOrderCall {
    // Large orders: 600,000 shares, or 600,000 × 1,000..2,000 of cash; two
    // of them exceed the demo holdings (1e6 shares, 1e9 cash).
    let quantity = if p.large { 600_000 } else { 1 };
    let price = if p.large && !p.sell {
        1_000 * p.price
    } else {
        p.price
    };
    PlaceOrderCall {
        account_id: account_name(base, p.account),
        request: Some(PlaceOrderRequest {
            request_id: format!("r{}", p.request),
            account_id: String::new(),
            symbol: "005930".into(),
            side: if p.sell { Side::Sell } else { Side::Buy } as i32,
            order_type: OrderType::Limit as i32,
            price,
            quantity,
        }),
        correlation_id: 0,
    }
}

/// An answer with order ids replaced by the key of the order they name.
fn normalized(r: &PlaceOrderResponse, names: &HashMap<String, String>) -> String {
    let mut message = r.message.clone();
    for (id, key) in names {
        message = message.replace(id.as_str(), key);
    }
    let order = names.get(&r.order_id).cloned().unwrap_or_default();
    format!(
        "code={} status={} replayed={} request={} order={order} message={message}",
        r.code, r.status, r.replayed, r.request_id
    )
}

/// Runs `history` one call at a time on `sys`, naming the orders it sees.
async fn run_history(
    sys: &System,
    base: usize,
    history: &[Step],
    names: &mut HashMap<String, String>,
) {
    let mut placed: HashMap<(usize, usize), String> = HashMap::new();
    for step in history {
        match step {
            Step::Place(p) => {
                let r = sys.place_one(call(base, p)).await;
                if !r.order_id.is_empty() {
                    names.insert(r.order_id.clone(), format!("{}/r{}", p.account, p.request));
                    placed.insert((p.account, p.request), r.order_id);
                }
            }
            Step::Cancel { account, request } => {
                if let Some(order_id) = placed.get(&(*account, *request)) {
                    sys.cancel_one(&account_name(base, *account), order_id)
                        .await;
                }
            }
        }
    }
}

/// Checks one case on fresh accounts `base` and `base + 1`.
async fn check_case(a: &System, b: &System, base: usize, history: &[Step], batch: &[Place]) {
    let (mut names_a, mut names_b) = (HashMap::new(), HashMap::new());
    run_history(a, base, history, &mut names_a).await;
    run_history(b, base, history, &mut names_b).await;
    let calls: Vec<PlaceOrderCall> = batch.iter().map(|p| call(base, p)).collect();
    let batched = place_batch_now(&a.ctx, calls.clone()).await;
    let mut single = Vec::new();
    for c in calls {
        single.push(b.place_one(c).await);
    }
    assert_eq!(batched.len(), batch.len());
    for (p, (ra, rb)) in batch.iter().zip(batched.iter().zip(&single)) {
        let key = format!("{}/r{}", p.account, p.request);
        if !ra.order_id.is_empty() {
            names_a
                .entry(ra.order_id.clone())
                .or_insert_with(|| key.clone());
        }
        if !rb.order_id.is_empty() {
            names_b.entry(rb.order_id.clone()).or_insert(key);
        }
    }
    for (i, (ra, rb)) in batched.iter().zip(&single).enumerate() {
        assert_eq!(
            normalized(ra, &names_a),
            normalized(rb, &names_b),
            "item {i} of batch {batch:?} after history {history:?}"
        );
    }
    let view = |o: Option<StoredOrder>| o.map(|o| (o.status, o.code, o.fingerprint));
    for account in 0..2 {
        let name = account_name(base, account);
        assert_eq!(a.balances(&name).await, b.balances(&name).await, "{name}");
        for request in 0..5 {
            let rid = format!("r{request}");
            let sa = a.ctx.store.find_by_request(&name, &rid).await.unwrap();
            let sb = b.ctx.store.find_by_request(&name, &rid).await.unwrap();
            assert_eq!(view(sa), view(sb), "{name}/{rid}");
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The fixed case that holds every kind of answer at least once.
fn every_kind() -> (Vec<Step>, Vec<Place>) {
    let p = |account, request, sell, large, price| Place {
        account,
        request,
        sell,
        large,
        price,
    };
    let history = vec![
        Step::Place(p(0, 0, false, false, 1)),
        Step::Place(p(0, 1, true, true, 1)),
        Step::Cancel {
            account: 0,
            request: 1,
        },
        Step::Place(p(1, 2, true, true, 1)),
    ];
    let batch = vec![
        p(0, 0, false, false, 1), // replay of a stored order
        p(0, 0, false, false, 2), // conflict with it
        p(0, 1, true, true, 1),   // retry of a canceled order
        p(1, 3, true, true, 1),   // insufficient: a second 600,000-share sell
        p(1, 2, true, true, 1),   // replay of the accepted first sell
        p(0, 4, false, true, 1),  // accepted
        p(0, 4, false, true, 1),  // its duplicate inside the batch
        p(0, 3, false, true, 2),  // insufficient: 1.2e9 of cash
        p(0, 4, false, true, 2),  // conflict inside the batch
    ];
    (history, batch)
}

/// The property on two systems made by `start`, with `cases` random cases
/// after the fixed one.
fn batch_property(cases: u32, start: impl std::future::Future<Output = (System, System)>) {
    let rt = runtime();
    let (a, b) = rt.block_on(start);
    // A fresh pair of the 1,000 demo accounts per case.
    let next = AtomicUsize::new(1);
    let (history, batch) = every_kind();
    rt.block_on(check_case(
        &a,
        &b,
        next.fetch_add(2, Ordering::SeqCst),
        &history,
        &batch,
    ));
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(
        history in proptest::collection::vec(step_strategy(), 0..8),
        batch in proptest::collection::vec(place_strategy(), 1..16),
    )| {
        let base = next.fetch_add(2, Ordering::SeqCst);
        prop_assume!(base < 1000);
        rt.block_on(check_case(&a, &b, base, &history, &batch));
    });
}

#[test]
fn a_batch_answers_like_one_at_a_time_on_sqlite() {
    batch_property(64, async {
        (System::start(None).await, System::start(None).await)
    });
}

#[test]
fn a_batch_answers_like_one_at_a_time_on_postgres() {
    let pg = PgServer::start();
    let rt = runtime();
    let db = rt.block_on(pg.client());
    for name in ["batched", "single"] {
        rt.block_on(db.batch_execute(&format!("CREATE DATABASE {name}")))
            .unwrap();
    }
    let url = |name: &str| format!("postgres://postgres@127.0.0.1:{}/{name}", pg.port);
    batch_property(32, async {
        (
            System::start(Some(url("batched"))).await,
            System::start(Some(url("single"))).await,
        )
    });
}

// ---------------------------------------------------------------------------
// SIGKILL in the middle of batches.

/// Seeded CASH of every demo account.
const SEEDED_CASH: i64 = 1_000_000_000;
/// Price of every order of the burst (quantity 1): its reservation.
const PRICE: i64 = 100;
/// Accounts of the burst.
const ACCOUNTS: usize = 16;
/// Concurrent callers of the burst.
const CALLERS: usize = 64;

fn burst_account(i: usize) -> String {
    format!("ACC-{:04}", 201 + i % ACCOUNTS)
}

fn burst_call(caller: usize, n: usize) -> PlaceOrderCall {
    PlaceOrderCall {
        account_id: burst_account(caller),
        request: Some(PlaceOrderRequest {
            request_id: format!("k{caller}-{n}"),
            account_id: String::new(),
            symbol: "005930".into(),
            side: Side::Buy as i32,
            order_type: OrderType::Limit as i32,
            price: PRICE,
            quantity: 1,
        }),
        correlation_id: 0,
    }
}

fn key(call: &PlaceOrderCall) -> String {
    let r = call.request.as_ref().map_or("", |r| r.request_id.as_str());
    format!("{}/{r}", call.account_id)
}

/// What the burst's clients learned.
#[derive(Default)]
struct Learned {
    /// Acknowledged OK: key → order id.
    acked: HashMap<String, String>,
    /// Sent, outcome unknown to the client (transport error, timeout,
    /// SERVICE_UNAVAILABLE): to be retried with the same request_id.
    unknown: Vec<PlaceOrderCall>,
}

async fn client(url: &str) -> OrderServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .unwrap()
        .timeout(Duration::from_secs(5))
        .connect_lazy();
    OrderServiceClient::new(channel)
}

/// Places with the same request_id until a definitive answer (or `budget`).
async fn place_until_definitive(
    url: &str,
    call: &PlaceOrderCall,
    budget: Duration,
) -> Option<PlaceOrderResponse> {
    let deadline = Instant::now() + budget;
    let mut c = client(url).await;
    while Instant::now() < deadline {
        if let Ok(r) = c.place_order(call.clone()).await {
            let r = r.into_inner();
            if r.code != Code::ServiceUnavailable as i32 {
                return Some(r);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// `CALLERS` concurrent callers placing distinct orders back to back on
/// `url` until `stop`; every request ends acknowledged or unknown.
async fn burst(url: String, stop: Arc<std::sync::atomic::AtomicBool>) -> Learned {
    let tasks: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let (url, stop) = (url.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut c = client(&url).await;
                let mut learned = Learned::default();
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let call = burst_call(caller, n);
                    n += 1;
                    match c.place_order(call.clone()).await {
                        Ok(r) if r.get_ref().code == Code::Ok as i32 => {
                            learned.acked.insert(key(&call), r.into_inner().order_id);
                        }
                        Ok(r) => {
                            assert_eq!(
                                r.get_ref().code,
                                Code::ServiceUnavailable as i32,
                                "{:?}",
                                r.get_ref()
                            );
                            learned.unknown.push(call);
                        }
                        Err(_) => {
                            learned.unknown.push(call);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                learned
            })
        })
        .collect();
    let mut all = Learned::default();
    for t in tasks {
        let l = t.await.unwrap();
        all.acked.extend(l.acked);
        all.unknown.extend(l.unknown);
    }
    all
}

/// Which process the test kills.
#[derive(Clone, Copy, Debug)]
enum Victim {
    OrderService,
    AccountService,
}

async fn sigkill_mid_batch(victim: Victim) {
    let pg = PgServer::start();
    let url = pg.url();
    let account_args = |listen: &str| {
        vec![
            "account-service".to_owned(),
            "--init".to_owned(),
            "--listen".to_owned(),
            listen.to_owned(),
            "--store".to_owned(),
            url.clone(),
            "--db-pool-size".to_owned(),
            "8".to_owned(),
            "--seed-demo".to_owned(),
        ]
    };
    let mut account = Proc::spawn(&account_args("127.0.0.1:0"));
    let account_addr = account.addr.to_string();
    let mut orders = order_service(&url, &account.url(), &[]);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn(burst(orders.url(), Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    match victim {
        Victim::OrderService => {
            orders.kill();
            tokio::time::sleep(Duration::from_millis(300)).await;
            stop.store(true, Ordering::SeqCst);
            orders = order_service(&url, &account.url(), &[]);
        }
        Victim::AccountService => {
            account.kill();
            tokio::time::sleep(Duration::from_millis(300)).await;
            // Same address: the order service's client reconnects to it.
            account = Proc::spawn(&account_args(&account_addr));
            tokio::time::sleep(Duration::from_millis(500)).await;
            stop.store(true, Ordering::SeqCst);
        }
    }
    let learned = load.await.unwrap();
    assert!(
        !learned.acked.is_empty(),
        "orders were acknowledged before the kill"
    );
    // The clients retry what they did not learn, with the same request_id.
    let order_url = orders.url();
    let retried = futures::future::join_all(
        learned
            .unknown
            .iter()
            .map(|call| place_until_definitive(&order_url, call, Duration::from_secs(60))),
    )
    .await;
    for (call, answer) in learned.unknown.iter().zip(&retried) {
        let answer = answer
            .as_ref()
            .unwrap_or_else(|| panic!("{} never answered", key(call)));
        assert_eq!(answer.code, Code::Ok as i32, "{}: {answer:?}", key(call));
    }
    let db = pg.client().await;
    let stored: HashMap<String, (String, String)> = db
        .query(
            "SELECT account_id || '/' || request_id, order_id, status FROM orders",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    for (k, order_id) in &learned.acked {
        assert_eq!(
            stored.get(k).map(|s| &s.0),
            Some(order_id),
            "acknowledged order {k} lost or stored under another id"
        );
    }
    assert_orders_backed(&db).await;
    for i in 0..ACCOUNTS {
        let account = burst_account(i);
        let row = db
            .query_one(
                "SELECT b.available, b.reserved,
                    (SELECT coalesce(sum(amount), 0)::int8 FROM reservations
                     WHERE account_id = $1 AND asset = 'CASH' AND status = 'HELD'),
                    (SELECT count(*) FROM orders WHERE account_id = $1 AND status = 'ACCEPTED')
                 FROM balances b WHERE b.account_id = $1 AND b.asset = 'CASH'",
                &[&account],
            )
            .await
            .unwrap();
        let (available, reserved, held, accepted): (i64, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        assert_eq!(available + reserved, SEEDED_CASH, "{account}");
        assert_eq!(reserved, held, "{account}: reserved vs HELD reservations");
        assert_eq!(
            reserved,
            PRICE * accepted,
            "{account}: every accepted order reserved exactly once"
        );
    }
    eprintln!(
        "{victim:?} killed mid-batch: {} acknowledged, {} retried, {} stored",
        learned.acked.len(),
        learned.unknown.len(),
        stored.len()
    );
    drop(account);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_order_service_mid_batch_loses_nothing_and_reserves_once() {
    sigkill_mid_batch(Victim::OrderService).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_account_service_mid_batch_loses_nothing_and_reserves_once() {
    sigkill_mid_batch(Victim::AccountService).await;
}
