//! The outbox series the alerts use move on the order service's /metrics
//! (issue 17; the gateway's alerted metrics: cli/tests/alert_metrics.rs):
//! `hts_outbox_oldest_ready_age_seconds` (HtsOutboxBacklogOld) while events
//! cannot be published, `hts_outbox_dlq_total` (HtsOutboxDlqGrowing) once
//! one is dead-lettered.

mod admin_support;
mod durable_support;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use admin_support::{get, series, wait_for};
use hts_proto::v1::Code;

fn scrape(admin: SocketAddr) -> String {
    let r = get(admin, "/metrics");
    assert_eq!(r.status, 200);
    r.body
}

/// The value of `name` (with its labels) in a scrape, 0 when absent.
fn value(metrics: &str, name: &str) -> f64 {
    series(metrics, name).unwrap_or(0.0)
}

/// The event log is a directory, so every publish fails: the READY row's
/// age grows on the order service's /metrics; once the directory is gone the
/// recovery job (past `--outbox-max-retries` and `--outbox-dlq-after-ms`)
/// dead-letters the event and `hts_outbox_dlq_total` moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_backlog_age_and_dead_letters_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events-log");
    std::fs::create_dir(&log).unwrap();
    let log_str = log.display().to_string();
    let store = format!("sqlite:{}", dir.path().join("orders.db").display());
    let mut stack = durable_support::stack::Stack::start(
        &store,
        None,
        1,
        &[
            "--admin-listen",
            "127.0.0.1:0",
            "--events-log",
            &log_str,
            "--outbox-recovery-interval-ms",
            "300",
            "--outbox-grace-ms",
            "0",
            "--outbox-max-retries",
            "1",
            "--outbox-dlq-after-ms",
            "0",
        ],
    );
    let line = stack.orders[0].wait_for_line(
        "hts order-service-admin listening on ",
        Duration::from_secs(30),
    );
    let admin: SocketAddr = line.rsplit(' ').next().unwrap().parse().unwrap();
    let before = scrape(admin);
    assert_eq!(value(&before, "hts_outbox_oldest_ready_age_seconds"), 0.0);
    assert_eq!(value(&before, "hts_outbox_dlq_total"), 0.0);

    let client = stack.client("ACC-0615").await;
    let placed = client
        .place(durable_support::stack::buy("outbox-metrics-1"))
        .await
        .unwrap();
    assert_eq!(placed.code, Code::Ok as i32, "{placed:?}");
    wait_for("a READY row over 1 s old", Duration::from_secs(15), || {
        (value(&scrape(admin), "hts_outbox_oldest_ready_age_seconds") >= 1.0).then_some(())
    });
    assert_eq!(value(&scrape(admin), "hts_outbox_dlq_total"), 0.0);

    std::fs::remove_dir(&log).unwrap();
    wait_for("the event dead-lettered", Duration::from_secs(15), || {
        (value(&scrape(admin), "hts_outbox_dlq_total") == 1.0).then_some(())
    });
    let m = scrape(admin);
    assert_eq!(value(&m, "hts_outbox_oldest_ready_age_seconds"), 0.0, "{m}");
    let written = std::fs::read_to_string(&log).unwrap();
    assert!(written.contains("\"dead_letter\":true"), "{written}");
}
