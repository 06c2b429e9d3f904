//! CancelOrder: commit the cancel, then release the reservation.

use hts_proto::v1::{CancelOrderCall, CancelOrderResponse, Code, OrderStatus};

use super::{releaser, OrderContext};
use crate::domain::{validate_order_id, validate_request_id};
use crate::store::{CancelOutcome, PendingRelease, StoredOrder};

fn answer(
    order_id: &str,
    code: Code,
    status: OrderStatus,
    message: impl Into<String>,
) -> CancelOrderResponse {
    CancelOrderResponse {
        code: code as i32,
        message: message.into(),
        order_id: order_id.to_owned(),
        status: status as i32,
        retry_after_ms: 0,
    }
}

fn not_found(order_id: &str) -> CancelOrderResponse {
    answer(
        order_id,
        Code::NotFound,
        OrderStatus::Unspecified,
        "order not found",
    )
}

fn canceled(order_id: &str) -> CancelOrderResponse {
    answer(order_id, Code::Ok, OrderStatus::Canceled, "order canceled")
}

fn rejected(order: &StoredOrder) -> CancelOrderResponse {
    answer(
        &order.order_id,
        Code::InvalidRequest,
        OrderStatus::Rejected,
        "order was rejected",
    )
}

fn store_unavailable(order_id: &str, error: &crate::store::StoreError) -> CancelOrderResponse {
    tracing::error!(%error, order_id, "order store failure during cancel");
    answer(
        order_id,
        Code::ServiceUnavailable,
        OrderStatus::Unspecified,
        "order store unavailable; retry",
    )
}

/// Handles one CancelOrder call. Idempotent: canceling a canceled order is
/// OK, and only the call that commits the cancel releases the reservation.
pub(crate) async fn cancel(ctx: &OrderContext, call: CancelOrderCall) -> CancelOrderResponse {
    let request = call.request.unwrap_or_default();
    let order_id = request.order_id;
    if let Err(r) =
        validate_request_id(&request.request_id).and_then(|()| validate_order_id(&order_id))
    {
        return answer(&order_id, r.code, OrderStatus::Unspecified, r.message);
    }
    let order = match ctx.store.get_order(&order_id).await {
        // Another account's order is answered exactly like a missing one:
        // the answer must not tell whether an order id exists.
        Ok(Some(order)) if order.account_id == call.account_id => order,
        Ok(_) => return not_found(&order_id),
        Err(e) => return store_unavailable(&order_id, &e),
    };
    match order.status {
        OrderStatus::Rejected => return rejected(&order),
        OrderStatus::Canceled => return canceled(&order_id),
        _ => {}
    }
    match ctx.store.cancel_order(&order_id).await {
        Ok(CancelOutcome::Canceled(order)) => {
            tracing::debug!(order_id = %order.order_id, "order canceled");
            let pending = PendingRelease {
                reservation_id: order.reservation_id.clone(),
                account_id: order.account_id.clone(),
                order_id: order.order_id.clone(),
            };
            // The cancel is committed with a pending release: if this attempt
            // fails, the background retry task finishes it.
            releaser::release_pending(ctx, &pending).await;
            canceled(&order_id)
        }
        Ok(CancelOutcome::AlreadyCanceled(_)) => canceled(&order_id),
        Ok(CancelOutcome::NotCancelable(order)) => rejected(&order),
        Ok(CancelOutcome::NotFound) => answer(
            &order_id,
            Code::NotFound,
            OrderStatus::Unspecified,
            "order not found",
        ),
        Err(e) => store_unavailable(&order_id, &e),
    }
}
