//! Ledger operations on PostgreSQL, one transaction per attempt.

use deadpool_postgres::{GenericClient, Pool};
use hts_dbkit::pg::PgError;
use hts_proto::v1::{AssetBalance, ReleaseOutcome, ReserveOutcome};
use hts_proto::CASH_ASSET;

use crate::store::ledger::{ReserveArgs, DEMO_ACCOUNTS, DEMO_CASH, DEMO_SHARES, DEMO_SYMBOLS};
use crate::store::now_unix_ms;

/// A reservation row.
struct Reservation {
    account_id: String,
    asset: String,
    amount: i64,
    status: String,
}

/// What an attempt found: an outcome, or data the caller must reject.
pub(crate) enum Attempt<T> {
    /// Finished with this outcome.
    Done(T),
    /// A stored value cannot be interpreted.
    Corrupt(String),
}

async fn find_reservation<C: GenericClient>(
    client: &C,
    reservation_id: &str,
    for_update: bool,
) -> Result<Option<Reservation>, PgError> {
    let sql = if for_update {
        "SELECT account_id, asset, amount, status FROM reservations
         WHERE reservation_id = $1 FOR UPDATE"
    } else {
        "SELECT account_id, asset, amount, status FROM reservations WHERE reservation_id = $1"
    };
    let row = client.query_opt(sql, &[&reservation_id]).await?;
    Ok(match row {
        Some(r) => Some(Reservation {
            account_id: r.try_get(0)?,
            asset: r.try_get(1)?,
            amount: r.try_get(2)?,
            status: r.try_get(3)?,
        }),
        None => None,
    })
}

fn existing_outcome(existing: &Reservation, args: &ReserveArgs) -> Attempt<ReserveOutcome> {
    let same = existing.account_id == args.account_id
        && existing.asset == args.asset
        && existing.amount == args.amount;
    match (same, existing.status.as_str()) {
        (false, _) => Attempt::Done(ReserveOutcome::ReservationConflict),
        (true, "HELD") => Attempt::Done(ReserveOutcome::AlreadyReserved),
        (true, "RELEASED") => Attempt::Done(ReserveOutcome::AlreadyReleased),
        (true, other) => Attempt::Corrupt(format!(
            "reservation {} has status {other:?}",
            args.reservation_id
        )),
    }
}

/// Holds funds idempotently. The reservation row is inserted first
/// (`ON CONFLICT DO NOTHING`): of concurrent identical calls, in any
/// process, exactly one inserts it and moves funds; the others wait for it
/// and then report the stored reservation.
pub(crate) async fn reserve(
    pool: &Pool,
    args: &ReserveArgs,
) -> Result<Attempt<ReserveOutcome>, PgError> {
    if args.amount <= 0
        || args.reservation_id.is_empty()
        || args.account_id.is_empty()
        || args.asset.is_empty()
    {
        let client = pool.get().await?;
        return Ok(
            match find_reservation(&client, &args.reservation_id, false).await? {
                Some(existing) => existing_outcome(&existing, args),
                None => Attempt::Done(ReserveOutcome::Invalid),
            },
        );
    }
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let inserted = tx
        .execute(
            "INSERT INTO reservations
                (reservation_id, account_id, asset, amount, status, created_at, released_at)
             SELECT $1, $2, $3, $4, 'HELD', $5, NULL
             WHERE EXISTS (SELECT 1 FROM accounts WHERE account_id = $2)
             ON CONFLICT (reservation_id) DO NOTHING",
            &[
                &args.reservation_id,
                &args.account_id,
                &args.asset,
                &args.amount,
                &now_unix_ms(),
            ],
        )
        .await?;
    if inserted == 0 {
        let existing = find_reservation(&tx, &args.reservation_id, false).await?;
        tx.rollback().await?;
        return Ok(match existing {
            Some(existing) => existing_outcome(&existing, args),
            None => Attempt::Done(ReserveOutcome::UnknownAccount),
        });
    }
    let moved = tx
        .execute(
            "UPDATE balances SET available = available - $3, reserved = reserved + $3
             WHERE account_id = $1 AND asset = $2 AND available >= $3",
            &[&args.account_id, &args.asset, &args.amount],
        )
        .await?;
    if moved == 0 {
        tx.rollback().await?;
        return Ok(Attempt::Done(ReserveOutcome::Insufficient));
    }
    tx.commit().await?;
    Ok(Attempt::Done(ReserveOutcome::Reserved))
}

/// Returns held funds idempotently (the reservation row is locked).
pub(crate) async fn release(
    pool: &Pool,
    reservation_id: &str,
    account_id: &str,
) -> Result<Attempt<ReleaseOutcome>, PgError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let Some(existing) = find_reservation(&tx, reservation_id, true).await? else {
        return Ok(Attempt::Done(ReleaseOutcome::NoReservation));
    };
    if existing.account_id != account_id {
        return Ok(Attempt::Done(ReleaseOutcome::NoReservation));
    }
    match existing.status.as_str() {
        "RELEASED" => return Ok(Attempt::Done(ReleaseOutcome::WasReleased)),
        "HELD" => {}
        other => {
            return Ok(Attempt::Corrupt(format!(
                "reservation {reservation_id} has status {other:?}"
            )))
        }
    }
    let moved = tx
        .execute(
            "UPDATE balances SET available = available + $3, reserved = reserved - $3
             WHERE account_id = $1 AND asset = $2",
            &[&existing.account_id, &existing.asset, &existing.amount],
        )
        .await?;
    if moved != 1 {
        return Ok(Attempt::Corrupt(format!(
            "reservation {reservation_id} has no balance row"
        )));
    }
    tx.execute(
        "UPDATE reservations SET status = 'RELEASED', released_at = $2 WHERE reservation_id = $1",
        &[&reservation_id, &now_unix_ms()],
    )
    .await?;
    tx.commit().await?;
    Ok(Attempt::Done(ReleaseOutcome::Released))
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
    let exists = client
        .query_opt(
            "SELECT 1 FROM accounts WHERE account_id = $1",
            &[&account_id],
        )
        .await?
        .is_some();
    if !exists {
        return Ok(None);
    }
    let rows = client
        .query(
            "SELECT asset, available, reserved FROM balances WHERE account_id = $1 ORDER BY asset",
            &[&account_id],
        )
        .await?;
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
