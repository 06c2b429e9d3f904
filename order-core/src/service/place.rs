//! PlaceOrder: validate, deduplicate, reserve, persist.

use hts_proto::v1::{Code, OrderStatus, PlaceOrderCall, PlaceOrderResponse, ReserveOutcome};

use super::reply::{
    account_unavailable, from_order, refusal, replay_or_conflict, store_unavailable,
};
use super::{releaser, OrderContext};
use crate::domain::{fingerprint, reservation_for, validate_place, ReservationSpec, ValidOrder};
use crate::store::{InsertOutcome, NewOrder, PendingRelease};

/// Handles one PlaceOrder call. Concurrent identical calls (in this or other
/// processes sharing the store) create one order and one reservation.
pub(crate) async fn place(ctx: &OrderContext, call: PlaceOrderCall) -> PlaceOrderResponse {
    let request = call.request.unwrap_or_default();
    let order = match validate_place(&call.account_id, &request) {
        Ok(order) => order,
        Err(rejection) => return refusal(&request.request_id, rejection.code, rejection.message),
    };
    let fp = fingerprint(&order);
    match ctx
        .store
        .find_by_request(&order.account_id, &order.request_id)
        .await
    {
        Ok(Some(existing)) => return replay_or_conflict(&existing, &fp),
        Ok(None) => {}
        Err(e) => return store_unavailable(&order.request_id, &e),
    }
    let spec = reservation_for(&order);
    let outcome = match ctx
        .accounts
        .reserve(
            &spec.reservation_id,
            &order.account_id,
            &spec.asset,
            spec.amount,
        )
        .await
    {
        Ok(outcome) => outcome,
        Err(e) => return account_unavailable(&order.request_id, &e),
    };
    let (status, code, message) = match outcome {
        ReserveOutcome::Reserved | ReserveOutcome::AlreadyReserved => {
            (OrderStatus::Accepted, Code::Ok, "order accepted".to_owned())
        }
        ReserveOutcome::Insufficient => (
            OrderStatus::Rejected,
            Code::InsufficientBalance,
            format!("insufficient {}: {} required", spec.asset, spec.amount),
        ),
        ReserveOutcome::UnknownAccount => {
            return refusal(
                &order.request_id,
                Code::Forbidden,
                format!(
                    "account {} is not known to the account service",
                    order.account_id
                ),
            )
        }
        ReserveOutcome::ReservationConflict => {
            return refusal(
                &order.request_id,
                Code::DuplicateConflict,
                "request_id was already used with different parameters",
            )
        }
        ReserveOutcome::AlreadyReleased => return after_release(ctx, &order, &fp).await,
        ReserveOutcome::Invalid => {
            return refusal(
                &order.request_id,
                Code::InvalidRequest,
                "the account service rejected the reservation as invalid",
            )
        }
        ReserveOutcome::Unspecified => {
            tracing::error!(request_id = %order.request_id, "account service returned no outcome");
            return refusal(
                &order.request_id,
                Code::ServiceUnavailable,
                "account service returned no reservation outcome; retry with the same request_id",
            );
        }
    };
    let new_order = NewOrder::new(
        &order,
        (status, code, message),
        fp.clone(),
        spec.reservation_id.clone(),
    );
    match ctx.store.insert_order(new_order).await {
        Ok(InsertOutcome::Inserted(stored)) => {
            tracing::info!(order_id = %stored.order_id, request_id = %stored.request_id,
                status = ?stored.status, "order placed");
            from_order(&stored, false)
        }
        Ok(InsertOutcome::Existing(existing)) => {
            if outcome == ReserveOutcome::Reserved && existing.status != OrderStatus::Accepted {
                // This call holds funds no stored order owns: give them back.
                release_orphan(ctx, &order, &spec, &existing.order_id).await;
            }
            replay_or_conflict(&existing, &fp)
        }
        Err(e) => store_unavailable(&order.request_id, &e),
    }
}

/// The reservation was already released: the order must exist (and was
/// canceled or lost a race); replay it, or report the id as used.
async fn after_release(ctx: &OrderContext, order: &ValidOrder, fp: &str) -> PlaceOrderResponse {
    match ctx
        .store
        .find_by_request(&order.account_id, &order.request_id)
        .await
    {
        Ok(Some(existing)) => replay_or_conflict(&existing, fp),
        Ok(None) => refusal(
            &order.request_id,
            Code::DuplicateConflict,
            "request_id was already used and its reservation released",
        ),
        Err(e) => store_unavailable(&order.request_id, &e),
    }
}

/// Releases a reservation held by this call although the stored twin order
/// is not ACCEPTED; if the account service fails, schedule a retry.
async fn release_orphan(
    ctx: &OrderContext,
    order: &ValidOrder,
    spec: &ReservationSpec,
    order_id: &str,
) {
    let pending = PendingRelease {
        reservation_id: spec.reservation_id.clone(),
        account_id: order.account_id.clone(),
        order_id: order_id.to_owned(),
    };
    tracing::warn!(reservation_id = %pending.reservation_id, "releasing reservation of a lost insert race");
    if let Err(e) = ctx.store.schedule_release(pending.clone()).await {
        tracing::error!(error = %e, reservation_id = %pending.reservation_id,
            "could not schedule orphan release; releasing directly");
    }
    releaser::release_pending(ctx, &pending).await;
}
