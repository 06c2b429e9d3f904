//! Resilience with real processes: a backend killed under load, backends
//! drained and added under load, and hedged/retried orders stored once.

mod resilience_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hts_proto::v1::Code;
use resilience_support::{
    assert_exactly_once, backends_by_url, by_code, num, place_once, place_stream, Answer, Cluster,
};

const OK: i32 = Code::Ok as i32;
const TIMEOUT: i32 = Code::Timeout as i32;

/// A flag workers poll; set it to stop the stream.
fn stop_flag() -> (
    Arc<AtomicBool>,
    impl Fn(usize) -> bool + Clone + Send + Sync + 'static,
) {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    (flag, move |_| f.load(Ordering::Relaxed))
}

/// Issue test 1: one of three backends is SIGKILLed during a steady stream
/// of orders with request_ids. Every order ends OK (a TIMEOUT, whose
/// deadline truly passed, is re-sent with the same request_id as a terminal
/// would), and the store holds each order exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backend_costs_no_order_and_doubles_none() {
    let mut cluster = Cluster::start(&["", "", ""], &["--request-timeout-ms", "2000"]);
    let client = cluster.client("ACC-0101").await;
    let (stop, should_stop) = stop_flag();
    let stream = {
        let client = client.clone();
        tokio::spawn(async move { place_stream(&client, "kill", 6, should_stop).await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed = cluster.url(0);
    cluster.kill_order_service(0);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::Relaxed);
    let answers = stream.await.unwrap();

    let codes = by_code(&answers);
    let failed: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.code != OK && a.code != TIMEOUT)
        .collect();
    assert!(
        failed.is_empty(),
        "client-visible failures {codes:?}: {:?}",
        &failed[..failed.len().min(5)]
    );
    // Deadline passed: outcome unknown, re-send with the same request_id.
    let mut ok_ids: Vec<String> = answers
        .iter()
        .filter(|a| a.code == OK)
        .map(|a| a.request_id.clone())
        .collect();
    for a in answers.iter().filter(|a| a.code == TIMEOUT) {
        let again = place_once(&client, &a.request_id).await;
        assert_eq!(again.code, OK, "{again:?}");
        ok_ids.push(a.request_id.clone());
    }
    assert!(
        ok_ids.len() > 100,
        "too little traffic to prove anything: {codes:?}"
    );

    let stats = cluster.stats();
    let backends = backends_by_url(&stats);
    let dead = &backends[&killed];
    // The dead backend was taken out of rotation rather than tried forever.
    let after_kill_calls = num(dead, "calls");
    assert!(
        num(dead, "errors") > 0 || dead["healthy"] == false,
        "{dead}"
    );
    let total = num(&stats["router"], "backend_calls");
    assert!(
        after_kill_calls * 3 < total,
        "dead backend kept a full share of calls: {after_kill_calls} of {total}"
    );
    assert_exactly_once(&cluster, "ACC-0101", &ok_ids);
}

/// Issue test 6: drain a backend under load → 0 failed requests; add a new
/// backend under load (config file + SIGHUP) → it receives traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_and_add_backends_under_load_without_failures() {
    let mut cluster = Cluster::start(&["", ""], &["--request-timeout-ms", "3000"]);
    let client = cluster.client("ACC-0102").await;
    let (stop, should_stop) = stop_flag();
    let stream = {
        let client = client.clone();
        tokio::spawn(async move { place_stream(&client, "drain", 4, should_stop).await })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Add a third backend.
    let new = cluster.add_order_service("");
    let (b0, b1, b2) = (cluster.url(0), cluster.url(1), cluster.url(new));
    cluster.reload_backends(&[b0.clone(), b1.clone(), b2.clone()]);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mid = cluster.stats();
    let b0_calls_before_drain = num(&backends_by_url(&mid)[&b0], "calls");
    // Drain the first one.
    cluster.reload_backends(&[b1.clone(), b2.clone()]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let answers = stream.await.unwrap();

    let codes = by_code(&answers);
    assert!(
        answers.iter().all(|a| a.code == OK),
        "failed requests while draining/adding: {codes:?}"
    );
    assert!(answers.len() > 100, "too little traffic: {codes:?}");
    let new_calls = num(&backends_by_url(&mid)[&b2], "calls");
    let total_mid = num(&mid["router"], "backend_calls");
    assert!(
        new_calls * 10 > total_mid,
        "the added backend got {new_calls} of {total_mid} calls"
    );
    let end = cluster.stats();
    let after = backends_by_url(&end);
    assert!(
        !after.contains_key(&b0),
        "drained backend still in the set: {end}"
    );
    assert!(after.contains_key(&b1) && after.contains_key(&b2));
    assert!(b0_calls_before_drain > 0);
    let ok_ids: Vec<String> = answers.iter().map(|a| a.request_id.clone()).collect();
    assert_exactly_once(&cluster, "ACC-0102", &ok_ids);
}

/// Issue test 7: hedged and retried orders never create two orders or two
/// reservations. One backend is slow on half its calls (hedges fire), one
/// fails a third of its calls (retries fire); the stores hold one order and
/// one reservation per request_id, and the reserved cash matches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedges_and_retries_never_double_an_order_or_a_reservation() {
    let mut cluster = Cluster::start(
        &[
            r#"{"latency_ms": 150, "latency_ratio": 0.5}"#,
            r#"{"error_ratio": 0.34}"#,
            "",
        ],
        &[
            "--request-timeout-ms",
            "3000",
            "--hedge-min-delay-ms",
            "1",
            "--hedge-max-delay-ms",
            "3",
            "--retry-budget-ratio",
            "1.0",
            "--breaker-window",
            "100000",
        ],
    );
    let account = "ACC-0103";
    let client = cluster.client(account).await;
    let (available_before, reserved_before) = cluster.cash(account).await;
    assert_eq!(reserved_before, 0);
    let answers = place_stream(&client, "hedge", 6, |n| n >= 50).await;
    let codes = by_code(&answers);
    assert!(answers.iter().all(|a| a.code == OK), "{codes:?}");

    let stats = cluster.stats();
    let router = &stats["router"];
    assert!(
        num(router, "hedges") >= 20,
        "hedging did not happen: {router}"
    );
    assert!(
        num(router, "retries") >= 5,
        "retrying did not happen: {router}"
    );
    let ids: Vec<String> = answers.iter().map(|a| a.request_id.clone()).collect();
    assert_exactly_once(&cluster, account, &ids);
    let (available, reserved) = cluster.cash(account).await;
    let expected = 100 * ids.len() as i64;
    assert_eq!(
        reserved, expected,
        "reserved cash = one reservation per order"
    );
    assert_eq!(available, available_before - expected);
}
