//! Validation of client requests.

use hts_proto::v1::{Code, OrderType, PlaceOrderRequest, Side};

/// Longest accepted `request_id`.
pub const MAX_REQUEST_ID_LEN: usize = 64;
/// Longest accepted symbol.
pub const MAX_SYMBOL_LEN: usize = 12;

/// Why a request was refused before touching any state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `INVALID_REQUEST` or `FORBIDDEN`.
    pub code: Code,
    /// Human-readable reason naming the offending field.
    pub message: String,
}

impl Rejection {
    fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: Code::InvalidRequest,
            message: message.into(),
        }
    }
}

/// A place request that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidOrder {
    /// The authenticated account placing the order.
    pub account_id: String,
    /// Client idempotency key.
    pub request_id: String,
    /// Instrument symbol.
    pub symbol: String,
    /// BUY or SELL.
    pub side: Side,
    /// Always LIMIT for now.
    pub order_type: OrderType,
    /// Limit price in integer ticks (> 0).
    pub price: i64,
    /// Quantity (> 0).
    pub quantity: i64,
    /// `price × quantity`, known not to overflow.
    pub notional: i64,
}

/// Checks a `request_id`: 1–64 characters of printable ASCII.
pub fn validate_request_id(request_id: &str) -> Result<(), Rejection> {
    if request_id.is_empty() || request_id.len() > MAX_REQUEST_ID_LEN {
        return Err(Rejection::invalid(format!(
            "request_id must be 1-{MAX_REQUEST_ID_LEN} characters"
        )));
    }
    if !request_id.bytes().all(|b| (0x20..=0x7E).contains(&b)) {
        return Err(Rejection::invalid(
            "request_id must contain only printable ASCII characters",
        ));
    }
    Ok(())
}

/// Checks an `order_id` is present.
pub fn validate_order_id(order_id: &str) -> Result<(), Rejection> {
    if order_id.is_empty() {
        return Err(Rejection::invalid("order_id must not be empty"));
    }
    Ok(())
}

fn validate_symbol(symbol: &str) -> Result<(), Rejection> {
    let well_formed = !symbol.is_empty()
        && symbol.len() <= MAX_SYMBOL_LEN
        && symbol
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if well_formed {
        Ok(())
    } else {
        Err(Rejection::invalid(format!(
            "symbol must be 1-{MAX_SYMBOL_LEN} characters of A-Z and 0-9"
        )))
    }
}

/// Validates a place request made by `authenticated_account`.
///
/// A nonempty `request.account_id` that differs from the authenticated
/// account is `FORBIDDEN`; every malformed field is `INVALID_REQUEST`.
pub fn validate_place(
    authenticated_account: &str,
    request: &PlaceOrderRequest,
) -> Result<ValidOrder, Rejection> {
    if authenticated_account.is_empty() {
        return Err(Rejection {
            code: Code::Forbidden,
            message: "no authenticated account".to_owned(),
        });
    }
    if !request.account_id.is_empty() && request.account_id != authenticated_account {
        return Err(Rejection {
            code: Code::Forbidden,
            message: "account_id does not match the authenticated account".to_owned(),
        });
    }
    validate_request_id(&request.request_id)?;
    validate_symbol(&request.symbol)?;
    let side = match Side::try_from(request.side) {
        Ok(side @ (Side::Buy | Side::Sell)) => side,
        _ => return Err(Rejection::invalid("side must be BUY or SELL")),
    };
    let order_type = match OrderType::try_from(request.order_type) {
        Ok(OrderType::Limit) => OrderType::Limit,
        _ => return Err(Rejection::invalid("order_type must be LIMIT")),
    };
    if request.price <= 0 {
        return Err(Rejection::invalid("price must be greater than 0"));
    }
    if request.quantity <= 0 {
        return Err(Rejection::invalid("quantity must be greater than 0"));
    }
    let notional = request
        .price
        .checked_mul(request.quantity)
        .ok_or_else(|| Rejection::invalid("price x quantity overflows"))?;
    Ok(ValidOrder {
        account_id: authenticated_account.to_owned(),
        request_id: request.request_id.clone(),
        symbol: request.symbol.clone(),
        side,
        order_type,
        price: request.price,
        quantity: request.quantity,
        notional,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> PlaceOrderRequest {
        PlaceOrderRequest {
            request_id: "req-1".into(),
            account_id: String::new(),
            symbol: "005930".into(),
            side: Side::Buy as i32,
            order_type: OrderType::Limit as i32,
            price: 70_000,
            quantity: 10,
        }
    }

    #[test]
    fn accepts_a_good_request() {
        let order = validate_place("ACC-0001", &good()).unwrap();
        assert_eq!(order.account_id, "ACC-0001");
        assert_eq!(order.notional, 700_000);
        let mut explicit = good();
        explicit.account_id = "ACC-0001".into();
        assert!(validate_place("ACC-0001", &explicit).is_ok());
    }

    #[test]
    fn validation_table() {
        type Mutate = fn(&mut PlaceOrderRequest);
        let cases: &[(&str, Mutate, Code, &str)] = &[
            (
                "empty request_id",
                |r| r.request_id.clear(),
                Code::InvalidRequest,
                "request_id",
            ),
            (
                "long request_id",
                |r| r.request_id = "x".repeat(65),
                Code::InvalidRequest,
                "request_id",
            ),
            (
                "control char",
                |r| r.request_id = "a\nb".into(),
                Code::InvalidRequest,
                "request_id",
            ),
            (
                "non-ascii",
                |r| r.request_id = "주문".into(),
                Code::InvalidRequest,
                "request_id",
            ),
            (
                "empty symbol",
                |r| r.symbol.clear(),
                Code::InvalidRequest,
                "symbol",
            ),
            (
                "lowercase symbol",
                |r| r.symbol = "abc".into(),
                Code::InvalidRequest,
                "symbol",
            ),
            (
                "long symbol",
                |r| r.symbol = "A".repeat(13),
                Code::InvalidRequest,
                "symbol",
            ),
            (
                "symbol punctuation",
                |r| r.symbol = "AB-C".into(),
                Code::InvalidRequest,
                "symbol",
            ),
            (
                "side unspecified",
                |r| r.side = 0,
                Code::InvalidRequest,
                "side",
            ),
            ("side unknown", |r| r.side = 9, Code::InvalidRequest, "side"),
            (
                "type unspecified",
                |r| r.order_type = 0,
                Code::InvalidRequest,
                "order_type",
            ),
            ("zero price", |r| r.price = 0, Code::InvalidRequest, "price"),
            (
                "negative price",
                |r| r.price = -1,
                Code::InvalidRequest,
                "price",
            ),
            (
                "zero quantity",
                |r| r.quantity = 0,
                Code::InvalidRequest,
                "quantity",
            ),
            (
                "overflow",
                |r| {
                    r.price = i64::MAX;
                    r.quantity = 2
                },
                Code::InvalidRequest,
                "overflow",
            ),
            (
                "other account",
                |r| r.account_id = "ACC-0002".into(),
                Code::Forbidden,
                "account_id",
            ),
        ];
        for (name, mutate, code, field) in cases {
            let mut req = good();
            mutate(&mut req);
            let err = validate_place("ACC-0001", &req).unwrap_err();
            assert_eq!(err.code, *code, "{name}");
            assert!(err.message.contains(field), "{name}: {}", err.message);
        }
    }

    #[test]
    fn boundaries_are_accepted() {
        let mut req = good();
        req.request_id = "~".repeat(64);
        req.symbol = "Z".repeat(12);
        req.side = Side::Sell as i32;
        assert!(validate_place("ACC-0001", &req).is_ok());
        req.request_id = " ".into();
        assert!(validate_place("ACC-0001", &req).is_ok());
    }

    #[test]
    fn missing_authenticated_account_is_forbidden() {
        assert_eq!(
            validate_place("", &good()).unwrap_err().code,
            Code::Forbidden
        );
    }

    #[test]
    fn order_id_must_be_present() {
        assert!(validate_order_id("").is_err());
        assert!(validate_order_id("x").is_ok());
    }
}
