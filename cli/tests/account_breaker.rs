//! The order service's circuit breaker in front of the Account service:
//! with the account service down it opens (gauge 2), orders are refused with
//! SERVICE_UNAVAILABLE without a call (the `circuit_open` error counter
//! grows), nothing is stored for them, and once the account service is back
//! the breaker closes (gauge 0) and the same request ids are placed exactly
//! once.

mod admin_support;
mod resilience_support;

use std::net::SocketAddr;
use std::time::Duration;

use admin_support::{get, series};
use hts_proto::v1::Code;
use resilience_support::{
    account_service, login, orders_per_request_id, place_once, strings, Service,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_opens_while_the_account_service_is_down_and_closes_after() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = account_service(dir.path(), "127.0.0.1:0");
    let account_addr = accounts.addr;
    let order_db = dir.path().join("orders.db");
    let mut orders = Service::spawn(&strings(&[
        "order-service",
        "--init",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--store",
        &format!("sqlite:{}", order_db.display()),
        "--account-service",
        &accounts.url(),
        "--account-breaker-window",
        "5",
        // Long enough that the breaker is still open when scraped below.
        "--account-breaker-open-ms",
        "3000",
        "--account-breaker-probes",
        "1",
    ]));
    let line = orders.wait_for_line(
        "hts order-service-admin listening on ",
        Duration::from_secs(30),
    );
    let admin: SocketAddr = line.rsplit(' ').next().unwrap().parse().unwrap();
    let gateway = Service::spawn(&strings(&[
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--backend",
        &orders.url(),
        "--request-timeout-ms",
        "5000",
        // Gateway retries would hide what the order service answers.
        "--max-retries",
        "0",
    ]));
    let client = login(gateway.addr, "ACC-0701").await;
    let first = place_once(&client, "before").await;
    assert_eq!(first.code, Code::Ok as i32, "{first:?}");
    let m = get(admin, "/metrics").body;
    assert_eq!(
        series(&m, "hts_account_client_breaker_state"),
        Some(0.0),
        "{m}"
    );

    accounts.kill();
    // Refused connections first, then the breaker opens and refuses by itself.
    let mut refused = Vec::new();
    for i in 0..40 {
        let a = place_once(&client, &format!("down-{i}")).await;
        assert_eq!(a.code, Code::ServiceUnavailable as i32, "{a:?}");
        refused.push(a.request_id);
    }
    let m = get(admin, "/metrics").body;
    assert_eq!(
        series(&m, "hts_account_client_breaker_state"),
        Some(2.0),
        "{m}"
    );
    let open_refusals = series(
        &m,
        r#"hts_account_client_errors_total{kind="circuit_open"}"#,
    )
    .unwrap_or(0.0);
    assert!(
        open_refusals >= 20.0,
        "breaker refused {open_refusals}\n{m}"
    );

    // Back on the same address: after the open period a probe succeeds and
    // the same request ids go through.
    let _accounts = account_service(dir.path(), &account_addr.to_string());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for id in &refused {
        loop {
            let a = place_once(&client, id).await;
            if a.code == Code::Ok as i32 {
                break;
            }
            assert_eq!(a.code, Code::ServiceUnavailable as i32, "{a:?}");
            assert!(
                tokio::time::Instant::now() < deadline,
                "not accepted: {a:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let m = get(admin, "/metrics").body;
    assert_eq!(
        series(&m, "hts_account_client_breaker_state"),
        Some(0.0),
        "{m}"
    );

    let stored = orders_per_request_id(&order_db, "ACC-0701");
    assert_eq!(stored.len(), refused.len() + 1, "{stored:?}");
    assert!(stored.values().all(|&n| n == 1), "{stored:?}");
}
