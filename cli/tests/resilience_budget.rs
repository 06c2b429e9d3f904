//! Issue test 3: every backend fails. Retries are safe (request_ids) but
//! the retry budget caps them: backend calls stay ≤ 1.1 × client requests
//! plus the floor (min_per_sec × window), and once the budget is empty the
//! client gets the first attempt's outcome.

mod resilience_support;

use hts_proto::v1::Code;
use resilience_support::{backends_by_url, by_code, num, place_stream, Cluster};

/// `--retry-budget-min-per-sec` of the test.
const FLOOR_PER_SEC: u64 = 1;
/// The budget window (default 10 s).
const WINDOW_SECS: u64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_budget_caps_backend_calls_when_everything_fails() {
    let all_fail = r#"{"error_ratio": 1.0}"#;
    let mut cluster = Cluster::start(
        &[all_fail, all_fail, all_fail],
        &[
            "--request-timeout-ms",
            "3000",
            "--retry-budget-min-per-sec",
            "1",
            // Keep every backend in rotation: this test is about the budget.
            "--breaker-failure-ratio",
            "2",
            "--outlier-consecutive-failures",
            "0",
            "--hedging",
            "false",
        ],
    );
    let client = cluster.client("ACC-0301").await;
    let answers = place_stream(&client, "budget", 8, |n| n >= 100).await;
    let requests = answers.len() as u64;
    assert_eq!(requests, 800);
    // The first attempt's outcome: the backend was unavailable.
    let codes = by_code(&answers);
    assert!(
        answers
            .iter()
            .all(|a| a.code == Code::ServiceUnavailable as i32),
        "{codes:?}"
    );

    let stats = cluster.stats();
    let router = &stats["router"];
    let calls: u64 = backends_by_url(&stats)
        .values()
        .map(|b| num(b, "calls"))
        .sum();
    let floor = FLOOR_PER_SEC * WINDOW_SECS;
    let bound = requests + requests / 10 + floor;
    assert!(
        calls <= bound,
        "{calls} backend calls for {requests} requests exceed 1.1 × requests + {floor}: {router}"
    );
    assert!(calls >= requests, "every request reached a backend once");
    assert!(
        calls > requests,
        "retries are allowed while budget remains: {router}"
    );
    assert!(num(router, "budget_denied") > 0, "{router}");
    assert_eq!(num(router, "requests"), requests);
}
