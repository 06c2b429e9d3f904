//! Echo mode of the order service, for benchmarks only.
//!
//! [`EchoOrderService`] answers every call with `OK` at once: no validation,
//! no store, no account service. Putting the gateway in front of it isolates
//! the cost of the gateway hop itself (see `docs/benchmarks.md`).

use std::future::Future;

use anyhow::Context;
use hts_proto::v1::order_service_server::{OrderService, OrderServiceServer};
use hts_proto::v1::{
    CancelOrderCall, CancelOrderResponse, Code, Order, OrderStatus, PlaceOrderCall,
    PlaceOrderResponse, QueryOrderCall, QueryOrderResponse,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// An `OrderService` that accepts everything immediately without doing any work.
///
/// A placed order's id is `echo-<request_id>`; cancels answer `CANCELED`,
/// queries answer an `ACCEPTED` order carrying only the id and account.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoOrderService;

#[tonic::async_trait]
impl OrderService for EchoOrderService {
    async fn place_order(
        &self,
        request: Request<PlaceOrderCall>,
    ) -> Result<Response<PlaceOrderResponse>, Status> {
        let request_id = request
            .into_inner()
            .request
            .map(|r| r.request_id)
            .unwrap_or_default();
        Ok(Response::new(PlaceOrderResponse {
            code: Code::Ok as i32,
            order_id: format!("echo-{request_id}"),
            request_id,
            status: OrderStatus::Accepted as i32,
            ..Default::default()
        }))
    }

    async fn cancel_order(
        &self,
        request: Request<CancelOrderCall>,
    ) -> Result<Response<CancelOrderResponse>, Status> {
        let order_id = request
            .into_inner()
            .request
            .map(|r| r.order_id)
            .unwrap_or_default();
        Ok(Response::new(CancelOrderResponse {
            code: Code::Ok as i32,
            order_id,
            status: OrderStatus::Canceled as i32,
            ..Default::default()
        }))
    }

    async fn query_order(
        &self,
        request: Request<QueryOrderCall>,
    ) -> Result<Response<QueryOrderResponse>, Status> {
        let call = request.into_inner();
        let order_id = call.request.map(|r| r.order_id).unwrap_or_default();
        Ok(Response::new(QueryOrderResponse {
            code: Code::Ok as i32,
            order: Some(Order {
                order_id,
                account_id: call.account_id,
                status: OrderStatus::Accepted as i32,
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}

/// Serves [`EchoOrderService`] plus the gRPC health service on `listener`
/// until `shutdown` completes.
pub async fn serve_echo(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<OrderServiceServer<EchoOrderService>>()
        .await;
    let local = listener.local_addr().ok();
    tracing::warn!(addr = ?local, "order service in ECHO mode: answers OK without doing any work (benchmarks only)");
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(OrderServiceServer::new(EchoOrderService))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
        .context("echo order service transport failed")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hts_proto::v1::{CancelOrderRequest, PlaceOrderRequest, QueryOrderRequest};

    #[tokio::test]
    async fn answers_ok_without_work() {
        let svc = EchoOrderService;
        let placed = svc
            .place_order(Request::new(PlaceOrderCall {
                account_id: "ACC-0001".into(),
                request: Some(PlaceOrderRequest {
                    request_id: "r-1".into(),
                    ..Default::default()
                }),
                correlation_id: 1,
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(placed.code, Code::Ok as i32);
        assert_eq!(placed.order_id, "echo-r-1");
        let canceled = svc
            .cancel_order(Request::new(CancelOrderCall {
                account_id: "ACC-0001".into(),
                request: Some(CancelOrderRequest {
                    request_id: "r-2".into(),
                    order_id: placed.order_id.clone(),
                }),
                correlation_id: 2,
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(canceled.status, OrderStatus::Canceled as i32);
        let queried = svc
            .query_order(Request::new(QueryOrderCall {
                account_id: "ACC-0001".into(),
                request: Some(QueryOrderRequest {
                    order_id: placed.order_id,
                }),
                correlation_id: 3,
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(queried.code, Code::Ok as i32);
        assert_eq!(queried.order.unwrap().order_id, "echo-r-1");
    }
}
