//! [`RejectReason`]: why the venue refused a command.

use serde::{Deserialize, Serialize};

/// Why a command was refused. Carried by [`crate::Rejected`]; also the error
/// of the field checks in [`crate::validation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RejectReason {
    /// An order id, account id or symbol is empty, longer than 64 bytes or
    /// not printable ASCII, or a request id is longer than 64 bytes or not
    /// printable ASCII.
    #[error("an id or symbol is empty, longer than 64 bytes or not printable ASCII")]
    InvalidField,
    /// A price is zero or negative.
    #[error("price must be greater than zero")]
    InvalidPrice,
    /// A quantity is zero or negative, or price × quantity overflows `i64`.
    #[error("quantity must be greater than zero and price x quantity must fit in i64")]
    InvalidQuantity,
    /// A new order reused the id of an order this book has seen.
    #[error("the order id was already used in this book")]
    DuplicateOrderId,
    /// A cancel or replace named an order this book has never seen.
    #[error("no such order in this book")]
    UnknownOrder,
    /// A cancel or replace named an order that is already filled or
    /// cancelled (the wire's TOO_LATE).
    #[error("the order is already filled or cancelled")]
    TooLate,
    /// A replace asked for a total quantity below what is already filled.
    #[error("the new quantity is below the filled quantity")]
    QuantityBelowFilled,
    /// A command reached the book of another symbol (only when an
    /// [`crate::OrderBook`] is called directly; [`crate::Venue`] routes by symbol).
    #[error("the command's symbol is not this book's")]
    WrongSymbol,
}
