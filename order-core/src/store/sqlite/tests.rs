//! Unit tests of the SQLite order store.

use super::*;
use hts_proto::v1::{Code, OrderStatus, OrderType, Side};

fn temp_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite:{}", dir.path().join("orders.db").display())
}

fn new_order(request_id: &str, fingerprint: &str, status: OrderStatus) -> NewOrder {
    NewOrder {
        request_id: request_id.into(),
        account_id: "ACC-0001".into(),
        symbol: "005930".into(),
        side: Side::Buy,
        order_type: OrderType::Limit,
        price: 70_000,
        quantity: 10,
        status,
        code: if status == OrderStatus::Accepted {
            Code::Ok
        } else {
            Code::InsufficientBalance
        },
        message: "m".into(),
        fingerprint: fingerprint.into(),
        reservation_id: format!("place:ACC-0001:{request_id}"),
    }
}

fn inserted(outcome: InsertOutcome) -> StoredOrder {
    match outcome {
        InsertOutcome::Inserted(o) => o,
        InsertOutcome::Existing(o) => panic!("expected insert, got existing {o:?}"),
    }
}

#[tokio::test]
async fn other_schemes_are_rejected() {
    assert!(matches!(
        crate::store::open_store("mysql://db/orders", StoreOptions::default()).await,
        Err(StoreError::UnsupportedUrl(_))
    ));
}

#[tokio::test]
async fn insert_find_and_existing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteOrderStore::open(&temp_url(&dir)).unwrap();
    assert!(store
        .find_by_request("ACC-0001", "r1")
        .await
        .unwrap()
        .is_none());
    let first = inserted(
        store
            .insert_order(new_order("r1", "fp", OrderStatus::Accepted))
            .await
            .unwrap(),
    );
    assert_eq!(first.status, OrderStatus::Accepted);
    assert_eq!(first.code, Code::Ok);
    assert_eq!(
        uuid::Uuid::parse_str(&first.order_id)
            .unwrap()
            .get_version_num(),
        7
    );
    assert_eq!(
        store.find_by_request("ACC-0001", "r1").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.get_order(&first.order_id).await.unwrap(),
        Some(first.clone())
    );
    match store
        .insert_order(new_order("r1", "other", OrderStatus::Rejected))
        .await
        .unwrap()
    {
        InsertOutcome::Existing(existing) => assert_eq!(existing, first),
        other => panic!("{other:?}"),
    }
    // Same request id on another account is a different order.
    let mut other_account = new_order("r1", "fp", OrderStatus::Accepted);
    other_account.account_id = "ACC-0002".into();
    let second = inserted(store.insert_order(other_account).await.unwrap());
    assert_ne!(second.order_id, first.order_id);
    assert!(second.order_id > first.order_id, "uuid v7 ids sort by time");
    assert!(store.get_order("missing").await.unwrap().is_none());
}

#[tokio::test]
async fn cancel_records_a_pending_release_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteOrderStore::open(&temp_url(&dir)).unwrap();
    let order = inserted(
        store
            .insert_order(new_order("r1", "fp", OrderStatus::Accepted))
            .await
            .unwrap(),
    );
    match store.cancel_order(&order.order_id).await.unwrap() {
        CancelOutcome::Canceled(o) => assert_eq!(o.status, OrderStatus::Canceled),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store.cancel_order(&order.order_id).await.unwrap(),
        CancelOutcome::AlreadyCanceled(_)
    ));
    let pending = store.pending_releases(10).await.unwrap();
    assert_eq!(
        pending,
        vec![PendingRelease {
            reservation_id: order.reservation_id.clone(),
            account_id: "ACC-0001".into(),
            order_id: order.order_id.clone(),
        }]
    );
    store.complete_release(&order.reservation_id).await.unwrap();
    store.complete_release(&order.reservation_id).await.unwrap();
    assert!(store.pending_releases(10).await.unwrap().is_empty());
    assert!(matches!(
        store.cancel_order("missing").await.unwrap(),
        CancelOutcome::NotFound
    ));
}

#[tokio::test]
async fn rejected_orders_are_not_cancelable() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteOrderStore::open(&temp_url(&dir)).unwrap();
    let order = inserted(
        store
            .insert_order(new_order("r1", "fp", OrderStatus::Rejected))
            .await
            .unwrap(),
    );
    assert!(matches!(
        store.cancel_order(&order.order_id).await.unwrap(),
        CancelOutcome::NotCancelable(o) if o.status == OrderStatus::Rejected
    ));
    assert!(store.pending_releases(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn schedule_release_is_idempotent_and_limited() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteOrderStore::open(&temp_url(&dir)).unwrap();
    for i in 0..5 {
        let release = PendingRelease {
            reservation_id: format!("res-{i}"),
            account_id: "ACC-0001".into(),
            order_id: format!("o-{i}"),
        };
        store.schedule_release(release.clone()).await.unwrap();
        store.schedule_release(release).await.unwrap();
    }
    assert_eq!(store.pending_releases(3).await.unwrap().len(), 3);
    assert_eq!(store.pending_releases(100).await.unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_racing_one_request_have_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let url = temp_url(&dir);
    let handles = [
        SqliteOrderStore::open(&url).unwrap(),
        SqliteOrderStore::open(&url).unwrap(),
    ];
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = handles[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            store
                .insert_order(new_order("race", "fp", OrderStatus::Accepted))
                .await
                .unwrap()
        }));
    }
    let mut winners = Vec::new();
    let mut seen = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            InsertOutcome::Inserted(o) => winners.push(o),
            InsertOutcome::Existing(o) => seen.push(o),
        }
    }
    assert_eq!(winners.len(), 1);
    assert!(seen.iter().all(|o| o.order_id == winners[0].order_id));
    let conn =
        hts_dbkit::sqlite::open_connection(&hts_dbkit::sqlite::sqlite_path(&url).unwrap()).unwrap();
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn reopening_keeps_data_and_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let url = temp_url(&dir);
    let order = {
        let store = SqliteOrderStore::open(&url).unwrap();
        inserted(
            store
                .insert_order(new_order("r1", "fp", OrderStatus::Accepted))
                .await
                .unwrap(),
        )
    };
    let store = SqliteOrderStore::open(&url).unwrap();
    assert_eq!(store.get_order(&order.order_id).await.unwrap(), Some(order));
    let conn =
        hts_dbkit::sqlite::open_connection(&hts_dbkit::sqlite::sqlite_path(&url).unwrap()).unwrap();
    let versions: i64 = conn
        .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        versions, 2,
        "orders (v1) and outbox (v2), each applied once"
    );
}

#[tokio::test]
async fn outbox_rows_commit_with_orders_and_recover_to_the_event_log() {
    use crate::outbox::{DlqPolicy, EventSink, FileLogSink, OutboxStore};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteOrderStore::open(&temp_url(&dir)).unwrap();
    let order = inserted(
        store
            .insert_order(new_order("r1", "fp", OrderStatus::Accepted))
            .await
            .unwrap(),
    );
    // A replay adds no event; a cancel adds order.canceled.
    store
        .insert_order(new_order("r1", "fp", OrderStatus::Accepted))
        .await
        .unwrap();
    store.cancel_order(&order.order_id).await.unwrap();
    let stats = store.outbox_stats().await.unwrap();
    assert_eq!(stats.ready_backlog, 2);
    assert!(stats.oldest_ready_age.is_some());

    let sink = FileLogSink::new(dir.path().join("events.jsonl"));
    let report = store
        .recover(std::time::Duration::ZERO, 100, DlqPolicy::default(), &sink)
        .await
        .unwrap();
    assert_eq!(report.published, 2);
    let stats = store.outbox_stats().await.unwrap();
    assert_eq!((stats.ready_backlog, stats.published_total), (0, 2));
    let text = std::fs::read_to_string(sink.path()).unwrap();
    let types: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .inspect(|v| assert_eq!(v["payload"]["order_id"], order.order_id.as_str()))
        .map(|v| v["event_type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["order.accepted", "order.canceled"]);
    // Nothing left to publish: a second round is empty.
    let again = store
        .recover(std::time::Duration::ZERO, 100, DlqPolicy::default(), &sink)
        .await
        .unwrap();
    assert_eq!(again.published, 0);
    let _ = sink.flush().await;
}

#[tokio::test]
async fn three_failed_publishes_move_an_event_to_the_dead_letter_log() {
    use crate::outbox::{DlqPolicy, FileLogSink, OutboxStore};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteOrderStore::open(&temp_url(&dir)).unwrap();
    store
        .insert_order(new_order("r1", "fp", OrderStatus::Accepted))
        .await
        .unwrap();
    // A directory where the log file should be: every append fails.
    let blocked = dir.path().join("blocked");
    std::fs::create_dir(&blocked).unwrap();
    let failing = FileLogSink::new(&blocked);
    let policy = DlqPolicy {
        max_retries: 3,
        min_age: std::time::Duration::ZERO,
    };
    for _ in 0..3 {
        let r = store
            .recover(std::time::Duration::ZERO, 10, policy, &failing)
            .await
            .unwrap();
        assert_eq!(r.failed, 1);
    }
    let stats = store.outbox_stats().await.unwrap();
    assert_eq!((stats.ready_backlog, stats.dlq_total), (1, 0));
    let dead_letters = FileLogSink::new(dir.path().join("dlq.jsonl"));
    let r = store
        .recover(std::time::Duration::ZERO, 10, policy, &dead_letters)
        .await
        .unwrap();
    assert_eq!(r.dead_lettered, 1);
    let stats = store.outbox_stats().await.unwrap();
    assert_eq!((stats.ready_backlog, stats.dlq_total), (0, 1));
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(dead_letters.path()).unwrap().trim()).unwrap();
    assert_eq!(line["dead_letter"], true);
    assert!(line["error"].as_str().unwrap().contains("event log"));
}
