//! Values exchanged with an [`super::OrderStore`].

use hts_proto::v1::{Code, Order, OrderStatus, OrderType, Side};

use crate::domain::ValidOrder;

/// An order as persisted, with its idempotency data and stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrder {
    /// Time-sortable UUID v7.
    pub order_id: String,
    /// Client idempotency key (unique per account).
    pub request_id: String,
    /// Owning account.
    pub account_id: String,
    /// Instrument symbol.
    pub symbol: String,
    /// BUY or SELL.
    pub side: Side,
    /// LIMIT.
    pub order_type: OrderType,
    /// Limit price in ticks.
    pub price: i64,
    /// Quantity.
    pub quantity: i64,
    /// Current status.
    pub status: OrderStatus,
    /// Code of the original answer (`OK` or `INSUFFICIENT_BALANCE`).
    pub code: Code,
    /// Message of the original answer.
    pub message: String,
    /// Fingerprint of the request parameters (see [`crate::domain::fingerprint`]).
    pub fingerprint: String,
    /// The reservation backing the order.
    pub reservation_id: String,
    /// Creation time, Unix epoch milliseconds.
    pub created_at_unix_ms: i64,
    /// Last status change, Unix epoch milliseconds.
    pub updated_at_unix_ms: i64,
}

impl StoredOrder {
    /// The wire representation of the order.
    pub fn to_proto(&self) -> Order {
        Order {
            order_id: self.order_id.clone(),
            request_id: self.request_id.clone(),
            account_id: self.account_id.clone(),
            symbol: self.symbol.clone(),
            side: self.side as i32,
            order_type: self.order_type as i32,
            price: self.price,
            quantity: self.quantity,
            status: self.status as i32,
            created_at_unix_ms: self.created_at_unix_ms,
            // No executions yet: a working order leaves its whole quantity.
            filled_quantity: 0,
            leaves_quantity: if self.status == OrderStatus::Accepted {
                self.quantity
            } else {
                0
            },
            average_fill_price: 0,
            updated_at_unix_ms: self.updated_at_unix_ms,
        }
    }
}

/// An order to insert; the store assigns its id and timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// Client idempotency key.
    pub request_id: String,
    /// Owning account.
    pub account_id: String,
    /// Instrument symbol.
    pub symbol: String,
    /// BUY or SELL.
    pub side: Side,
    /// LIMIT.
    pub order_type: OrderType,
    /// Limit price in ticks.
    pub price: i64,
    /// Quantity.
    pub quantity: i64,
    /// ACCEPTED or REJECTED.
    pub status: OrderStatus,
    /// The answer code to store and replay.
    pub code: Code,
    /// The answer message to store and replay.
    pub message: String,
    /// Fingerprint of the request parameters.
    pub fingerprint: String,
    /// The reservation backing the order.
    pub reservation_id: String,
}

impl NewOrder {
    /// The order to store for the validated `order`, with the answer
    /// (`status`, `code`, `message`) it was given.
    pub fn new(
        order: &ValidOrder,
        (status, code, message): (OrderStatus, Code, String),
        fingerprint: String,
        reservation_id: String,
    ) -> Self {
        Self {
            request_id: order.request_id.clone(),
            account_id: order.account_id.clone(),
            symbol: order.symbol.clone(),
            side: order.side,
            order_type: order.order_type,
            price: order.price,
            quantity: order.quantity,
            status,
            code,
            message,
            fingerprint,
            reservation_id,
        }
    }

    /// The order as stored under `order_id`, created (and last changed) at
    /// `now_ms`.
    pub fn into_stored(self, order_id: String, now_ms: i64) -> StoredOrder {
        StoredOrder {
            order_id,
            request_id: self.request_id,
            account_id: self.account_id,
            symbol: self.symbol,
            side: self.side,
            order_type: self.order_type,
            price: self.price,
            quantity: self.quantity,
            status: self.status,
            code: self.code,
            message: self.message,
            fingerprint: self.fingerprint,
            reservation_id: self.reservation_id,
            created_at_unix_ms: now_ms,
            updated_at_unix_ms: now_ms,
        }
    }
}

/// Result of [`super::OrderStore::insert_order`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    /// This call created the order.
    Inserted(StoredOrder),
    /// An order with the same `(account_id, request_id)` already existed.
    Existing(StoredOrder),
}

/// Result of [`super::OrderStore::cancel_order`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// This call moved the order from ACCEPTED to CANCELED and recorded a
    /// pending release of its reservation.
    Canceled(StoredOrder),
    /// The order was already CANCELED.
    AlreadyCanceled(StoredOrder),
    /// The order cannot be canceled (it was REJECTED).
    NotCancelable(StoredOrder),
    /// No such order.
    NotFound,
}

/// A reservation release that still has to reach the account service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRelease {
    /// Reservation to release.
    pub reservation_id: String,
    /// Account owning the reservation.
    pub account_id: String,
    /// Order whose cancel (or loss of an insert race) caused the release.
    pub order_id: String,
}
