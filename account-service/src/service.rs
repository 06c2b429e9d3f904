//! The `AccountService` gRPC implementation.
//!
//! Business outcomes travel in the response body; a gRPC error status is
//! returned only when the store fails (`UNAVAILABLE`, so callers retry).

use hts_proto::v1::account_service_server::AccountService;
use hts_proto::v1::{
    GetAccountRequest, GetAccountResponse, ReleaseRequest, ReleaseResponse, ReserveRequest,
    ReserveResponse,
};
use tonic::{Request, Response, Status};

use crate::store::{AccountStore, StoreError};

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

fn store_failure(e: StoreError) -> Status {
    tracing::error!(error = %e, "account store failure");
    Status::unavailable(format!("account store failure: {e}"))
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
        Ok(Response::new(ReserveResponse {
            outcome: outcome as i32,
            message: outcome.as_str_name().to_owned(),
        }))
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
}
