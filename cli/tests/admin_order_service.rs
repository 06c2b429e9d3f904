//! The order service's admin surface: /readyz turns 503 with Retry-After
//! and names the account service while it is down, and returns to 200 once
//! it is back; /metrics carries the outbox and dependency series.

mod admin_support;
mod resilience_support;

use std::net::SocketAddr;
use std::time::Duration;

use admin_support::{get, wait_for};
use resilience_support::{account_service, strings, Service};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_account_service() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = account_service(dir.path(), "127.0.0.1:0");
    let account_addr = accounts.addr;
    let mut orders = Service::spawn(&strings(&[
        "order-service",
        "--init",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--store",
        &format!("sqlite:{}", dir.path().join("orders.db").display()),
        "--account-service",
        &accounts.url(),
    ]));
    let line = orders.wait_for_line(
        "hts order-service-admin listening on ",
        Duration::from_secs(30),
    );
    let admin: SocketAddr = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(get(admin, "/healthz").status, 200);
    wait_for("ready", Duration::from_secs(30), || {
        (get(admin, "/readyz").status == 200).then_some(())
    });

    accounts.kill();
    let down = wait_for("not ready", Duration::from_secs(30), || {
        let r = get(admin, "/readyz");
        (r.status == 503).then_some(r)
    });
    assert!(down.header("retry-after").is_some(), "{down:?}");
    let body = down.json();
    assert_eq!(
        body["missing"],
        serde_json::json!(["account_service"]),
        "{body}"
    );
    assert!(body["errors"]["account_service"].is_string(), "{body}");
    let m = get(admin, "/metrics").body;
    for series in [
        r#"hts_dependency_up{dependency="account_service"} 0"#,
        r#"hts_dependency_up{dependency="database"} 1"#,
        "hts_outbox_ready_backlog 0",
        "hts_outbox_oldest_ready_age_seconds 0",
        "hts_outbox_published_total 0",
        "hts_outbox_dlq_total 0",
    ] {
        assert!(m.contains(series), "missing {series:?} in\n{m}");
    }

    // Back on the same address: ready again.
    let _accounts = account_service(dir.path(), &account_addr.to_string());
    wait_for("ready again", Duration::from_secs(30), || {
        (get(admin, "/readyz").status == 200).then_some(())
    });
    let m = get(admin, "/metrics").body;
    assert!(
        m.contains(r#"hts_dependency_up{dependency="account_service"} 1"#),
        "{m}"
    );
}
