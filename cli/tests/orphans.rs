//! Funds are never locked forever (issue 17): a reservation never outlives
//! its order's fate.
//!
//! * SIGKILL of the order service or of the account service at a random
//!   point of a 1,000-order burst, restart, and NO client retry: within the
//!   stated bound (`OrderServiceConfig::orphan_bound`, 9 s with the
//!   defaults, asserted ≤ 10 s after the services are back) no HELD
//!   reservation is left without the ACCEPTED order that owns it, every
//!   balance equals the opening balance minus what stored orders reserve,
//!   every acknowledged order is stored under its id and no request_id is
//!   stored twice. 40 rounds on one system, alternating the victim (20 each).
//! * A client re-sending a request_id: before the grace, its order is
//!   placed on the reservation left behind; after the sweep released it,
//!   it gets the tombstone's definite answer. Either way one order and one
//!   reservation.

mod durable_support;
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use durable_support::pg::{assert_orders_backed, count, PgServer};
use durable_support::stack::order_service;
use hts_account_client::AccountClient;
use hts_proto::v1::order_service_client::OrderServiceClient;
use hts_proto::v1::{
    Code, OrderStatus, OrderType, PlaceOrderCall, PlaceOrderRequest, PlaceOrderResponse,
    ReserveOutcome, ReserveRequest, Side,
};
use support::Proc;

/// Seeded CASH of every demo account.
const SEEDED_CASH: i64 = 1_000_000_000;
/// Price of every order (quantity 1): its reservation.
const PRICE: i64 = 100;
/// Accounts of the bursts.
const ACCOUNTS: usize = 16;
/// Concurrent callers of a burst.
const CALLERS: usize = 50;
/// Orders of one burst.
const BURST: usize = 1000;
/// The stated bound after the services are back.
const BOUND: Duration = Duration::from_secs(10);
/// Rounds of kill and recovery: 20 SIGKILLs of each service (issue 17).
const ROUNDS: usize = 40;

fn account_of(i: usize) -> String {
    format!("ACC-{:04}", 401 + i % ACCOUNTS)
}

fn call(account: &str, request_id: &str) -> PlaceOrderCall {
    PlaceOrderCall {
        account_id: account.to_owned(),
        request: Some(PlaceOrderRequest {
            request_id: request_id.to_owned(),
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

async fn client(url: &str) -> OrderServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .unwrap()
        .timeout(Duration::from_secs(5))
        .connect_lazy();
    OrderServiceClient::new(channel)
}

/// A cheap pseudo-random number (the kill points differ run to run).
fn random_below(n: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    u64::from(nanos.wrapping_mul(2_654_435_761)) % n
}

/// `BURST` distinct orders of round `round` from `CALLERS` concurrent
/// callers; returns what was acknowledged (key → order id). No retries.
async fn burst(url: String, round: usize) -> HashMap<String, String> {
    let per = BURST / CALLERS;
    let tasks: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut c = client(&url).await;
                let account = account_of(caller);
                let mut acked = HashMap::new();
                for n in 0..per {
                    let request_id = format!("r{round}-{caller}-{n}");
                    if let Ok(r) = c.place_order(call(&account, &request_id)).await {
                        let r = r.into_inner();
                        if r.code == Code::Ok as i32 {
                            acked.insert(format!("{account}/{request_id}"), r.order_id);
                        }
                    }
                }
                acked
            })
        })
        .collect();
    let mut all = HashMap::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// HELD order reservations no ACCEPTED order owns.
const ORPHANS: &str = "SELECT count(*) FROM reservations r
    WHERE r.status = 'HELD' AND r.request_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM orders o WHERE o.account_id = r.account_id
        AND o.request_id = r.request_id AND o.reservation_id = r.reservation_id
        AND o.status = 'ACCEPTED')";

/// Waits until no orphan is left, at most `bound` after `start`; the time
/// since `start` it took.
async fn orphans_gone(db: &tokio_postgres::Client, start: Instant, bound: Duration) -> Duration {
    loop {
        let left = count(db, ORPHANS).await;
        if left == 0 {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < bound,
            "{left} HELD reservations without an order {bound:?} after the services came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The invariants of the stores after recovery.
async fn check_ledger(db: &tokio_postgres::Client, acked: &HashMap<String, String>) {
    assert_eq!(count(db, ORPHANS).await, 0, "an orphan reservation");
    let stored: HashMap<String, String> = db
        .query(
            "SELECT account_id || '/' || request_id, order_id FROM orders",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (k, order_id) in acked {
        assert_eq!(
            stored.get(k),
            Some(order_id),
            "acknowledged order {k} lost or stored under another id"
        );
    }
    assert_orders_backed(db).await;
    for i in 0..ACCOUNTS {
        let account = account_of(i);
        let row = db
            .query_one(
                "SELECT b.available, b.reserved,
                    (SELECT coalesce(sum(price * quantity), 0)::int8 FROM orders
                     WHERE account_id = $1 AND status = 'ACCEPTED')
                 FROM balances b WHERE b.account_id = $1 AND b.asset = 'CASH'",
                &[&account],
            )
            .await
            .unwrap();
        let (available, reserved, ordered): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(available, SEEDED_CASH - ordered, "{account}: available");
        assert_eq!(reserved, ordered, "{account}: reserved");
    }
}

fn account_args(url: &str, listen: &str) -> Vec<String> {
    [
        "account-service",
        "--init",
        "--listen",
        listen,
        "--store",
        url,
        "--db-pool-size",
        "8",
        "--seed-demo",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_of_bursts_leaves_no_reservation_without_its_order() {
    let pg = PgServer::start();
    let url = pg.url();
    let mut account = Proc::spawn(&account_args(&url, "127.0.0.1:0"));
    let account_addr = account.addr.to_string();
    let mut orders = order_service(&url, &account.url(), &[]);
    let db = pg.client().await;
    let mut acked_all = HashMap::new();
    let started = Instant::now();
    for round in 0..ROUNDS {
        let kill_order_service = round % 2 == 0;
        let load = tokio::spawn(burst(orders.url(), round));
        let kill_after = Duration::from_millis(30 + random_below(400));
        tokio::time::sleep(kill_after).await;
        if kill_order_service {
            orders.kill();
            orders = order_service(&url, &account.url(), &[]);
        } else {
            account.kill();
            // Same address: the order service's client reconnects to it.
            account = Proc::spawn(&account_args(&url, &account_addr));
        }
        // Both services are back (each printed its listening line).
        let back = Instant::now();
        let acked = load.await.unwrap();
        let took = orphans_gone(&db, back, BOUND).await;
        let tombstones = count(
            &db,
            "SELECT count(*) FROM orders WHERE fingerprint = 'abandoned:orphan-reservation-released'",
        )
        .await;
        check_ledger(&db, &acked).await;
        eprintln!(
            "round {round}: killed the {} after {kill_after:?}: {} acknowledged, \
             no orphan {took:?} after the restart, {tombstones} tombstones so far",
            if kill_order_service {
                "order service"
            } else {
                "account service"
            },
            acked.len(),
        );
        acked_all.extend(acked);
    }
    check_ledger(&db, &acked_all).await;
    let tombstones = count(
        &db,
        "SELECT count(*) FROM orders WHERE fingerprint = 'abandoned:orphan-reservation-released'",
    )
    .await;
    assert!(
        tombstones > 0,
        "no kill left an orphan: the test proved nothing"
    );
    eprintln!(
        "{ROUNDS} rounds in {:?}: {} acknowledged, {tombstones} orphans released",
        started.elapsed(),
        acked_all.len()
    );
    drop(account);
}

async fn place(url: &str, account: &str, request_id: &str) -> PlaceOrderResponse {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client(url)
            .await
            .place_order(call(account, request_id))
            .await
        {
            let r = r.into_inner();
            if r.code != Code::ServiceUnavailable as i32 {
                return r;
            }
        }
        assert!(Instant::now() < deadline, "{request_id} never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_resent_after_its_orphan_was_released_has_one_order_and_one_reservation() {
    let pg = PgServer::start();
    let url = pg.url();
    let account = Proc::spawn(&account_args(&url, "127.0.0.1:0"));
    let orders = order_service(&url, &account.url(), &[]);
    let db = pg.client().await;
    let ledger = AccountClient::connect_lazy(&account.url()).unwrap();
    let acc = "ACC-0501";
    // What a place killed between its reservation and its commit leaves.
    let orphan = |request_id: &str| ReserveRequest {
        reservation_id: format!("place:{acc}:{request_id}"),
        account_id: acc.to_owned(),
        asset: "CASH".to_owned(),
        amount: PRICE,
        request_id: request_id.to_owned(),
    };
    let outcomes = ledger
        .reserve_batch(vec![orphan("early"), orphan("late")])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [ReserveOutcome::Reserved, ReserveOutcome::Reserved]
    );
    let created = Instant::now();
    // Re-sent within the grace: placed on the reservation left behind.
    let early = place(&orders.url(), acc, "early").await;
    assert_eq!(early.code, Code::Ok as i32, "{early:?}");
    // Not re-sent in time: the sweep claims and releases it.
    let took = orphans_gone(&db, created, BOUND).await;
    let late = place(&orders.url(), acc, "late").await;
    assert_eq!(late.code, Code::TooLate as i32, "{late:?}");
    assert_eq!(late.status, OrderStatus::Rejected as i32);
    assert!(late.message.starts_with("abandoned"), "{late:?}");
    // The same definite answer on every re-send.
    let again = place(&orders.url(), acc, "late").await;
    assert_eq!((again.code, &again.order_id), (late.code, &late.order_id));
    for (request_id, order_status, reservation_status) in [
        ("early", "ACCEPTED", "HELD"),
        ("late", "REJECTED", "RELEASED"),
    ] {
        let rows = db
            .query(
                "SELECT o.status, r.status FROM orders o JOIN reservations r
                 ON r.reservation_id = o.reservation_id
                 WHERE o.account_id = $1 AND o.request_id = $2",
                &[&acc, &request_id],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "{request_id}: one order, one reservation");
        let (o, r): (String, String) = (rows[0].get(0), rows[0].get(1));
        assert_eq!((o.as_str(), r.as_str()), (order_status, reservation_status));
    }
    let balance = ledger.get_account(acc).await.unwrap();
    let cash = balance.balances.iter().find(|b| b.asset == "CASH").unwrap();
    assert_eq!(
        (cash.available, cash.reserved),
        (SEEDED_CASH - PRICE, PRICE)
    );
    eprintln!("orphan released {took:?} after its reservation was made");
}
