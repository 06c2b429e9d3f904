//! Every gateway metric an alert or recording rule of deploy/prometheus/
//! uses moves when its event happens (issue 17): each test causes the event
//! over real processes, scrapes the gateway's /metrics and sees the count
//! move (the order service's outbox series on its own /metrics).
//! `hts_account_client_breaker_state` is proven by
//! cli/tests/account_breaker.rs.
//!
//! | rule | metric | test |
//! |---|---|---|
//! | HtsOrderLatencyP99High, hts:order_latency_seconds:* | `hts_order_latency_seconds_bucket` | [`timeouts_and_latency_are_counted`] |
//! | hts:requests:rate1m | `hts_requests_total{code}`, `hts_request_timeouts_total` | [`timeouts_and_latency_are_counted`] |
//! | hts:hedges:rate1m | `hts_hedges_total` | [`slow_calls_are_hedged`] |
//! | hts:retries:rate1m | `hts_retries_total` | [`failures_are_retried_and_open_the_breaker`] |
//! | HtsBackendBreakerOpen, hts:backends_open_breakers | `hts_backend_breaker_state` | [`failures_are_retried_and_open_the_breaker`] |
//! | HtsShedding, HtsCancelsShed | `hts_shed_total{reason=~"busy\|wait_expired\|gateway_full"}`, `hts_admitted_total` | [`shedding_and_no_ready_backend_are_counted`] |
//! | HtsNoReadyBackend | `hts_backends_ready` | [`shedding_and_no_ready_backend_are_counted`] |
//! | HtsOutboxBacklogOld | `hts_outbox_oldest_ready_age_seconds` | cli/tests/alert_metrics_outbox.rs |
//! | HtsOutboxDlqGrowing | `hts_outbox_dlq_total` | cli/tests/alert_metrics_outbox.rs |

mod admin_support;
mod resilience_support;

use std::net::SocketAddr;
use std::time::Duration;

use admin_support::{get, series, wait_for};
use hts_proto::v1::Code;
use resilience_support::{place_once, Cluster};

fn admin_addr(c: &mut Cluster) -> SocketAddr {
    let line = c
        .gateway
        .wait_for_line("hts gateway-admin listening on ", Duration::from_secs(30));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn scrape(admin: SocketAddr) -> String {
    let r = get(admin, "/metrics");
    assert_eq!(r.status, 200);
    r.body
}

/// The value of `name` (with its labels) in a scrape, 0 when absent.
fn value(metrics: &str, name: &str) -> f64 {
    series(metrics, name).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_latency_are_counted() {
    let slow = r#"{"latency_ms": 400, "latency_ratio": 1.0}"#;
    let mut c = Cluster::start(&[slow, slow], &["--request-timeout-ms", "150"]);
    let admin = admin_addr(&mut c);
    let before = scrape(admin);
    assert_eq!(value(&before, "hts_request_timeouts_total"), 0.0);

    let client = c.client("ACC-0611").await;
    let mut timeouts = 0;
    for n in 0..6 {
        let answer = place_once(&client, &format!("slow-{n}")).await;
        if answer.code == Code::Timeout as i32 {
            timeouts += 1;
        }
    }
    assert_eq!(timeouts, 6, "every call outlived its deadline");
    let m = scrape(admin);
    let answered = value(&m, r#"hts_requests_total{code="TIMEOUT"}"#);
    assert_eq!(answered, 6.0, "{m}");
    assert_eq!(
        value(&m, "hts_request_timeouts_total"),
        answered,
        "the timeout counter counts every TIMEOUT answer"
    );
    assert_eq!(
        value(
            &m,
            r#"hts_order_latency_seconds_count{msg_type="PLACE_ORDER",code="TIMEOUT"}"#
        ),
        6.0
    );
    // The p99 alert's input: every TIMEOUT took at least the 150 ms deadline.
    assert_eq!(
        value(
            &m,
            r#"hts_order_latency_seconds_bucket{msg_type="PLACE_ORDER",code="TIMEOUT",le="0.1"}"#
        ),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_calls_are_hedged() {
    let mut c = Cluster::start(
        &[r#"{"latency_ms": 300, "latency_ratio": 1.0}"#, ""],
        &[
            "--request-timeout-ms",
            "3000",
            "--hedge-max-delay-ms",
            "50",
            "--ewma-half-life-ms",
            "1",
            "--adaptive-limit",
            "false",
            "--retry-budget-min-per-sec",
            "100",
        ],
    );
    let admin = admin_addr(&mut c);
    assert_eq!(value(&scrape(admin), "hts_hedges_total"), 0.0);
    let client = c.client("ACC-0614").await;
    // No hedge before the pool has 20 latency samples.
    for n in 0..40 {
        let answer = place_once(&client, &format!("hedge-{n}")).await;
        assert_eq!(answer.code, Code::Ok as i32, "{answer:?}");
    }
    let m = scrape(admin);
    assert!(value(&m, "hts_hedges_total") >= 1.0, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_and_open_the_breaker() {
    let failing = r#"{"error_ratio": 1.0}"#;
    let mut c = Cluster::start(
        &[failing, failing],
        &[
            "--request-timeout-ms",
            "3000",
            "--hedging",
            "false",
            "--breaker-window",
            "5",
            "--breaker-delay-ms",
            "30000",
        ],
    );
    let admin = admin_addr(&mut c);
    let urls = [c.url(0), c.url(1)];
    let before = scrape(admin);
    assert_eq!(value(&before, "hts_retries_total"), 0.0);
    for url in &urls {
        let s = format!(r#"hts_backend_breaker_state{{backend="{url}"}}"#);
        assert_eq!(value(&before, &s), 0.0, "{before}");
    }

    let client = c.client("ACC-0612").await;
    for n in 0..20 {
        let answer = place_once(&client, &format!("fail-{n}")).await;
        assert_ne!(answer.code, Code::Ok as i32, "{answer:?}");
    }
    let m = scrape(admin);
    assert!(value(&m, "hts_retries_total") >= 1.0, "{m}");
    let open = urls
        .iter()
        .filter(|url| {
            value(
                &m,
                &format!(r#"hts_backend_breaker_state{{backend="{url}"}}"#),
            ) == 2.0
        })
        .count();
    assert!(open >= 1, "a failing backend's breaker is open (2): {m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shedding_and_no_ready_backend_are_counted() {
    let mut c = Cluster::start(
        &[r#"{"hang_ratio": 1.0}"#],
        &[
            "--adaptive-limit",
            "false",
            "--max-in-flight-per-backend",
            "2",
            "--request-timeout-ms",
            "1000",
            "--hedging",
            "false",
            "--account-rate-per-sec",
            "0",
        ],
    );
    let admin = admin_addr(&mut c);
    let before = scrape(admin);
    assert_eq!(
        value(&before, r#"hts_shed_total{class="normal",reason="busy"}"#),
        0.0
    );
    wait_for("one ready backend", Duration::from_secs(10), || {
        (value(&scrape(admin), "hts_backends_ready") == 1.0).then_some(())
    });

    let client = c.client("ACC-0613").await;
    let calls = (0..8).map(|n| {
        let client = client.clone();
        async move { place_once(&client, &format!("hang-{n}")).await }
    });
    let answers = futures::future::join_all(calls).await;
    assert!(
        answers
            .iter()
            .any(|a| a.code == Code::ServiceUnavailable as i32),
        "some were refused for want of room: {answers:?}"
    );
    let m = scrape(admin);
    // What HtsShedding sums: refused for want of capacity, at once (busy)
    // or after a wait in the queue (wait_expired, the case here).
    let shed: f64 = ["busy", "wait_expired", "gateway_full"]
        .iter()
        .map(|r| {
            value(
                &m,
                &format!(r#"hts_shed_total{{class="normal",reason="{r}"}}"#),
            )
        })
        .sum();
    let refused = answers
        .iter()
        .filter(|a| a.code == Code::ServiceUnavailable as i32)
        .count();
    assert_eq!(shed, refused as f64, "every refusal counted: {m}");
    assert!(
        value(&m, r#"hts_admitted_total{class="normal"}"#) >= 2.0,
        "{m}"
    );

    c.kill_order_service(0);
    wait_for("no ready backend", Duration::from_secs(15), || {
        (value(&scrape(admin), "hts_backends_ready") == 0.0).then_some(())
    });
}
