//! Direct mode: the same orders as gRPC calls straight to one order service.
//!
//! Each "connection" is one HTTP/2 channel acting for one account, exactly as
//! the gateway would call the backend (`PlaceOrderCall { account_id, request }`).
//! Every job becomes its own task, so calls overlap freely.

use std::time::{Duration, Instant};

use anyhow::Context;
use hts_proto::v1::order_service_client::OrderServiceClient;
use hts_proto::v1::{CancelOrderCall, Code, PlaceOrderCall, QueryOrderCall};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

use super::state::{Job, SharedState};
use crate::recorder::Outcome;
use crate::workload::{build, Body};

/// One gRPC channel to the order service, acting for one account.
#[derive(Debug, Clone)]
pub struct GrpcConn {
    client: OrderServiceClient<Channel>,
    account: String,
}

/// Connects one channel to `url` (e.g. `http://127.0.0.1:50051`) for `account`.
pub async fn connect(url: &str, account: &str, timeout: Duration) -> anyhow::Result<GrpcConn> {
    let channel = Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("invalid order-service URL {url:?}"))?
        .tcp_nodelay(true)
        .connect_timeout(timeout)
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(GrpcConn {
        client: OrderServiceClient::new(channel),
        account: account.to_owned(),
    })
}

fn code_of(raw: i32) -> Code {
    Code::try_from(raw).unwrap_or(Code::Unspecified)
}

fn with_timeout<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(timeout);
    r
}

impl GrpcConn {
    /// Sends every job as its own call until `jobs` closes.
    pub fn drive(
        self,
        mut jobs: UnboundedReceiver<Job>,
        state: SharedState,
        run_id: String,
        seed: u64,
        timeout: Duration,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            while let Some(job) = jobs.recv().await {
                let body = {
                    let mut s = state.lock();
                    let body = build(&run_id, job.seq, job.kind, &mut s.pool, &mut rng);
                    SharedState::sent(&mut s, &job, body.kind(), Instant::now());
                    body
                };
                tokio::spawn(self.clone().call(job.seq, body, state.clone(), timeout));
            }
        })
    }

    async fn call(mut self, seq: u64, body: Body, state: SharedState, timeout: Duration) {
        let account_id = self.account;
        let result = match body {
            Body::Place(request) => self
                .client
                .place_order(with_timeout(
                    PlaceOrderCall {
                        account_id,
                        request: Some(request),
                        correlation_id: seq,
                    },
                    timeout,
                ))
                .await
                .map(|r| {
                    let r = r.into_inner();
                    let ok = code_of(r.code) == Code::Ok;
                    (code_of(r.code), ok.then_some(r.order_id))
                }),
            Body::Cancel(request) => self
                .client
                .cancel_order(with_timeout(
                    CancelOrderCall {
                        account_id,
                        request: Some(request),
                        correlation_id: seq,
                    },
                    timeout,
                ))
                .await
                .map(|r| (code_of(r.into_inner().code), None)),
            Body::Query(request) => self
                .client
                .query_order(with_timeout(
                    QueryOrderCall {
                        account_id,
                        request: Some(request),
                        correlation_id: seq,
                    },
                    timeout,
                ))
                .await
                .map(|r| (code_of(r.into_inner().code), None)),
        };
        let now = Instant::now();
        let (outcome, order_id) = match result {
            Ok((code, order_id)) => (Outcome::Code(code), order_id),
            Err(status) if status.code() == tonic::Code::DeadlineExceeded => {
                (Outcome::ClientTimeout, None)
            }
            Err(status) => (Outcome::Grpc(status.code()), None),
        };
        let mut s = state.lock();
        if state.finish(&mut s, seq, &outcome, now) {
            if let Some(id) = order_id.filter(|id| !id.is_empty()) {
                s.pool.push(id);
            }
        }
    }
}
