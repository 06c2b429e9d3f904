//! Mapping between `orders` rows and [`StoredOrder`].

use hts_proto::v1::{Code, OrderStatus, OrderType, Side};
use rusqlite::types::Type;
use rusqlite::Row;

use crate::store::StoredOrder;

/// Column list matching [`order_from_row`].
pub(crate) const ORDER_COLUMNS: &str = "order_id, request_id, account_id, symbol, side, \
    order_type, price, quantity, status, code, message, fingerprint, reservation_id, \
    created_at_unix_ms, updated_at_unix_ms";

fn enum_column<T>(row: &Row<'_>, idx: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            Type::Text,
            format!("unknown enum value {text:?}").into(),
        )
    })
}

/// Reads a row selected with [`ORDER_COLUMNS`].
pub(crate) fn order_from_row(row: &Row<'_>) -> rusqlite::Result<StoredOrder> {
    Ok(StoredOrder {
        order_id: row.get(0)?,
        request_id: row.get(1)?,
        account_id: row.get(2)?,
        symbol: row.get(3)?,
        side: enum_column(row, 4, Side::from_str_name)?,
        order_type: enum_column(row, 5, OrderType::from_str_name)?,
        price: row.get(6)?,
        quantity: row.get(7)?,
        status: enum_column(row, 8, OrderStatus::from_str_name)?,
        code: enum_column(row, 9, Code::from_str_name)?,
        message: row.get(10)?,
        fingerprint: row.get(11)?,
        reservation_id: row.get(12)?,
        created_at_unix_ms: row.get(13)?,
        updated_at_unix_ms: row.get(14)?,
    })
}
