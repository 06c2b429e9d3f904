//! Backend calls: a decoded request in, a typed response out.
//!
//! [`BackendRequest`] is a decoded PLACE/CANCEL/QUERY body; [`send`] makes one
//! gRPC call with it. Failures map to a [`BackendReply`] of the matching
//! response type ([`status_to_code`]), with `code` set:
//!
//! * backend answered → its response (business outcome in `code`);
//! * gRPC `Unavailable` or a transport/connection error → `SERVICE_UNAVAILABLE`;
//! * our deadline passed, or `DeadlineExceeded` → `TIMEOUT` ("outcome unknown");
//! * any other status → `INTERNAL`.

use std::error::Error as _;
use std::time::Duration;

use hts_proto::v1::order_service_client::OrderServiceClient;
use hts_proto::v1::{
    CancelOrderCall, CancelOrderRequest, CancelOrderResponse, Code, PlaceOrderCall,
    PlaceOrderRequest, PlaceOrderResponse, QueryOrderCall, QueryOrderRequest, QueryOrderResponse,
};
use tonic::transport::Channel;

use crate::frame::{Frame, MsgType};

/// Longest `request_id` or `order_id` the gateway forwards and echoes.
/// request_ids are 1-64 characters (docs/protocol.md); order ids are the
/// order service's 36-character UUIDs. Echoing a longer, client-chosen id
/// could make an answer larger than the frame limit.
pub const MAX_ID_LEN: usize = 64;

/// `id` if it is short enough to echo, else empty.
fn echo(id: &str) -> String {
    if id.len() <= MAX_ID_LEN {
        id.to_owned()
    } else {
        String::new()
    }
}

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
    /// The idempotency key, when the request carries one (Place, Cancel):
    /// such a request may be retried or hedged, the backend deduplicates it.
    pub fn request_id(&self) -> Option<&str> {
        let id = match self {
            BackendRequest::Place(r) => &r.request_id,
            BackendRequest::Cancel(r) => &r.request_id,
            BackendRequest::Query(_) => return None,
        };
        (!id.is_empty()).then_some(id.as_str())
    }

    /// Checks the ids the request carries are at most [`MAX_ID_LEN`]
    /// bytes, so that the backend's answer, which echoes them, fits in a
    /// frame. Shorter malformed ids are the order service's to refuse.
    pub fn check_id_lengths(&self) -> Result<(), &'static str> {
        let (request_id, order_id) = match self {
            BackendRequest::Place(r) => (r.request_id.as_str(), ""),
            BackendRequest::Cancel(r) => (r.request_id.as_str(), r.order_id.as_str()),
            BackendRequest::Query(r) => ("", r.order_id.as_str()),
        };
        if request_id.len() > MAX_ID_LEN {
            return Err("request_id must be 1-64 characters");
        }
        if order_id.len() > MAX_ID_LEN {
            return Err("order_id must be at most 64 bytes");
        }
        Ok(())
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
    /// responses echo the request_id, CancelOrder ones the order_id, unless
    /// it is longer than [`MAX_ID_LEN`].
    pub fn failure(&self, code: Code, message: impl Into<String>) -> BackendReply {
        let message = message.into();
        match self {
            BackendRequest::Place(r) => BackendReply::Place(PlaceOrderResponse {
                code: code as i32,
                message,
                request_id: echo(&r.request_id),
                ..Default::default()
            }),
            BackendRequest::Cancel(r) => BackendReply::Cancel(CancelOrderResponse {
                code: code as i32,
                message,
                order_id: echo(&r.order_id),
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
        // The server cancels a call whose propagated grpc-timeout expired.
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
            (Code::Timeout, timeout_message(request_timeout))
        }
        // tonic enforces the propagated gRPC timeout on the client side too.
        _ if has_source::<tonic::TimeoutExpired>(status) => {
            (Code::Timeout, timeout_message(request_timeout))
        }
        _ if is_transport_error(status) => (
            Code::ServiceUnavailable,
            format!("order service unreachable: {}", status.message()),
        ),
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

/// Sends `request` for `account` to one backend with `timeout` as the gRPC
/// timeout. One attempt: retries, hedges and the overall deadline are the
/// caller's ([`crate::resilience::Router`]).
pub async fn send(
    mut client: OrderServiceClient<Channel>,
    account: &str,
    request: &BackendRequest,
    correlation_id: u64,
    timeout: Duration,
) -> Result<BackendReply, tonic::Status> {
    let account_id = account.to_owned();
    match request.clone() {
        BackendRequest::Place(r) => {
            let request_id = r.request_id.clone();
            let mut req = tonic::Request::new(PlaceOrderCall {
                account_id,
                request: Some(r),
                correlation_id,
            });
            req.set_timeout(timeout);
            let mut resp = client.place_order(req).await?.into_inner();
            if resp.request_id.is_empty() {
                resp.request_id = request_id;
            }
            Ok(BackendReply::Place(resp))
        }
        BackendRequest::Cancel(r) => {
            let mut req = tonic::Request::new(CancelOrderCall {
                account_id,
                request: Some(r),
                correlation_id,
            });
            req.set_timeout(timeout);
            Ok(BackendReply::Cancel(
                client.cancel_order(req).await?.into_inner(),
            ))
        }
        BackendRequest::Query(r) => {
            let mut req = tonic::Request::new(QueryOrderCall {
                account_id,
                request: Some(r),
                correlation_id,
            });
            req.set_timeout(timeout);
            Ok(BackendReply::Query(
                client.query_order(req).await?.into_inner(),
            ))
        }
    }
}

/// Whether a gRPC failure is a transport error (connection refused or reset,
/// connect failure): the request never reached a handler.
pub fn is_transport_error(status: &tonic::Status) -> bool {
    has_source::<tonic::ConnectError>(status)
        || has_source::<tonic::transport::Error>(status)
        || has_source::<std::io::Error>(status)
}

/// Whether a gRPC failure is the propagated timeout expiring.
pub fn is_timeout(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
    ) || has_source::<tonic::TimeoutExpired>(status)
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
        let cancelled = tonic::Status::cancelled("Timeout expired");
        assert_eq!(status_to_code(&cancelled, t).0, Code::Timeout);
        assert!(is_timeout(&cancelled));
        assert!(!is_timeout(&tonic::Status::unavailable("down")));
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
    fn oversized_ids_are_refused_and_never_echoed() {
        // fuzz/regressions/protobuf_handlers: a 1,100-byte request_id made
        // the UNAUTHENTICATED answer larger than the request's frame limit.
        let long = "r".repeat(MAX_ID_LEN + 1);
        let place = BackendRequest::Place(PlaceOrderRequest {
            request_id: long.clone(),
            ..Default::default()
        });
        assert_eq!(
            place.check_id_lengths(),
            Err("request_id must be 1-64 characters")
        );
        match place.failure(Code::Unauthenticated, "log in first") {
            BackendReply::Place(r) => assert_eq!(r.request_id, ""),
            other => panic!("unexpected {other:?}"),
        }
        let cancel = BackendRequest::Cancel(CancelOrderRequest {
            request_id: "c".into(),
            order_id: long.clone(),
        });
        assert_eq!(
            cancel.check_id_lengths(),
            Err("order_id must be at most 64 bytes")
        );
        match cancel.failure(Code::Timeout, "t") {
            BackendReply::Cancel(r) => assert_eq!(r.order_id, ""),
            other => panic!("unexpected {other:?}"),
        }
        let query = BackendRequest::Query(QueryOrderRequest { order_id: long });
        assert!(query.check_id_lengths().is_err());
        let at_limit = BackendRequest::Cancel(CancelOrderRequest {
            request_id: "c".repeat(MAX_ID_LEN),
            order_id: "o".repeat(MAX_ID_LEN),
        });
        assert_eq!(at_limit.check_id_lengths(), Ok(()));
        match at_limit.failure(Code::Timeout, "t") {
            BackendReply::Cancel(r) => assert_eq!(r.order_id.len(), MAX_ID_LEN),
            other => panic!("unexpected {other:?}"),
        }
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
}
