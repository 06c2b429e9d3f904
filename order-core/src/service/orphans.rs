//! The orphan sweep: no reservation outlives its order's fate.
//!
//! A place reserves funds (account service) before its order is stored
//! (order store). A process killed between the two leaves a HELD
//! reservation that no order owns. The order service owns the order store,
//! so it decides: periodically (and once at start) it lists, page by page,
//! the HELD reservations backing orders (they carry the order's identity,
//! `account_id` + `request_id`; the id is `place:{account}:{request_id}`)
//! older than a grace period ([`crate::OrderServiceConfig::orphan_grace`],
//! longer than a place can be in flight after its reservation), and for
//! each one decides ([`verdict`]):
//!
//! * an order with that identity exists that owns the reservation (any
//!   status but REJECTED): **keep** it (a CANCELED order's reservation is
//!   released by the pending-release retries, not here);
//! * a REJECTED order exists (a lost insert race, or a tombstone this sweep
//!   stored before a crash): **release** it;
//! * no order exists: **claim** the identity by storing a tombstone (a
//!   REJECTED order with code TOO_LATE, [`ABANDONED_FINGERPRINT`]) through
//!   the ordinary insert, whose uniqueness of `(account_id, request_id)` is
//!   decided by the database; only if the tombstone was inserted is the
//!   reservation released; if an order got there first, the verdict is
//!   taken again on it.
//!
//! Why a tombstone and not a conditional release in the account service:
//! the race is "the sweep decides orphan" against "a late place commits
//! its order". The account service cannot see the order store, so no
//! condition it checks can tell whether a place's insert is still coming.
//! The tombstone makes the order store, which both sides write, decide:
//! whichever insert wins the key wins. A late place then finds the
//! tombstone (`Existing`, not ACCEPTED), releases its reservation (already
//! released: idempotent) and answers the stored rejection; a client
//! re-sending the request_id later gets the same definite answer
//! ([`super::reply::replay_or_conflict`] replays a tombstone whatever the
//! parameters): one order, one reservation, nothing held, never a second
//! reservation. An acknowledged order is never touched: it was stored
//! before it was acknowledged, and the sweep only claims identities with
//! no stored order. The grace period therefore only decides how rarely a
//! slow, unacknowledged place loses to the sweep, never correctness.
//!
//! Exactly once: Release is idempotent in the account service and only the
//! call that moved the funds gets `RELEASED` (counted in
//! [`crate::admin::telemetry::ORPHANS_RELEASED`]); any number of
//! order-service instances may sweep at once.

use std::collections::HashSet;
use std::time::Duration;

use hts_account_client::{AccountClient, AccountError};
use hts_proto::v1::{
    Code, HeldReservation, ListHeldReservationsResponse, OrderStatus, OrderType, ReleaseOutcome,
    Side,
};
use hts_proto::CASH_ASSET;

use super::OrderContext;
use crate::store::{InsertOutcome, NewOrder, OrderStore, StoreError, StoredOrder};

/// Fingerprint of a tombstone: an order identity claimed by the sweep.
pub const ABANDONED_FINGERPRINT: &str = "abandoned:orphan-reservation-released";

/// The stored answer of a tombstone.
pub const ABANDONED_MESSAGE: &str = "abandoned: the order was not stored before its service \
    stopped; its reservation was released and nothing is held; place it again under a new \
    request_id";

/// Reservations asked for per page.
const PAGE: u32 = 500;

/// A failure of one sweep (the next one tries again).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The account service could not list or release.
    #[error("account service: {0}")]
    Account(#[from] AccountError),
    /// The order store could not look up or claim.
    #[error("order store: {0}")]
    Store(#[from] StoreError),
    /// The account service answered a release without an outcome.
    #[error("account service returned no release outcome for {0}")]
    NoOutcome(String),
}

/// The ledger side of the sweep (the account service).
#[async_trait::async_trait]
pub trait OrphanLedger: Send + Sync {
    /// One page of HELD order reservations older than `older_than`.
    async fn held_page(
        &self,
        older_than: Duration,
        after: &str,
        limit: u32,
    ) -> Result<ListHeldReservationsResponse, AccountError>;

    /// Releases `reservation_id` of `account_id` (idempotent).
    async fn release(
        &self,
        reservation_id: &str,
        account_id: &str,
    ) -> Result<ReleaseOutcome, AccountError>;
}

#[async_trait::async_trait]
impl OrphanLedger for AccountClient {
    async fn held_page(
        &self,
        older_than: Duration,
        after: &str,
        limit: u32,
    ) -> Result<ListHeldReservationsResponse, AccountError> {
        let ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        self.list_held_reservations(ms, after, limit).await
    }

    async fn release(
        &self,
        reservation_id: &str,
        account_id: &str,
    ) -> Result<ReleaseOutcome, AccountError> {
        AccountClient::release(self, reservation_id, account_id).await
    }
}

/// The order-store side of the sweep.
#[async_trait::async_trait]
pub trait OrphanOrders: Send + Sync {
    /// The order stored under the identity, if any.
    async fn find(
        &self,
        account_id: &str,
        request_id: &str,
    ) -> Result<Option<StoredOrder>, StoreError>;

    /// Inserts `tombstone` unless the identity is taken (then answers the
    /// stored order).
    async fn claim(&self, tombstone: NewOrder) -> Result<InsertOutcome, StoreError>;
}

#[async_trait::async_trait]
impl<S: OrderStore + ?Sized> OrphanOrders for S {
    async fn find(
        &self,
        account_id: &str,
        request_id: &str,
    ) -> Result<Option<StoredOrder>, StoreError> {
        self.find_by_request(account_id, request_id).await
    }

    async fn claim(&self, tombstone: NewOrder) -> Result<InsertOutcome, StoreError> {
        self.insert_order(tombstone).await
    }
}

/// What the sweep does with one old HELD reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An order owns it.
    Keep,
    /// Its order was rejected (or is a tombstone): give the funds back.
    Release,
    /// No order: store a tombstone, then release.
    Claim,
}

/// The decision for `held` given the order stored under its identity.
pub fn verdict(held: &HeldReservation, order: Option<&StoredOrder>) -> Verdict {
    match order {
        None => Verdict::Claim,
        Some(o) if o.reservation_id != held.reservation_id => Verdict::Release,
        Some(o) if o.status == OrderStatus::Rejected => Verdict::Release,
        Some(_) => Verdict::Keep,
    }
}

/// True when `order` is a tombstone stored by the sweep.
pub fn is_abandoned(order: &StoredOrder) -> bool {
    order.fingerprint == ABANDONED_FINGERPRINT
}

/// The tombstone claiming the identity of `held`.
pub fn tombstone(held: &HeldReservation) -> NewOrder {
    let buy = held.asset == CASH_ASSET;
    NewOrder {
        request_id: held.request_id.clone(),
        account_id: held.account_id.clone(),
        symbol: if buy {
            String::new()
        } else {
            held.asset.clone()
        },
        side: if buy { Side::Buy } else { Side::Sell },
        order_type: OrderType::Limit,
        price: 0,
        quantity: if buy { 0 } else { held.amount },
        status: OrderStatus::Rejected,
        code: Code::TooLate,
        message: ABANDONED_MESSAGE.to_owned(),
        fingerprint: ABANDONED_FINGERPRINT.to_owned(),
        reservation_id: held.reservation_id.clone(),
    }
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Old HELD reservations examined.
    pub examined: usize,
    /// Kept: an order owns them.
    pub kept: usize,
    /// Tombstones this sweep stored.
    pub claimed: usize,
    /// Reservations whose funds this sweep gave back (`RELEASED`).
    pub released: usize,
}

/// One sweep over every HELD order reservation older than `grace`.
pub async fn sweep_once<L, O>(
    ledger: &L,
    orders: &O,
    grace: Duration,
) -> Result<SweepReport, SweepError>
where
    L: OrphanLedger + ?Sized,
    O: OrphanOrders + ?Sized,
{
    sweep_remembering(ledger, orders, grace, &mut HashSet::new()).await
}

/// One sweep, skipping the order-store look-up of reservations an earlier
/// sweep found owned (`owned`: their ids). Ownership is final — an order
/// that owns its reservation never becomes REJECTED, and a cancel releases
/// the reservation, so it is no longer listed — so an open order is looked
/// up once, not on every sweep: without this, every sweep looked up every
/// open order and its duration grew with them (40 kill rounds on one
/// system pushed orphan release past its 10 s bound). `owned` keeps only
/// the ids this sweep saw again.
pub async fn sweep_remembering<L, O>(
    ledger: &L,
    orders: &O,
    grace: Duration,
    owned: &mut HashSet<String>,
) -> Result<SweepReport, SweepError>
where
    L: OrphanLedger + ?Sized,
    O: OrphanOrders + ?Sized,
{
    let mut report = SweepReport::default();
    let mut seen = HashSet::with_capacity(owned.len());
    let mut after = String::new();
    loop {
        let page = ledger.held_page(grace, &after, PAGE).await?;
        for held in &page.items {
            report.examined += 1;
            if owned.contains(&held.reservation_id) {
                report.kept += 1;
                seen.insert(held.reservation_id.clone());
                continue;
            }
            if settle(ledger, orders, held, &mut report).await? == Verdict::Keep {
                seen.insert(held.reservation_id.clone());
            }
        }
        if page.next_after.is_empty() || page.next_after <= after {
            *owned = seen;
            return Ok(report);
        }
        after = page.next_after;
    }
}

async fn settle<L, O>(
    ledger: &L,
    orders: &O,
    held: &HeldReservation,
    report: &mut SweepReport,
) -> Result<Verdict, SweepError>
where
    L: OrphanLedger + ?Sized,
    O: OrphanOrders + ?Sized,
{
    let found = orders.find(&held.account_id, &held.request_id).await?;
    let mut decision = verdict(held, found.as_ref());
    if decision == Verdict::Claim {
        decision = match orders.claim(tombstone(held)).await? {
            InsertOutcome::Inserted(_) => {
                report.claimed += 1;
                Verdict::Release
            }
            // A late place (or another sweep) took the identity first.
            InsertOutcome::Existing(order) => verdict(held, Some(&order)),
        };
    }
    match decision {
        Verdict::Keep => {
            report.kept += 1;
            return Ok(Verdict::Keep);
        }
        Verdict::Release | Verdict::Claim => {
            match ledger
                .release(&held.reservation_id, &held.account_id)
                .await?
            {
                ReleaseOutcome::Released => {
                    report.released += 1;
                    metrics::counter!(crate::admin::telemetry::ORPHANS_RELEASED).increment(1);
                    tracing::debug!(reservation_id = %held.reservation_id, "orphan reservation released");
                }
                ReleaseOutcome::WasReleased | ReleaseOutcome::NoReservation => {}
                ReleaseOutcome::Unspecified => {
                    return Err(SweepError::NoOutcome(held.reservation_id.clone()))
                }
            }
        }
    }
    Ok(Verdict::Release)
}

/// Sweeps at once, then every `interval`, until the task is aborted.
pub async fn run_orphan_sweeps(ctx: OrderContext, interval: Duration, grace: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut owned = HashSet::new();
    loop {
        ticker.tick().await;
        match sweep_remembering(&ctx.accounts, ctx.store.as_ref(), grace, &mut owned).await {
            Ok(r) if r.released > 0 || r.claimed > 0 => {
                tracing::info!(
                    examined = r.examined,
                    claimed = r.claimed,
                    released = r.released,
                    "orphan reservations released"
                );
            }
            Ok(_) => {}
            Err(SweepError::Account(AccountError::CircuitOpen)) => {
                tracing::debug!("orphan sweep skipped: account breaker open");
            }
            Err(e) => tracing::warn!(error = %e, "orphan sweep failed; retrying next interval"),
        }
    }
}

#[cfg(test)]
mod tests;
