//! QueryOrder: read one order of the caller's account.

use hts_proto::v1::{Code, QueryOrderCall, QueryOrderResponse};

use super::OrderContext;
use crate::domain::validate_order_id;

/// The message of NOT_FOUND, for missing and foreign orders alike.
const NOT_FOUND: &str = "order not found";

fn answer(code: Code, message: impl Into<String>) -> QueryOrderResponse {
    QueryOrderResponse {
        code: code as i32,
        message: message.into(),
        order: None,
        retry_after_ms: 0,
    }
}

/// Handles one QueryOrder call.
pub(crate) async fn query(ctx: &OrderContext, call: QueryOrderCall) -> QueryOrderResponse {
    let order_id = call.request.unwrap_or_default().order_id;
    if let Err(r) = validate_order_id(&order_id) {
        return answer(r.code, r.message);
    }
    match ctx.store.get_order(&order_id).await {
        // Another account's order is answered exactly like a missing one:
        // the answer must not tell whether an order id exists.
        Ok(None) => answer(Code::NotFound, NOT_FOUND),
        Ok(Some(order)) if order.account_id != call.account_id => answer(Code::NotFound, NOT_FOUND),
        Ok(Some(order)) => QueryOrderResponse {
            code: Code::Ok as i32,
            message: String::new(),
            order: Some(order.to_proto()),
            retry_after_ms: 0,
        },
        Err(e) => {
            tracing::error!(error = %e, order_id, "order store failure during query");
            answer(Code::ServiceUnavailable, "order store unavailable; retry")
        }
    }
}
