//! Field checks of a command, before it touches a book: everything in a
//! command comes from a peer, so each field is checked and a bad one is
//! answered with a [`RejectReason`], never a panic.

use crate::messages::{Cancel, NewOrder, Replace};
use crate::reject::RejectReason;

/// Longest id, request id or symbol, in bytes (the gateway's request-id
/// limit).
pub const MAX_ID_LEN: usize = 64;

/// Checks an order id, account id or symbol: 1–[`MAX_ID_LEN`] printable
/// ASCII characters.
pub fn check_id(id: &str) -> Result<(), RejectReason> {
    if id.is_empty() {
        return Err(RejectReason::InvalidField);
    }
    check_request_id(id)
}

/// Checks a request id: like [`check_id`] but may be empty.
pub fn check_request_id(id: &str) -> Result<(), RejectReason> {
    if id.len() > MAX_ID_LEN || !id.bytes().all(|b| (0x20..=0x7E).contains(&b)) {
        return Err(RejectReason::InvalidField);
    }
    Ok(())
}

/// Checks a limit price and quantity: both > 0 and their product (the
/// order's notional, what settlement multiplies) within `i64`.
pub fn check_price_quantity(price: i64, quantity: i64) -> Result<(), RejectReason> {
    if price <= 0 {
        return Err(RejectReason::InvalidPrice);
    }
    if quantity <= 0 || price.checked_mul(quantity).is_none() {
        return Err(RejectReason::InvalidQuantity);
    }
    Ok(())
}

/// Checks every field of a new order.
pub fn check_new_order(order: &NewOrder) -> Result<(), RejectReason> {
    check_id(&order.order_id)?;
    check_request_id(&order.request_id)?;
    check_id(&order.account_id)?;
    check_id(&order.symbol)?;
    check_price_quantity(order.price, order.quantity)
}

/// Checks every field of a cancel.
pub fn check_cancel(cancel: &Cancel) -> Result<(), RejectReason> {
    check_id(&cancel.order_id)?;
    check_request_id(&cancel.request_id)?;
    check_id(&cancel.symbol)
}

/// Checks every field of a replace (whether the new quantity covers the
/// filled one is the book's check).
pub fn check_replace(replace: &Replace) -> Result<(), RejectReason> {
    check_id(&replace.order_id)?;
    check_request_id(&replace.request_id)?;
    check_id(&replace.symbol)?;
    check_price_quantity(replace.new_price, replace.new_quantity)
}

/// An id as it may be echoed on a rejection: unchanged when it is at most
/// [`MAX_ID_LEN`] bytes, else cut there (on a character boundary), so a
/// peer's oversized field is never copied whole into the output.
pub fn echo(id: &str) -> String {
    let mut end = id.len().min(MAX_ID_LEN);
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    id[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_one_to_64_printable_ascii() {
        assert_eq!(check_id(""), Err(RejectReason::InvalidField));
        assert_eq!(check_id("ACC-0001"), Ok(()));
        assert_eq!(check_id(&"x".repeat(64)), Ok(()));
        assert_eq!(check_id(&"x".repeat(65)), Err(RejectReason::InvalidField));
        assert_eq!(check_id("a\nb"), Err(RejectReason::InvalidField));
        assert_eq!(check_id("주문"), Err(RejectReason::InvalidField));
        assert_eq!(check_request_id(""), Ok(()));
    }

    #[test]
    fn price_and_quantity_are_positive_and_their_product_fits() {
        assert_eq!(check_price_quantity(1, 1), Ok(()));
        assert_eq!(check_price_quantity(0, 1), Err(RejectReason::InvalidPrice));
        assert_eq!(check_price_quantity(-5, 1), Err(RejectReason::InvalidPrice));
        assert_eq!(
            check_price_quantity(1, 0),
            Err(RejectReason::InvalidQuantity)
        );
        assert_eq!(
            check_price_quantity(1, -1),
            Err(RejectReason::InvalidQuantity)
        );
        assert_eq!(
            check_price_quantity(i64::MAX, 2),
            Err(RejectReason::InvalidQuantity)
        );
    }

    #[test]
    fn echo_cuts_oversized_ids_on_a_character_boundary() {
        assert_eq!(echo("abc"), "abc");
        assert_eq!(echo(&"y".repeat(100)).len(), MAX_ID_LEN);
        let wide = "가".repeat(30); // 3 bytes each: 90 bytes
        let cut = echo(&wide);
        assert!(cut.len() <= MAX_ID_LEN && wide.starts_with(&cut));
    }
}
