//! The embedded outbox: on SQLite, order events go to the JSON-lines event
//! log beside the store, and `hts events tail` prints them.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use hts_proto::v1::{CancelOrderRequest, Code, OrderType, PlaceOrderRequest, Side};
use support::Cluster;

fn tail(log: &std::path::Path) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_hts"))
        .args(["events", "tail", "--no-follow", "--file"])
        .arg(log)
        .output()
        .expect("run hts events tail");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_orders_publish_to_the_event_log_that_events_tail_prints() {
    let cluster = Cluster::start(2, &[]);
    let client = cluster.client("ACC-0021").await;
    let placed = client
        .place(PlaceOrderRequest {
            request_id: "log-1".into(),
            account_id: String::new(),
            symbol: "005930".into(),
            side: Side::Buy as i32,
            order_type: OrderType::Limit as i32,
            price: 100,
            quantity: 2,
        })
        .await
        .unwrap();
    assert_eq!(placed.code, Code::Ok as i32);
    let canceled = client
        .cancel(CancelOrderRequest {
            request_id: "log-1-cancel".into(),
            order_id: placed.order_id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(canceled.code, Code::Ok as i32);

    let log = cluster.dir.path().join("events.jsonl");
    let deadline = Instant::now() + Duration::from_secs(30);
    let events = loop {
        let events = if log.exists() { tail(&log) } else { Vec::new() };
        if events.len() >= 2 || Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["order.accepted", "order.canceled"], "{events:?}");
    for e in &events {
        assert_eq!(e["key"], "ACC-0021");
        assert_eq!(e["payload"]["order_id"], placed.order_id.as_str());
        assert_eq!(e["payload"]["event_id"], e["event_id"]);
    }
    let rows: i64 = rusqlite::Connection::open(cluster.order_db())
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM outbox WHERE status = 'SENT'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 2, "published rows are marked SENT");
}
