//! What travels to a backend and back: [`BackendRequest`] (a decoded
//! PLACE/CANCEL/QUERY body) and [`BackendReply`] (the typed answer of the
//! same kind). A request the gateway answers itself gets a reply of its own
//! type too ([`BackendRequest::failure`]), so the client always receives the
//! response message it asked for.

use std::time::Duration;

use hts_proto::v1::{
    CancelOrderRequest, CancelOrderResponse, Code, PlaceOrderRequest, PlaceOrderResponse,
    QueryOrderRequest, QueryOrderResponse,
};

use crate::frame::{Frame, MsgType};

/// A request's admission class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Cancels (and later mass cancels, kills): reserved capacity, never
    /// waiting behind a place, their own rate bucket.
    Priority,
    /// Places and queries.
    Normal,
}

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

    /// Its admission class: cancels are never queued behind places.
    pub fn class(&self) -> Class {
        match self {
            BackendRequest::Cancel(_) => Class::Priority,
            BackendRequest::Place(_) | BackendRequest::Query(_) => Class::Normal,
        }
    }

    /// What refusing it means: nothing was done.
    pub fn not_done(&self) -> &'static str {
        match self {
            BackendRequest::Place(_) => "not placed",
            BackendRequest::Cancel(_) => "not canceled",
            BackendRequest::Query(_) => "not looked up",
        }
    }

    /// The answer refusing it before any backend work: `code`
    /// (SERVICE_UNAVAILABLE or RATE_LIMITED), a message saying why, that
    /// nothing was done and when to retry, and the hint in `retry_after_ms`.
    pub fn refused(&self, code: Code, reason: &str, retry_after: Duration) -> BackendReply {
        let ms = u32::try_from(retry_after.as_millis().max(1)).unwrap_or(u32::MAX);
        let mut reply = self.failure(
            code,
            format!(
                "{reason}: {}; retry in {ms} ms with the same request_id",
                self.not_done()
            ),
        );
        reply.set_retry_after(ms);
        reply
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

    /// Sets the retry-after hint (milliseconds).
    pub fn set_retry_after(&mut self, ms: u32) {
        match self {
            BackendReply::Place(r) => r.retry_after_ms = ms,
            BackendReply::Cancel(r) => r.retry_after_ms = ms,
            BackendReply::Query(r) => r.retry_after_ms = ms,
        }
    }

    /// The retry-after hint (milliseconds; 0: none).
    pub fn retry_after_ms(&self) -> u32 {
        match self {
            BackendReply::Place(r) => r.retry_after_ms,
            BackendReply::Cancel(r) => r.retry_after_ms,
            BackendReply::Query(r) => r.retry_after_ms,
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn refusals_say_nothing_was_done_and_when_to_retry() {
        let req = BackendRequest::Place(PlaceOrderRequest {
            request_id: "r-9".into(),
            ..Default::default()
        });
        let reply = req.refused(
            Code::ServiceUnavailable,
            "every backend is at its in-flight limit",
            Duration::from_millis(40),
        );
        let BackendReply::Place(p) = reply else {
            panic!("wrong reply type")
        };
        assert_eq!(p.code, Code::ServiceUnavailable as i32);
        assert_eq!(p.retry_after_ms, 40);
        assert_eq!(p.request_id, "r-9");
        assert!(p.message.contains("not placed"), "{}", p.message);
        assert!(p.message.contains("retry in 40 ms"), "{}", p.message);
        let cancel = BackendRequest::Cancel(CancelOrderRequest::default());
        assert_eq!(cancel.class(), Class::Priority);
        assert_eq!(req.class(), Class::Normal);
        assert!(
            cancel
                .refused(Code::RateLimited, "slow down", Duration::ZERO)
                .retry_after_ms()
                >= 1
        );
    }
}
