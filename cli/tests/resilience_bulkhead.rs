//! Issue test 5: a full bulkhead answers SERVICE_UNAVAILABLE at once and
//! the gateway's memory stays flat while it keeps refusing; and the
//! per-account rate limit stops a noisy account without touching others.

mod resilience_support;

use std::time::Duration;

use futures::future::join_all;
use hts_proto::v1::Code;
use resilience_support::{by_code, num, place_once, quantile, Answer, Cluster};

const PER_BACKEND: u64 = 16;
const DEADLINE_MS: u64 = 20_000;

/// `n` requests, `concurrency` at a time, over `clients`.
async fn burst(
    clients: &[hts_client::Client],
    prefix: &str,
    n: usize,
    concurrency: usize,
) -> Vec<Answer> {
    let mut out = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(concurrency) {
        let calls = (0..concurrency.min(n - chunk * concurrency)).map(|i| {
            let c = clients[i % clients.len()].clone();
            let id = format!("{prefix}-{chunk}-{i}");
            async move { place_once(&c, &id).await }
        });
        out.extend(join_all(calls).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_bulkhead_refuses_at_once_with_flat_memory() {
    let per_backend = PER_BACKEND.to_string();
    let deadline = DEADLINE_MS.to_string();
    let mut cluster = Cluster::start(
        &[r#"{"hang_ratio": 1.0}"#],
        &[
            // The static bulkhead: the adaptive limit (on by default) is
            // tested in cli/tests/overload.rs.
            "--adaptive-limit",
            "false",
            "--max-in-flight-per-backend",
            per_backend.as_str(),
            "--request-timeout-ms",
            deadline.as_str(),
            "--hedging",
            "false",
            "--account-rate-per-sec",
            "0",
        ],
    );
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(cluster.client("ACC-0501").await);
    }
    // Fill the bulkhead with calls the backend never answers.
    let hung: Vec<_> = (0..PER_BACKEND)
        .map(|i| {
            let c = clients[0].clone();
            tokio::spawn(async move { place_once(&c, &format!("hung-{i}")).await })
        })
        .collect();
    for _ in 0..100 {
        if num(&cluster.stats()["router"]["backends"][0], "in_flight") == PER_BACKEND {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        num(&cluster.stats()["router"]["backends"][0], "in_flight"),
        PER_BACKEND
    );

    let warm = burst(&clients, "warm", 3_000, 64).await;
    let rss_warm = cluster.gateway.rss_kib();
    let load = burst(&clients, "load", 20_000, 64).await;
    let rss_after = cluster.gateway.rss_kib();

    for (name, answers) in [("warm", &warm), ("load", &load)] {
        assert!(
            answers
                .iter()
                .all(|a| a.code == Code::ServiceUnavailable as i32),
            "{name}: {:?}",
            by_code(answers)
        );
        assert!(
            answers[0].message.contains("in-flight limit"),
            "{:?}",
            answers[0]
        );
    }
    // "Immediately": refusals do not wait for the deadline (or anything).
    let p99 = quantile(&load, 0.99);
    assert!(
        p99 * 100 < Duration::from_millis(DEADLINE_MS),
        "refusal p99 {p99:?}"
    );
    assert!(
        rss_after * 2 < rss_warm * 3,
        "gateway RSS grew from {rss_warm} KiB to {rss_after} KiB"
    );
    let stats = cluster.stats();
    assert_eq!(
        num(&stats["router"]["backends"][0], "calls"),
        PER_BACKEND,
        "refused requests never reached the backend"
    );
    assert_eq!(num(&stats, "correlation_len"), PER_BACKEND);
    for h in hung {
        h.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noisy_account_is_rate_limited_and_others_are_not() {
    let mut cluster = Cluster::start(
        &[""],
        &[
            "--account-rate-per-sec",
            "20",
            "--account-burst",
            "20",
            "--request-timeout-ms",
            "3000",
        ],
    );
    let noisy = vec![cluster.client("ACC-0502").await];
    let quiet = vec![cluster.client("ACC-0503").await];
    let noisy_answers = burst(&noisy, "noisy", 200, 50).await;
    let quiet_answers = burst(&quiet, "quiet", 10, 10).await;
    let limited = noisy_answers
        .iter()
        .filter(|a| a.code == Code::RateLimited as i32)
        .count();
    assert!(limited >= 150, "{:?}", by_code(&noisy_answers));
    assert!(
        noisy_answers
            .iter()
            .all(|a| a.code == Code::RateLimited as i32 || a.code == Code::Ok as i32),
        "{:?}",
        by_code(&noisy_answers)
    );
    assert!(
        quiet_answers.iter().all(|a| a.code == Code::Ok as i32),
        "{:?}",
        by_code(&quiet_answers)
    );
    assert_eq!(
        num(&cluster.stats()["router"], "rate_limited"),
        limited as u64
    );
}
