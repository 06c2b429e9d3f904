//! The `OrderService` gRPC implementation.
//!
//! A place goes to its account's place lane ([`place`], batches in
//! [`place_batch`]); the lane does the work, the RPC future only awaits its
//! answer, so a client cancelling its call (the gateway drops hedged losers
//! and timed-out calls) never interrupts a place between reserve and
//! insert. A cancel runs in its own spawned task which the RPC future only
//! awaits, so it is never interrupted between commit and release. Both run
//! under the caller's deadline (its `grpc-timeout`), which bounds the
//! store's retries of transient database failures.

mod cancel;
mod deadline;
pub mod orphans;
mod place;
mod place_batch;
mod query;
mod releaser;
mod reply;

use std::future::Future;
use std::sync::Arc;

use hts_account_client::AccountClient;
use hts_proto::v1::order_service_server::OrderService;
use hts_proto::v1::{
    CancelOrderCall, CancelOrderResponse, PlaceOrderCall, PlaceOrderResponse, QueryOrderCall,
    QueryOrderResponse,
};
use tonic::{Request, Response, Status};

use crate::store::OrderStore;

pub use place::{place_batch_now, MAX_BATCH};
pub use place_batch::PLACE_STORE_BUDGET;
pub use releaser::{release_pending, run_release_retries};

/// Dependencies shared by all handlers.
#[derive(Clone)]
pub struct OrderContext {
    /// Order persistence.
    pub store: Arc<dyn OrderStore>,
    /// Account service client (reservations).
    pub accounts: AccountClient,
}

/// gRPC front of the order domain.
#[derive(Clone)]
pub struct OrderGrpc {
    ctx: Arc<OrderContext>,
    places: place::Placer,
}

impl OrderGrpc {
    /// Serves requests with `ctx`, places through `lanes` place lanes.
    /// Must run inside a Tokio runtime (the lanes are tasks).
    pub fn new(ctx: OrderContext, lanes: usize) -> Self {
        Self {
            places: place::Placer::start(ctx.clone(), lanes),
            ctx: Arc::new(ctx),
        }
    }
}

/// Runs `work` detached from the caller's future, under the caller's
/// `deadline`, and waits for it.
async fn detached<T: Send + 'static>(
    deadline: Option<tokio::time::Instant>,
    work: impl Future<Output = T> + Send + 'static,
) -> Result<Response<T>, Status> {
    tokio::spawn(hts_dbkit::pg::with_deadline(deadline, work))
        .await
        .map(Response::new)
        .map_err(|e| {
            tracing::error!(error = %e, "order handler task failed");
            Status::internal("order handler failed")
        })
}

#[tonic::async_trait]
impl OrderService for OrderGrpc {
    async fn place_order(
        &self,
        request: Request<PlaceOrderCall>,
    ) -> Result<Response<PlaceOrderResponse>, Status> {
        let deadline = deadline::of(&request);
        let call = request.into_inner();
        Ok(Response::new(self.places.place(call, deadline).await))
    }

    async fn cancel_order(
        &self,
        request: Request<CancelOrderCall>,
    ) -> Result<Response<CancelOrderResponse>, Status> {
        let ctx = Arc::clone(&self.ctx);
        let deadline = deadline::of(&request);
        let call = request.into_inner();
        detached(deadline, async move { cancel::cancel(&ctx, call).await }).await
    }

    async fn query_order(
        &self,
        request: Request<QueryOrderCall>,
    ) -> Result<Response<QueryOrderResponse>, Status> {
        let deadline = deadline::of(&request);
        let call = request.into_inner();
        let answer = hts_dbkit::pg::with_deadline(deadline, query::query(&self.ctx, call)).await;
        Ok(Response::new(answer))
    }
}
