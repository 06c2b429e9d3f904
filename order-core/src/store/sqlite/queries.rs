//! SQL of the order store; each function runs on a connection supplied by
//! the writer (inside its transaction) or the read pool.

use hts_proto::v1::OrderStatus;
use rusqlite::{params, Connection, OptionalExtension};

use super::outbox::insert_event;
use super::rows::{order_from_row, ORDER_COLUMNS};
use crate::outbox::{EventType, OutboxEvent};
use crate::store::now_unix_ms;
use crate::store::{
    CancelOutcome, InsertOutcome, NewOrder, PendingRelease, StoreError, StoredOrder,
};

pub(crate) fn find_by_request(
    conn: &Connection,
    account_id: &str,
    request_id: &str,
) -> Result<Option<StoredOrder>, StoreError> {
    let sql =
        format!("SELECT {ORDER_COLUMNS} FROM orders WHERE account_id = ?1 AND request_id = ?2");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([account_id, request_id], order_from_row)
        .optional()?)
}

pub(crate) fn get_order(
    conn: &Connection,
    order_id: &str,
) -> Result<Option<StoredOrder>, StoreError> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([order_id], order_from_row)
        .optional()?)
}

/// Inserts each order unless its `(account_id, request_id)` exists; the
/// UNIQUE constraint decides the winner even across processes. An inserted
/// order gets its outbox event (bound for `topic`) in the same transaction;
/// the events are returned for the fast path. No read-back: an inserted
/// order is what was sent; only a conflicting key reads the stored order.
pub(crate) fn insert_orders(
    conn: &Connection,
    orders: Vec<NewOrder>,
    topic: &str,
) -> Result<(Vec<InsertOutcome>, Vec<OutboxEvent>), StoreError> {
    let now = now_unix_ms();
    let mut insert = conn.prepare_cached(
        "INSERT INTO orders (order_id, request_id, account_id, symbol, side, order_type,
            price, quantity, status, code, message, fingerprint, reservation_id,
            created_at_unix_ms, updated_at_unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14)
         ON CONFLICT (account_id, request_id) DO NOTHING",
    )?;
    let mut outcomes = Vec::with_capacity(orders.len());
    let mut events = Vec::new();
    for order in orders {
        let order_id = uuid::Uuid::now_v7().to_string();
        let inserted = insert.execute(params![
            order_id,
            order.request_id,
            order.account_id,
            order.symbol,
            order.side.as_str_name(),
            order.order_type.as_str_name(),
            order.price,
            order.quantity,
            order.status.as_str_name(),
            order.code.as_str_name(),
            order.message,
            order.fingerprint,
            order.reservation_id,
            now,
        ])?;
        if inserted == 1 {
            let stored = order.into_stored(order_id, now);
            let event = OutboxEvent::for_order(
                topic,
                OutboxEvent::placed_type(stored.status),
                &stored,
                now,
            );
            insert_event(conn, &event)?;
            events.push(event);
            outcomes.push(InsertOutcome::Inserted(stored));
        } else {
            let existing = find_by_request(conn, &order.account_id, &order.request_id)?
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "order for request {} vanished inside its transaction",
                        order.request_id
                    ))
                })?;
            outcomes.push(InsertOutcome::Existing(existing));
        }
    }
    Ok((outcomes, events))
}

/// ACCEPTED → CANCELED with a pending release and an `order.canceled`
/// outbox event, all in the caller's transaction.
pub(crate) fn cancel_order(
    conn: &Connection,
    order_id: &str,
    topic: &str,
) -> Result<(CancelOutcome, Vec<OutboxEvent>), StoreError> {
    let now = now_unix_ms();
    let changed = conn
        .prepare_cached(
            "UPDATE orders SET status = ?2, updated_at_unix_ms = ?3
             WHERE order_id = ?1 AND status = ?4",
        )?
        .execute(params![
            order_id,
            OrderStatus::Canceled.as_str_name(),
            now,
            OrderStatus::Accepted.as_str_name()
        ])?;
    let Some(order) = get_order(conn, order_id)? else {
        return Ok((CancelOutcome::NotFound, Vec::new()));
    };
    if changed == 1 {
        schedule_release(
            conn,
            &PendingRelease {
                reservation_id: order.reservation_id.clone(),
                account_id: order.account_id.clone(),
                order_id: order.order_id.clone(),
            },
        )?;
        let event = OutboxEvent::for_order(topic, EventType::Canceled, &order, now);
        insert_event(conn, &event)?;
        return Ok((CancelOutcome::Canceled(order), vec![event]));
    }
    Ok((
        match order.status {
            OrderStatus::Canceled => CancelOutcome::AlreadyCanceled(order),
            _ => CancelOutcome::NotCancelable(order),
        },
        Vec::new(),
    ))
}

pub(crate) fn schedule_release(
    conn: &Connection,
    release: &PendingRelease,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO pending_releases (reservation_id, account_id, order_id, created_at_unix_ms)
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (reservation_id) DO NOTHING",
    )?
    .execute(params![
        release.reservation_id,
        release.account_id,
        release.order_id,
        now_unix_ms()
    ])?;
    Ok(())
}

pub(crate) fn pending_releases(
    conn: &Connection,
    limit: usize,
) -> Result<Vec<PendingRelease>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(
        "SELECT reservation_id, account_id, order_id FROM pending_releases
         ORDER BY created_at_unix_ms, reservation_id LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit], |row| {
        Ok(PendingRelease {
            reservation_id: row.get(0)?,
            account_id: row.get(1)?,
            order_id: row.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub(crate) fn complete_release(conn: &Connection, reservation_id: &str) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM pending_releases WHERE reservation_id = ?1")?
        .execute([reservation_id])?;
    Ok(())
}
