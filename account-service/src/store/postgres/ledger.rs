//! Ledger batches on PostgreSQL: two round trips and one commit per batch.
//!
//! 1. Reads, pipelined (one round trip), each by primary key: the batch's
//!    stored reservations, the accounts that exist, the balances its
//!    reserves touch (a second read, only for batches that release stored
//!    reservations, fetches those reservations' balances).
//! 2. [`Book`] decides every operation in batch order, as one at a time.
//! 3. ONE write statement, which commits on its own (no BEGIN/COMMIT round
//!    trips): the new reservations, the released ones and one update per
//!    changed (account, asset) with the summed change, as data-modifying
//!    CTEs, ended by `ledger_batch_check` of their row counts.
//!
//! The reads take no locks and need no transaction: the write checks that
//! what was read still holds — a new reservation must not exist yet
//! (`ON CONFLICT DO NOTHING`, counted), a release needs its row still
//! HELD, a balance must still have the values read. If any check fails
//! (only another account-service process on the same database can cause
//! it: within one process the lanes never run two batches on one account),
//! `ledger_batch_check` raises `serialization_failure`, the statement
//! changes nothing, and the batch is read and decided again (a transient
//! error: [`hts_dbkit::pg::retry_transient`] backs off and retries). Every
//! statement is prepared once per connection (`prepare_cached`).

use deadpool_postgres::{GenericClient, Pool};
use hts_dbkit::pg::PgError;
use hts_proto::v1::{AssetBalance, HeldReservation};
use hts_proto::CASH_ASSET;
use tokio_postgres::types::ToSql;

use crate::store::book::{
    Balance, Book, Corrupt, Effects, Keys, LedgerOp, LedgerOutcome, Reservation,
};
use crate::store::ledger::{DEMO_ACCOUNTS, DEMO_CASH, DEMO_SHARES, DEMO_SYMBOLS};
use crate::store::now_unix_ms;

const RESERVATIONS: &str = "SELECT reservation_id, account_id, asset, amount, status
    FROM reservations WHERE reservation_id = ANY($1)";
const ACCOUNTS: &str = "SELECT account_id FROM accounts WHERE account_id = ANY($1)";
/// Balances of the given (account, asset) keys, each looked up by its
/// primary key (the lateral join keeps the planner off sequential scans).
const BALANCES: &str = "SELECT b.account_id, b.asset, b.available, b.reserved
    FROM UNNEST($1::text[], $2::text[]) AS k(account_id, asset)
    CROSS JOIN LATERAL (SELECT * FROM balances
        WHERE account_id = k.account_id AND asset = k.asset) b";
/// Every write of a batch, committed by this one statement or not at all.
const WRITE: &str = "WITH ins AS (
    INSERT INTO reservations
        (reservation_id, account_id, asset, amount, status, created_at, released_at, request_id)
    SELECT r.id, r.account_id, r.asset, r.amount, r.status, $6::int8,
        CASE WHEN r.status = 'RELEASED' THEN $6::int8 END, r.request_id
    FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $7::text[])
        AS r(id, account_id, asset, amount, status, request_id)
    ON CONFLICT (reservation_id) DO NOTHING
    RETURNING 1
), rel AS (
    UPDATE reservations SET status = 'RELEASED', released_at = $6::int8
    WHERE reservation_id = ANY($8::text[]) AND status = 'HELD'
    RETURNING 1
), bal AS (
    UPDATE balances b SET available = d.available, reserved = d.reserved
    FROM UNNEST($9::text[], $10::text[], $11::int8[], $12::int8[], $13::int8[], $14::int8[])
        AS d(account_id, asset, available, reserved, was_available, was_reserved)
    WHERE b.account_id = d.account_id AND b.asset = d.asset
      AND b.available = d.was_available AND b.reserved = d.was_reserved
    RETURNING 1
)
SELECT ledger_batch_check((SELECT count(*) FROM ins) = $15::int8
    AND (SELECT count(*) FROM rel) = $16::int8
    AND (SELECT count(*) FROM bal) = $17::int8)";

fn add_balances(book: &mut Book, rows: &[tokio_postgres::Row]) -> Result<(), PgError> {
    for row in rows {
        book.add_balance(
            row.try_get(0)?,
            row.try_get(1)?,
            Balance {
                available: row.try_get(2)?,
                reserved: row.try_get(3)?,
            },
        );
    }
    Ok(())
}

/// Reads, decides and commits `ops`; one answer per operation, in order.
pub(crate) async fn attempt(
    pool: &Pool,
    ops: &[LedgerOp],
) -> Result<Vec<Result<LedgerOutcome, Corrupt>>, PgError> {
    let keys = Keys::of(ops);
    let (bal_accounts, bal_assets): (Vec<&str>, Vec<&str>) = keys
        .balances
        .iter()
        .map(|(a, s)| (a.as_str(), s.as_str()))
        .unzip();
    let client = pool.get().await?;
    let (s_res, s_acc, s_bal) = tokio::try_join!(
        client.prepare_cached(RESERVATIONS),
        client.prepare_cached(ACCOUNTS),
        client.prepare_cached(BALANCES),
    )?;
    let res_params: [&(dyn ToSql + Sync); 1] = [&keys.reservations];
    let acc_params: [&(dyn ToSql + Sync); 1] = [&keys.accounts];
    let bal_params: [&(dyn ToSql + Sync); 2] = [&bal_accounts, &bal_assets];
    let (res_rows, acc_rows, bal_rows) = tokio::try_join!(
        client.query(&s_res, &res_params),
        client.query(&s_acc, &acc_params),
        client.query(&s_bal, &bal_params),
    )?;
    let mut book = Book::default();
    for row in &res_rows {
        book.add_reservation(
            row.try_get(0)?,
            Reservation {
                account_id: row.try_get(1)?,
                asset: row.try_get(2)?,
                amount: row.try_get(3)?,
                status: row.try_get(4)?,
            },
        );
    }
    for row in &acc_rows {
        book.add_account(row.try_get(0)?);
    }
    add_balances(&mut book, &bal_rows)?;
    let more = book.release_balances(ops);
    if !more.is_empty() {
        let (accounts, assets): (Vec<&str>, Vec<&str>) =
            more.iter().map(|(a, s)| (a.as_str(), s.as_str())).unzip();
        add_balances(
            &mut book,
            &client.query(&s_bal, &[&accounts, &assets]).await?,
        )?;
    }
    let outcomes: Vec<Result<LedgerOutcome, Corrupt>> =
        ops.iter().map(|op| book.apply(op)).collect();
    let effects = book.into_effects();
    if !effects.is_empty() {
        write(&client, &effects).await?;
    }
    Ok(outcomes)
}

/// Writes `effects` with [`WRITE`]; fails with `serialization_failure`
/// (changing nothing) when a row read no longer holds what was read.
async fn write<C: GenericClient>(client: &C, effects: &Effects) -> Result<(), PgError> {
    let now = now_unix_ms();
    let ins = &effects.inserted;
    let ids: Vec<&str> = ins.iter().map(|r| r.reservation_id.as_str()).collect();
    let accounts: Vec<&str> = ins.iter().map(|r| r.account_id.as_str()).collect();
    let assets: Vec<&str> = ins.iter().map(|r| r.asset.as_str()).collect();
    let amounts: Vec<i64> = ins.iter().map(|r| r.amount).collect();
    let statuses: Vec<&str> = ins.iter().map(|r| r.status).collect();
    let requests: Vec<Option<&str>> = ins.iter().map(|r| r.request_id.as_deref()).collect();
    let b = &effects.balances;
    let b_accounts: Vec<&str> = b.keys().map(|(a, _)| a.as_str()).collect();
    let b_assets: Vec<&str> = b.keys().map(|(_, s)| s.as_str()).collect();
    let b_avail: Vec<i64> = b.values().map(|c| c.now.available).collect();
    let b_res: Vec<i64> = b.values().map(|c| c.now.reserved).collect();
    let b_was_avail: Vec<i64> = b.values().map(|c| c.read.available).collect();
    let b_was_res: Vec<i64> = b.values().map(|c| c.read.reserved).collect();
    let counts = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let (n_ins, n_rel, n_bal) = (
        counts(ids.len()),
        counts(effects.released.len()),
        counts(b_accounts.len()),
    );
    let stmt = client.prepare_cached(WRITE).await?;
    client
        .query_one(
            &stmt,
            &[
                &ids,
                &accounts,
                &assets,
                &amounts,
                &statuses,
                &now,
                &requests,
                &effects.released,
                &b_accounts,
                &b_assets,
                &b_avail,
                &b_res,
                &b_was_avail,
                &b_was_res,
                &n_ins,
                &n_rel,
                &n_bal,
            ],
        )
        .await?;
    Ok(())
}

/// Creates the demo accounts; existing rows are left untouched.
pub(crate) async fn seed_demo(pool: &Pool) -> Result<(), PgError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let count = i32::try_from(DEMO_ACCOUNTS).unwrap_or(i32::MAX);
    tx.execute(
        "INSERT INTO accounts (account_id)
         SELECT 'ACC-' || lpad(n::text, 4, '0') FROM generate_series(1, $1) AS n
         ON CONFLICT DO NOTHING",
        &[&count],
    )
    .await?;
    let mut assets = vec![CASH_ASSET.to_owned()];
    let mut amounts = vec![DEMO_CASH];
    for symbol in DEMO_SYMBOLS {
        assets.push(symbol.to_owned());
        amounts.push(DEMO_SHARES);
    }
    tx.execute(
        "INSERT INTO balances (account_id, asset, available, reserved)
         SELECT 'ACC-' || lpad(n::text, 4, '0'), a.asset, a.amount, 0
         FROM generate_series(1, $1) AS n, UNNEST($2::text[], $3::int8[]) AS a(asset, amount)
         ON CONFLICT DO NOTHING",
        &[&count, &assets, &amounts],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The balances of an account ordered by asset, `None` when unknown.
pub(crate) async fn account_balances(
    pool: &Pool,
    account_id: &str,
) -> Result<Option<Vec<AssetBalance>>, PgError> {
    let client = pool.get().await?;
    let (exists, rows) = tokio::try_join!(
        async {
            let stmt = client
                .prepare_cached("SELECT 1 FROM accounts WHERE account_id = $1")
                .await?;
            client.query_opt(&stmt, &[&account_id]).await
        },
        async {
            let stmt = client
                .prepare_cached(
                    "SELECT asset, available, reserved FROM balances WHERE account_id = $1 ORDER BY asset",
                )
                .await?;
            client.query(&stmt, &[&account_id]).await
        },
    )?;
    if exists.is_none() {
        return Ok(None);
    }
    rows.iter()
        .map(|r| {
            Ok(AssetBalance {
                asset: r.try_get(0)?,
                available: r.try_get(1)?,
                reserved: r.try_get(2)?,
            })
        })
        .collect::<Result<Vec<_>, PgError>>()
        .map(Some)
}

/// Up to `limit` HELD reservations of orders (with a request_id) created
/// at or before `cutoff_ms`, with ids after `after`, in id order.
pub(crate) async fn held_reservations(
    pool: &Pool,
    cutoff_ms: i64,
    after: &str,
    limit: usize,
) -> Result<Vec<HeldReservation>, PgError> {
    let client = pool.get().await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let stmt = client
        .prepare_cached(
            "SELECT reservation_id, account_id, request_id, asset, amount, created_at
             FROM reservations
             WHERE status = 'HELD' AND request_id IS NOT NULL
               AND reservation_id > $1 AND created_at <= $2
             ORDER BY reservation_id LIMIT $3",
        )
        .await?;
    let rows = client.query(&stmt, &[&after, &cutoff_ms, &limit]).await?;
    rows.iter()
        .map(|r| {
            Ok(HeldReservation {
                reservation_id: r.try_get(0)?,
                account_id: r.try_get(1)?,
                request_id: r.try_get(2)?,
                asset: r.try_get(3)?,
                amount: r.try_get(4)?,
                created_at_unix_ms: r.try_get(5)?,
            })
        })
        .collect()
}
