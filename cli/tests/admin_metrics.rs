//! The gateway's /metrics after real traffic: the order-latency histogram
//! by msg_type and code, requests by code, per-backend series and the
//! connection gauges; /admin/connections counts the open client connection.

mod admin_support;
mod resilience_support;

use std::time::Duration;

use admin_support::get;
use hts_proto::v1::Code;
use resilience_support::{place_once, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_the_order_path_after_traffic() {
    let mut c = Cluster::start(&["", ""], &["--request-timeout-ms", "5000"]);
    let line = c
        .gateway
        .wait_for_line("hts gateway-admin listening on ", Duration::from_secs(30));
    let admin = line.rsplit(' ').next().unwrap().parse().unwrap();
    let before = get(admin, "/metrics");
    assert_eq!(before.status, 200);
    assert!(before
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/plain")));
    assert!(!before.body.contains("hts_order_latency_seconds_count"));

    let client = c.client("ACC-0403").await;
    for n in 0..5 {
        let ans = place_once(&client, &format!("m-{n}")).await;
        assert_eq!(ans.code, Code::Ok as i32, "{ans:?}");
    }
    let m = get(admin, "/metrics").body;
    for series in [
        r#"hts_order_latency_seconds_count{msg_type="PLACE_ORDER",code="OK"} 5"#,
        r#"hts_order_latency_seconds_bucket{msg_type="PLACE_ORDER",code="OK",le="+Inf"} 5"#,
        r#"hts_requests_total{code="OK"}"#,
        "hts_connections_open 1",
        "hts_correlation_table_size 0",
        "hts_backends_ready 2",
        "hts_retry_budget_exhausted_total 0",
    ] {
        assert!(m.contains(series), "missing {series:?} in\n{m}");
    }
    for url in [c.url(0), c.url(1)] {
        let series = format!(r#"hts_backend_breaker_state{{backend="{url}"}} 0"#);
        assert!(m.contains(&series), "missing {series:?} in\n{m}");
    }
    let calls: f64 = m
        .lines()
        .filter(|l| l.starts_with("hts_backend_calls_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(calls, 5.0, "{m}");
    // No account ids as labels.
    assert!(!m.contains("ACC-0403"), "{m}");

    let conns = get(admin, "/admin/connections").json();
    assert_eq!(conns["open"], 1, "{conns}");
    assert_eq!(conns["accounts_in_flight"], 0, "{conns}");
}
