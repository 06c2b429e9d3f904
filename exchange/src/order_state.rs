//! [`OrderState`]: what a book knows about one order, resting or done.

use serde::{Deserialize, Serialize};

use crate::messages::Side;

/// Where an order is in its life at the venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// On the book with an unfilled rest (possibly partly filled).
    Resting,
    /// Nothing left to fill: `filled == quantity`.
    Filled,
    /// Its unfilled rest was cancelled (it may have filled in part before).
    Canceled,
}

/// One order as its book holds it. Always `filled + leaves + canceled ==
/// quantity`, where `quantity` is the order's current total (after any
/// replace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    /// The owning account.
    pub account_id: String,
    /// Buy or sell.
    pub side: Side,
    /// Current limit price in ticks.
    pub price: i64,
    /// Current total quantity.
    pub quantity: i64,
    /// Shares filled so far.
    pub filled: i64,
    /// Shares cancelled (0 unless `status` is `Canceled`).
    pub canceled: i64,
    /// Where it is in its life.
    pub status: OrderStatus,
}

impl OrderState {
    /// The unfilled rest still working on the book.
    pub fn leaves(&self) -> i64 {
        self.quantity - self.filled - self.canceled
    }

    /// True while the order rests on the book.
    pub fn is_resting(&self) -> bool {
        self.status == OrderStatus::Resting
    }
}
