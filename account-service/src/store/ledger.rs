//! The ledger operations, run inside a write transaction by the writer.

use hts_proto::v1::{AssetBalance, ReleaseOutcome, ReserveOutcome};
use hts_proto::CASH_ASSET;
use rusqlite::{params, Connection, OptionalExtension};

use super::{now_unix_ms, StoreError};

/// Status text of a reservation that still holds funds.
const HELD: &str = "HELD";
/// Status text of a reservation whose funds went back to `available`.
const RELEASED: &str = "RELEASED";

/// Demo accounts: `ACC-0001` ..= `ACC-{DEMO_ACCOUNTS}`.
pub(crate) const DEMO_ACCOUNTS: u32 = 1000;
/// Demo cash per account.
pub(crate) const DEMO_CASH: i64 = 1_000_000_000;
/// Demo position per symbol per account.
pub(crate) const DEMO_SHARES: i64 = 1_000_000;
/// Demo symbols every account holds.
pub(crate) const DEMO_SYMBOLS: [&str; 3] = ["005930", "000660", "035420"];

/// A reserve request as received.
#[derive(Debug, Clone)]
pub(crate) struct ReserveArgs {
    pub reservation_id: String,
    pub account_id: String,
    pub asset: String,
    pub amount: i64,
}

struct Reservation {
    account_id: String,
    asset: String,
    amount: i64,
    status: String,
}

fn find_reservation(
    conn: &Connection,
    reservation_id: &str,
) -> Result<Option<Reservation>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT account_id, asset, amount, status FROM reservations WHERE reservation_id = ?1",
        )?
        .query_row([reservation_id], |row| {
            Ok(Reservation {
                account_id: row.get(0)?,
                asset: row.get(1)?,
                amount: row.get(2)?,
                status: row.get(3)?,
            })
        })
        .optional()?)
}

/// Holds funds idempotently; see the crate docs for the outcome table.
pub(crate) fn reserve(conn: &Connection, args: &ReserveArgs) -> Result<ReserveOutcome, StoreError> {
    if let Some(existing) = find_reservation(conn, &args.reservation_id)? {
        let same = existing.account_id == args.account_id
            && existing.asset == args.asset
            && existing.amount == args.amount;
        return Ok(match (same, existing.status.as_str()) {
            (false, _) => ReserveOutcome::ReservationConflict,
            (true, HELD) => ReserveOutcome::AlreadyReserved,
            (true, RELEASED) => ReserveOutcome::AlreadyReleased,
            (true, other) => {
                return Err(StoreError::Corrupt(format!(
                    "reservation {} has status {other:?}",
                    args.reservation_id
                )))
            }
        });
    }
    if args.amount <= 0
        || args.reservation_id.is_empty()
        || args.account_id.is_empty()
        || args.asset.is_empty()
    {
        return Ok(ReserveOutcome::Invalid);
    }
    let account_exists = conn
        .prepare_cached("SELECT 1 FROM accounts WHERE account_id = ?1")?
        .exists([&args.account_id])?;
    if !account_exists {
        return Ok(ReserveOutcome::UnknownAccount);
    }
    let moved = conn
        .prepare_cached(
            "UPDATE balances SET available = available - ?3, reserved = reserved + ?3
             WHERE account_id = ?1 AND asset = ?2 AND available >= ?3",
        )?
        .execute(params![args.account_id, args.asset, args.amount])?;
    if moved == 0 {
        return Ok(ReserveOutcome::Insufficient);
    }
    conn.prepare_cached(
        "INSERT INTO reservations
            (reservation_id, account_id, asset, amount, status, created_at, released_at)
         VALUES (?1, ?2, ?3, ?4, 'HELD', ?5, NULL)",
    )?
    .execute(params![
        args.reservation_id,
        args.account_id,
        args.asset,
        args.amount,
        now_unix_ms()
    ])?;
    Ok(ReserveOutcome::Reserved)
}

/// Returns held funds idempotently.
pub(crate) fn release(
    conn: &Connection,
    reservation_id: &str,
    account_id: &str,
) -> Result<ReleaseOutcome, StoreError> {
    let Some(existing) = find_reservation(conn, reservation_id)? else {
        return Ok(ReleaseOutcome::NoReservation);
    };
    if existing.account_id != account_id {
        return Ok(ReleaseOutcome::NoReservation);
    }
    match existing.status.as_str() {
        RELEASED => return Ok(ReleaseOutcome::WasReleased),
        HELD => {}
        other => {
            return Err(StoreError::Corrupt(format!(
                "reservation {reservation_id} has status {other:?}"
            )))
        }
    }
    let moved = conn
        .prepare_cached(
            "UPDATE balances SET available = available + ?3, reserved = reserved - ?3
             WHERE account_id = ?1 AND asset = ?2",
        )?
        .execute(params![
            existing.account_id,
            existing.asset,
            existing.amount
        ])?;
    if moved != 1 {
        return Err(StoreError::Corrupt(format!(
            "reservation {reservation_id} has no balance row"
        )));
    }
    conn.prepare_cached(
        "UPDATE reservations SET status = 'RELEASED', released_at = ?2 WHERE reservation_id = ?1",
    )?
    .execute(params![reservation_id, now_unix_ms()])?;
    Ok(ReleaseOutcome::Released)
}

/// Creates the demo accounts; existing rows are left untouched.
pub(crate) fn seed_demo(conn: &Connection) -> Result<(), StoreError> {
    let mut account =
        conn.prepare_cached("INSERT OR IGNORE INTO accounts (account_id) VALUES (?1)")?;
    let mut balance = conn.prepare_cached(
        "INSERT OR IGNORE INTO balances (account_id, asset, available, reserved)
         VALUES (?1, ?2, ?3, 0)",
    )?;
    for n in 1..=DEMO_ACCOUNTS {
        let id = format!("ACC-{n:04}");
        account.execute([&id])?;
        balance.execute(params![id, CASH_ASSET, DEMO_CASH])?;
        for symbol in DEMO_SYMBOLS {
            balance.execute(params![id, symbol, DEMO_SHARES])?;
        }
    }
    Ok(())
}

/// Reads the balances of an account, `None` when it does not exist.
pub(crate) fn account_balances(
    conn: &Connection,
    account_id: &str,
) -> Result<Option<Vec<AssetBalance>>, StoreError> {
    let exists = conn
        .prepare_cached("SELECT 1 FROM accounts WHERE account_id = ?1")?
        .exists([account_id])?;
    if !exists {
        return Ok(None);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT asset, available, reserved FROM balances WHERE account_id = ?1 ORDER BY asset",
    )?;
    let rows = stmt.query_map([account_id], |row| {
        Ok(AssetBalance {
            asset: row.get(0)?,
            available: row.get(1)?,
            reserved: row.get(2)?,
        })
    })?;
    Ok(Some(rows.collect::<Result<Vec<_>, _>>()?))
}
