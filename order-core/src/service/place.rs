//! PlaceOrder: validate, then hand the order to its account's place lane.
//!
//! Validation needs nothing but the request and answers at once. A valid
//! order goes to the lane of its account ([`hts_dbkit::lanes`]); the lane
//! runs one batch at a time through [`super::place_batch`] (one
//! account-service call and one store transaction per batch) and answers
//! every order of it. Concurrent identical calls (in this or other
//! processes sharing the store) create one order and one reservation.
//!
//! The call's future only waits for the lane's answer: once the order is
//! queued, a client cancelling its call (the gateway drops hedged losers
//! and timed-out calls) cannot interrupt it between reserve and insert.

use hts_dbkit::lanes::Lanes;
use hts_proto::v1::{Code, PlaceOrderCall, PlaceOrderResponse};
use tokio::time::Instant;

use super::place_batch::{place_batch, PlaceJob};
use super::reply::refusal;
use super::OrderContext;
use crate::domain::{fingerprint, reservation_for, validate_place};

/// The lane job of `call`, or its refusal when it is not a valid order.
fn job(call: PlaceOrderCall, deadline: Option<Instant>) -> Result<PlaceJob, PlaceOrderResponse> {
    let request = call.request.unwrap_or_default();
    let order = validate_place(&call.account_id, &request)
        .map_err(|r| refusal(&request.request_id, r.code, r.message))?;
    Ok(PlaceJob {
        fingerprint: fingerprint(&order),
        spec: reservation_for(&order),
        order,
        deadline,
    })
}

/// Places `calls` as ONE batch, in order, bypassing the lanes: what a lane
/// does with the calls that queued while its previous batch ran. One
/// answer per call, in order. For tests (a batch of chosen content) and
/// tools; run concurrently with the lanes it stays correct (the databases
/// decide), but items are then no longer decided one lane at a time.
pub async fn place_batch_now(
    ctx: &OrderContext,
    calls: Vec<PlaceOrderCall>,
) -> Vec<PlaceOrderResponse> {
    let mut answers: Vec<Option<PlaceOrderResponse>> = Vec::with_capacity(calls.len());
    let mut jobs = Vec::new();
    for call in calls {
        match job(call, None) {
            Ok(job) => {
                answers.push(None);
                jobs.push(job);
            }
            Err(refused) => answers.push(Some(refused)),
        }
    }
    let mut batch = place_batch(ctx, jobs).await.into_iter();
    answers
        .into_iter()
        .map(|a| {
            a.or_else(|| batch.next()).unwrap_or_else(|| {
                refusal(
                    "",
                    Code::ServiceUnavailable,
                    "batch answered too few orders",
                )
            })
        })
        .collect()
}

/// Most orders decided by one batch.
pub const MAX_BATCH: usize = 256;

/// The place lanes of one process; cheap to clone.
#[derive(Clone)]
pub(crate) struct Placer {
    lanes: Lanes<PlaceJob, PlaceOrderResponse>,
}

impl Placer {
    /// Starts `lanes` place lanes over `ctx`.
    pub(crate) fn start(ctx: OrderContext, lanes: usize) -> Self {
        let lanes = Lanes::start(lanes, MAX_BATCH, move |_, jobs| {
            let ctx = ctx.clone();
            Box::pin(async move { place_batch(&ctx, jobs).await })
        });
        Self { lanes }
    }

    /// Handles one PlaceOrder call answering a caller with `deadline`.
    pub(crate) async fn place(
        &self,
        call: PlaceOrderCall,
        deadline: Option<Instant>,
    ) -> PlaceOrderResponse {
        let job = match job(call, deadline) {
            Ok(job) => job,
            Err(refused) => return refused,
        };
        let request_id = job.order.request_id.clone();
        let account_id = job.order.account_id.clone();
        match self.lanes.submit(&account_id, job).await {
            Ok(answer) => answer,
            Err(closed) => refusal(
                &request_id,
                Code::ServiceUnavailable,
                format!("order service is stopping ({closed}); retry with the same request_id"),
            ),
        }
    }
}
