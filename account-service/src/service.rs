//! The `AccountService` gRPC implementation.
//!
//! Business outcomes travel in the response body; a gRPC error status is
//! returned only when the store fails (`UNAVAILABLE`, so callers retry).

use hts_proto::v1::account_service_server::AccountService;
use hts_proto::v1::{
    GetAccountRequest, GetAccountResponse, GetStoreIdentityRequest, GetStoreIdentityResponse,
    ListHeldReservationsRequest, ListHeldReservationsResponse, ReleaseRequest, ReleaseResponse,
    ReserveBatchRequest, ReserveBatchResponse, ReserveOutcome, ReserveRequest, ReserveResponse,
};
use tonic::{Request, Response, Status};

use crate::store::{AccountStore, ReserveArgs, StoreError};

/// gRPC front of an [`AccountStore`].
#[derive(Clone)]
pub struct AccountGrpc {
    store: AccountStore,
}

impl AccountGrpc {
    /// Serves requests from `store`.
    pub fn new(store: AccountStore) -> Self {
        Self { store }
    }
}

/// Most items of one [`AccountService::list_held_reservations`] page.
pub const MAX_HELD_PAGE: usize = 1000;

fn store_failure(e: StoreError) -> Status {
    tracing::error!(error = %e, "account store failure");
    Status::unavailable(format!("account store failure: {e}"))
}

fn reserve_args(req: ReserveRequest) -> ReserveArgs {
    ReserveArgs {
        reservation_id: req.reservation_id,
        account_id: req.account_id,
        asset: req.asset,
        amount: req.amount,
        request_id: (!req.request_id.is_empty()).then_some(req.request_id),
    }
}

fn answer(outcome: ReserveOutcome) -> ReserveResponse {
    ReserveResponse {
        outcome: outcome as i32,
        message: outcome.as_str_name().to_owned(),
    }
}

#[tonic::async_trait]
impl AccountService for AccountGrpc {
    async fn reserve(
        &self,
        request: Request<ReserveRequest>,
    ) -> Result<Response<ReserveResponse>, Status> {
        let req = request.into_inner();
        let outcome = self
            .store
            .reserve(&req.reservation_id, &req.account_id, &req.asset, req.amount)
            .await
            .map_err(store_failure)?;
        tracing::debug!(reservation_id = %req.reservation_id, ?outcome, "reserve");
        Ok(Response::new(answer(outcome)))
    }

    /// Answers per item; an item the store could not decide gets
    /// UNSPECIFIED with the failure. When no item could be decided the call
    /// fails as a whole with UNAVAILABLE, as [`AccountService::reserve`]
    /// would, so the caller's breaker counts it.
    async fn reserve_batch(
        &self,
        request: Request<ReserveBatchRequest>,
    ) -> Result<Response<ReserveBatchResponse>, Status> {
        let items: Vec<ReserveArgs> = request
            .into_inner()
            .items
            .into_iter()
            .map(reserve_args)
            .collect();
        let n = items.len();
        let mut answers = self.store.reserve_batch(items).await;
        let failed = answers.iter().filter(|a| a.is_err()).count();
        if n > 0 && failed == n {
            if let Err(e) = answers.swap_remove(0) {
                return Err(store_failure(e));
            }
        }
        let results = answers
            .into_iter()
            .map(|a| match a {
                Ok(outcome) => answer(outcome),
                Err(e) => {
                    tracing::error!(error = %e, "account store failure in a batch item");
                    ReserveResponse {
                        outcome: ReserveOutcome::Unspecified as i32,
                        message: format!("account store failure: {e}"),
                    }
                }
            })
            .collect();
        Ok(Response::new(ReserveBatchResponse { results }))
    }

    async fn release(
        &self,
        request: Request<ReleaseRequest>,
    ) -> Result<Response<ReleaseResponse>, Status> {
        let req = request.into_inner();
        let outcome = self
            .store
            .release(&req.reservation_id, &req.account_id)
            .await
            .map_err(store_failure)?;
        tracing::debug!(reservation_id = %req.reservation_id, ?outcome, "release");
        Ok(Response::new(ReleaseResponse {
            outcome: outcome as i32,
            message: outcome.as_str_name().to_owned(),
        }))
    }

    /// One page of HELD order reservations older than the given age, at
    /// most [`MAX_HELD_PAGE`] items.
    async fn list_held_reservations(
        &self,
        request: Request<ListHeldReservationsRequest>,
    ) -> Result<Response<ListHeldReservationsResponse>, Status> {
        let req = request.into_inner();
        let limit = match usize::try_from(req.limit) {
            Ok(0) | Err(_) => MAX_HELD_PAGE,
            Ok(n) => n.min(MAX_HELD_PAGE),
        };
        let items = self
            .store
            .held_reservations(req.older_than_ms, &req.after_reservation_id, limit)
            .await
            .map_err(store_failure)?;
        let next_after = if items.len() == limit {
            items
                .last()
                .map(|r| r.reservation_id.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(ListHeldReservationsResponse {
            items,
            next_after,
        }))
    }

    async fn get_account(
        &self,
        request: Request<GetAccountRequest>,
    ) -> Result<Response<GetAccountResponse>, Status> {
        let req = request.into_inner();
        let balances = self
            .store
            .get_account(&req.account_id)
            .await
            .map_err(store_failure)?;
        Ok(Response::new(match balances {
            Some(balances) => GetAccountResponse {
                found: true,
                account_id: req.account_id,
                balances,
            },
            None => GetAccountResponse {
                found: false,
                account_id: req.account_id,
                balances: Vec::new(),
            },
        }))
    }

    async fn get_store_identity(
        &self,
        _request: Request<GetStoreIdentityRequest>,
    ) -> Result<Response<GetStoreIdentityResponse>, Status> {
        let identity = self.store.identity();
        Ok(Response::new(GetStoreIdentityResponse {
            store_id: identity.store_id.clone(),
            kind: identity.kind.clone(),
        }))
    }
}
