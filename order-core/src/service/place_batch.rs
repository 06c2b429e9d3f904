//! One batch of places on one lane: reserve, store, answer.
//!
//! 1. Items whose caller's deadline already passed are answered at once and
//!    not processed (nothing was done for them; the caller is gone).
//! 2. One `ReserveBatch` call to the account service for every item (the
//!    account service decides them in order, as if one at a time; the
//!    reservation is tied to the order's identity, so an INSUFFICIENT
//!    decision is recorded and repeats).
//! 3. One store transaction inserting every order that got a decision
//!    (`INSERT … ON CONFLICT DO NOTHING`: the database decides duplicates,
//!    also across processes). Within the batch a key is stored once; a
//!    later item with the same key is answered against the first, exactly
//!    as it would find the first's order one at a time.
//! 4. Items whose reservation says the id has history (conflict, released)
//!    look up the stored order (rare) and replay it.
//!
//! Without a look-up before reserving, a retry of a stored order reserves
//! again; the ledger's decision for that id is final (HELD, RELEASED or
//! REFUSED), so the retry moves no funds and every item is answered as it
//! would be one at a time (`tests/place_batch.rs` checks it).

use std::collections::HashMap;

use hts_account_client::AccountError;
use hts_proto::v1::{Code, OrderStatus, PlaceOrderResponse, ReserveOutcome, ReserveRequest};
use tokio::time::Instant;

use super::reply::{
    account_unavailable, from_order, refusal, replay_or_conflict, store_unavailable,
};
use super::{releaser, OrderContext};
use crate::domain::{ReservationSpec, ValidOrder};
use crate::store::{InsertOutcome, NewOrder, PendingRelease, StoredOrder};

/// Longest a place batch's store insert may keep retrying after its
/// reservations were answered: each insert's deadline is the earlier of
/// its caller's and this after the reserve call returned. With the account
/// call timeout it bounds how long a place is in flight after its
/// reservation exists ([`crate::OrderServiceConfig::orphan_grace`]).
pub const PLACE_STORE_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

/// A validated place waiting in its lane.
pub(crate) struct PlaceJob {
    /// The order as validated.
    pub order: ValidOrder,
    /// Its idempotency fingerprint.
    pub fingerprint: String,
    /// The reservation it needs.
    pub spec: ReservationSpec,
    /// The caller's deadline, if it sent one.
    pub deadline: Option<Instant>,
}

/// What the reservation decided for one item.
enum Step {
    /// Answered without the store.
    Done(PlaceOrderResponse),
    /// To be stored with this answer; `fresh`: this call moved the funds.
    Store {
        answer: (OrderStatus, Code, String),
        fresh: bool,
    },
    /// The id has history: replay its stored order, else answer this.
    Lookup(PlaceOrderResponse),
}

fn step(job: &PlaceJob, outcome: ReserveOutcome) -> Step {
    let order = &job.order;
    let accepted = (OrderStatus::Accepted, Code::Ok, "order accepted".to_owned());
    match outcome {
        ReserveOutcome::Reserved => Step::Store {
            answer: accepted,
            fresh: true,
        },
        ReserveOutcome::AlreadyReserved => Step::Store {
            answer: accepted,
            fresh: false,
        },
        ReserveOutcome::Insufficient => Step::Store {
            answer: (
                OrderStatus::Rejected,
                Code::InsufficientBalance,
                format!(
                    "insufficient {}: {} required",
                    job.spec.asset, job.spec.amount
                ),
            ),
            fresh: false,
        },
        ReserveOutcome::UnknownAccount => Step::Done(refusal(
            &order.request_id,
            Code::Forbidden,
            format!(
                "account {} is not known to the account service",
                order.account_id
            ),
        )),
        ReserveOutcome::ReservationConflict => Step::Lookup(refusal(
            &order.request_id,
            Code::DuplicateConflict,
            "request_id was already used with different parameters",
        )),
        ReserveOutcome::AlreadyReleased => Step::Lookup(refusal(
            &order.request_id,
            Code::DuplicateConflict,
            "request_id was already used and its reservation released",
        )),
        ReserveOutcome::Invalid => Step::Done(refusal(
            &order.request_id,
            Code::InvalidRequest,
            "the account service rejected the reservation as invalid",
        )),
        ReserveOutcome::Unspecified => {
            tracing::error!(request_id = %order.request_id, "account service returned no outcome");
            Step::Done(refusal(
                &order.request_id,
                Code::ServiceUnavailable,
                "account service returned no reservation outcome; retry with the same request_id",
            ))
        }
    }
}

fn reserve_request(job: &PlaceJob) -> ReserveRequest {
    ReserveRequest {
        reservation_id: job.spec.reservation_id.clone(),
        account_id: job.order.account_id.clone(),
        asset: job.spec.asset.clone(),
        amount: job.spec.amount,
        request_id: job.order.request_id.clone(),
    }
}

/// Answers one batch of places, in order.
pub(crate) async fn place_batch(
    ctx: &OrderContext,
    jobs: Vec<PlaceJob>,
) -> Vec<PlaceOrderResponse> {
    let mut answers: Vec<Option<PlaceOrderResponse>> = vec![None; jobs.len()];
    let now = Instant::now();
    let mut live = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        if job.deadline.is_some_and(|d| d <= now) {
            answers[i] = Some(refusal(
                &job.order.request_id,
                Code::ServiceUnavailable,
                "request deadline passed before the order was processed; nothing was done",
            ));
        } else {
            live.push(i);
        }
    }
    if !live.is_empty() {
        decide(ctx, &jobs, &live, &mut answers).await;
    }
    answers
        .into_iter()
        .zip(&jobs)
        .map(|(a, job)| {
            a.unwrap_or_else(|| {
                refusal(
                    &job.order.request_id,
                    Code::ServiceUnavailable,
                    "order not processed; retry",
                )
            })
        })
        .collect()
}

async fn decide(
    ctx: &OrderContext,
    jobs: &[PlaceJob],
    live: &[usize],
    answers: &mut [Option<PlaceOrderResponse>],
) {
    let started = Instant::now();
    let requests = live.iter().map(|&i| reserve_request(&jobs[i])).collect();
    let reserved = ctx.accounts.reserve_batch(requests).await;
    let reserve_time = started.elapsed();
    let outcomes = match reserved {
        Ok(outcomes) => outcomes,
        Err(e) => {
            if matches!(e, AccountError::CircuitOpen) {
                // Refused at once while the breaker is open; the breaker
                // gauge and error counter show it.
                tracing::debug!(size = live.len(), "account breaker open: batch refused");
            } else {
                tracing::warn!(error = %e, size = live.len(), "account service failure during a place batch");
            }
            for &i in live {
                answers[i] = Some(account_unavailable(&jobs[i].order.request_id, &e));
            }
            return;
        }
    };
    // The first item of each key that gets stored; later items of the key
    // are answered against it.
    let mut first: HashMap<(&str, &str), usize> = HashMap::new();
    let mut store: Vec<(usize, bool)> = Vec::new();
    let mut orders: Vec<NewOrder> = Vec::new();
    let mut same: Vec<(usize, usize)> = Vec::new();
    let mut lookups: Vec<(usize, PlaceOrderResponse)> = Vec::new();
    for (&i, outcome) in live.iter().zip(outcomes) {
        let job = &jobs[i];
        let key = (job.order.account_id.as_str(), job.order.request_id.as_str());
        if let Some(&s) = first.get(&key) {
            same.push((i, s));
            continue;
        }
        match step(job, outcome) {
            Step::Done(answer) => answers[i] = Some(answer),
            Step::Lookup(fallback) => lookups.push((i, fallback)),
            Step::Store { answer, fresh } => {
                first.insert(key, store.len());
                store.push((i, fresh));
                orders.push(NewOrder::new(
                    &job.order,
                    answer,
                    job.fingerprint.clone(),
                    job.spec.reservation_id.clone(),
                ));
            }
        }
    }
    let budget_end = Instant::now() + PLACE_STORE_BUDGET;
    let deadlines = store
        .iter()
        .map(|&(i, _)| Some(jobs[i].deadline.map_or(budget_end, |d| d.min(budget_end))))
        .collect();
    let stored_at = Instant::now();
    let results = ctx.store.insert_orders(orders, deadlines).await;
    tracing::debug!(
        size = live.len(),
        reserve_us = reserve_time.as_micros() as u64,
        store_us = stored_at.elapsed().as_micros() as u64,
        "place batch"
    );
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        let failed = results.iter().filter(|r| r.is_err()).count();
        tracing::error!(error = %e, failed, size = results.len(), "order store failure in a place batch");
    }
    let mut stored: Vec<Option<StoredOrder>> = Vec::with_capacity(results.len());
    for (&(i, fresh), result) in store.iter().zip(results) {
        let job = &jobs[i];
        let (answer, order) = match result {
            Ok(InsertOutcome::Inserted(order)) => (from_order(&order, false), Some(order)),
            Ok(InsertOutcome::Existing(existing)) => {
                if fresh && existing.status != OrderStatus::Accepted {
                    // This call holds funds no stored order owns: give them back.
                    release_orphan(ctx, job, &existing.order_id);
                }
                (
                    replay_or_conflict(&existing, &job.fingerprint),
                    Some(existing),
                )
            }
            Err(_) => (store_unavailable(&job.order.request_id), None),
        };
        answers[i] = Some(answer);
        stored.push(order);
    }
    for (i, s) in same {
        let job = &jobs[i];
        answers[i] = Some(match &stored[s] {
            Some(order) => replay_or_conflict(order, &job.fingerprint),
            None => store_unavailable(&job.order.request_id),
        });
    }
    let found = futures::future::join_all(lookups.iter().map(|(i, _)| {
        let o = &jobs[*i].order;
        ctx.store.find_by_request(&o.account_id, &o.request_id)
    }))
    .await;
    if let Some(Err(e)) = found.iter().find(|r| r.is_err()) {
        tracing::error!(error = %e, "order store failure looking up stored orders of a place batch");
    }
    for ((i, fallback), found) in lookups.into_iter().zip(found) {
        let job = &jobs[i];
        answers[i] = Some(match found {
            Ok(Some(existing)) => replay_or_conflict(&existing, &job.fingerprint),
            Ok(None) => fallback,
            Err(_) => store_unavailable(&job.order.request_id),
        });
    }
}

/// Releases a reservation held by this call although the stored twin order
/// is not ACCEPTED (a lost insert race); if the account service fails, the
/// scheduled release is retried in the background. Runs in its own task:
/// the lane does not wait for it.
fn release_orphan(ctx: &OrderContext, job: &PlaceJob, order_id: &str) {
    let pending = PendingRelease {
        reservation_id: job.spec.reservation_id.clone(),
        account_id: job.order.account_id.clone(),
        order_id: order_id.to_owned(),
    };
    let ctx = ctx.clone();
    tokio::spawn(async move {
        tracing::warn!(reservation_id = %pending.reservation_id, "releasing reservation of a lost insert race");
        if let Err(e) = ctx.store.schedule_release(pending.clone()).await {
            tracing::error!(error = %e, reservation_id = %pending.reservation_id,
                "could not schedule orphan release; releasing directly");
        }
        releaser::release_pending(&ctx, &pending).await;
    });
}
