//! Fuzzes what the gateway does with a frame's body, and the order
//! service's validation of the request it forwards.
//!
//! Input layout (seeds are a two-byte prefix and a protobuf body):
//! * byte 0: `msg_type` (0-255: every known type, ERROR and unknown ones);
//! * byte 1, bit 0: the connection is logged in (as [`ACCOUNT`]);
//! * the rest: the frame body.
//!
//! The body goes through `hts_gateway::request::decode_request`, then the
//! step the connection takes next: `verify_login_token` and
//! `account_matches` (JWT verification of an arbitrary token), `admit` (login, id length and account checks), and for admitted
//! orders the order service's `validate_place` / `validate_request_id` /
//! `validate_order_id`, `fingerprint` and `reservation_for`. Checked:
//! * no panic;
//! * every answer the gateway or the order service builds for the request
//!   fits in a frame whose `max_body_len` admitted the request (for limits
//!   of at least [`MIN_LIMIT`] bytes): an answer that does not fit cannot be
//!   written and would cost the client its connection;
//! * decoded messages re-encode and decode to the same value;
//! * a login succeeds only with a token signed by the gateway's secret,
//!   for the account it names;
//! * an order the order service accepts satisfies the documented field
//!   rules (docs/protocol.md, "Field rules").

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hts_gateway::auth::JwtAuth;
use hts_gateway::codec::FrameCodec;
use hts_gateway::frame::{Frame, MsgType};
use hts_gateway::request::{
    account_matches, admit, decode_request, verify_login_token, ClientRequest, LoginRefusal,
};
use hts_gateway::resilience::NoBackend;
use hts_gateway::upstream::{timeout_message, BackendRequest};
use hts_order_core::domain::{
    fingerprint, reservation_for, validate_order_id, validate_place, validate_request_id,
};
use hts_proto::v1::{
    CancelOrderResponse, Code, LoginResponse, OrderStatus, PlaceOrderResponse, QueryOrderResponse,
};
use prost::Message;
use tokio_util::codec::Encoder;

/// The account a logged-in connection belongs to.
const ACCOUNT: &str = "ACC-0001";
/// The gateway's JWT secret (seed tokens are signed with it).
const SECRET: &[u8] = b"fuzz-secret-0123456789abcdef";
/// Smallest `max_body_len` for which every answer must fit.
const MIN_LIMIT: usize = 1024;
/// Correlation id of the request.
const CORR: u64 = 0x0102_0304_0506_0708;

/// Runs one fuzz input; panics when a property does not hold.
pub fn check(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let msg_type = u16::from(data[0]);
    let logged_in = data[1] & 1 == 1;
    let body = Bytes::copy_from_slice(&data[2..]);
    // The frame carrying `body` was admitted by a codec of this limit.
    let limit = body.len().max(MIN_LIMIT);
    match decode_request(msg_type, body) {
        Err(e) => {
            assert_eq!(e.code(), Code::InvalidRequest);
            fits(Frame::error(CORR, e.code(), e.to_string()), limit);
        }
        Ok(ClientRequest::Heartbeat(hb)) => round_trip(&hb),
        Ok(ClientRequest::Login(req)) => {
            round_trip(&req);
            let auth = JwtAuth::new(SECRET);
            let verdict = if req.token.is_empty() && !req.session_id.is_empty() {
                // Resuming goes to the session directory (Redis), which is
                // not fuzzed here; its refusals are fixed strings.
                Err("session store unavailable; log in with a token".to_owned())
            } else {
                match verify_login_token(&auth, &req.token) {
                    Ok(claims) if account_matches(&req.account_id, &claims.account) => {
                        assert!(!claims.account.is_empty());
                        assert!(req.account_id.is_empty() || req.account_id == claims.account);
                        Ok(())
                    }
                    Ok(_) => Err(LoginRefusal::AccountMismatch.to_string()),
                    Err(refusal) => Err(refusal.to_string()),
                }
            };
            let (code, message, session_id) = match verdict {
                Ok(()) => (Code::Ok, String::new(), uuid_like()),
                // The longest refusal: the last allowed failure closes.
                Err(refusal) => (
                    Code::Unauthenticated,
                    format!("{refusal}; too many failed logins, closing connection"),
                    String::new(),
                ),
            };
            let resp = LoginResponse {
                code: code as i32,
                message,
                session_id,
                next_seq: u64::MAX,
            };
            fits(Frame::response(MsgType::Login, CORR, &resp), limit);
        }
        Ok(ClientRequest::Backend(req)) => {
            match &req {
                BackendRequest::Place(r) => round_trip(r),
                BackendRequest::Cancel(r) => round_trip(r),
                BackendRequest::Query(r) => round_trip(r),
            }
            backend(&req, logged_in.then_some(ACCOUNT), limit);
        }
    }
}

/// The gateway's answers to an order request, and the order service's
/// validation of it when it gets through.
fn backend(req: &BackendRequest, session: Option<&str>, limit: usize) {
    let account = match admit(session, req) {
        Ok(account) => account,
        Err(refused) => {
            let expected = match refused.code {
                Code::Unauthenticated => session.is_none(),
                Code::InvalidRequest => session.is_some() && req.check_id_lengths().is_err(),
                Code::Forbidden => {
                    matches!(req, BackendRequest::Place(p) if !p.account_id.is_empty())
                }
                _ => false,
            };
            assert!(expected, "unexpected refusal {refused:?}");
            fits(
                req.failure(refused.code, refused.message).into_frame(CORR),
                limit,
            );
            return;
        }
    };
    // Answers the gateway builds when the backends cannot: the longest ones.
    for (code, message) in [
        (
            Code::Timeout,
            timeout_message(Duration::from_millis(u64::MAX)),
        ),
        (
            Code::ServiceUnavailable,
            format!("{}: nothing was sent, retry later", NoBackend::AllOpen),
        ),
        (
            Code::RateLimited,
            "account is over its request rate limit: slow down and retry".to_owned(),
        ),
    ] {
        fits(req.failure(code, message).into_frame(CORR), limit);
    }
    match req {
        BackendRequest::Place(p) => match validate_place(account, p) {
            Ok(order) => {
                check_field_rules(p);
                assert_eq!(order.account_id, account);
                assert_eq!(order.notional, p.price * p.quantity);
                assert_eq!(fingerprint(&order).len(), 64);
                let spec = reservation_for(&order);
                assert!(spec.amount > 0);
                assert!(spec.reservation_id.contains(&order.request_id));
                // The order service's acceptance echoes the request id and a
                // 36-character order id.
                let ok = PlaceOrderResponse {
                    code: Code::Ok as i32,
                    message: "order accepted".into(),
                    request_id: p.request_id.clone(),
                    order_id: uuid_like(),
                    status: OrderStatus::Accepted as i32,
                    replayed: true,
                    retry_after_ms: u32::MAX,
                };
                fits(Frame::response(MsgType::PlaceOrder, CORR, &ok), limit);
            }
            Err(rejection) => {
                assert!(matches!(
                    rejection.code,
                    Code::InvalidRequest | Code::Forbidden
                ));
                // The order service's refusal echoes the request id.
                let no = PlaceOrderResponse {
                    code: rejection.code as i32,
                    message: rejection.message,
                    request_id: p.request_id.clone(),
                    ..Default::default()
                };
                fits(Frame::response(MsgType::PlaceOrder, CORR, &no), limit);
            }
        },
        BackendRequest::Cancel(c) => {
            let verdict =
                validate_request_id(&c.request_id).and_then(|()| validate_order_id(&c.order_id));
            let message = match verdict {
                Ok(()) => {
                    assert!((1..=64).contains(&c.request_id.len()));
                    assert!(!c.order_id.is_empty());
                    "order canceled".to_owned()
                }
                Err(rejection) => rejection.message,
            };
            // Every cancel answer echoes the order id.
            let resp = CancelOrderResponse {
                code: Code::NotFound as i32,
                message,
                order_id: c.order_id.clone(),
                status: OrderStatus::Canceled as i32,
                retry_after_ms: u32::MAX,
            };
            fits(Frame::response(MsgType::CancelOrder, CORR, &resp), limit);
        }
        BackendRequest::Query(q) => {
            let message = match validate_order_id(&q.order_id) {
                Ok(()) => "no such order".to_owned(),
                Err(rejection) => rejection.message,
            };
            let resp = QueryOrderResponse {
                code: Code::NotFound as i32,
                message,
                order: None,
                retry_after_ms: u32::MAX,
            };
            fits(Frame::response(MsgType::QueryOrder, CORR, &resp), limit);
        }
    }
}

/// docs/protocol.md "Field rules", written independently of order-core.
fn check_field_rules(p: &hts_proto::v1::PlaceOrderRequest) {
    assert!(p.price > 0 && p.quantity > 0);
    assert!(p.price.checked_mul(p.quantity).is_some());
    assert!((1..=12).contains(&p.symbol.len()));
    assert!(p
        .symbol
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
    assert!((1..=64).contains(&p.request_id.len()));
    assert!(p.request_id.bytes().all(|b| (0x20..=0x7e).contains(&b)));
    assert!(p.side == 1 || p.side == 2, "side {}", p.side);
    assert_eq!(p.order_type, 1);
    assert!(p.account_id.is_empty() || p.account_id == ACCOUNT);
}

/// A 36-character session or order id (UUID text form).
fn uuid_like() -> String {
    "01890a5d-ac96-774b-bcce-b302099a8057".to_owned()
}

/// `m` survives an encode/decode round trip unchanged.
fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(m: &M) {
    let again = M::decode(m.encode_to_vec().as_slice()).expect("re-encoded message decodes");
    assert_eq!(&again, m);
}

/// `frame` can be written by a connection whose codec admitted the request.
fn fits(frame: Frame, limit: usize) {
    let len = frame.body.len();
    let mut out = BytesMut::new();
    if let Err(e) = FrameCodec::new(limit).encode(frame, &mut out) {
        panic!("answer of {len} bytes cannot be written with max_body_len {limit}: {e}");
    }
}
