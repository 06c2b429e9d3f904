//! The SQLite ledger: a batch of operations inside one write transaction
//! of the group-committing writer, decided by [`Book`].

use hts_proto::v1::{AssetBalance, HeldReservation};
use hts_proto::CASH_ASSET;
use rusqlite::{params, Connection, OptionalExtension};

use super::book::{Balance, Book, Corrupt, Effects, Keys, LedgerOp, LedgerOutcome, Reservation};
use super::{now_unix_ms, StoreError};

/// Demo accounts: `ACC-0001` ..= `ACC-{DEMO_ACCOUNTS}`.
pub(crate) const DEMO_ACCOUNTS: u32 = 1000;
/// Demo cash per account.
pub(crate) const DEMO_CASH: i64 = 1_000_000_000;
/// Demo position per symbol per account.
pub(crate) const DEMO_SHARES: i64 = 1_000_000;
/// Demo symbols every account holds.
pub(crate) const DEMO_SYMBOLS: [&str; 3] = ["005930", "000660", "035420"];

fn load_balance(
    conn: &Connection,
    book: &mut Book,
    account: &str,
    asset: &str,
) -> Result<(), StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT available, reserved FROM balances WHERE account_id = ?1 AND asset = ?2",
        )?
        .query_row([account, asset], |row| {
            Ok(Balance {
                available: row.get(0)?,
                reserved: row.get(1)?,
            })
        })
        .optional()?;
    if let Some(b) = row {
        book.add_balance(account.to_owned(), asset.to_owned(), b);
    }
    Ok(())
}

/// Loads what `ops` need into a [`Book`] (inside the write transaction, so
/// nothing changes underneath).
fn load(conn: &Connection, ops: &[LedgerOp]) -> Result<Book, StoreError> {
    let keys = Keys::of(ops);
    let mut book = Book::default();
    let mut reservation = conn.prepare_cached(
        "SELECT account_id, asset, amount, status FROM reservations WHERE reservation_id = ?1",
    )?;
    for id in &keys.reservations {
        let row = reservation
            .query_row([id], |row| {
                Ok(Reservation {
                    account_id: row.get(0)?,
                    asset: row.get(1)?,
                    amount: row.get(2)?,
                    status: row.get(3)?,
                })
            })
            .optional()?;
        if let Some(r) = row {
            book.add_reservation(id.clone(), r);
        }
    }
    let mut account = conn.prepare_cached("SELECT 1 FROM accounts WHERE account_id = ?1")?;
    for id in &keys.accounts {
        if account.exists([id])? {
            book.add_account(id.clone());
        }
    }
    for (account, asset) in &keys.balances {
        load_balance(conn, &mut book, account, asset)?;
    }
    for (account, asset) in book.release_balances(ops) {
        load_balance(conn, &mut book, &account, &asset)?;
    }
    Ok(book)
}

fn write(conn: &Connection, effects: &Effects) -> Result<(), StoreError> {
    let now = now_unix_ms();
    let mut insert = conn.prepare_cached(
        "INSERT INTO reservations
            (reservation_id, account_id, asset, amount, status, created_at, released_at, request_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for r in &effects.inserted {
        let released_at = (r.status == super::book::RELEASED).then_some(now);
        insert.execute(params![
            r.reservation_id,
            r.account_id,
            r.asset,
            r.amount,
            r.status,
            now,
            released_at,
            r.request_id
        ])?;
    }
    let mut release = conn.prepare_cached(
        "UPDATE reservations SET status = 'RELEASED', released_at = ?2
         WHERE reservation_id = ?1 AND status = 'HELD'",
    )?;
    for id in &effects.released {
        release.execute(params![id, now])?;
    }
    let mut balance = conn.prepare_cached(
        "UPDATE balances SET available = ?3, reserved = ?4 WHERE account_id = ?1 AND asset = ?2",
    )?;
    for ((account, asset), change) in &effects.balances {
        balance.execute(params![
            account,
            asset,
            change.now.available,
            change.now.reserved
        ])?;
    }
    Ok(())
}

/// Decides and writes `ops` in the caller's transaction; one answer per
/// operation, in order (a corrupt stored row fails only its operation).
pub(crate) fn apply(
    conn: &Connection,
    ops: &[LedgerOp],
) -> Result<Vec<Result<LedgerOutcome, Corrupt>>, StoreError> {
    let mut book = load(conn, ops)?;
    let outcomes = ops.iter().map(|op| book.apply(op)).collect();
    write(conn, &book.into_effects())?;
    Ok(outcomes)
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

/// Up to `limit` HELD reservations of orders (with a request_id) created
/// at or before `cutoff_ms`, with ids after `after`, in id order.
pub(crate) fn held_reservations(
    conn: &Connection,
    cutoff_ms: i64,
    after: &str,
    limit: usize,
) -> Result<Vec<HeldReservation>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(
        "SELECT reservation_id, account_id, request_id, asset, amount, created_at
         FROM reservations
         WHERE status = 'HELD' AND request_id IS NOT NULL
           AND reservation_id > ?1 AND created_at <= ?2
         ORDER BY reservation_id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![after, cutoff_ms, limit], |row| {
        Ok(HeldReservation {
            reservation_id: row.get(0)?,
            account_id: row.get(1)?,
            request_id: row.get(2)?,
            asset: row.get(3)?,
            amount: row.get(4)?,
            created_at_unix_ms: row.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
