//! Issue 12 over real processes (account service, three order services
//! sharing one SQLite store as the demo does, a gateway): overload and
//! bursts are refused at the edge, never turned into TIMEOUTs or open
//! breakers, other accounts and cancels are still served, and service is
//! back within a second of the overload ending.
//!
//! Debug builds on a shared 2-core machine serve a few hundred orders per
//! second with a latency tail of hundreds of milliseconds, so the deadline
//! is 2 s and the offered load is a multiple of the
//! capacity measured first in the same test, sent open loop (each order at
//! its due time, whatever the answers); the numbers against the release
//! build are in docs/benchmarks.md (`hts-bench compare --scenarios
//! overload`).

mod resilience_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use hts_client::Client;
use hts_proto::v1::{CancelOrderRequest, Code};
use resilience_support::{
    assert_exactly_once, backends_by_url, by_code, num, order, place_once, Answer, Cluster,
};

const DEADLINE_MS: &str = "2000";

/// The tests measure capacity and goodput: one at a time, not four systems
/// sharing two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn cluster() -> Cluster {
    Cluster::start(
        &["", "", ""],
        &[
            "--request-timeout-ms",
            DEADLINE_MS,
            "--account-rate-per-sec",
            "0",
        ],
    )
}

/// `n` orders of `account` sent at once, pipelined on one connection.
async fn basket(client: &Client, prefix: &str, n: usize) -> Vec<Answer> {
    join_all((0..n).map(|i| {
        let client = client.clone();
        let id = format!("{prefix}-{i}");
        async move { place_once(&client, &id).await }
    }))
    .await
}

/// Places orders of `prefix` one after another every `every` until `until`.
async fn trickle(client: Client, prefix: String, every: Duration, until: Instant) -> Vec<Answer> {
    let mut out = Vec::new();
    let mut n = 0;
    while Instant::now() < until {
        out.push(place_once(&client, &format!("{prefix}-{n}")).await);
        n += 1;
        tokio::time::sleep(every).await;
    }
    out
}

/// Keeps `concurrency` orders of `prefix` in flight on `client` until `until`.
async fn flood(client: Client, prefix: String, concurrency: usize, until: Instant) -> Vec<Answer> {
    let workers = (0..concurrency).map(|w| {
        let client = client.clone();
        let prefix = prefix.clone();
        tokio::spawn(async move {
            let mut out = Vec::new();
            let mut n = 0;
            while Instant::now() < until {
                out.push(place_once(&client, &format!("{prefix}-{w}-{n}")).await);
                n += 1;
            }
            out
        })
    });
    let mut all = Vec::new();
    for w in join_all(workers).await {
        all.extend(w.expect("flood worker"));
    }
    all
}

/// Offers `rate` orders/s of `prefix` for `for_`, open loop, spread over
/// `clients`; every answer with the time it was sent (since the start).
async fn open_loop(
    clients: &[Client],
    prefix: &str,
    rate: f64,
    for_: Duration,
) -> Vec<(Duration, Answer)> {
    let start = tokio::time::Instant::now();
    let n = (rate * for_.as_secs_f64()) as usize;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            let id = format!("{prefix}-{i}");
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            tokio::spawn(async move {
                tokio::time::sleep_until(due).await;
                (due - start, place_once(&client, &id).await)
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.expect("order task"));
    }
    out
}

fn count(answers: &[Answer], code: Code) -> usize {
    answers.iter().filter(|a| a.code == code as i32).count()
}

/// Every refusal says nothing was done and when to retry.
fn assert_definite(answers: &[Answer], what: &str) {
    for a in answers {
        match Code::try_from(a.code) {
            Ok(Code::Ok) => {}
            Ok(Code::ServiceUnavailable | Code::RateLimited) => {
                assert!(a.message.contains("not placed"), "{what}: {a:?}");
                assert!(a.message.contains("retry in"), "{what}: {a:?}");
            }
            _ => panic!("{what}: neither placed nor refused: {a:?}"),
        }
    }
}

fn ok_ids(answers: &[Answer]) -> Vec<String> {
    answers
        .iter()
        .filter(|a| a.code == Code::Ok as i32)
        .map(|a| a.request_id.clone())
        .collect()
}

fn assert_breakers_never_opened(stats: &serde_json::Value) {
    for (url, b) in backends_by_url(stats) {
        assert_eq!(
            num(&b["breaker"], "times_opened"),
            0,
            "breaker of {url} opened under pure overload: {b}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baskets_of_500_and_5000_are_placed_or_refused_and_other_accounts_are_served() {
    let _serial = SERIAL.lock().await;
    let mut c = cluster();
    let burst = c.client("ACC-0601").await;
    let quiet = c.client("ACC-0602").await;
    // Warm up (connections, limits).
    for i in 0..20 {
        assert_eq!(
            place_once(&quiet, &format!("warm-{i}")).await.code,
            Code::Ok as i32
        );
    }
    for (n, prefix) in [(500, "b500"), (5_000, "b5000")] {
        let until = Instant::now() + Duration::from_secs(2);
        let others = tokio::spawn(trickle(
            quiet.clone(),
            format!("quiet-{prefix}"),
            Duration::from_millis(20),
            until,
        ));
        let answers = basket(&burst, prefix, n).await;
        let others = others.await.unwrap();
        let summary = format!(
            "basket {n}: {:?}; others {:?}",
            by_code(&answers),
            by_code(&others)
        );
        eprintln!("{summary}");
        assert_eq!(count(&answers, Code::Timeout), 0, "{summary}");
        assert_definite(&answers, prefix);
        assert!(count(&answers, Code::Ok) > 0, "{summary}");
        assert_eq!(count(&others, Code::Ok), others.len(), "{summary}");
    }
    assert_breakers_never_opened(&c.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_basket_stores_exactly_the_orders_answered_ok() {
    let _serial = SERIAL.lock().await;
    let c = cluster();
    let client = c.client("ACC-0603").await;
    place_once(&client, "warm").await;
    let mut answers = basket(&client, "exact", 2_000).await;
    assert_eq!(count(&answers, Code::Timeout), 0, "{:?}", by_code(&answers));
    assert_definite(&answers, "exact");
    answers.push(Answer {
        request_id: "warm".into(),
        code: Code::Ok as i32,
        latency: Duration::ZERO,
        message: String::new(),
    });
    assert_exactly_once(&c, "ACC-0603", &ok_ids(&answers));
}

/// What the cluster serves, in this run: a closed loop of 32 that keeps the
/// backends busy for 3 s; OK orders per second.
async fn capacity(c: &Cluster, account: &str) -> f64 {
    let probe = c.client(account).await;
    let started = Instant::now();
    let measured = flood(probe, "cap".into(), 32, started + Duration::from_secs(3)).await;
    count(&measured, Code::Ok) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_keeps_goodput_opens_no_breaker_and_service_is_back_within_a_second() {
    let _serial = SERIAL.lock().await;
    let mut c = cluster();
    let capacity = capacity(&c, "ACC-0610").await;
    // 8x that, open loop, from eight connections and accounts.
    let mut clients = Vec::new();
    for a in 0..8 {
        clients.push(c.client(&format!("ACC-062{a}")).await);
    }
    let run = Duration::from_secs(4);
    let over: Vec<Answer> = open_loop(&clients, "over", capacity * 8.0, run)
        .await
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    let goodput = count(&over, Code::Ok) as f64 / run.as_secs_f64();
    let summary = format!(
        "capacity {capacity:.0}/s, goodput at 8x {goodput:.0}/s, {:?}",
        by_code(&over)
    );
    eprintln!("{summary}");
    // Served orders keep within the deadline: a TIMEOUT here is a backend's
    // latency tail on a loaded machine (the gateway always leaves half the
    // deadline for the call), never more than 1 % of what was served.
    assert!(
        count(&over, Code::Timeout) * 100 <= count(&over, Code::Ok),
        "{summary}"
    );
    assert_definite(
        &over
            .iter()
            .filter(|a| a.code != Code::Timeout as i32)
            .cloned()
            .collect::<Vec<_>>(),
        "overload",
    );
    // Without load shedding the system answered 0 OK of 40,000 here.
    assert!(goodput >= 0.5 * capacity, "{summary}");
    assert_breakers_never_opened(&c.stats());
    // Right after: half the capacity is served, fully after the first second.
    let after = open_loop(&clients, "after", capacity / 2.0, Duration::from_secs(3)).await;
    let late: Vec<&Answer> = after
        .iter()
        .filter(|(sent, _)| *sent >= Duration::from_secs(1))
        .map(|(_, a)| a)
        .collect();
    let late_ok = late.iter().filter(|a| a.code == Code::Ok as i32).count();
    let all: Vec<Answer> = after.iter().map(|(_, a)| a.clone()).collect();
    assert!(
        late_ok * 100 >= late.len() * 99,
        "after the overload: {:?}",
        by_code(&all)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_are_answered_while_places_are_shed() {
    let _serial = SERIAL.lock().await;
    let c = cluster();
    let trader = c.client("ACC-0640").await;
    // Orders to cancel later.
    let mut to_cancel = HashMap::new();
    for i in 0..100 {
        let id = format!("keep-{i}");
        let r = trader.place(order(&id)).await.unwrap();
        assert_eq!(r.code, Code::Ok as i32, "{r:?}");
        to_cancel.insert(id, r.order_id);
    }
    let capacity = capacity(&c, "ACC-0641").await;
    let mut clients = Vec::new();
    for a in 0..6 {
        clients.push(c.client(&format!("ACC-065{a}")).await);
    }
    let places = tokio::spawn(async move {
        open_loop(&clients, "cflood", capacity * 8.0, Duration::from_secs(4)).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut cancels = Vec::new();
    for (i, order_id) in to_cancel.values().enumerate() {
        let started = Instant::now();
        let r = trader
            .cancel(CancelOrderRequest {
                request_id: format!("cancel-{i}"),
                order_id: order_id.clone(),
            })
            .await
            .unwrap();
        cancels.push((r.code, started.elapsed(), r.message));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let places: Vec<Answer> = places.await.unwrap().into_iter().map(|(_, a)| a).collect();
    assert!(
        count(&places, Code::ServiceUnavailable) > 0,
        "places were never shed: {:?}",
        by_code(&places)
    );
    let ok = cancels
        .iter()
        .filter(|(code, latency, _)| {
            *code == Code::Ok as i32 && *latency < Duration::from_millis(2000)
        })
        .count();
    assert!(
        ok * 100 >= cancels.len() * 99,
        "{ok} of {} cancels OK within the deadline: {:?}",
        cancels.len(),
        cancels
            .iter()
            .filter(|(code, _, _)| *code != Code::Ok as i32)
            .take(5)
            .collect::<Vec<_>>()
    );
}

/// Breakers of every backend (name → times opened) from the gateway's stats.
fn times_opened(stats: &serde_json::Value) -> u64 {
    backends_by_url(stats)
        .values()
        .map(|b| num(&b["breaker"], "times_opened"))
        .sum()
}

/// OK share of the answers sent in `[from, to)` since the load began.
fn ok_share(answers: &[(Duration, Answer)], from: Duration, to: Duration) -> (usize, usize) {
    let window: Vec<&Answer> = answers
        .iter()
        .filter(|(sent, _)| *sent >= from && *sent < to)
        .map(|(_, a)| a)
        .collect();
    let ok = window.iter().filter(|a| a.code == Code::Ok as i32).count();
    (ok, window.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_stalled_for_two_seconds_opens_no_breaker_and_service_is_back_within_a_second() {
    let _serial = SERIAL.lock().await;
    let mut c = cluster();
    let capacity = capacity(&c, "ACC-0670").await;
    let mut clients = Vec::new();
    for a in 0..4 {
        clients.push(c.client(&format!("ACC-067{}", a + 1)).await);
    }
    let load = tokio::spawn(async move {
        open_loop(&clients, "stall", capacity / 2.0, Duration::from_secs(7)).await
    });
    // A held write lock on the shared order store, as a long transaction
    // or a stuck writer would: every order service's commits wait.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let db = c.order_db();
    tokio::task::spawn_blocking(move || {
        let conn = rusqlite::Connection::open(db).expect("open the order store");
        conn.execute_batch("BEGIN IMMEDIATE")
            .expect("take the write lock");
        std::thread::sleep(Duration::from_secs(2));
        conn.execute_batch("ROLLBACK").expect("release it");
    })
    .await
    .unwrap();
    let answers = load.await.unwrap();
    let (before_ok, before) = ok_share(&answers, Duration::ZERO, Duration::from_millis(1500));
    let (after_ok, after) = ok_share(&answers, Duration::from_secs(5), Duration::from_secs(7));
    let all: Vec<Answer> = answers.iter().map(|(_, a)| a.clone()).collect();
    let late_failures: Vec<(Duration, &str, &str)> = answers
        .iter()
        .filter(|(sent, a)| {
            (*sent >= Duration::from_secs(5) || *sent < Duration::from_millis(1500))
                && a.code != Code::Ok as i32
        })
        .map(|(sent, a)| (*sent, a.request_id.as_str(), a.message.as_str()))
        .collect();
    let summary = format!(
        "capacity {capacity:.0}/s; before {before_ok}/{before} OK; from 1 s after the stall \
         {after_ok}/{after} OK ({late_failures:?}); all {:?}",
        by_code(&all)
    );
    eprintln!("{summary}");
    assert!(before_ok * 100 >= before * 99, "{summary}");
    assert!(after_ok * 100 >= after * 99, "{summary}");
    assert_eq!(times_opened(&c.stats()), 0, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_three_times_slower_degrade_goodput_and_open_no_breaker() {
    let _serial = SERIAL.lock().await;
    let mut c = cluster();
    let fast = capacity(&c, "ACC-0680").await;
    // Every order service now takes 3x as long (a slow dependency).
    let probe = c.client("ACC-0681").await;
    let t = Instant::now();
    for i in 0..20 {
        place_once(&probe, &format!("rtt-{i}")).await;
    }
    let rtt_ms = (t.elapsed().as_millis() as u64 / 20).max(1);
    for i in 0..3 {
        c.set_fault(i, &format!(r#"{{"latency_ms": {}}}"#, rtt_ms * 2));
    }
    c.fault_applied().await;
    let mut clients = Vec::new();
    for a in 0..4 {
        clients.push(c.client(&format!("ACC-068{}", a + 2)).await);
    }
    let answers = open_loop(&clients, "slow", fast, Duration::from_secs(4)).await;
    let all: Vec<Answer> = answers.iter().map(|(_, a)| a.clone()).collect();
    let goodput = count(&all, Code::Ok) as f64 / 4.0;
    let summary = format!(
        "fast capacity {fast:.0}/s, single-order rtt {rtt_ms} ms, goodput at that rate once 3x \
         slower {goodput:.0}/s, {:?}",
        by_code(&all)
    );
    eprintln!("{summary}");
    assert_eq!(count(&all, Code::Timeout), 0, "{summary}");
    assert_definite(&all, "slow");
    assert!(goodput > 0.0, "{summary}");
    assert_eq!(times_opened(&c.stats()), 0, "{summary}");
}
