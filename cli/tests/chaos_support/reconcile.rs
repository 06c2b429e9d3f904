//! Reconciliation: what clients were told against what the order
//! database, the account database and the topic hold. One function,
//! [`reconcile`], serves every scenario.
//!
//! Rules (issue 7):
//! * every request acknowledged OK is in the order store exactly once, with
//!   the acknowledged order id, its idempotency record and a HELD
//!   reservation of its amount;
//! * every stored order has exactly one distinct event id on the topic
//!   (several copies of that one id are allowed and counted);
//! * per account, reserved CASH equals the sum of HELD reservations and
//!   available + reserved equals the seeded cash;
//! * an order stored although its client was not told OK is allowed only
//!   when the client's outcome is unknown (TIMEOUT, broken connection, no
//!   answer); those are listed. Stored orders no client sent, or whose
//!   client was told a definitive failure, are violations.
//!
//! * no HELD reservation without a stored order once the order services'
//!   orphan sweep had its bound ([`ORPHAN_BOUND`]): a crash between the
//!   reservation and the order commit locks no money (issue 17).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use super::load::{LoadResult, Outcome, PRICE};
use crate::durable_support::kafka::consume_until;

/// How long reconciliation waits for the orphan sweep: its bound with the
/// defaults (`OrderServiceConfig::orphan_bound`, 9 s) plus slack for a
/// loaded machine.
pub const ORPHAN_BOUND: Duration = Duration::from_secs(12);

/// Seeded CASH of every demo account (`hts account-service --seed-demo`).
pub const SEEDED_CASH: i64 = 1_000_000_000;

/// The topic order events go to.
pub const TOPIC: &str = "hts.orders";

/// Where to read the truth from.
pub struct Sources<'a> {
    /// The order database (current primary).
    pub orders_db: &'a tokio_postgres::Client,
    /// The account database (current primary).
    pub accounts_db: &'a tokio_postgres::Client,
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Longest wait for the outbox to drain and the topic to show every event.
    pub event_deadline: Duration,
}

/// The result of one reconciliation.
#[derive(Debug, Clone, Default)]
pub struct Reconciliation {
    /// Distinct requests (request ids) sent.
    pub sent: usize,
    /// Sends, retries included.
    pub attempts: usize,
    /// Requests acknowledged OK.
    pub acknowledged: usize,
    /// Requests refused for sure, by final code.
    pub refused: BTreeMap<String, usize>,
    /// Requests whose outcome is unknown to their client.
    pub unknown: usize,
    /// Answers of all sends by code (attempt level).
    pub answers: BTreeMap<String, usize>,
    /// OK answers replayed from a stored order (retries of stored requests).
    pub replayed: usize,
    /// Acknowledged requests missing from the order store (or stored under
    /// another order id).
    pub lost_orders: Vec<String>,
    /// Acknowledged orders whose idempotency record is missing or not OK.
    pub missing_idempotency: Vec<String>,
    /// Acknowledged orders without a HELD reservation of their amount.
    pub missing_reservations: Vec<String>,
    /// Stored orders with no event on the topic.
    pub lost_events: Vec<String>,
    /// Acknowledged requests (account/request_id) among [`Self::lost_events`].
    pub lost_acknowledged_events: Vec<String>,
    /// Stored orders with more than one distinct event id (topic or outbox).
    pub split_events: Vec<String>,
    /// Extra copies of an event id already read (at-least-once duplicates).
    pub duplicate_copies: usize,
    /// Events read from the topic.
    pub events_read: usize,
    /// Stored orders whose client's outcome is unknown (allowed; listed).
    pub stored_unknown: Vec<String>,
    /// Stored orders whose client was told a definitive failure.
    pub stored_refused: Vec<String>,
    /// Stored orders no client of this run sent.
    pub phantom: Vec<String>,
    /// HELD reservations no stored order owns after the orphan sweep's
    /// bound (a violation).
    pub orphan_reservations: Vec<String>,
    /// How long reconciliation waited for the orphan sweep.
    pub orphan_wait: Duration,
    /// Accounts whose balances do not add up.
    pub balance_mismatches: Vec<String>,
    /// Outbox rows still READY after the wait.
    pub outbox_ready_left: i64,
    /// Time the outbox took to drain (from the start of reconciliation).
    pub outbox_drain: Duration,
}

impl Reconciliation {
    /// Acknowledged requests missing from the store or the topic.
    pub fn lost(&self) -> usize {
        let mut lost: HashSet<&String> = self.lost_orders.iter().collect();
        lost.extend(self.lost_acknowledged_events.iter());
        lost.len()
    }

    /// Every broken rule, one line each (empty: consistent).
    pub fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        let mut rule = |name: &str, items: &[String]| {
            if !items.is_empty() {
                v.push(format!("{name}: {} ({})", items.len(), sample(items)));
            }
        };
        rule(
            "acknowledged orders missing from the store",
            &self.lost_orders,
        );
        rule(
            "acknowledged orders without their idempotency record",
            &self.missing_idempotency,
        );
        rule(
            "acknowledged orders without their HELD reservation",
            &self.missing_reservations,
        );
        rule(
            "stored orders whose event never reached the topic",
            &self.lost_events,
        );
        rule(
            "stored orders with more than one distinct event id",
            &self.split_events,
        );
        rule(
            "stored orders whose client was told a definitive failure",
            &self.stored_refused,
        );
        rule("stored orders no client sent", &self.phantom);
        rule(
            "HELD reservations no stored order owns after the orphan sweep's bound",
            &self.orphan_reservations,
        );
        rule(
            "accounts whose balances do not add up",
            &self.balance_mismatches,
        );
        v
    }
}

fn sample(items: &[String]) -> String {
    let mut s: Vec<&str> = items.iter().take(5).map(String::as_str).collect();
    if items.len() > 5 {
        s.push("…");
    }
    s.join(", ")
}

struct StoredOrder {
    order_id: String,
    key: String,
    status: String,
    reservation_id: String,
}

struct Reservation {
    account: String,
    asset: String,
    amount: i64,
    status: String,
}

/// Reconciles `load` with the stores and the topic. Waits (up to
/// `sources.event_deadline`) for the outbox to drain and for every stored
/// order's event to be read.
pub async fn reconcile(load: &LoadResult, sources: &Sources<'_>) -> Reconciliation {
    let mut r = Reconciliation {
        sent: load.requests.len(),
        ..Reconciliation::default()
    };
    for a in load.attempts() {
        r.attempts += 1;
        *r.answers.entry(a.answer.label()).or_default() += 1;
        if let super::load::Answer::Response { replayed: true, .. } = &a.answer {
            r.replayed += 1;
        }
    }
    let started = Instant::now();
    r.outbox_ready_left = wait_outbox_drained(sources.orders_db, sources.event_deadline).await;
    r.outbox_drain = started.elapsed();

    let accounts: Vec<String> = {
        let mut a: Vec<String> = load.requests.iter().map(|q| q.account.clone()).collect();
        a.sort();
        a.dedup();
        a
    };
    // A reservation no stored order owns must be released by the order
    // services' orphan sweep within its bound (9 s with the defaults):
    // read again until none is left or the bound has passed.
    let sweep_until = Instant::now() + ORPHAN_BOUND;
    let (orders, reservations) = loop {
        let orders = stored_orders(sources.orders_db, &accounts).await;
        let reservations = reservations(sources.accounts_db, &accounts).await;
        let owned: HashSet<&str> = orders.iter().map(|o| o.reservation_id.as_str()).collect();
        let orphaned = reservations
            .iter()
            .any(|(id, res)| res.status == "HELD" && !owned.contains(id.as_str()));
        if !orphaned || Instant::now() >= sweep_until {
            break (orders, reservations);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    r.orphan_wait = started.elapsed().saturating_sub(r.outbox_drain);
    let keys = idempotency(sources.orders_db).await;
    let outbox = outbox_events(sources.orders_db).await;
    let balances = balances(sources.accounts_db, &accounts).await;

    // Orders by (account/request_id); a key stored twice is a violation.
    let mut by_key: HashMap<&str, Vec<&StoredOrder>> = HashMap::new();
    for o in &orders {
        by_key.entry(o.key.as_str()).or_default().push(o);
    }

    // Clients' side.
    let mut told: HashMap<String, &Outcome> = HashMap::new();
    for q in &load.requests {
        let key = format!("{}/{}", q.account, q.request_id);
        match &q.outcome {
            Outcome::Ok(_) => r.acknowledged += 1,
            Outcome::Refused(code) => {
                *r.refused.entry(code.as_str_name().to_owned()).or_default() += 1
            }
            Outcome::Unknown(_) => r.unknown += 1,
        }
        told.insert(key, &q.outcome);
    }

    // Every acknowledged order: stored once with its id, idempotency record, reservation.
    for (q, order_id) in load.acknowledged() {
        let key = format!("{}/{}", q.account, q.request_id);
        match by_key.get(key.as_str()).map(Vec::as_slice) {
            Some([o]) if o.order_id == order_id && o.status == "ACCEPTED" => {}
            Some([o]) => r.lost_orders.push(format!(
                "{key}: told {order_id}, stored {} ({})",
                o.order_id, o.status
            )),
            Some(many) => r
                .lost_orders
                .push(format!("{key}: stored {} times", many.len())),
            None => r.lost_orders.push(format!("{key} ({order_id})")),
        }
        match keys.get(key.as_str()) {
            Some((id, code)) if id == order_id && code == "OK" => {}
            Some((id, code)) => r
                .missing_idempotency
                .push(format!("{key}: record {id} {code}")),
            None => r.missing_idempotency.push(key.clone()),
        }
        let reservation_id = format!("place:{}:{}", q.account, q.request_id);
        let held = reservations.get(&reservation_id).filter(|res| {
            res.status == "HELD"
                && res.asset == "CASH"
                && res.amount == PRICE
                && res.account == q.account
        });
        let linked = by_key
            .get(key.as_str())
            .is_some_and(|v| v.iter().all(|o| o.reservation_id == reservation_id));
        if held.is_none() || !linked {
            r.missing_reservations.push(key.clone());
        }
    }

    // Every stored order: someone was told about it, or the outcome is unknown.
    for o in &orders {
        match told.get(o.key.as_str()) {
            Some(Outcome::Ok(_)) => {}
            Some(Outcome::Unknown(history)) => r
                .stored_unknown
                .push(format!("{} ({}, answers {history})", o.key, o.order_id)),
            Some(Outcome::Refused(code)) => r.stored_refused.push(format!(
                "{} ({}, told {})",
                o.key,
                o.order_id,
                code.as_str_name()
            )),
            None => r.phantom.push(format!("{} ({})", o.key, o.order_id)),
        }
    }

    // Reservations and balances.
    let owned: HashSet<&str> = orders.iter().map(|o| o.reservation_id.as_str()).collect();
    let mut held_by_account: HashMap<&str, i64> = HashMap::new();
    let mut orphans: Vec<String> = Vec::new();
    for (id, res) in &reservations {
        if res.status != "HELD" || res.asset != "CASH" {
            continue;
        }
        *held_by_account.entry(res.account.as_str()).or_default() += res.amount;
        if !owned.contains(id.as_str()) {
            orphans.push(id.clone());
        }
    }
    orphans.sort();
    r.orphan_reservations = orphans;
    for account in &accounts {
        let held = held_by_account.get(account.as_str()).copied().unwrap_or(0);
        match balances.get(account) {
            Some(&(available, reserved)) => {
                if reserved != held || available + reserved != SEEDED_CASH {
                    r.balance_mismatches.push(format!(
                        "{account}: available {available} reserved {reserved}, HELD reservations {held}, seeded {SEEDED_CASH}"
                    ));
                }
            }
            None => r
                .balance_mismatches
                .push(format!("{account}: no CASH balance row")),
        }
    }

    // The outbox: one event id per stored order.
    let mut outbox_by_order: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (event_id, order_id) in &outbox {
        outbox_by_order
            .entry(order_id.as_str())
            .or_default()
            .insert(event_id.as_str());
    }

    // The topic: read until every stored order's event was seen.
    let expected: HashSet<String> = orders.iter().map(|o| o.order_id.clone()).collect();
    let brokers = sources.brokers.clone();
    let deadline = sources
        .event_deadline
        .saturating_sub(started.elapsed())
        .max(Duration::from_secs(15));
    let records = tokio::task::spawn_blocking(move || {
        let mut missing = expected;
        let mut checked = 0;
        consume_until(
            &brokers,
            TOPIC,
            deadline,
            Duration::from_secs(2),
            |records| {
                for rec in &records[checked..] {
                    if let Some(id) = rec.payload["order_id"].as_str() {
                        missing.remove(id);
                    }
                }
                checked = records.len();
                missing.is_empty()
            },
        )
    })
    .await
    .expect("consumer task");
    r.events_read = records.len();
    let mut topic_by_order: HashMap<String, HashMap<String, usize>> = HashMap::new();
    for rec in &records {
        let order_id = rec.payload["order_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        *topic_by_order
            .entry(order_id)
            .or_default()
            .entry(rec.event_id.clone())
            .or_default() += 1;
    }
    for o in &orders {
        let on_topic = topic_by_order.get(&o.order_id);
        let in_outbox = outbox_by_order.get(o.order_id.as_str());
        match on_topic {
            None => r.lost_events.push(format!("{} ({})", o.key, o.order_id)),
            Some(ids) => {
                r.duplicate_copies += ids.values().map(|n| n - 1).sum::<usize>();
                let mut all: HashSet<&str> = ids.keys().map(String::as_str).collect();
                if let Some(outbox_ids) = in_outbox {
                    all.extend(outbox_ids.iter().copied());
                }
                if all.len() != 1 {
                    r.split_events.push(format!(
                        "{} ({}): {} event ids",
                        o.key,
                        o.order_id,
                        all.len()
                    ));
                }
            }
        }
    }
    let acknowledged: HashSet<String> = load
        .acknowledged()
        .map(|(q, _)| format!("{}/{}", q.account, q.request_id))
        .collect();
    r.lost_acknowledged_events = r
        .lost_events
        .iter()
        .filter_map(|e| e.split(' ').next())
        .filter(|k| acknowledged.contains(*k))
        .map(str::to_owned)
        .collect();
    r
}

/// Waits until no outbox row is READY (or `timeout`); returns how many are left.
pub async fn wait_outbox_drained(db: &tokio_postgres::Client, timeout: Duration) -> i64 {
    let deadline = Instant::now() + timeout;
    loop {
        let ready = ready_rows(db).await;
        if ready == 0 || Instant::now() >= deadline {
            return ready;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Outbox rows still READY (-1 when the query fails, e.g. mid-failover).
pub async fn ready_rows(db: &tokio_postgres::Client) -> i64 {
    match db
        .query_one("SELECT count(*) FROM outbox WHERE status = 'READY'", &[])
        .await
    {
        Ok(row) => row.get(0),
        Err(_) => -1,
    }
}

/// Outbox rows READY for longer than `age` (-1 when the query fails).
/// A live fast path publishes within milliseconds, so these are rows
/// whose publisher died (or a broker that does not answer).
pub async fn stale_ready_rows(db: &tokio_postgres::Client, age: Duration) -> i64 {
    let ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
    match db
        .query_one(
            "SELECT count(*) FROM outbox WHERE status = 'READY' \
             AND created_at < clock_timestamp() - make_interval(secs => $1::bigint / 1000.0)",
            &[&ms],
        )
        .await
    {
        Ok(row) => row.get(0),
        Err(e) => {
            eprintln!("chaos: cannot count stale READY rows: {e}");
            -1
        }
    }
}

/// The orders of `accounts` (the load's; the warm-up uses another account).
async fn stored_orders(db: &tokio_postgres::Client, accounts: &[String]) -> Vec<StoredOrder> {
    db.query(
        "SELECT order_id, account_id || '/' || request_id, status, reservation_id FROM orders \
         WHERE account_id = ANY($1)",
        &[&accounts],
    )
    .await
    .expect("read orders")
    .iter()
    .map(|row| StoredOrder {
        order_id: row.get(0),
        key: row.get(1),
        status: row.get(2),
        reservation_id: row.get(3),
    })
    .collect()
}

/// (account/request_id) → (order_id, response_code).
async fn idempotency(db: &tokio_postgres::Client) -> HashMap<String, (String, String)> {
    db.query(
        "SELECT account_id || '/' || request_id, order_id, response_code FROM idempotency_keys",
        &[],
    )
    .await
    .expect("read idempotency_keys")
    .iter()
    .map(|row| (row.get(0), (row.get(1), row.get(2))))
    .collect()
}

/// (event_id, order_id) of every outbox row.
async fn outbox_events(db: &tokio_postgres::Client) -> Vec<(String, String)> {
    db.query(
        "SELECT event_id::text, COALESCE(payload->>'order_id', '') FROM outbox",
        &[],
    )
    .await
    .expect("read outbox")
    .iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect()
}

async fn reservations(
    db: &tokio_postgres::Client,
    accounts: &[String],
) -> HashMap<String, Reservation> {
    db.query(
        "SELECT reservation_id, account_id, asset, amount, status FROM reservations \
         WHERE account_id = ANY($1)",
        &[&accounts],
    )
    .await
    .expect("read reservations")
    .iter()
    .map(|row| {
        (
            row.get(0),
            Reservation {
                account: row.get(1),
                asset: row.get(2),
                amount: row.get(3),
                status: row.get(4),
            },
        )
    })
    .collect()
}

/// account → (available, reserved) CASH.
async fn balances(db: &tokio_postgres::Client, accounts: &[String]) -> HashMap<String, (i64, i64)> {
    db.query(
        "SELECT account_id, available, reserved FROM balances \
         WHERE asset = 'CASH' AND account_id = ANY($1)",
        &[&accounts],
    )
    .await
    .expect("read balances")
    .iter()
    .map(|row| (row.get(0), (row.get(1), row.get(2))))
    .collect()
}
