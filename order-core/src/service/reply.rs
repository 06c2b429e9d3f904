//! Building place responses.

use hts_account_client::AccountError;
use hts_proto::v1::{Code, OrderStatus, PlaceOrderResponse};

use crate::store::StoredOrder;

/// A response carrying no order (refusals and failures).
pub(crate) fn refusal(
    request_id: &str,
    code: Code,
    message: impl Into<String>,
) -> PlaceOrderResponse {
    PlaceOrderResponse {
        code: code as i32,
        message: message.into(),
        request_id: request_id.to_owned(),
        order_id: String::new(),
        status: OrderStatus::Unspecified as i32,
        replayed: false,
        retry_after_ms: 0,
    }
}

/// The stored answer of `order`.
pub(crate) fn from_order(order: &StoredOrder, replayed: bool) -> PlaceOrderResponse {
    PlaceOrderResponse {
        code: order.code as i32,
        message: order.message.clone(),
        request_id: order.request_id.clone(),
        order_id: order.order_id.clone(),
        status: order.status as i32,
        replayed,
        retry_after_ms: 0,
    }
}

/// Replays `existing` if it was placed with the same parameters, otherwise
/// reports the reuse of its request id. A tombstone of the orphan sweep
/// ([`super::orphans`]) is replayed whatever the parameters: it does not
/// know them, and its answer is final for the request id.
pub(crate) fn replay_or_conflict(existing: &StoredOrder, fingerprint: &str) -> PlaceOrderResponse {
    if existing.fingerprint == fingerprint || super::orphans::is_abandoned(existing) {
        from_order(existing, true)
    } else {
        refusal(
            &existing.request_id,
            Code::DuplicateConflict,
            format!(
                "request_id was already used for order {} with different parameters",
                existing.order_id
            ),
        )
    }
}

/// The order store failed; nothing (more) was stored, retrying is safe.
/// Not logged here: the batch that failed logs once for all its orders.
pub(crate) fn store_unavailable(request_id: &str) -> PlaceOrderResponse {
    refusal(
        request_id,
        Code::ServiceUnavailable,
        "order store unavailable; retry with the same request_id",
    )
}

/// The account service failed; nothing was stored, retrying is safe. Not
/// logged here: the batch logs once for all its orders.
pub(crate) fn account_unavailable(request_id: &str, error: &AccountError) -> PlaceOrderResponse {
    refusal(
        request_id,
        Code::ServiceUnavailable,
        format!("account service unavailable ({error}); retry with the same request_id"),
    )
}
