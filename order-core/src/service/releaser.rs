//! Releasing reservations of canceled orders, with background retries.

use std::time::Duration;

use hts_proto::v1::ReleaseOutcome;

use super::OrderContext;
use crate::store::PendingRelease;

/// Most pending releases handled per retry round.
const RETRY_BATCH: usize = 256;

/// Releases one pending reservation and, once the account service confirms
/// nothing is held any more, removes it from the pending list.
/// Returns true when the release is complete.
pub async fn release_pending(ctx: &OrderContext, pending: &PendingRelease) -> bool {
    match ctx
        .accounts
        .release(&pending.reservation_id, &pending.account_id)
        .await
    {
        Ok(
            ReleaseOutcome::Released | ReleaseOutcome::WasReleased | ReleaseOutcome::NoReservation,
        ) => {
            match ctx.store.complete_release(&pending.reservation_id).await {
                Ok(()) => {
                    tracing::debug!(reservation_id = %pending.reservation_id,
                        order_id = %pending.order_id, "reservation released");
                    true
                }
                Err(e) => {
                    // Released but still listed: a later retry finds
                    // WAS_RELEASED and completes it.
                    tracing::warn!(error = %e, reservation_id = %pending.reservation_id,
                        "released but could not mark the release complete");
                    false
                }
            }
        }
        Ok(ReleaseOutcome::Unspecified) => {
            tracing::error!(reservation_id = %pending.reservation_id,
                "account service returned no release outcome; will retry");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, reservation_id = %pending.reservation_id,
                "release failed; will retry");
            false
        }
    }
}

/// Every `interval`, retries all pending releases until each completes.
/// Runs until the task is aborted; safe to run in several processes at once
/// because Release is idempotent.
pub async fn run_release_retries(ctx: OrderContext, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        retry_round(&ctx).await;
    }
}

async fn retry_round(ctx: &OrderContext) {
    loop {
        let pending = match ctx.store.pending_releases(RETRY_BATCH).await {
            Ok(pending) => pending,
            Err(e) => {
                tracing::warn!(error = %e, "could not list pending releases");
                return;
            }
        };
        let full_batch = pending.len() == RETRY_BATCH;
        let mut all_done = true;
        for release in &pending {
            all_done &= release_pending(ctx, release).await;
        }
        // Stop on any failure (service still down) or when nothing is left.
        if !all_done || !full_batch {
            return;
        }
    }
}
