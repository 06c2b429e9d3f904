//! Matching, one rule at a time.

use super::*;
use crate::messages::CommandKind;

const SYMBOL: &str = "005930";

fn order(id: &str, account: &str, side: Side, price: i64, quantity: i64) -> Command {
    Command::NewOrder(NewOrder {
        order_id: id.into(),
        request_id: format!("req-{id}"),
        account_id: account.into(),
        symbol: SYMBOL.into(),
        side,
        price,
        quantity,
        ts_unix_ms: 7,
    })
}

fn buy(id: &str, account: &str, price: i64, quantity: i64) -> Command {
    order(id, account, Side::Buy, price, quantity)
}

fn sell(id: &str, account: &str, price: i64, quantity: i64) -> Command {
    order(id, account, Side::Sell, price, quantity)
}

fn cancel(id: &str) -> Command {
    Command::Cancel(Cancel {
        order_id: id.into(),
        request_id: format!("cxl-{id}"),
        symbol: SYMBOL.into(),
        ts_unix_ms: 8,
    })
}

fn replace(id: &str, new_price: i64, new_quantity: i64) -> Command {
    Command::Replace(Replace {
        order_id: id.into(),
        request_id: format!("rpl-{id}"),
        symbol: SYMBOL.into(),
        new_price,
        new_quantity,
        ts_unix_ms: 9,
    })
}

/// A book with `commands` applied, each of which must not be rejected.
fn book_with(commands: &[Command]) -> OrderBook {
    let mut book = OrderBook::new(SYMBOL);
    for command in commands {
        let events = book.apply(command);
        assert!(rejection(&events).is_none(), "{command:?} -> {events:?}");
    }
    book
}

/// The executions among `events`: (order, price, quantity, leaves, aggressor).
fn fills(events: &[Event]) -> Vec<(&str, i64, i64, i64, bool)> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Execution(x) => Some((
                x.order_id.as_str(),
                x.price,
                x.quantity,
                x.leaves_quantity,
                x.aggressor,
            )),
            _ => None,
        })
        .collect()
}

fn rejection(events: &[Event]) -> Option<RejectReason> {
    match events {
        [Event {
            body: EventBody::Rejected(r),
            ..
        }] => Some(r.reason),
        _ => None,
    }
}

/// Resting orders of one side in priority order: (id, leaves).
fn queue(book: &OrderBook, side: Side) -> Vec<(&str, i64)> {
    book.resting(side)
        .into_iter()
        .map(|(id, state)| (id, state.leaves()))
        .collect()
}

#[test]
fn a_crossing_buy_trades_at_the_resting_offer_price() {
    let mut book = book_with(&[sell("s1", "A", 100, 10)]);
    let events = book.apply(&buy("b1", "B", 102, 10));
    assert!(matches!(&events[0].body, EventBody::Accepted(a) if a.order_id == "b1"));
    assert_eq!(
        fills(&events),
        [("b1", 100, 10, 0, true), ("s1", 100, 10, 0, false)]
    );
    assert_eq!((book.best_bid(), book.best_ask()), (None, None));
    assert_eq!(
        book.order("s1").map(|o| o.status),
        Some(OrderStatus::Filled)
    );
    assert_eq!(
        book.order("b1").map(|o| o.status),
        Some(OrderStatus::Filled)
    );
}

#[test]
fn a_crossing_sell_trades_at_the_resting_bid_price() {
    let mut book = book_with(&[buy("b1", "A", 105, 4)]);
    let events = book.apply(&sell("s1", "B", 101, 4));
    assert_eq!(
        fills(&events),
        [("s1", 105, 4, 0, true), ("b1", 105, 4, 0, false)]
    );
}

#[test]
fn orders_that_do_not_cross_rest() {
    let mut book = book_with(&[buy("b1", "A", 99, 4)]);
    let events = book.apply(&sell("s1", "B", 100, 4));
    assert_eq!(events.len(), 1);
    assert_eq!((book.best_bid(), book.best_ask()), (Some(99), Some(100)));
}

#[test]
fn the_unfilled_rest_of_an_incoming_order_rests_at_its_limit() {
    let mut book = book_with(&[sell("s1", "A", 100, 5)]);
    let events = book.apply(&buy("b1", "B", 101, 8));
    assert_eq!(
        fills(&events),
        [("b1", 100, 5, 3, true), ("s1", 100, 5, 0, false)]
    );
    assert_eq!(queue(&book, Side::Buy), [("b1", 3)]);
    assert_eq!((book.best_bid(), book.best_ask()), (Some(101), None));
}

#[test]
fn a_resting_order_fills_in_parts() {
    let mut book = book_with(&[sell("s1", "A", 100, 10)]);
    book.apply(&buy("b1", "B", 100, 4));
    let events = book.apply(&buy("b2", "C", 100, 3));
    assert_eq!(
        fills(&events),
        [("b2", 100, 3, 0, true), ("s1", 100, 3, 3, false)]
    );
    let state = book.order("s1").expect("s1");
    assert_eq!((state.filled, state.leaves()), (7, 3));
    assert_eq!(
        book.depth(Side::Sell),
        [Level {
            price: 100,
            quantity: 3,
            orders: 1
        }]
    );
}

#[test]
fn within_a_price_the_earliest_order_trades_first() {
    let mut book = book_with(&[
        sell("s1", "A", 100, 5),
        sell("s2", "B", 100, 5),
        sell("s3", "C", 100, 5),
    ]);
    let events = book.apply(&buy("b1", "D", 100, 7));
    assert_eq!(
        fills(&events),
        [
            ("b1", 100, 5, 2, true),
            ("s1", 100, 5, 0, false),
            ("b1", 100, 2, 0, true),
            ("s2", 100, 2, 3, false),
        ]
    );
    assert_eq!(queue(&book, Side::Sell), [("s2", 3), ("s3", 5)]);
}

#[test]
fn better_prices_trade_first_and_matching_stops_at_the_limit() {
    let mut book = book_with(&[
        sell("s101", "A", 101, 5),
        sell("s100", "B", 100, 5),
        sell("s102", "C", 102, 5),
    ]);
    let events = book.apply(&buy("b1", "D", 101, 12));
    assert_eq!(
        fills(&events),
        [
            ("b1", 100, 5, 7, true),
            ("s100", 100, 5, 0, false),
            ("b1", 101, 5, 2, true),
            ("s101", 101, 5, 0, false),
        ]
    );
    assert_eq!(queue(&book, Side::Buy), [("b1", 2)]);
    assert_eq!((book.best_bid(), book.best_ask()), (Some(101), Some(102)));
}

#[test]
fn self_trade_prevention_cancels_the_resting_order_and_matching_goes_on() {
    let mut book = book_with(&[
        sell("own", "A", 100, 5),
        sell("other", "B", 100, 5),
        buy("partial", "C", 100, 1), // fills 1 of "own": STP cancels only the rest
    ]);
    let events = book.apply(&buy("b1", "A", 100, 8));
    let bodies: Vec<&EventBody> = events.iter().map(|e| &e.body).collect();
    assert!(matches!(bodies[0], EventBody::Accepted(_)));
    assert!(matches!(
        bodies[1],
        EventBody::Canceled(Canceled {
            order_id,
            reason: CancelReason::SelfTradePrevention,
            canceled_quantity: 4,
            filled_quantity: 1,
            request_id,
            ..
        }) if order_id == "own" && request_id.is_empty()
    ));
    assert_eq!(
        fills(&events),
        [("b1", 100, 5, 3, true), ("other", 100, 5, 0, false)]
    );
    assert_eq!(events.len(), 4);
    assert_eq!(queue(&book, Side::Buy), [("b1", 3)]);
    assert_eq!(queue(&book, Side::Sell), []);
    let own = book.order("own").expect("own");
    assert_eq!(
        (own.status, own.filled, own.canceled),
        (OrderStatus::Canceled, 1, 4)
    );
}

#[test]
fn self_trade_prevention_only_touches_orders_that_would_trade() {
    let mut book = book_with(&[sell("own-far", "A", 105, 5), sell("other", "B", 100, 5)]);
    let events = book.apply(&buy("b1", "A", 101, 5));
    assert_eq!(
        fills(&events),
        [("b1", 100, 5, 0, true), ("other", 100, 5, 0, false)]
    );
    assert_eq!(queue(&book, Side::Sell), [("own-far", 5)]);
}

#[test]
fn cancel_removes_only_the_unfilled_rest_of_a_partly_filled_order() {
    let mut book = book_with(&[sell("s1", "A", 100, 10), buy("b1", "B", 100, 4)]);
    let events = book.apply(&cancel("s1"));
    assert_eq!(events.len(), 1);
    assert!(matches!(
        &events[0].body,
        EventBody::Canceled(Canceled {
            reason: CancelReason::Requested,
            canceled_quantity: 6,
            filled_quantity: 4,
            request_id,
            ..
        }) if request_id == "cxl-s1"
    ));
    assert_eq!(book.best_ask(), None);
    let state = book.order("s1").expect("s1");
    assert_eq!(
        (state.status, state.filled, state.canceled, state.leaves()),
        (OrderStatus::Canceled, 4, 6, 0)
    );
}

#[test]
fn cancel_of_an_unknown_order_is_rejected_and_of_a_done_one_is_too_late() {
    let mut book = book_with(&[
        sell("s1", "A", 100, 5),
        buy("b1", "B", 100, 5),
        sell("s2", "A", 101, 5),
    ]);
    assert_eq!(
        rejection(&book.apply(&cancel("nope"))),
        Some(RejectReason::UnknownOrder)
    );
    assert_eq!(
        rejection(&book.apply(&cancel("s1"))),
        Some(RejectReason::TooLate)
    );
    book.apply(&cancel("s2"));
    let events = book.apply(&cancel("s2"));
    assert_eq!(rejection(&events), Some(RejectReason::TooLate));
    assert!(matches!(
        &events[0].body,
        EventBody::Rejected(Rejected { command: CommandKind::Cancel, request_id, .. }) if request_id == "cxl-s2"
    ));
}

#[test]
fn a_quantity_decrease_keeps_time_priority() {
    let mut book = book_with(&[sell("s1", "A", 100, 10), sell("s2", "B", 100, 10)]);
    let events = book.apply(&replace("s1", 100, 6));
    assert!(matches!(
        &events[0].body,
        EventBody::Replaced(Replaced {
            priority_kept: true,
            quantity: 6,
            leaves_quantity: 6,
            ..
        })
    ));
    let events = book.apply(&buy("b1", "C", 100, 8));
    assert_eq!(
        fills(&events),
        [
            ("b1", 100, 6, 2, true),
            ("s1", 100, 6, 0, false),
            ("b1", 100, 2, 0, true),
            ("s2", 100, 2, 8, false),
        ]
    );
}

#[test]
fn a_quantity_increase_loses_time_priority() {
    let mut book = book_with(&[sell("s1", "A", 100, 10), sell("s2", "B", 100, 10)]);
    let events = book.apply(&replace("s1", 100, 12));
    assert!(matches!(
        &events[0].body,
        EventBody::Replaced(Replaced {
            priority_kept: false,
            quantity: 12,
            ..
        })
    ));
    assert_eq!(queue(&book, Side::Sell), [("s2", 10), ("s1", 12)]);
}

#[test]
fn a_price_change_loses_time_priority() {
    let mut book = book_with(&[sell("s1", "A", 100, 10), sell("s2", "B", 101, 10)]);
    book.apply(&replace("s2", 100, 10));
    assert_eq!(queue(&book, Side::Sell), [("s1", 10), ("s2", 10)]);
    book.apply(&replace("s1", 101, 10));
    book.apply(&replace("s1", 100, 10));
    assert_eq!(queue(&book, Side::Sell), [("s2", 10), ("s1", 10)]);
}

#[test]
fn a_replace_that_crosses_trades_at_once_as_the_aggressor() {
    let mut book = book_with(&[buy("b1", "A", 99, 10), sell("s1", "B", 101, 4)]);
    let events = book.apply(&replace("b1", 101, 10));
    assert!(
        matches!(&events[0].body, EventBody::Replaced(r) if r.price == 101 && r.leaves_quantity == 10)
    );
    assert_eq!(
        fills(&events),
        [("b1", 101, 4, 6, true), ("s1", 101, 4, 0, false)]
    );
    assert_eq!(queue(&book, Side::Buy), [("b1", 6)]);
}

#[test]
fn a_replace_counts_filled_shares_in_the_new_total() {
    let mut book = book_with(&[sell("s1", "A", 100, 10), buy("b1", "B", 100, 4)]);
    // 4 filled: total 8 leaves 4; total 3 is below filled; total 4 ends the order.
    let events = book.apply(&replace("s1", 100, 8));
    assert!(
        matches!(&events[0].body, EventBody::Replaced(r) if r.leaves_quantity == 4 && r.filled_quantity == 4)
    );
    assert_eq!(
        rejection(&book.apply(&replace("s1", 100, 3))),
        Some(RejectReason::QuantityBelowFilled)
    );
    let events = book.apply(&replace("s1", 100, 4));
    assert!(matches!(
        &events[0].body,
        EventBody::Replaced(Replaced {
            leaves_quantity: 0,
            priority_kept: false,
            ..
        })
    ));
    assert_eq!(
        book.order("s1").map(|o| o.status),
        Some(OrderStatus::Filled)
    );
    assert_eq!(book.best_ask(), None);
    assert_eq!(
        rejection(&book.apply(&replace("s1", 100, 9))),
        Some(RejectReason::TooLate)
    );
    assert_eq!(
        rejection(&book.apply(&replace("nope", 100, 9))),
        Some(RejectReason::UnknownOrder)
    );
}

#[test]
fn a_duplicate_order_id_is_rejected_even_after_the_order_is_done() {
    let mut book = book_with(&[sell("s1", "A", 100, 5)]);
    assert_eq!(
        rejection(&book.apply(&sell("s1", "A", 100, 5))),
        Some(RejectReason::DuplicateOrderId)
    );
    book.apply(&cancel("s1"));
    assert_eq!(
        rejection(&book.apply(&buy("s1", "B", 90, 1))),
        Some(RejectReason::DuplicateOrderId)
    );
    assert_eq!(book.best_bid(), None);
}

#[test]
fn invalid_fields_are_rejected_without_changing_the_book() {
    let mut book = book_with(&[sell("s1", "A", 100, 5)]);
    let before = (book.depth(Side::Sell), book.depth(Side::Buy));
    for (command, reason) in [
        (buy("b1", "B", 100, 0), RejectReason::InvalidQuantity),
        (buy("b1", "B", 100, -3), RejectReason::InvalidQuantity),
        (buy("b1", "B", 0, 3), RejectReason::InvalidPrice),
        (buy("b1", "B", i64::MAX, 2), RejectReason::InvalidQuantity),
        (buy("b1", "", 100, 3), RejectReason::InvalidField),
        (buy("", "B", 100, 3), RejectReason::InvalidField),
        (replace("s1", -1, 5), RejectReason::InvalidPrice),
        (replace("s1", 100, 0), RejectReason::InvalidQuantity),
    ] {
        assert_eq!(
            rejection(&book.apply(&command)),
            Some(reason),
            "{command:?}"
        );
    }
    assert_eq!((book.depth(Side::Sell), book.depth(Side::Buy)), before);
    assert!(book.order("b1").is_none());
}

#[test]
fn an_oversized_id_is_rejected_and_echoed_cut() {
    let mut book = OrderBook::new(SYMBOL);
    let long = "x".repeat(1_000);
    let events = book.apply(&buy(&long, "B", 100, 3));
    assert!(matches!(
        &events[0].body,
        EventBody::Rejected(Rejected { reason: RejectReason::InvalidField, order_id, command: CommandKind::NewOrder, .. })
            if order_id.len() == crate::validation::MAX_ID_LEN
    ));
}

#[test]
fn a_command_for_another_symbol_is_rejected() {
    let mut book = OrderBook::new("000660");
    assert_eq!(
        rejection(&book.apply(&buy("b1", "B", 100, 3))),
        Some(RejectReason::WrongSymbol)
    );
}

#[test]
fn events_are_numbered_without_gaps_and_executions_named_by_trade() {
    let mut book = OrderBook::new(SYMBOL);
    let mut events = book.apply(&sell("s1", "A", 100, 5));
    events.extend(book.apply(&cancel("nope")));
    events.extend(book.apply(&buy("b1", "B", 100, 2)));
    events.extend(book.apply(&buy("b2", "C", 100, 2)));
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    assert_eq!(book.last_seq(), 8);
    let ids: Vec<&str> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Execution(x) => Some(x.execution_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        ids,
        ["005930-1-B", "005930-1-S", "005930-2-B", "005930-2-S"]
    );
    assert!(events.iter().all(|e| e.symbol == SYMBOL));
    assert_eq!(events[0].ts_unix_ms, 7);
    assert_eq!(events[1].ts_unix_ms, 8);
}
