//! Outbox dispatch to a real Kafka-protocol broker (tansu) from orders on
//! real PostgreSQL; topics are read back with a real Kafka consumer.

mod durable_support;
mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use durable_support::kafka::{consume, create_topics, Broker, Record};
use durable_support::pg::{count, PgServer};
use durable_support::stack::{buy, order_service, place_until_ok, Stack};
use hts_order_core::store::{NewOrder, StoreOptions};
use hts_proto::v1::{Code, OrderStatus, OrderType, Side};

const TOPIC: &str = "hts.orders";
const DLQ: &str = "hts.orders.dlq";

fn kafka_flags(broker: &Broker) -> Vec<String> {
    kafka_flags_with(broker, &[])
}

/// Order-service flags for `broker`: short timeouts for tests, with
/// `overrides` replacing defaults or adding flags (`""` value: bare flag).
fn kafka_flags_with(broker: &Broker, overrides: &[(&str, &str)]) -> Vec<String> {
    let brokers = broker.brokers();
    let mut flags: Vec<(&str, &str)> = vec![
        ("--kafka-brokers", brokers.as_str()),
        ("--kafka-message-timeout-ms", "3000"),
        ("--outbox-recovery-interval-ms", "500"),
        ("--outbox-grace-ms", "1000"),
    ];
    for (k, v) in overrides {
        match flags.iter_mut().find(|(name, _)| name == k) {
            Some(slot) => slot.1 = v,
            None => flags.push((k, v)),
        }
    }
    let mut out = Vec::new();
    for (k, v) in flags {
        out.push(k.to_owned());
        if !v.is_empty() {
            out.push(v.to_owned());
        }
    }
    out
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Waits until no outbox row is READY.
async fn wait_outbox_drained(db: &tokio_postgres::Client, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let ready = count(db, "SELECT count(*) FROM outbox WHERE status = 'READY'").await;
        if ready == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{ready} outbox rows still READY");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn by_order(records: &[Record]) -> HashMap<String, Vec<&Record>> {
    let mut map: HashMap<String, Vec<&Record>> = HashMap::new();
    for r in records {
        map.entry(
            r.payload["order_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
        .or_default()
        .push(r);
    }
    map
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placed_order_publishes_exactly_one_event_with_key_and_payload() {
    let pg = PgServer::start();
    let broker = Broker::start();
    let stack = Stack::start(&pg.url(), None, 1, &refs(&kafka_flags(&broker)));
    let client = stack.client("ACC-0011").await;
    let placed = client.place(buy("one-event")).await.unwrap();
    assert_eq!(placed.code, Code::Ok as i32, "{}", placed.message);

    let brokers = broker.brokers();
    let records = tokio::task::spawn_blocking(move || {
        consume(
            &brokers,
            TOPIC,
            1,
            Duration::from_secs(30),
            Duration::from_secs(3),
        )
    })
    .await
    .unwrap();
    assert_eq!(records.len(), 1, "exactly one event: {records:?}");
    let r = &records[0];
    assert_eq!(r.key, "ACC-0011");
    assert_eq!(r.payload["event_type"], "order.accepted");
    assert_eq!(r.payload["order_id"], placed.order_id.as_str());
    assert_eq!(r.payload["request_id"], "one-event");
    assert_eq!(r.payload["account_id"], "ACC-0011");
    assert_eq!(r.payload["symbol"], "005930");
    assert_eq!(r.payload["price"], 100);
    assert_eq!(r.payload["status"], "ACCEPTED");
    assert_eq!(r.payload["event_id"], r.event_id.as_str());

    let db = pg.client().await;
    wait_outbox_drained(&db, Duration::from_secs(10)).await;
    let row = db
        .query_one("SELECT event_id::text, status, key FROM outbox", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), r.event_id);
    assert_eq!(row.get::<_, String>(1), "SENT");
    assert_eq!(row.get::<_, String>(2), "ACC-0011");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_for_30s_orders_succeed_and_every_event_is_published() {
    let pg = PgServer::start();
    let broker = Broker::start();
    let stack = Stack::start(&pg.url(), None, 1, &refs(&kafka_flags(&broker)));
    let db = pg.client().await;
    let mut client = stack.client("ACC-0012").await;
    let gw = stack.gateway.addr;

    // Before the outage: published and marked SENT.
    let mut before = Vec::new();
    for i in 0..3 {
        let r = place_until_ok(
            gw,
            "ACC-0012",
            &mut client,
            buy(&format!("pre-{i}")),
            Duration::from_secs(30),
        )
        .await
        .expect("placed");
        before.push(r.order_id);
    }
    wait_outbox_drained(&db, Duration::from_secs(30)).await;

    // Broker down for 30 s while orders keep coming: every order succeeds.
    // The broker process is frozen (SIGSTOP), not killed: its in-memory
    // storage survives, as a real broker's disks would.
    broker.freeze();
    let down_until = Instant::now() + Duration::from_secs(30);
    let mut during = Vec::new();
    let mut i = 0;
    while Instant::now() < down_until {
        let r = client
            .place(buy(&format!("down-{i}")))
            .await
            .expect("answered");
        assert_eq!(
            r.code,
            Code::Ok as i32,
            "order during the outage: {}",
            r.message
        );
        during.push(r.order_id);
        i += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        count(&db, "SELECT count(*) FROM outbox WHERE status = 'READY'").await > 0,
        "events wait in the outbox while the broker is down"
    );

    // The broker returns; every event arrives.
    broker.resume();
    let mut after = Vec::new();
    for i in 0..3 {
        let r = place_until_ok(
            gw,
            "ACC-0012",
            &mut client,
            buy(&format!("post-{i}")),
            Duration::from_secs(30),
        )
        .await
        .expect("placed");
        after.push(r.order_id);
    }
    wait_outbox_drained(&db, Duration::from_secs(90)).await;
    let expected: Vec<String> = before
        .iter()
        .chain(&during)
        .chain(&after)
        .cloned()
        .collect();
    let brokers = broker.brokers();
    let n = expected.len();
    let records = tokio::task::spawn_blocking(move || {
        consume(
            &brokers,
            TOPIC,
            n,
            Duration::from_secs(60),
            Duration::from_secs(3),
        )
    })
    .await
    .unwrap();
    let published = by_order(&records);
    for order_id in &expected {
        let events = published
            .get(order_id)
            .unwrap_or_else(|| panic!("event of order {order_id} lost"));
        let ids: HashSet<&str> = events.iter().map(|r| r.event_id.as_str()).collect();
        assert_eq!(
            ids.len(),
            1,
            "duplicates only with the same event id: {events:?}"
        );
        assert!(events.iter().all(|r| r.payload == events[0].payload));
    }
    let sent = count(&db, "SELECT count(*) FROM outbox WHERE status = 'SENT'").await;
    assert_eq!(sent as usize, expected.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_commit_and_publish_is_recovered_after_restart() {
    let pg = PgServer::start();
    let broker = Broker::start();
    let flags = kafka_flags_with(&broker, &[("--fault-exit-after-commit", "")]);
    let mut stack = Stack::start(&pg.url(), None, 1, &refs(&flags));
    let client = stack.client("ACC-0013").await;
    let r = client.place(buy("crash-1")).await;
    assert!(
        r.map(|r| r.code != Code::Ok as i32).unwrap_or(true),
        "the crashed service cannot have answered OK"
    );
    assert_eq!(stack.orders[0].wait_exit(Duration::from_secs(30)), Some(86));

    let db = pg.client().await;
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM orders WHERE request_id = 'crash-1'"
        )
        .await,
        1
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM outbox WHERE status = 'READY'").await,
        1,
        "committed, not published"
    );
    let brokers = broker.brokers();
    let nothing = tokio::task::spawn_blocking(move || {
        consume(&brokers, TOPIC, 1, Duration::from_secs(3), Duration::ZERO)
    })
    .await
    .unwrap();
    assert!(nothing.is_empty(), "nothing published before recovery");

    // Restart without the fault: the recovery job publishes the event.
    let restarted = order_service(
        &pg.url(),
        &stack.account.url(),
        &refs(&kafka_flags(&broker)),
    );
    stack.orders.push(restarted);
    wait_outbox_drained(&db, Duration::from_secs(30)).await;
    let brokers = broker.brokers();
    let records = tokio::task::spawn_blocking(move || {
        consume(
            &brokers,
            TOPIC,
            1,
            Duration::from_secs(30),
            Duration::from_secs(3),
        )
    })
    .await
    .unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].payload["request_id"], "crash-1");
    assert_eq!(records[0].key, "ACC-0013");
}

fn new_order(i: usize) -> NewOrder {
    NewOrder {
        request_id: format!("rec-{i}"),
        account_id: format!("ACC-{:04}", 1 + i % 50),
        symbol: "005930".into(),
        side: Side::Buy,
        order_type: OrderType::Limit,
        price: 100,
        quantity: 1,
        status: OrderStatus::Accepted,
        code: Code::Ok,
        message: "order accepted".into(),
        fingerprint: format!("fp-{i}"),
        reservation_id: format!("res-{i}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_running_recovery_never_publish_a_row_twice() {
    const ROWS: usize = 300;
    let pg = PgServer::start();
    let broker = Broker::start();
    create_topics(&broker.brokers(), &[TOPIC, DLQ]).await;
    // Orders committed by a store with no fast path: all rows stay READY.
    let store = hts_order_core::open_store(&pg.url(), StoreOptions::default())
        .await
        .unwrap();
    for i in 0..ROWS {
        store.insert_order(new_order(i)).await.unwrap();
    }
    let db = pg.client().await;
    assert_eq!(
        count(&db, "SELECT count(*) FROM outbox WHERE status = 'READY'").await,
        ROWS as i64
    );
    // Two order services whose recovery jobs race over small batches.
    let flags = kafka_flags_with(
        &broker,
        &[
            ("--outbox-recovery-interval-ms", "100"),
            ("--outbox-grace-ms", "0"),
            ("--outbox-recovery-batch", "20"),
        ],
    );
    let _a = order_service(&pg.url(), "http://127.0.0.1:1", &refs(&flags));
    let _b = order_service(&pg.url(), "http://127.0.0.1:1", &refs(&flags));
    wait_outbox_drained(&db, Duration::from_secs(60)).await;
    let brokers = broker.brokers();
    let records = tokio::task::spawn_blocking(move || {
        consume(
            &brokers,
            TOPIC,
            ROWS,
            Duration::from_secs(60),
            Duration::from_secs(3),
        )
    })
    .await
    .unwrap();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for r in &records {
        *seen.entry(r.event_id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "published more than once: {twice:?}");
    assert_eq!(seen.len(), ROWS, "every row published");
    let stored: HashSet<String> = db
        .query("SELECT event_id::text FROM outbox", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored, seen.keys().map(|k| k.to_string()).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_failing_three_times_goes_to_the_dead_letter_topic() {
    let pg = PgServer::start();
    let broker = Broker::start();
    // Only the dead-letter topic exists: publishing order events fails.
    create_topics(&broker.brokers(), &[DLQ]).await;
    let flags = kafka_flags_with(
        &broker,
        &[
            ("--kafka-no-create-topics", ""),
            ("--events-topic", "never-created"),
            ("--kafka-message-timeout-ms", "1000"),
            ("--outbox-recovery-interval-ms", "300"),
            ("--outbox-grace-ms", "0"),
            ("--outbox-max-retries", "3"),
            ("--outbox-dlq-after-ms", "0"),
        ],
    );
    let stack = Stack::start(&pg.url(), None, 1, &refs(&flags));
    let client = stack.client("ACC-0014").await;
    let placed = client.place(buy("dlq-1")).await.unwrap();
    assert_eq!(
        placed.code,
        Code::Ok as i32,
        "orders do not depend on publishing"
    );

    let db = pg.client().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let dlq = count(&db, "SELECT count(*) FROM outbox WHERE status = 'DLQ'").await;
        if dlq == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "row never reached DLQ");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let row = db
        .query_one(
            "SELECT event_id::text, retry_count, last_error FROM outbox",
            &[],
        )
        .await
        .unwrap();
    let event_id: String = row.get(0);
    assert!(row.get::<_, i32>(1) >= 3, "3 failed publishes first");
    assert!(row.get::<_, Option<String>>(2).is_some());
    let brokers = broker.brokers();
    let records = tokio::task::spawn_blocking(move || {
        consume(
            &brokers,
            DLQ,
            1,
            Duration::from_secs(30),
            Duration::from_secs(2),
        )
    })
    .await
    .unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].event_id, event_id);
    assert_eq!(records[0].payload["order_id"], placed.order_id.as_str());
    assert!(records[0].error.is_some(), "dead letter carries the error");
}
