//! The sweep's decisions against in-memory fakes of the ledger and the
//! order store.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::*;
use std::collections::HashSet;

/// A ledger: reservation id → (reservation, held?).
#[derive(Default)]
struct FakeLedger {
    rows: Mutex<BTreeMap<String, (HeldReservation, bool)>>,
    /// Releases that moved funds.
    released: Mutex<Vec<String>>,
}

impl FakeLedger {
    fn hold(&self, account: &str, request: &str, amount: i64) {
        let id = format!("place:{account}:{request}");
        let held = HeldReservation {
            reservation_id: id.clone(),
            account_id: account.to_owned(),
            request_id: request.to_owned(),
            asset: CASH_ASSET.to_owned(),
            amount,
            created_at_unix_ms: 0,
        };
        self.rows.lock().unwrap().insert(id, (held, true));
    }

    fn held(&self) -> Vec<String> {
        let rows = self.rows.lock().unwrap();
        rows.iter()
            .filter(|(_, (_, h))| *h)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

#[async_trait::async_trait]
impl OrphanLedger for FakeLedger {
    async fn held_page(
        &self,
        _older_than: Duration,
        after: &str,
        limit: u32,
    ) -> Result<ListHeldReservationsResponse, AccountError> {
        let rows = self.rows.lock().unwrap();
        let items: Vec<HeldReservation> = rows
            .iter()
            .filter(|(id, (_, held))| *held && id.as_str() > after)
            .take(limit as usize)
            .map(|(_, (r, _))| r.clone())
            .collect();
        let next_after = if items.len() == limit as usize {
            items
                .last()
                .map(|r| r.reservation_id.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(ListHeldReservationsResponse { items, next_after })
    }

    async fn release(
        &self,
        reservation_id: &str,
        _account_id: &str,
    ) -> Result<ReleaseOutcome, AccountError> {
        let mut rows = self.rows.lock().unwrap();
        Ok(match rows.get_mut(reservation_id) {
            Some((_, held)) if *held => {
                *held = false;
                self.released
                    .lock()
                    .unwrap()
                    .push(reservation_id.to_owned());
                ReleaseOutcome::Released
            }
            Some(_) => ReleaseOutcome::WasReleased,
            None => ReleaseOutcome::NoReservation,
        })
    }
}

/// An order store keyed by identity; `late` holds orders a place commits
/// just before the sweep's claim (the race).
#[derive(Default)]
struct FakeOrders {
    orders: Mutex<HashMap<(String, String), StoredOrder>>,
    late: Mutex<Vec<StoredOrder>>,
}

fn order(account: &str, request: &str, status: OrderStatus) -> StoredOrder {
    StoredOrder {
        order_id: format!("o-{request}"),
        request_id: request.to_owned(),
        account_id: account.to_owned(),
        symbol: "005930".to_owned(),
        side: Side::Buy,
        order_type: OrderType::Limit,
        price: 100,
        quantity: 1,
        status,
        code: Code::Ok,
        message: String::new(),
        fingerprint: "fp".to_owned(),
        reservation_id: format!("place:{account}:{request}"),
        created_at_unix_ms: 0,
        updated_at_unix_ms: 0,
    }
}

impl FakeOrders {
    fn put(&self, o: StoredOrder) {
        let key = (o.account_id.clone(), o.request_id.clone());
        self.orders.lock().unwrap().insert(key, o);
    }

    fn get(&self, account: &str, request: &str) -> Option<StoredOrder> {
        let key = (account.to_owned(), request.to_owned());
        self.orders.lock().unwrap().get(&key).cloned()
    }
}

#[async_trait::async_trait]
impl OrphanOrders for FakeOrders {
    async fn find(&self, account: &str, request: &str) -> Result<Option<StoredOrder>, StoreError> {
        Ok(self.get(account, request))
    }

    async fn claim(&self, tombstone: NewOrder) -> Result<InsertOutcome, StoreError> {
        for late in self.late.lock().unwrap().drain(..) {
            self.put(late);
        }
        let key = (tombstone.account_id.clone(), tombstone.request_id.clone());
        let mut orders = self.orders.lock().unwrap();
        if let Some(existing) = orders.get(&key) {
            return Ok(InsertOutcome::Existing(existing.clone()));
        }
        let stored = tombstone.into_stored(format!("t-{}", key.1), 0);
        orders.insert(key, stored.clone());
        Ok(InsertOutcome::Inserted(stored))
    }
}

const GRACE: Duration = Duration::from_secs(7);

#[tokio::test]
async fn an_orphan_is_claimed_by_a_tombstone_then_released_once() {
    let (ledger, orders) = (FakeLedger::default(), FakeOrders::default());
    ledger.hold("ACC-0001", "lost", 100);
    let r = sweep_once(&ledger, &orders, GRACE).await.unwrap();
    assert_eq!((r.examined, r.claimed, r.released, r.kept), (1, 1, 1, 0));
    assert!(ledger.held().is_empty());
    let t = orders.get("ACC-0001", "lost").unwrap();
    assert!(is_abandoned(&t));
    assert_eq!(
        (t.status, t.code, t.reservation_id.as_str()),
        (OrderStatus::Rejected, Code::TooLate, "place:ACC-0001:lost")
    );
    // Nothing left: a second sweep does nothing.
    let r = sweep_once(&ledger, &orders, GRACE).await.unwrap();
    assert_eq!(r, SweepReport::default());
}

#[tokio::test]
async fn reservations_of_stored_orders_are_kept() {
    let (ledger, orders) = (FakeLedger::default(), FakeOrders::default());
    for (request, status) in [
        ("accepted", OrderStatus::Accepted),
        ("partial", OrderStatus::PartiallyFilled),
        // A canceled order's release belongs to the pending releases.
        ("canceled", OrderStatus::Canceled),
    ] {
        ledger.hold("ACC-0001", request, 100);
        orders.put(order("ACC-0001", request, status));
    }
    let r = sweep_once(&ledger, &orders, GRACE).await.unwrap();
    assert_eq!((r.examined, r.kept, r.claimed, r.released), (3, 3, 0, 0));
    assert_eq!(ledger.held().len(), 3);
}

#[tokio::test]
async fn owned_reservations_are_looked_up_once_not_on_every_sweep() {
    let (ledger, orders) = (FakeLedger::default(), FakeOrders::default());
    ledger.hold("ACC-0001", "open", 100);
    orders.put(order("ACC-0001", "open", OrderStatus::Accepted));
    let mut owned = HashSet::new();
    let r = sweep_remembering(&ledger, &orders, GRACE, &mut owned)
        .await
        .unwrap();
    assert_eq!((r.kept, r.claimed), (1, 0));
    assert!(owned.contains("place:ACC-0001:open"));
    // The store is not asked again: with the order gone from the fake
    // (which a real store never does), the remembered verdict still holds.
    orders.orders.lock().unwrap().clear();
    let r = sweep_remembering(&ledger, &orders, GRACE, &mut owned)
        .await
        .unwrap();
    assert_eq!((r.kept, r.claimed, r.released), (1, 0, 0));
    // A reservation no longer listed is forgotten.
    ledger.rows.lock().unwrap().clear();
    sweep_remembering(&ledger, &orders, GRACE, &mut owned)
        .await
        .unwrap();
    assert!(owned.is_empty());
}

#[tokio::test]
async fn a_rejected_order_or_a_tombstone_left_by_a_crash_gets_its_reservation_released() {
    let (ledger, orders) = (FakeLedger::default(), FakeOrders::default());
    ledger.hold("ACC-0001", "raced", 100);
    orders.put(order("ACC-0001", "raced", OrderStatus::Rejected));
    // A sweep that stored its tombstone and died before releasing.
    ledger.hold("ACC-0002", "half", 100);
    let held = ledger.rows.lock().unwrap()["place:ACC-0002:half"].0.clone();
    orders.put(tombstone(&held).into_stored("t".into(), 0));
    let r = sweep_once(&ledger, &orders, GRACE).await.unwrap();
    assert_eq!((r.examined, r.claimed, r.released), (2, 0, 2));
    assert!(ledger.held().is_empty());
}

#[tokio::test]
async fn a_late_place_that_commits_before_the_claim_keeps_its_reservation() {
    let (ledger, orders) = (FakeLedger::default(), FakeOrders::default());
    ledger.hold("ACC-0001", "slow", 100);
    // Not stored when the sweep looks, stored before its tombstone.
    orders
        .late
        .lock()
        .unwrap()
        .push(order("ACC-0001", "slow", OrderStatus::Accepted));
    let r = sweep_once(&ledger, &orders, GRACE).await.unwrap();
    assert_eq!((r.claimed, r.released, r.kept), (0, 0, 1));
    assert_eq!(ledger.held(), ["place:ACC-0001:slow"]);
    assert_eq!(
        orders.get("ACC-0001", "slow").unwrap().status,
        OrderStatus::Accepted
    );
}

#[tokio::test]
async fn a_late_place_after_the_claim_finds_the_tombstone() {
    let (ledger, orders) = (FakeLedger::default(), FakeOrders::default());
    ledger.hold("ACC-0001", "late", 100);
    sweep_once(&ledger, &orders, GRACE).await.unwrap();
    // The late place's insert: the identity is taken, nothing ACCEPTED.
    let late = order("ACC-0001", "late", OrderStatus::Accepted);
    let NewOrderOf(new) = NewOrderOf::from(&late);
    match orders.claim(new).await.unwrap() {
        InsertOutcome::Existing(t) => assert!(is_abandoned(&t)),
        other => panic!("late insert won over the tombstone: {other:?}"),
    }
    assert!(ledger.held().is_empty());
}

/// A [`NewOrder`] of a stored order (for inserting it again).
struct NewOrderOf(NewOrder);

impl From<&StoredOrder> for NewOrderOf {
    fn from(o: &StoredOrder) -> Self {
        NewOrderOf(NewOrder {
            request_id: o.request_id.clone(),
            account_id: o.account_id.clone(),
            symbol: o.symbol.clone(),
            side: o.side,
            order_type: o.order_type,
            price: o.price,
            quantity: o.quantity,
            status: o.status,
            code: o.code,
            message: o.message.clone(),
            fingerprint: o.fingerprint.clone(),
            reservation_id: o.reservation_id.clone(),
        })
    }
}

#[tokio::test]
async fn concurrent_sweeps_release_each_orphan_exactly_once() {
    let (ledger, orders) = (FakeLedger::default(), FakeOrders::default());
    for n in 0..1200 {
        ledger.hold(&format!("ACC-{:04}", n % 7), &format!("r{n}"), 100);
    }
    let (a, b) = tokio::join!(
        sweep_once(&ledger, &orders, GRACE),
        sweep_once(&ledger, &orders, GRACE)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.released + b.released, 1200, "paged through everything");
    let released = ledger.released.lock().unwrap().clone();
    let mut unique = released.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), released.len(), "a reservation released twice");
    assert!(ledger.held().is_empty());
}

#[test]
fn a_reservation_its_order_does_not_name_is_released() {
    let held = HeldReservation {
        reservation_id: "place:ACC-0001:x".into(),
        account_id: "ACC-0001".into(),
        request_id: "x".into(),
        asset: CASH_ASSET.into(),
        amount: 1,
        created_at_unix_ms: 0,
    };
    let mut o = order("ACC-0001", "x", OrderStatus::Accepted);
    assert_eq!(verdict(&held, Some(&o)), Verdict::Keep);
    o.reservation_id = "other".into();
    assert_eq!(verdict(&held, Some(&o)), Verdict::Release);
    assert_eq!(verdict(&held, None), Verdict::Claim);
    let sell = HeldReservation {
        asset: "005930".into(),
        amount: 5,
        ..held
    };
    let t = tombstone(&sell);
    assert_eq!(
        (t.side, t.symbol.as_str(), t.quantity),
        (Side::Sell, "005930", 5)
    );
}
