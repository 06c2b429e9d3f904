//! The ledger's decisions, apart from any database.
//!
//! A [`Book`] holds what a batch needs to know, loaded by the store inside
//! the batch's transaction: the existing reservations of the batch's ids,
//! which accounts exist, and the balances the batch touches. Operations are
//! decided one after the other, in batch order, exactly as they would be
//! one at a time; the book keeps the effects to write back (new
//! reservations, released ones, the summed balance change per
//! (account, asset)). Both stores (SQLite and PostgreSQL) use it, so the
//! outcome table lives in this one place.

use std::collections::{BTreeMap, HashMap, HashSet};

use hts_proto::v1::{ReleaseOutcome, ReserveOutcome};

/// Status of a reservation that holds funds.
pub(crate) const HELD: &str = "HELD";
/// Status of a reservation whose funds went back to `available`.
pub(crate) const RELEASED: &str = "RELEASED";
/// Status of a refusal recorded for an order's reservation: the decision
/// INSUFFICIENT is final for that id, no funds are held.
pub(crate) const REFUSED: &str = "REFUSED";

/// A reserve request as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveArgs {
    /// Idempotency key of the reservation.
    pub reservation_id: String,
    /// Account to hold funds on.
    pub account_id: String,
    /// `CASH` or a symbol.
    pub asset: String,
    /// Amount to hold (> 0).
    pub amount: i64,
    /// The request_id of the order this reservation backs (with
    /// `account_id`, the order's identity). Set: an INSUFFICIENT decision
    /// is recorded and repeated for this id.
    pub request_id: Option<String>,
}

/// One ledger operation of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LedgerOp {
    /// Hold funds.
    Reserve(ReserveArgs),
    /// Give held funds back.
    Release {
        reservation_id: String,
        account_id: String,
    },
}

impl LedgerOp {
    /// The account the operation concerns (its lane key).
    pub(crate) fn account_id(&self) -> &str {
        match self {
            LedgerOp::Reserve(a) => &a.account_id,
            LedgerOp::Release { account_id, .. } => account_id,
        }
    }

    /// The reservation the operation concerns.
    pub(crate) fn reservation_id(&self) -> &str {
        match self {
            LedgerOp::Reserve(a) => &a.reservation_id,
            LedgerOp::Release { reservation_id, .. } => reservation_id,
        }
    }
}

/// The answer to one [`LedgerOp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LedgerOutcome {
    /// Answer to a reserve.
    Reserve(ReserveOutcome),
    /// Answer to a release.
    Release(ReleaseOutcome),
}

/// A stored reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reservation {
    pub account_id: String,
    pub asset: String,
    pub amount: i64,
    pub status: String,
}

/// A balance row as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Balance {
    pub available: i64,
    pub reserved: i64,
}

/// A reservation the batch creates (possibly released in the same batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewReservation {
    pub reservation_id: String,
    pub account_id: String,
    pub asset: String,
    pub amount: i64,
    pub status: &'static str,
    pub request_id: Option<String>,
}

/// A balance's summed change and the value it was read at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BalanceChange {
    /// As read when the batch started (the write checks it is unchanged).
    pub read: Balance,
    /// After every operation of the batch.
    pub now: Balance,
}

/// Everything a batch must write.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Reservations to insert, in creation order.
    pub inserted: Vec<NewReservation>,
    /// Stored HELD reservations to mark RELEASED.
    pub released: Vec<String>,
    /// Changed balances, ordered by (account, asset) (one lock order).
    pub balances: BTreeMap<(String, String), BalanceChange>,
}

impl Effects {
    /// True when the batch changes nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.inserted.is_empty() && self.released.is_empty() && self.balances.is_empty()
    }
}

/// A stored value the ledger cannot interpret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Corrupt(pub String);

/// What a batch knows and has decided so far.
#[derive(Debug, Default)]
pub(crate) struct Book {
    reservations: HashMap<String, Reservation>,
    /// Ids of `reservations` created by this batch (index into `inserted`).
    created: HashMap<String, usize>,
    accounts: HashSet<String>,
    balances: HashMap<(String, String), Balance>,
    effects: Effects,
}

/// The keys a store must load for `ops` before deciding them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Keys {
    /// Reservation ids, sorted, unique.
    pub reservations: Vec<String>,
    /// Account ids of reserves, sorted, unique.
    pub accounts: Vec<String>,
    /// (account, asset) of reserves, sorted, unique (releases need the
    /// balance of their stored reservation: [`Book::release_balances`]).
    pub balances: Vec<(String, String)>,
}

impl Keys {
    /// The keys of `ops`.
    pub(crate) fn of(ops: &[LedgerOp]) -> Keys {
        let mut keys = Keys::default();
        for op in ops {
            keys.reservations.push(op.reservation_id().to_owned());
            if let LedgerOp::Reserve(a) = op {
                keys.accounts.push(a.account_id.clone());
                keys.balances.push((a.account_id.clone(), a.asset.clone()));
            }
        }
        for v in [&mut keys.reservations, &mut keys.accounts] {
            v.sort();
            v.dedup();
        }
        keys.balances.sort();
        keys.balances.dedup();
        keys
    }
}

fn existing_outcome(
    existing: &Reservation,
    args: &ReserveArgs,
    id: &str,
) -> Result<ReserveOutcome, Corrupt> {
    let same = existing.account_id == args.account_id
        && existing.asset == args.asset
        && existing.amount == args.amount;
    Ok(match (same, existing.status.as_str()) {
        (false, _) => ReserveOutcome::ReservationConflict,
        (true, HELD) => ReserveOutcome::AlreadyReserved,
        (true, RELEASED) => ReserveOutcome::AlreadyReleased,
        (true, REFUSED) => ReserveOutcome::Insufficient,
        (true, other) => return Err(Corrupt(format!("reservation {id} has status {other:?}"))),
    })
}

impl Book {
    /// Records a stored reservation.
    pub(crate) fn add_reservation(&mut self, id: String, r: Reservation) {
        self.reservations.insert(id, r);
    }

    /// Records that `account_id` exists.
    pub(crate) fn add_account(&mut self, account_id: String) {
        self.accounts.insert(account_id);
    }

    /// Records a stored balance.
    pub(crate) fn add_balance(&mut self, account_id: String, asset: String, b: Balance) {
        self.balances.insert((account_id, asset), b);
    }

    /// (account, asset) balances releases of stored reservations need.
    pub(crate) fn release_balances(&self, ops: &[LedgerOp]) -> Vec<(String, String)> {
        let mut keys: Vec<(String, String)> = ops
            .iter()
            .filter_map(|op| match op {
                LedgerOp::Release { reservation_id, .. } => self.reservations.get(reservation_id),
                LedgerOp::Reserve(_) => None,
            })
            .map(|r| (r.account_id.clone(), r.asset.clone()))
            .filter(|k| !self.balances.contains_key(k))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Decides `op` after every operation decided before it.
    pub(crate) fn apply(&mut self, op: &LedgerOp) -> Result<LedgerOutcome, Corrupt> {
        Ok(match op {
            LedgerOp::Reserve(args) => LedgerOutcome::Reserve(self.reserve(args)?),
            LedgerOp::Release {
                reservation_id,
                account_id,
            } => LedgerOutcome::Release(self.release(reservation_id, account_id)?),
        })
    }

    /// The effects of everything decided, for the store to write.
    pub(crate) fn into_effects(self) -> Effects {
        self.effects
    }

    fn change(
        &mut self,
        account_id: &str,
        asset: &str,
        available: i64,
        reserved: i64,
    ) -> Result<(), Corrupt> {
        let key = (account_id.to_owned(), asset.to_owned());
        let Some(balance) = self.balances.get_mut(&key) else {
            return Err(Corrupt(format!("no balance row for {account_id}/{asset}")));
        };
        let read = *balance;
        balance.available += available;
        balance.reserved += reserved;
        let now = *balance;
        self.effects
            .balances
            .entry(key)
            .and_modify(|c| c.now = now)
            .or_insert(BalanceChange { read, now });
        Ok(())
    }

    fn create(&mut self, args: &ReserveArgs, status: &'static str) {
        self.created
            .insert(args.reservation_id.clone(), self.effects.inserted.len());
        self.effects.inserted.push(NewReservation {
            reservation_id: args.reservation_id.clone(),
            account_id: args.account_id.clone(),
            asset: args.asset.clone(),
            amount: args.amount,
            status,
            request_id: args.request_id.clone(),
        });
        self.reservations.insert(
            args.reservation_id.clone(),
            Reservation {
                account_id: args.account_id.clone(),
                asset: args.asset.clone(),
                amount: args.amount,
                status: status.to_owned(),
            },
        );
    }

    fn reserve(&mut self, args: &ReserveArgs) -> Result<ReserveOutcome, Corrupt> {
        if let Some(existing) = self.reservations.get(&args.reservation_id) {
            return existing_outcome(existing, args, &args.reservation_id);
        }
        if args.amount <= 0
            || args.reservation_id.is_empty()
            || args.account_id.is_empty()
            || args.asset.is_empty()
        {
            return Ok(ReserveOutcome::Invalid);
        }
        if !self.accounts.contains(&args.account_id) {
            return Ok(ReserveOutcome::UnknownAccount);
        }
        let key = (args.account_id.clone(), args.asset.clone());
        let enough = self
            .balances
            .get(&key)
            .is_some_and(|b| b.available >= args.amount);
        if !enough {
            if args.request_id.is_some() {
                self.create(args, REFUSED);
            }
            return Ok(ReserveOutcome::Insufficient);
        }
        self.change(&args.account_id, &args.asset, -args.amount, args.amount)?;
        self.create(args, HELD);
        Ok(ReserveOutcome::Reserved)
    }

    fn release(
        &mut self,
        reservation_id: &str,
        account_id: &str,
    ) -> Result<ReleaseOutcome, Corrupt> {
        let Some(existing) = self.reservations.get(reservation_id) else {
            return Ok(ReleaseOutcome::NoReservation);
        };
        if existing.account_id != account_id {
            return Ok(ReleaseOutcome::NoReservation);
        }
        match existing.status.as_str() {
            RELEASED => return Ok(ReleaseOutcome::WasReleased),
            REFUSED => return Ok(ReleaseOutcome::NoReservation),
            HELD => {}
            other => {
                return Err(Corrupt(format!(
                    "reservation {reservation_id} has status {other:?}"
                )))
            }
        }
        let (asset, amount) = (existing.asset.clone(), existing.amount);
        self.change(account_id, &asset, amount, -amount)?;
        if let Some(r) = self.reservations.get_mut(reservation_id) {
            r.status = RELEASED.to_owned();
        }
        match self.created.get(reservation_id) {
            Some(&i) => self.effects.inserted[i].status = RELEASED,
            None => self.effects.released.push(reservation_id.to_owned()),
        }
        Ok(ReleaseOutcome::Released)
    }
}
