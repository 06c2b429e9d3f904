//! The venue side of HTS: a deterministic exchange simulator's core and the
//! messages it speaks, with no I/O.
//!
//! Its own crate because it is the other side of the exchange link: the
//! order services must never link the matching engine, and the simulator
//! process (`hts exchange-sim`) must not link the order service's store. The
//! two meet only in messages — [`Command`]s in, [`Event`]s out, as JSON on a
//! topic — so this crate depends on serde and thiserror and nothing else (no
//! async runtime, no gRPC, no database).
//!
//! * [`OrderBook`] — one symbol's limit order book: price-time priority,
//!   partial fills, trades at the resting order's price, self-trade
//!   prevention (cancel resting), replace with CME's priority rule.
//! * [`Venue`] — one book per symbol, routed by symbol, created on first use.
//! * [`MarketMaker`] — the quotes a market-maker account keeps around a
//!   reference price, re-posted as they fill.
//! * [`Positions`] — net shares and cash per account from executions, and
//!   the conservation check (per symbol, bought = sold and paid = received).
//!
//! Every operation returns the ordered events it caused. A book reads no
//! clock, draws no random number and iterates only ordered collections, so
//! the same commands in the same order give the same events: replaying a
//! book's input from the start reproduces its output byte for byte, which
//! makes a redelivered execution recognisable by its `execution_id`.
//!
//! The JSON a command and an event look like:
//!
//! ```
//! use hts_exchange::{Command, NewOrder, Side, Venue};
//!
//! let mut venue = Venue::new();
//! let order = |id: &str, account: &str, side| {
//!     Command::NewOrder(NewOrder {
//!         order_id: id.into(),
//!         request_id: format!("req-{id}"),
//!         account_id: account.into(),
//!         symbol: "005930".into(),
//!         side,
//!         price: 70_000,
//!         quantity: 10,
//!         ts_unix_ms: 1_700_000_000_000,
//!     })
//! };
//! assert_eq!(
//!     serde_json::to_string(&order("o-1", "ACC-0002", Side::Sell)).unwrap(),
//!     r#"{"type":"new_order","order_id":"o-1","request_id":"req-o-1","account_id":"ACC-0002","symbol":"005930","side":"SELL","price":70000,"quantity":10,"ts_unix_ms":1700000000000}"#
//! );
//! venue.apply(&order("o-1", "ACC-0002", Side::Sell));
//! let events = venue.apply(&order("o-2", "ACC-0001", Side::Buy));
//! // Accepted, then the trade's two legs, the aggressor's first.
//! assert_eq!(events.len(), 3);
//! assert_eq!(
//!     serde_json::to_string(&events[1]).unwrap(),
//!     r#"{"symbol":"005930","seq":3,"ts_unix_ms":1700000000000,"body":{"type":"execution","execution_id":"005930-1-B","trade_id":1,"order_id":"o-2","account_id":"ACC-0001","side":"BUY","price":70000,"quantity":10,"filled_quantity":10,"leaves_quantity":0,"counterparty_order_id":"o-1","aggressor":true}}"#
//! );
//! ```
#![deny(missing_docs)]

mod book;
mod ladder;
mod market_maker;
mod messages;
mod order_state;
mod positions;
mod reject;
pub mod validation;
mod venue;

pub use book::{Level, OrderBook};
pub use market_maker::{MarketMaker, MarketMakerError, QuoteConfig};
pub use messages::{
    Accepted, Cancel, CancelReason, Canceled, Command, CommandKind, Event, EventBody, Execution,
    NewOrder, Rejected, Replace, Replaced, Side,
};
pub use order_state::{OrderState, OrderStatus};
pub use positions::{Imbalance, Position, Positions};
pub use reject::RejectReason;
pub use venue::Venue;
