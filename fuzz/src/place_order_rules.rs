//! Fuzzes PLACE_ORDER validation field by field: the input is a structured
//! `PlaceOrderRequest` (built with `arbitrary`), so the fuzzer explores the
//! field rules directly instead of through protobuf encoding.
//!
//! The request is encoded as a client would, decoded by the gateway
//! (`decode_request`), admitted for a session of [`ACCOUNT`] (`admit`) and
//! validated by the order service (`validate_place`). Checked:
//! * the gateway decodes exactly what was encoded;
//! * `admit` refuses exactly the requests with a request_id too long to
//!   echo (INVALID_REQUEST, which the order service would refuse too) and
//!   those naming another account (FORBIDDEN);
//! * `validate_place` accepts a request if and only if it satisfies the
//!   field rules of docs/protocol.md, re-stated here independently
//!   (`broken_rules`); a refusal is INVALID_REQUEST and names a field
//!   that breaks a rule.

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use hts_gateway::request::{admit, decode_request, ClientRequest};
use hts_gateway::upstream::BackendRequest;
use hts_order_core::domain::validate_place;
use hts_proto::v1::{Code, PlaceOrderRequest};
use prost::Message;

/// The session's account.
const ACCOUNT: &str = "ACC-0001";

/// The fields of a PLACE_ORDER, as the fuzzer chooses them.
#[derive(Debug, Arbitrary)]
struct Fields {
    request_id: String,
    /// 0: empty, 1: the session's account, otherwise `other_account`.
    account_choice: u8,
    other_account: String,
    symbol: String,
    side: i32,
    order_type: i32,
    price: i64,
    quantity: i64,
}

/// Runs one fuzz input; panics when a property does not hold.
pub fn check(data: &[u8]) {
    let Ok(f) = Fields::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let account_id = match f.account_choice {
        0 => String::new(),
        1 => ACCOUNT.to_owned(),
        _ => f.other_account,
    };
    let request = PlaceOrderRequest {
        request_id: f.request_id,
        account_id,
        symbol: f.symbol,
        side: f.side,
        order_type: f.order_type,
        price: f.price,
        quantity: f.quantity,
    };
    let body = Bytes::from(request.encode_to_vec());
    let decoded = match decode_request(2, body) {
        Ok(ClientRequest::Backend(BackendRequest::Place(p))) => p,
        other => panic!("a PlaceOrderRequest decoded as {other:?}"),
    };
    assert_eq!(decoded, request);
    let req = BackendRequest::Place(decoded);
    let foreign = !request.account_id.is_empty() && request.account_id != ACCOUNT;
    let too_long = request.request_id.len() > 64;
    match admit(Some(ACCOUNT), &req) {
        Ok(account) => assert!(!foreign && !too_long && account == ACCOUNT),
        Err(refused) if too_long => {
            // The gateway refuses ids it could not echo, before the backend.
            assert_eq!(refused.code, Code::InvalidRequest);
            assert!(refused.message.contains("request_id"));
            assert!(validate_place(ACCOUNT, &request).is_err());
            return;
        }
        Err(refused) => {
            assert!(foreign, "own account refused: {refused:?}");
            assert_eq!(refused.code, Code::Forbidden);
            return;
        }
    }
    let broken = broken_rules(&request);
    match validate_place(ACCOUNT, &request) {
        Ok(order) => {
            assert!(
                broken.is_empty(),
                "accepted although {broken:?} break the rules"
            );
            assert_eq!(order.price, request.price);
            assert_eq!(order.quantity, request.quantity);
            assert_eq!(order.symbol, request.symbol);
            assert_eq!(order.request_id, request.request_id);
        }
        Err(rejection) => {
            assert!(!broken.is_empty(), "refused a valid order: {rejection:?}");
            assert_eq!(rejection.code, Code::InvalidRequest);
            assert!(
                broken.iter().any(|field| rejection.message.contains(field)),
                "refusal {:?} names none of {broken:?}",
                rejection.message
            );
        }
    }
}

/// The fields of `r` that break a rule (by the name a refusal uses).
fn broken_rules(r: &PlaceOrderRequest) -> Vec<&'static str> {
    let mut broken = Vec::new();
    let id_ok = (1..=64).contains(&r.request_id.len())
        && r.request_id.bytes().all(|b| (0x20..=0x7e).contains(&b));
    if !id_ok {
        broken.push("request_id");
    }
    let symbol_ok = (1..=12).contains(&r.symbol.len())
        && r.symbol
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !symbol_ok {
        broken.push("symbol");
    }
    if r.side != 1 && r.side != 2 {
        broken.push("side");
    }
    if r.order_type != 1 {
        broken.push("order_type");
    }
    if r.price <= 0 {
        broken.push("price");
    }
    if r.quantity <= 0 {
        broken.push("quantity");
    }
    if r.price > 0 && r.quantity > 0 && r.price.checked_mul(r.quantity).is_none() {
        broken.push("overflow");
    }
    broken
}
