//! [`OrderBook`]: one symbol's limit order book and its matching.
//!
//! * Price-time priority: an incoming order trades with the best opposite
//!   price first and, within a price, with the order that arrived first.
//! * Each trade is at the resting order's price; partial fills on both sides.
//! * Self-trade prevention: when the next resting order to trade belongs to
//!   the incoming order's account, the resting order is cancelled
//!   ([`CancelReason::SelfTradePrevention`]) and the incoming order goes on
//!   matching against the next one. This is CME Globex's default instruction
//!   (Client Systems Wiki, "CME Globex Self-Match Prevention": when no
//!   instruction is given the resting order is cancelled; in FIFO markets the
//!   orders cancelled are the ones that would have executed).
//! * An incoming order's unfilled rest rests at its limit price (LIMIT orders
//!   only); a cancel removes only the unfilled rest.
//! * Replace: see [`crate::Replace`] for the priority rule.
//!
//! Deterministic: the book holds only ordered collections, reads no clock and
//! draws no random number; every event's `seq` and every `trade_id` come from
//! the book's own counters, so the same commands in the same order give the
//! same events, byte for byte once serialized.

use std::collections::BTreeMap;

use crate::ladder::Ladder;
use crate::messages::{
    Accepted, Cancel, CancelReason, Canceled, Command, Event, EventBody, Execution, NewOrder,
    Rejected, Replace, Replaced, Side,
};
use crate::order_state::{OrderState, OrderStatus};
use crate::reject::RejectReason;
use crate::validation::{check_cancel, check_new_order, check_replace, echo};

/// Shares and orders resting at one price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// The price in ticks.
    pub price: i64,
    /// Unfilled shares resting there.
    pub quantity: i64,
    /// Orders resting there.
    pub orders: usize,
}

/// One symbol's order book. Feed it [`Command`]s with [`OrderBook::apply`];
/// each call returns the events it caused, in order. It must have exactly
/// one writer: its output depends on the order of its input.
#[derive(Debug, Clone)]
pub struct OrderBook {
    symbol: String,
    bids: Ladder,
    asks: Ladder,
    /// Every order the book has seen, resting or done: the one place an
    /// order's state lives (the ladders hold only ids). Done orders stay, so
    /// a late cancel is told TOO_LATE and an old id cannot be reused.
    orders: BTreeMap<String, OrderState>,
    last_seq: u64,
    last_trade_id: u64,
}

impl OrderBook {
    /// An empty book for `symbol`.
    pub fn new(symbol: impl Into<String>) -> Self {
        Self {
            symbol: symbol.into(),
            bids: Ladder::new(Side::Buy),
            asks: Ladder::new(Side::Sell),
            orders: BTreeMap::new(),
            last_seq: 0,
            last_trade_id: 0,
        }
    }

    /// The book's symbol.
    pub fn symbol(&self) -> &str {
        &self.symbol
    }

    /// Applies one command and returns the events it caused, in order: a
    /// [`Rejected`] alone when the command is refused (nothing else changes);
    /// otherwise [`Accepted`] / [`Replaced`] / [`Canceled`] first, then, for
    /// an order that crosses, each trade's two [`Execution`]s (aggressor
    /// first) and any self-trade-prevention [`Canceled`] where it happened.
    pub fn apply(&mut self, command: &Command) -> Vec<Event> {
        let mut out = Vec::new();
        let result = match command {
            Command::NewOrder(order) => self.new_order(order, &mut out),
            Command::Cancel(cancel) => self.cancel(cancel, &mut out),
            Command::Replace(replace) => self.replace(replace, &mut out),
        };
        if let Err(reason) = result {
            out.push(rejected(command, reason));
        }
        self.stamp(out, command.ts_unix_ms())
    }

    /// The highest bid.
    pub fn best_bid(&self) -> Option<i64> {
        self.bids.best()
    }

    /// The lowest offer.
    pub fn best_ask(&self) -> Option<i64> {
        self.asks.best()
    }

    /// An order the book has seen, resting or done.
    pub fn order(&self, order_id: &str) -> Option<&OrderState> {
        self.orders.get(order_id)
    }

    /// Every order the book has seen, by id.
    pub fn orders(&self) -> impl Iterator<Item = (&str, &OrderState)> {
        self.orders.iter().map(|(id, state)| (id.as_str(), state))
    }

    /// The resting orders of one side in priority order: best price first,
    /// earliest first within a price.
    pub fn resting(&self, side: Side) -> Vec<(&str, &OrderState)> {
        self.ladder(side)
            .levels()
            .flat_map(|(_, queue)| queue.iter())
            .filter_map(|id| self.orders.get(id).map(|state| (id.as_str(), state)))
            .collect()
    }

    /// One side's price levels, best first.
    pub fn depth(&self, side: Side) -> Vec<Level> {
        self.ladder(side)
            .levels()
            .map(|(price, queue)| Level {
                price,
                quantity: queue
                    .iter()
                    .filter_map(|id| self.orders.get(id))
                    .map(OrderState::leaves)
                    .sum(),
                orders: queue.len(),
            })
            .collect()
    }

    /// The `seq` of the last event emitted (0 before any).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    fn new_order(
        &mut self,
        order: &NewOrder,
        out: &mut Vec<EventBody>,
    ) -> Result<(), RejectReason> {
        check_new_order(order)?;
        self.check_symbol(&order.symbol)?;
        if self.orders.contains_key(&order.order_id) {
            return Err(RejectReason::DuplicateOrderId);
        }
        self.orders.insert(
            order.order_id.clone(),
            OrderState {
                account_id: order.account_id.clone(),
                side: order.side,
                price: order.price,
                quantity: order.quantity,
                filled: 0,
                canceled: 0,
                status: OrderStatus::Resting,
            },
        );
        out.push(EventBody::Accepted(Accepted {
            order_id: order.order_id.clone(),
            request_id: order.request_id.clone(),
            account_id: order.account_id.clone(),
            side: order.side,
            price: order.price,
            quantity: order.quantity,
        }));
        self.match_and_rest(&order.order_id, out);
        Ok(())
    }

    fn cancel(&mut self, cancel: &Cancel, out: &mut Vec<EventBody>) -> Result<(), RejectReason> {
        check_cancel(cancel)?;
        self.check_symbol(&cancel.symbol)?;
        let state = self.working_mut(&cancel.order_id)?;
        let (side, price) = (state.side, state.price);
        let canceled = cancel_rest(
            state,
            &cancel.order_id,
            &cancel.request_id,
            CancelReason::Requested,
        );
        self.ladder_mut(side).remove(price, &cancel.order_id);
        out.push(canceled);
        Ok(())
    }

    fn replace(&mut self, replace: &Replace, out: &mut Vec<EventBody>) -> Result<(), RejectReason> {
        check_replace(replace)?;
        self.check_symbol(&replace.symbol)?;
        let state = self.working_mut(&replace.order_id)?;
        if replace.new_quantity < state.filled {
            return Err(RejectReason::QuantityBelowFilled);
        }
        let keeps_priority =
            replace.new_price == state.price && replace.new_quantity <= state.quantity;
        let done = replace.new_quantity == state.filled;
        let (side, old_price) = (state.side, state.price);
        state.price = replace.new_price;
        state.quantity = replace.new_quantity;
        if done {
            state.status = OrderStatus::Filled;
        }
        let replaced = EventBody::Replaced(Replaced {
            order_id: replace.order_id.clone(),
            request_id: replace.request_id.clone(),
            account_id: state.account_id.clone(),
            side,
            price: state.price,
            quantity: state.quantity,
            filled_quantity: state.filled,
            leaves_quantity: state.leaves(),
            priority_kept: keeps_priority && !done,
        });
        if done || !keeps_priority {
            self.ladder_mut(side).remove(old_price, &replace.order_id);
        }
        out.push(replaced);
        if !done && !keeps_priority {
            self.match_and_rest(&replace.order_id, out);
        }
        Ok(())
    }

    /// Matches a working order that is not on the book (new, or re-entered
    /// by a replace) against the opposite side, then rests what is left.
    fn match_and_rest(&mut self, order_id: &str, out: &mut Vec<EventBody>) {
        let Some(incoming) = self.orders.get(order_id) else {
            return;
        };
        let (side, limit, account_id) =
            (incoming.side, incoming.price, incoming.account_id.clone());
        loop {
            let leaves = self.orders.get(order_id).map_or(0, OrderState::leaves);
            if leaves == 0 {
                break;
            }
            let opposite = self.ladder(side.opposite());
            let Some(price) = opposite.best_crossing(limit) else {
                break;
            };
            let Some(resting_id) = opposite.front(price).map(str::to_owned) else {
                break;
            };
            let Some(resting) = self.orders.get_mut(&resting_id) else {
                // An id without state cannot be matched; drop it from the queue.
                self.ladder_mut(side.opposite()).pop_front(price);
                continue;
            };
            if resting.account_id == account_id {
                let canceled =
                    cancel_rest(resting, &resting_id, "", CancelReason::SelfTradePrevention);
                self.ladder_mut(side.opposite()).pop_front(price);
                out.push(canceled);
                continue;
            }
            let quantity = leaves.min(resting.leaves());
            if fill(resting, quantity) {
                self.ladder_mut(side.opposite()).pop_front(price);
            }
            if let Some(incoming) = self.orders.get_mut(order_id) {
                fill(incoming, quantity);
            }
            self.last_trade_id += 1;
            let trade_id = self.last_trade_id;
            for (id, counterparty, aggressor) in [
                (order_id, resting_id.as_str(), true),
                (resting_id.as_str(), order_id, false),
            ] {
                if let Some(execution) =
                    self.execution(trade_id, id, counterparty, price, quantity, aggressor)
                {
                    out.push(EventBody::Execution(execution));
                }
            }
        }
        if self
            .orders
            .get(order_id)
            .is_some_and(OrderState::is_resting)
        {
            self.ladder_mut(side).push_back(limit, order_id.to_owned());
        }
    }

    /// One leg of trade `trade_id`, from the order's state after the trade.
    fn execution(
        &self,
        trade_id: u64,
        order_id: &str,
        counterparty_order_id: &str,
        price: i64,
        quantity: i64,
        aggressor: bool,
    ) -> Option<Execution> {
        let state = self.orders.get(order_id)?;
        let leg = match state.side {
            Side::Buy => 'B',
            Side::Sell => 'S',
        };
        Some(Execution {
            execution_id: format!("{}-{trade_id}-{leg}", self.symbol),
            trade_id,
            order_id: order_id.to_owned(),
            account_id: state.account_id.clone(),
            side: state.side,
            price,
            quantity,
            filled_quantity: state.filled,
            leaves_quantity: state.leaves(),
            counterparty_order_id: counterparty_order_id.to_owned(),
            aggressor,
        })
    }

    fn check_symbol(&self, symbol: &str) -> Result<(), RejectReason> {
        if symbol == self.symbol {
            Ok(())
        } else {
            Err(RejectReason::WrongSymbol)
        }
    }

    /// A resting order, for a cancel or replace: UNKNOWN_ORDER when never
    /// seen, TOO_LATE when done.
    fn working_mut(&mut self, order_id: &str) -> Result<&mut OrderState, RejectReason> {
        let state = self
            .orders
            .get_mut(order_id)
            .ok_or(RejectReason::UnknownOrder)?;
        if state.is_resting() {
            Ok(state)
        } else {
            Err(RejectReason::TooLate)
        }
    }

    fn ladder(&self, side: Side) -> &Ladder {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    fn ladder_mut(&mut self, side: Side) -> &mut Ladder {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    fn stamp(&mut self, bodies: Vec<EventBody>, ts_unix_ms: i64) -> Vec<Event> {
        bodies
            .into_iter()
            .map(|body| {
                self.last_seq += 1;
                Event {
                    symbol: self.symbol.clone(),
                    seq: self.last_seq,
                    ts_unix_ms,
                    body,
                }
            })
            .collect()
    }
}

/// Fills `quantity` of an order; true when that leaves nothing to fill.
fn fill(state: &mut OrderState, quantity: i64) -> bool {
    state.filled += quantity;
    let done = state.leaves() == 0;
    if done {
        state.status = OrderStatus::Filled;
    }
    done
}

/// Cancels an order's unfilled rest (the caller takes it off its ladder).
fn cancel_rest(
    state: &mut OrderState,
    order_id: &str,
    request_id: &str,
    reason: CancelReason,
) -> EventBody {
    let canceled_quantity = state.leaves();
    state.canceled += canceled_quantity;
    state.status = OrderStatus::Canceled;
    EventBody::Canceled(Canceled {
        order_id: order_id.to_owned(),
        request_id: request_id.to_owned(),
        account_id: state.account_id.clone(),
        side: state.side,
        reason,
        canceled_quantity,
        filled_quantity: state.filled,
    })
}

/// The answer to a refused command, echoing its ids (cut to a safe length).
pub(crate) fn rejected(command: &Command, reason: RejectReason) -> EventBody {
    EventBody::Rejected(Rejected {
        order_id: echo(command.order_id()),
        request_id: echo(command.request_id()),
        command: command.kind(),
        reason,
    })
}

#[cfg(test)]
mod tests;
