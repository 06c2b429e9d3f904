//! Backend calls: a decoded request in, a typed response out.
//!
//! [`BackendRequest`] is a decoded PLACE/CANCEL/QUERY body; [`Dispatcher`]
//! sends it to a backend under the request's deadline and always produces a
//! [`BackendReply`] of the matching response type, with `code` set:
//!
//! * backend answered → its response (business outcome in `code`);
//! * gRPC `Unavailable` or a transport/connection error → `SERVICE_UNAVAILABLE`;
//! * our deadline passed, or `DeadlineExceeded` → `TIMEOUT` ("outcome unknown");
//! * any other status → `INTERNAL`.

use std::error::Error as _;
use std::time::Duration;

use bytes::Bytes;
use hts_proto::v1::{
    CancelOrderCall, CancelOrderRequest, CancelOrderResponse, Code, PlaceOrderCall,
    PlaceOrderRequest, PlaceOrderResponse, QueryOrderCall, QueryOrderRequest, QueryOrderResponse,
};
use prost::Message;
use std::sync::Arc;
use tokio::time::Instant;

use crate::frame::{Frame, MsgType};
use crate::routing::BackendPool;

/// A decoded request that needs an order-service backend.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendRequest {
    /// PLACE_ORDER.
    Place(PlaceOrderRequest),
    /// CANCEL_ORDER.
    Cancel(CancelOrderRequest),
    /// QUERY_ORDER.
    Query(QueryOrderRequest),
}

impl BackendRequest {
    /// Decodes `body` as the request of `msg_type`. Returns `Ok(None)` when
    /// `msg_type` is not a backend request type.
    pub fn decode(
        msg_type: MsgType,
        body: Bytes,
    ) -> Result<Option<BackendRequest>, prost::DecodeError> {
        Ok(Some(match msg_type {
            MsgType::PlaceOrder => BackendRequest::Place(PlaceOrderRequest::decode(body)?),
            MsgType::CancelOrder => BackendRequest::Cancel(CancelOrderRequest::decode(body)?),
            MsgType::QueryOrder => BackendRequest::Query(QueryOrderRequest::decode(body)?),
            _ => return Ok(None),
        }))
    }

    /// The request's message type.
    pub fn msg_type(&self) -> MsgType {
        match self {
            BackendRequest::Place(_) => MsgType::PlaceOrder,
            BackendRequest::Cancel(_) => MsgType::CancelOrder,
            BackendRequest::Query(_) => MsgType::QueryOrder,
        }
    }

    /// The typed response refusing this request with `code`. PlaceOrder
    /// responses echo the request_id, CancelOrder ones the order_id.
    pub fn failure(&self, code: Code, message: impl Into<String>) -> BackendReply {
        let message = message.into();
        match self {
            BackendRequest::Place(r) => BackendReply::Place(PlaceOrderResponse {
                code: code as i32,
                message,
                request_id: r.request_id.clone(),
                ..Default::default()
            }),
            BackendRequest::Cancel(r) => BackendReply::Cancel(CancelOrderResponse {
                code: code as i32,
                message,
                order_id: r.order_id.clone(),
                ..Default::default()
            }),
            BackendRequest::Query(_) => BackendReply::Query(QueryOrderResponse {
                code: code as i32,
                message,
                ..Default::default()
            }),
        }
    }
}

/// A typed response to a [`BackendRequest`].
#[derive(Debug, Clone, PartialEq)]
pub enum BackendReply {
    /// Response to PLACE_ORDER.
    Place(PlaceOrderResponse),
    /// Response to CANCEL_ORDER.
    Cancel(CancelOrderResponse),
    /// Response to QUERY_ORDER.
    Query(QueryOrderResponse),
}

impl BackendReply {
    /// The raw `code` of the response.
    pub fn code(&self) -> i32 {
        match self {
            BackendReply::Place(r) => r.code,
            BackendReply::Cancel(r) => r.code,
            BackendReply::Query(r) => r.code,
        }
    }

    /// The response frame for the client's `correlation_id`.
    pub fn into_frame(self, correlation_id: u64) -> Frame {
        match self {
            BackendReply::Place(r) => Frame::response(MsgType::PlaceOrder, correlation_id, &r),
            BackendReply::Cancel(r) => Frame::response(MsgType::CancelOrder, correlation_id, &r),
            BackendReply::Query(r) => Frame::response(MsgType::QueryOrder, correlation_id, &r),
        }
    }
}

/// The message of a TIMEOUT answer.
pub fn timeout_message(request_timeout: Duration) -> String {
    format!(
        "deadline of {} ms passed before the backend answered: the outcome is unknown; \
         retrying with the same request_id is safe",
        request_timeout.as_millis()
    )
}

/// Maps a gRPC failure to a response code and message.
pub fn status_to_code(status: &tonic::Status, request_timeout: Duration) -> (Code, String) {
    match status.code() {
        tonic::Code::Unavailable => (
            Code::ServiceUnavailable,
            format!("order service unavailable: {}", status.message()),
        ),
        tonic::Code::DeadlineExceeded => (Code::Timeout, timeout_message(request_timeout)),
        // tonic enforces the propagated gRPC timeout on the client side too.
        _ if has_source::<tonic::TimeoutExpired>(status) => {
            (Code::Timeout, timeout_message(request_timeout))
        }
        _ if has_source::<tonic::ConnectError>(status)
            || has_source::<tonic::transport::Error>(status)
            || has_source::<std::io::Error>(status) =>
        {
            (
                Code::ServiceUnavailable,
                format!("order service unreachable: {}", status.message()),
            )
        }
        other => (
            Code::Internal,
            format!("order service failed ({other:?}): {}", status.message()),
        ),
    }
}

fn has_source<E: std::error::Error + 'static>(status: &tonic::Status) -> bool {
    let mut source = status.source();
    while let Some(e) = source {
        if e.is::<E>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Sends backend requests to the pool under a deadline.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    pool: Arc<BackendPool>,
    request_timeout: Duration,
}

impl Dispatcher {
    /// A dispatcher over `pool`; `request_timeout` is used in TIMEOUT messages.
    pub fn new(pool: Arc<BackendPool>, request_timeout: Duration) -> Dispatcher {
        Dispatcher {
            pool,
            request_timeout,
        }
    }

    /// The backend pool.
    pub fn pool(&self) -> &Arc<BackendPool> {
        &self.pool
    }

    /// Calls a backend for `account` and returns the typed answer; never
    /// fails and never runs past `deadline`.
    pub async fn call(
        &self,
        account: &str,
        request: BackendRequest,
        correlation_id: u64,
        deadline: Instant,
    ) -> BackendReply {
        let Some(backend) = self.pool.pick() else {
            return request.failure(
                Code::ServiceUnavailable,
                "no order-service backend configured",
            );
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return request.failure(Code::Timeout, timeout_message(self.request_timeout));
        }
        let mut client = backend.client();
        let account_id = account.to_owned();
        let call = async {
            match request.clone() {
                BackendRequest::Place(r) => {
                    let mut req = tonic::Request::new(PlaceOrderCall {
                        account_id,
                        request: Some(r),
                        correlation_id,
                    });
                    req.set_timeout(remaining);
                    client
                        .place_order(req)
                        .await
                        .map(|resp| BackendReply::Place(resp.into_inner()))
                }
                BackendRequest::Cancel(r) => {
                    let mut req = tonic::Request::new(CancelOrderCall {
                        account_id,
                        request: Some(r),
                        correlation_id,
                    });
                    req.set_timeout(remaining);
                    client
                        .cancel_order(req)
                        .await
                        .map(|resp| BackendReply::Cancel(resp.into_inner()))
                }
                BackendRequest::Query(r) => {
                    let mut req = tonic::Request::new(QueryOrderCall {
                        account_id,
                        request: Some(r),
                        correlation_id,
                    });
                    req.set_timeout(remaining);
                    client
                        .query_order(req)
                        .await
                        .map(|resp| BackendReply::Query(resp.into_inner()))
                }
            }
        };
        match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(mut reply)) => {
                if let (BackendReply::Place(resp), BackendRequest::Place(req)) =
                    (&mut reply, &request)
                {
                    if resp.request_id.is_empty() {
                        resp.request_id.clone_from(&req.request_id);
                    }
                }
                reply
            }
            Ok(Err(status)) => {
                let (code, message) = status_to_code(&status, self.request_timeout);
                tracing::debug!(backend = backend.url(), %status, "backend call failed");
                request.failure(code, message)
            }
            Err(_) => request.failure(Code::Timeout, timeout_message(self.request_timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping() {
        let t = Duration::from_millis(50);
        assert_eq!(
            status_to_code(&tonic::Status::unavailable("down"), t).0,
            Code::ServiceUnavailable
        );
        let (code, msg) = status_to_code(&tonic::Status::deadline_exceeded("slow"), t);
        assert_eq!(code, Code::Timeout);
        assert!(msg.contains("deadline of 50 ms"));
        assert!(msg.contains("outcome is unknown"));
        assert_eq!(
            status_to_code(&tonic::Status::internal("bug"), t).0,
            Code::Internal
        );
        assert_eq!(
            status_to_code(&tonic::Status::invalid_argument("x"), t).0,
            Code::Internal
        );
        let io = tonic::Status::from_error(Box::new(std::io::Error::other("reset")));
        assert_eq!(status_to_code(&io, t).0, Code::ServiceUnavailable);
        let expired = tonic::Status::from_error(Box::new(tonic::TimeoutExpired(())));
        assert_eq!(status_to_code(&expired, t).0, Code::Timeout);
    }

    #[test]
    fn failure_echoes_ids() {
        let req = BackendRequest::Place(PlaceOrderRequest {
            request_id: "r-1".into(),
            ..Default::default()
        });
        match req.failure(Code::Forbidden, "no") {
            BackendReply::Place(r) => {
                assert_eq!(r.request_id, "r-1");
                assert_eq!(r.code, Code::Forbidden as i32);
            }
            other => panic!("unexpected {other:?}"),
        }
        let frame = req.failure(Code::Timeout, "t").into_frame(9);
        assert_eq!(frame.msg_type, MsgType::PlaceOrder.as_u16());
        assert!(frame.is_response());
        assert_eq!(frame.correlation_id, 9);
    }

    #[test]
    fn decode_by_type() {
        let body = Bytes::from(
            QueryOrderRequest {
                order_id: "o".into(),
            }
            .encode_to_vec(),
        );
        assert!(matches!(
            BackendRequest::decode(MsgType::QueryOrder, body.clone()),
            Ok(Some(BackendRequest::Query(q))) if q.order_id == "o"
        ));
        assert_eq!(BackendRequest::decode(MsgType::Login, body).unwrap(), None);
        assert!(
            BackendRequest::decode(MsgType::PlaceOrder, Bytes::from_static(&[0xff, 0xff])).is_err()
        );
    }

    #[tokio::test]
    async fn empty_pool_is_unavailable_and_past_deadline_is_timeout() {
        let pool = Arc::new(BackendPool::new::<&str>(&[]).unwrap());
        let d = Dispatcher::new(pool, Duration::from_millis(50));
        let req = BackendRequest::Query(QueryOrderRequest::default());
        let r = d
            .call("A", req.clone(), 1, Instant::now() + Duration::from_secs(1))
            .await;
        assert_eq!(r.code(), Code::ServiceUnavailable as i32);

        let pool = Arc::new(BackendPool::new(&["http://127.0.0.1:1"]).unwrap());
        let d = Dispatcher::new(pool, Duration::from_millis(50));
        let r = d.call("A", req, 1, Instant::now()).await;
        assert_eq!(r.code(), Code::Timeout as i32);
    }
}
