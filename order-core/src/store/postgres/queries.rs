//! Reads, cancels and pending releases on PostgreSQL (one attempt each;
//! the store wraps them in transient-error retries). Every statement is
//! prepared once per connection (`prepare_cached`).

use deadpool_postgres::{GenericClient, Pool};
use hts_dbkit::pg::PgError;
use hts_proto::v1::OrderStatus;
use tokio_postgres::Row;

use super::rows::ORDER_SELECT;
use crate::outbox::{EventType, OutboxEvent};
use crate::store::{PendingRelease, StoredOrder};

pub(crate) async fn find_by_request(
    pool: &Pool,
    account_id: &str,
    request_id: &str,
) -> Result<Option<Row>, PgError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(&format!(
            "{ORDER_SELECT} WHERE o.account_id = $1 AND o.request_id = $2"
        ))
        .await?;
    Ok(client.query_opt(&stmt, &[&account_id, &request_id]).await?)
}

pub(crate) async fn get_order(pool: &Pool, order_id: &str) -> Result<Option<Row>, PgError> {
    let client = pool.get().await?;
    get_order_on(&client, order_id).await
}

async fn get_order_on<C: GenericClient>(
    client: &C,
    order_id: &str,
) -> Result<Option<Row>, PgError> {
    let stmt = client
        .prepare_cached(&format!("{ORDER_SELECT} WHERE o.order_id = $1"))
        .await?;
    Ok(client.query_opt(&stmt, &[&order_id]).await?)
}

/// What a cancel transaction saw.
pub(crate) struct CancelRows {
    /// Whether this transaction moved ACCEPTED to CANCELED.
    pub changed: bool,
    /// The order after the transaction (None: no such order).
    pub order: Option<Row>,
}

/// In one transaction: ACCEPTED → CANCELED, a pending release and an
/// `order.canceled` outbox row (built by `event` from the canceled order).
pub(crate) async fn cancel_order(
    pool: &Pool,
    order_id: &str,
    now_ms: i64,
    event: impl Fn(&Row) -> Result<(OutboxEvent, PendingRelease), PgError>,
) -> Result<(CancelRows, Option<OutboxEvent>), PgError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let update = tx
        .prepare_cached(
            "UPDATE orders SET status = $2, updated_at_unix_ms = $3
             WHERE order_id = $1 AND status = $4",
        )
        .await?;
    let changed = tx
        .execute(
            &update,
            &[
                &order_id,
                &OrderStatus::Canceled.as_str_name(),
                &now_ms,
                &OrderStatus::Accepted.as_str_name(),
            ],
        )
        .await?
        == 1;
    let order = get_order_on(&tx, order_id).await?;
    let mut committed_event = None;
    if let (true, Some(row)) = (changed, &order) {
        let (outbox_event, release) = event(row)?;
        schedule_release_on(&tx, &release).await?;
        insert_event_on(&tx, &outbox_event).await?;
        committed_event = Some(outbox_event);
    }
    tx.commit().await?;
    Ok((CancelRows { changed, order }, committed_event))
}

async fn insert_event_on<C: GenericClient>(client: &C, event: &OutboxEvent) -> Result<(), PgError> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO outbox (event_id, topic, key, event_type, payload)
             VALUES ($1, $2, $3, $4, $5::text::jsonb)",
        )
        .await?;
    client
        .execute(
            &stmt,
            &[
                &event.event_id,
                &event.topic,
                &event.key,
                &event.event_type,
                &event.payload,
            ],
        )
        .await?;
    Ok(())
}

async fn schedule_release_on<C: GenericClient>(
    client: &C,
    release: &PendingRelease,
) -> Result<(), PgError> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO pending_releases (reservation_id, account_id, order_id, created_at_unix_ms)
             VALUES ($1, $2, $3, $4) ON CONFLICT (reservation_id) DO NOTHING",
        )
        .await?;
    client
        .execute(
            &stmt,
            &[
                &release.reservation_id,
                &release.account_id,
                &release.order_id,
                &crate::store::now_unix_ms(),
            ],
        )
        .await?;
    Ok(())
}

pub(crate) async fn schedule_release(pool: &Pool, release: &PendingRelease) -> Result<(), PgError> {
    let client = pool.get().await?;
    schedule_release_on(&client, release).await
}

pub(crate) async fn pending_releases(
    pool: &Pool,
    limit: usize,
) -> Result<Vec<PendingRelease>, PgError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached(
            "SELECT reservation_id, account_id, order_id FROM pending_releases
             ORDER BY created_at_unix_ms, reservation_id LIMIT $1",
        )
        .await?;
    let rows = client.query(&stmt, &[&limit]).await?;
    rows.iter()
        .map(|r| {
            Ok(PendingRelease {
                reservation_id: r.try_get(0)?,
                account_id: r.try_get(1)?,
                order_id: r.try_get(2)?,
            })
        })
        .collect()
}

pub(crate) async fn complete_release(pool: &Pool, reservation_id: &str) -> Result<(), PgError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached("DELETE FROM pending_releases WHERE reservation_id = $1")
        .await?;
    client.execute(&stmt, &[&reservation_id]).await?;
    Ok(())
}

/// The canceled event and pending release of a just-canceled order.
pub(crate) fn cancel_effects(
    topic: &str,
    order: &StoredOrder,
    now_ms: i64,
) -> (OutboxEvent, PendingRelease) {
    (
        OutboxEvent::for_order(topic, EventType::Canceled, order, now_ms),
        PendingRelease {
            reservation_id: order.reservation_id.clone(),
            account_id: order.account_id.clone(),
            order_id: order.order_id.clone(),
        },
    )
}
