//! Issue test 2: a backend answering errors on half its calls. Its circuit
//! breaker opens within the 50-call window, traffic moves to the other
//! backends (clients still get OK: the failed calls carry a request_id and
//! are retried elsewhere), and once the fault is removed half-open probes
//! close the breaker and the backend takes traffic again.

mod resilience_support;

use std::time::{Duration, Instant};

use hts_proto::v1::Code;
use resilience_support::{backends_by_url, by_code, num, place_stream, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_backend_is_cut_off_by_its_breaker_and_probed_back() {
    let mut cluster = Cluster::start(
        &[r#"{"error_ratio": 0.5}"#, "", ""],
        &[
            "--request-timeout-ms",
            "3000",
            "--breaker-delay-ms",
            "500",
            "--breaker-max-delay-ms",
            "1000",
            "--hedging",
            "false",
        ],
    );
    let bad = cluster.url(0);
    let client = cluster.client("ACC-0201").await;

    // Phase 1: the fault is on.
    let answers = place_stream(&client, "brk-a", 4, |n| n >= 100).await;
    let codes = by_code(&answers);
    assert!(
        answers.iter().all(|a| a.code == Code::Ok as i32),
        "clients saw failures: {codes:?}"
    );
    let s1 = cluster.stats();
    let b = backends_by_url(&s1);
    let failing = &b[&bad];
    let opened = num(&failing["breaker"], "times_opened");
    assert!(opened >= 1, "breaker never opened: {failing}");
    // It opened within the first window of 50 calls: afterwards only the
    // half-open probes (3 per opening) and calls already in flight got through.
    let bad_calls = num(failing, "calls");
    assert!(
        bad_calls <= 50 + 3 * opened + 8,
        "failing backend got {bad_calls} calls for {opened} openings"
    );
    let others: u64 = b
        .iter()
        .filter(|(url, _)| **url != bad)
        .map(|(_, v)| num(v, "calls"))
        .sum();
    assert!(
        bad_calls * 4 < others,
        "traffic did not move away: {bad_calls} vs {others}"
    );

    // Phase 2: the fault is removed; probes close the breaker.
    cluster.set_fault(0, "");
    cluster.fault_applied().await;
    let started = Instant::now();
    let answers = place_stream(&client, "brk-b", 4, move |_| {
        started.elapsed() > Duration::from_millis(3000)
    })
    .await;
    assert!(
        answers.iter().all(|a| a.code == Code::Ok as i32),
        "{:?}",
        by_code(&answers)
    );
    let s2 = cluster.stats();
    let healed = &backends_by_url(&s2)[&bad];
    assert_eq!(healed["breaker"]["state"], "closed", "{healed}");
    let new_calls = num(healed, "calls") - bad_calls;
    assert!(
        new_calls >= 30,
        "healed backend got only {new_calls} calls after closing: {healed}"
    );
}
