//! The venue's messages: the [`Command`]s it receives and the [`Event`]s it
//! emits. Both are plain serde types meant to travel as JSON on a topic; the
//! field order of each struct is its JSON field order, and nothing in them
//! is a map, so serializing the same value always gives the same bytes.
//!
//! Prices are integer ticks (the wire's `price`), quantities are shares.
//! Enum values are written in `SCREAMING_SNAKE_CASE` (`"BUY"`, `"SELF_TRADE_PREVENTION"`),
//! as the order service's outbox events write sides and statuses; message
//! kinds are tagged by a `"type"` field in `snake_case` (`"new_order"`,
//! `"execution"`). Unknown fields are ignored when reading, so fields can be
//! added without breaking an older reader; a new enum value does break one.

use serde::{Deserialize, Serialize};

use crate::reject::RejectReason;

/// Which side of the book an order is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Side {
    /// A bid: buys at the limit price or lower.
    Buy,
    /// An offer: sells at the limit price or higher.
    Sell,
}

impl Side {
    /// The side an order of this side trades against.
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

/// What the venue receives. Every command names its symbol, so a stream of
/// commands can be partitioned by symbol (one writer per book) without the
/// router knowing which book holds an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Enter a limit order.
    NewOrder(NewOrder),
    /// Cancel the unfilled rest of a working order.
    Cancel(Cancel),
    /// Change a working order's price and/or total quantity.
    Replace(Replace),
}

impl Command {
    /// The symbol whose book handles the command.
    pub fn symbol(&self) -> &str {
        match self {
            Command::NewOrder(c) => &c.symbol,
            Command::Cancel(c) => &c.symbol,
            Command::Replace(c) => &c.symbol,
        }
    }

    /// The order the command is about.
    pub fn order_id(&self) -> &str {
        match self {
            Command::NewOrder(c) => &c.order_id,
            Command::Cancel(c) => &c.order_id,
            Command::Replace(c) => &c.order_id,
        }
    }

    /// The caller's request id, echoed on the events the command causes.
    pub fn request_id(&self) -> &str {
        match self {
            Command::NewOrder(c) => &c.request_id,
            Command::Cancel(c) => &c.request_id,
            Command::Replace(c) => &c.request_id,
        }
    }

    /// The caller's timestamp, copied onto every event the command causes.
    pub fn ts_unix_ms(&self) -> i64 {
        match self {
            Command::NewOrder(c) => c.ts_unix_ms,
            Command::Cancel(c) => c.ts_unix_ms,
            Command::Replace(c) => c.ts_unix_ms,
        }
    }

    /// Which kind of command this is.
    pub fn kind(&self) -> CommandKind {
        match self {
            Command::NewOrder(_) => CommandKind::NewOrder,
            Command::Cancel(_) => CommandKind::Cancel,
            Command::Replace(_) => CommandKind::Replace,
        }
    }
}

/// The kind of a [`Command`], named in a [`Rejected`] so a rejected cancel is
/// never mistaken for a rejected order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CommandKind {
    /// [`Command::NewOrder`].
    NewOrder,
    /// [`Command::Cancel`].
    Cancel,
    /// [`Command::Replace`].
    Replace,
}

/// A limit order (the project has only LIMIT orders). Its unfilled rest
/// rests on the book until filled or cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrder {
    /// The order's id, unique per book for the book's lifetime (the order
    /// service's order id). 1–64 printable ASCII characters.
    pub order_id: String,
    /// The request that placed it, echoed on [`Accepted`] / [`Rejected`];
    /// may be empty. At most 64 printable ASCII characters.
    pub request_id: String,
    /// The owning account; orders of the same account never trade with each
    /// other (self-trade prevention). 1–64 printable ASCII characters.
    pub account_id: String,
    /// The instrument. 1–64 printable ASCII characters.
    pub symbol: String,
    /// Buy or sell.
    pub side: Side,
    /// Limit price in ticks, > 0.
    pub price: i64,
    /// Quantity, > 0, with `price × quantity` within `i64`.
    pub quantity: i64,
    /// The sender's clock, Unix epoch milliseconds. Copied onto the events
    /// this command causes; never used for priority (arrival order is).
    pub ts_unix_ms: i64,
}

/// Cancel a working order's unfilled rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    /// The order to cancel.
    pub order_id: String,
    /// The request that asked for it, echoed on the answer; may be empty.
    pub request_id: String,
    /// The order's symbol (routes the command to its book).
    pub symbol: String,
    /// The sender's clock, Unix epoch milliseconds.
    pub ts_unix_ms: i64,
}

/// Change a working order's price and/or total quantity, keeping its id.
///
/// Priority follows CME Globex (Client Systems Wiki, "Order Functionalities",
/// Order Modification: modifying the price or increasing the quantity changes
/// the order's priority; decreasing the quantity does not): a quantity
/// decrease at the same price keeps the order's place in its queue; a price
/// change or a quantity increase sends it to the back of the queue at its
/// (new) price, where it may trade at once if the new price crosses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replace {
    /// The order to change.
    pub order_id: String,
    /// The request that asked for it, echoed on the answer; may be empty.
    pub request_id: String,
    /// The order's symbol (routes the command to its book).
    pub symbol: String,
    /// The new limit price in ticks, > 0.
    pub new_price: i64,
    /// The new total quantity, filled shares included (as the wire's
    /// `ReplaceOrderRequest.quantity`): the rest becomes `new_quantity -
    /// filled`, so a fill that races the replace can never overfill the order.
    /// Equal to the filled quantity ends the order (filled); below it is
    /// rejected.
    pub new_quantity: i64,
    /// The sender's clock, Unix epoch milliseconds.
    pub ts_unix_ms: i64,
}

/// One thing the venue did, stamped with the book's sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The book that emitted it (empty for a command rejected before it
    /// reached a book: its symbol was invalid).
    pub symbol: String,
    /// Position in the book's output: 1, 2, 3, … with no gap (0 for a
    /// command rejected before it reached a book). Replaying the book's input
    /// from the start gives the same events with the same numbers, so
    /// `(symbol, seq)` identifies an event across a replay.
    pub seq: u64,
    /// The `ts_unix_ms` of the command that caused the event.
    pub ts_unix_ms: i64,
    /// What happened.
    pub body: EventBody,
}

/// What happened, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    /// A new order entered the book.
    Accepted(Accepted),
    /// One side of a trade.
    Execution(Execution),
    /// An order's rest left the book without trading.
    Canceled(Canceled),
    /// A replace took effect.
    Replaced(Replaced),
    /// A command was refused; nothing changed.
    Rejected(Rejected),
}

impl EventBody {
    /// The order the event is about.
    pub fn order_id(&self) -> &str {
        match self {
            EventBody::Accepted(e) => &e.order_id,
            EventBody::Execution(e) => &e.order_id,
            EventBody::Canceled(e) => &e.order_id,
            EventBody::Replaced(e) => &e.order_id,
            EventBody::Rejected(e) => &e.order_id,
        }
    }
}

/// A new order was taken. It comes before the order's executions; the order
/// rests with whatever those leave (`leaves_quantity` of its last execution,
/// or all of `quantity` when it has none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The order.
    pub order_id: String,
    /// The placing request.
    pub request_id: String,
    /// The owning account.
    pub account_id: String,
    /// Buy or sell.
    pub side: Side,
    /// Limit price in ticks.
    pub price: i64,
    /// Quantity.
    pub quantity: i64,
}

/// One side of a trade. Every trade produces two executions, the aggressor's
/// first, sharing a `trade_id`, a price and a quantity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    /// Unique and deterministic: `{symbol}-{trade_id}-{B|S}` (the buy or the
    /// sell leg of the book's `trade_id`-th trade). Consumers settle each
    /// execution once by this id.
    pub execution_id: String,
    /// The book's trade counter, 1, 2, 3, …; both legs carry the same one.
    pub trade_id: u64,
    /// The order that traded.
    pub order_id: String,
    /// Its account.
    pub account_id: String,
    /// Its side.
    pub side: Side,
    /// Trade price in ticks: the resting order's price.
    pub price: i64,
    /// Shares traded.
    pub quantity: i64,
    /// The order's total filled quantity after this execution.
    pub filled_quantity: i64,
    /// The order's unfilled rest after this execution (0: filled).
    pub leaves_quantity: i64,
    /// The order on the other side of the trade.
    pub counterparty_order_id: String,
    /// True for the incoming (aggressing) order, false for the resting one.
    pub aggressor: bool,
}

/// An order's unfilled rest left the book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canceled {
    /// The order.
    pub order_id: String,
    /// The cancel's request id for [`CancelReason::Requested`]; empty for an
    /// unsolicited cancel.
    pub request_id: String,
    /// The owning account.
    pub account_id: String,
    /// Its side.
    pub side: Side,
    /// Why.
    pub reason: CancelReason,
    /// Shares that were still unfilled and are now cancelled.
    pub canceled_quantity: i64,
    /// Shares the order had filled before (they stay filled).
    pub filled_quantity: i64,
}

/// Why an order was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CancelReason {
    /// A [`Cancel`] asked for it.
    Requested,
    /// Self-trade prevention: an incoming order of the same account would
    /// have traded with this resting order, so this one was cancelled (CME
    /// Globex's default instruction) and the incoming order went on matching.
    SelfTradePrevention,
}

/// A replace took effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replaced {
    /// The order (its id is kept).
    pub order_id: String,
    /// The replace's request id.
    pub request_id: String,
    /// The owning account.
    pub account_id: String,
    /// Its side.
    pub side: Side,
    /// Price after the replace.
    pub price: i64,
    /// Total quantity after the replace.
    pub quantity: i64,
    /// Filled quantity (unchanged by the replace).
    pub filled_quantity: i64,
    /// Unfilled rest after the replace, before any trade it causes.
    pub leaves_quantity: i64,
    /// True when the order kept its place in the queue (same price, quantity
    /// not increased); false when it went to the back or no longer rests.
    pub priority_kept: bool,
}

/// A command was refused; the book is unchanged apart from its sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// The command's order id (as sent, possibly invalid).
    pub order_id: String,
    /// The command's request id.
    pub request_id: String,
    /// Which command was refused.
    pub command: CommandKind,
    /// Why.
    pub reason: RejectReason,
}
