//! Order events as stored in the outbox and published.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::StoredOrder;

/// What happened to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// A place committed an ACCEPTED order.
    #[serde(rename = "order.accepted")]
    Accepted,
    /// A place committed a REJECTED order (e.g. insufficient balance).
    #[serde(rename = "order.rejected")]
    Rejected,
    /// A cancel committed.
    #[serde(rename = "order.canceled")]
    Canceled,
}

impl EventType {
    /// The wire name, e.g. `order.accepted`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Accepted => "order.accepted",
            EventType::Rejected => "order.rejected",
            EventType::Canceled => "order.canceled",
        }
    }
}

/// The JSON payload of an order event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEventPayload {
    /// Unique id of this event (consumers deduplicate on it).
    pub event_id: String,
    /// `order.accepted`, `order.rejected` or `order.canceled`.
    pub event_type: EventType,
    /// The order.
    pub order_id: String,
    /// Client idempotency key of the place.
    pub request_id: String,
    /// Owning account (also the message key).
    pub account_id: String,
    /// Instrument symbol.
    pub symbol: String,
    /// `BUY` or `SELL`.
    pub side: String,
    /// `LIMIT`.
    pub order_type: String,
    /// Limit price in ticks.
    pub price: i64,
    /// Quantity.
    pub quantity: i64,
    /// Order status after the event.
    pub status: String,
    /// Answer code of the place.
    pub code: String,
    /// When the event's change committed, Unix epoch milliseconds.
    pub occurred_at_unix_ms: i64,
}

/// One outbox row's content: what to publish, where, under which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// Unique id, also sent as the `event_id` header.
    pub event_id: Uuid,
    /// Destination topic.
    pub topic: String,
    /// Message key: the account id (per-account ordering).
    pub key: String,
    /// `order.accepted` etc.
    pub event_type: String,
    /// JSON of an [`OrderEventPayload`].
    pub payload: String,
}

impl OutboxEvent {
    /// The event `event_type` of `order` (as it is after the change) bound
    /// for `topic`, with a fresh time-sortable id.
    pub fn for_order(
        topic: &str,
        event_type: EventType,
        order: &StoredOrder,
        occurred_at_unix_ms: i64,
    ) -> Self {
        let event_id = Uuid::now_v7();
        let payload = OrderEventPayload {
            event_id: event_id.to_string(),
            event_type,
            order_id: order.order_id.clone(),
            request_id: order.request_id.clone(),
            account_id: order.account_id.clone(),
            symbol: order.symbol.clone(),
            side: order.side.as_str_name().to_owned(),
            order_type: order.order_type.as_str_name().to_owned(),
            price: order.price,
            quantity: order.quantity,
            status: order.status.as_str_name().to_owned(),
            code: order.code.as_str_name().to_owned(),
            occurred_at_unix_ms,
        };
        Self {
            event_id,
            topic: topic.to_owned(),
            key: order.account_id.clone(),
            event_type: event_type.as_str().to_owned(),
            // Serializing plain strings and integers cannot fail.
            payload: serde_json::to_string(&payload).unwrap_or_default(),
        }
    }

    /// The event type of a freshly placed order with `status`.
    pub fn placed_type(status: hts_proto::v1::OrderStatus) -> EventType {
        if status == hts_proto::v1::OrderStatus::Accepted {
            EventType::Accepted
        } else {
            EventType::Rejected
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hts_proto::v1::{Code, OrderStatus, OrderType, Side};

    #[test]
    fn payload_round_trips_and_key_is_the_account() {
        let order = StoredOrder {
            order_id: "o1".into(),
            request_id: "r1".into(),
            account_id: "ACC-0001".into(),
            symbol: "005930".into(),
            side: Side::Buy,
            order_type: OrderType::Limit,
            price: 70_000,
            quantity: 10,
            status: OrderStatus::Accepted,
            code: Code::Ok,
            message: "m".into(),
            fingerprint: "fp".into(),
            reservation_id: "res".into(),
            created_at_unix_ms: 1,
            updated_at_unix_ms: 1,
        };
        let event = OutboxEvent::for_order("t", EventType::Accepted, &order, 5);
        assert_eq!(event.key, "ACC-0001");
        assert_eq!(event.event_type, "order.accepted");
        let back: OrderEventPayload = serde_json::from_str(&event.payload).unwrap();
        assert_eq!(back.event_id, event.event_id.to_string());
        assert_eq!(back.event_type, EventType::Accepted);
        assert_eq!(back.side, "BUY");
        assert_eq!(back.price, 70_000);
    }
}
