//! Mapping PostgreSQL rows to store values.

use hts_proto::v1::{Code, OrderStatus, OrderType, Side};
use tokio_postgres::Row;

use crate::outbox::{ClaimedRow, OutboxEvent};
use crate::store::{StoreError, StoredOrder};

/// Selects [`StoredOrder`] columns of `orders o` (the order row carries its
/// idempotency data: fingerprint and stored answer).
pub(crate) const ORDER_SELECT: &str = "SELECT o.order_id, o.request_id, o.account_id, o.symbol, \
    o.side, o.order_type, o.price, o.quantity, o.status, o.code, o.message, o.fingerprint, \
    o.reservation_id, o.created_at_unix_ms, o.updated_at_unix_ms FROM orders o";

fn parse<T>(row: &Row, idx: usize, f: fn(&str) -> Option<T>) -> Result<T, StoreError> {
    let text: String = row.try_get(idx).map_err(hts_dbkit::pg::PgError::from)?;
    f(&text).ok_or_else(|| StoreError::Corrupt(format!("unknown enum value {text:?}")))
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    idx: usize,
) -> Result<T, StoreError> {
    Ok(row.try_get(idx).map_err(hts_dbkit::pg::PgError::from)?)
}

/// Reads a row selected with [`ORDER_SELECT`].
pub(crate) fn order_from_row(row: &Row) -> Result<StoredOrder, StoreError> {
    Ok(StoredOrder {
        order_id: get(row, 0)?,
        request_id: get(row, 1)?,
        account_id: get(row, 2)?,
        symbol: get(row, 3)?,
        side: parse(row, 4, Side::from_str_name)?,
        order_type: parse(row, 5, OrderType::from_str_name)?,
        price: get(row, 6)?,
        quantity: get(row, 7)?,
        status: parse(row, 8, OrderStatus::from_str_name)?,
        code: parse(row, 9, Code::from_str_name)?,
        message: get(row, 10)?,
        fingerprint: get(row, 11)?,
        reservation_id: get(row, 12)?,
        created_at_unix_ms: get(row, 13)?,
        updated_at_unix_ms: get(row, 14)?,
    })
}

/// Columns read by [`claimed_from_row`].
pub(crate) const CLAIM_COLUMNS: &str = "event_id, topic, key, event_type, payload::text, \
    retry_count, EXTRACT(EPOCH FROM (clock_timestamp() - created_at))::float8, last_error";

/// Reads an outbox row selected with [`CLAIM_COLUMNS`].
pub(crate) fn claimed_from_row(row: &Row) -> Result<ClaimedRow, StoreError> {
    let age_secs: f64 = get(row, 6)?;
    Ok(ClaimedRow {
        event: OutboxEvent {
            event_id: get(row, 0)?,
            topic: get(row, 1)?,
            key: get(row, 2)?,
            event_type: get(row, 3)?,
            payload: get(row, 4)?,
        },
        retry_count: get(row, 5)?,
        age: std::time::Duration::from_secs_f64(age_secs.max(0.0)),
        last_error: get(row, 7)?,
    })
}
