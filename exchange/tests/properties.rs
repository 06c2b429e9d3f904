//! Properties of the venue over random command streams (two symbols, three
//! accounts, prices within a few ticks so orders cross often, and some
//! invalid, unknown, duplicate and too-late commands):
//!
//! * per order: filled = sum of its executions, filled + leaves + canceled =
//!   its (latest) quantity, in the events and in the book alike;
//! * every execution has one opposite execution (same trade, price and
//!   quantity, other side, other account, one aggressor); trades are at the
//!   resting order's price and within both limits; execution ids are unique;
//! * per symbol, shares bought = shares sold, and over accounts net shares
//!   and net cash are zero (conservation, as settlement will check it);
//! * after every command: the book is not crossed and no resting order has
//!   nothing left; each book's events are numbered 1, 2, 3, …;
//! * determinism: the same commands, also read back from JSON, give the
//!   same events byte for byte.
//!
//! And with the market maker: whatever newcomers do, once it has answered
//! every event it quotes every ladder price again and the above still hold.

use std::collections::{BTreeMap, BTreeSet};

use hts_exchange::{
    Cancel, Command, Event, EventBody, Execution, MarketMaker, NewOrder, OrderStatus, Positions,
    QuoteConfig, Replace, Side, Venue,
};
use proptest::prelude::*;

const SYMBOLS: [&str; 2] = ["005930", "000660"];
const ACCOUNTS: [&str; 3] = ["ACC-0001", "ACC-0002", "ACC-0003"];

/// One step of a random stream, before ids are resolved.
#[derive(Debug, Clone)]
enum Op {
    /// A new order; symbol index 2 is the invalid (empty) symbol.
    New {
        symbol: usize,
        account: usize,
        side: Side,
        price: i64,
        quantity: i64,
    },
    /// Cancel an earlier order (index modulo the orders so far), sometimes
    /// sent to the wrong book.
    Cancel { target: usize, wrong_book: bool },
    /// Replace an earlier order, at a random price or at the price the
    /// stream last gave it (so that decreases keeping priority happen).
    Replace {
        target: usize,
        price: i64,
        same_price: bool,
        quantity: i64,
    },
    /// A new order reusing an earlier order's id.
    Reuse { target: usize, quantity: i64 },
}

fn price() -> impl Strategy<Value = i64> {
    prop_oneof![20 => 95i64..=105, 1 => -1i64..=0]
}

fn quantity() -> impl Strategy<Value = i64> {
    prop_oneof![20 => 1i64..=20, 1 => -1i64..=0]
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (prop_oneof![30 => 0usize..2, 1 => Just(2usize)], 0..ACCOUNTS.len(), side(), price(), quantity())
            .prop_map(|(symbol, account, side, price, quantity)| Op::New { symbol, account, side, price, quantity }),
        3 => (any::<usize>(), prop::bool::weighted(0.1))
            .prop_map(|(target, wrong_book)| Op::Cancel { target, wrong_book }),
        3 => (any::<usize>(), price(), any::<bool>(), prop_oneof![20 => 0i64..=25, 1 => Just(-1i64)])
            .prop_map(|(target, price, same_price, quantity)| Op::Replace { target, price, same_price, quantity }),
        1 => (any::<usize>(), quantity()).prop_map(|(target, quantity)| Op::Reuse { target, quantity }),
    ]
}

/// An order the stream placed, as far as the stream knows it.
#[derive(Debug, Clone)]
struct Placed {
    order_id: String,
    symbol: &'static str,
    /// The price the stream last asked for (it may have been refused).
    price: i64,
}

/// Resolves ops into commands: ids `o1`, `o2`, …; a cancel or replace
/// before any order names `ghost`.
fn commands(ops: &[Op]) -> Vec<Command> {
    let mut placed: Vec<Placed> = Vec::new();
    let mut commands = Vec::new();
    for (n, op) in ops.iter().enumerate() {
        let ts_unix_ms = n as i64;
        let request_id = format!("r{}", n + 1);
        let slots = placed.len().max(1);
        let earlier = |target: usize| {
            placed.get(target % slots).cloned().unwrap_or(Placed {
                order_id: "ghost".to_owned(),
                symbol: SYMBOLS[0],
                price: 100,
            })
        };
        let command = match *op {
            Op::New {
                symbol,
                account,
                side,
                price,
                quantity,
            } => {
                let order = Placed {
                    order_id: format!("o{}", n + 1),
                    symbol: SYMBOLS.get(symbol).copied().unwrap_or(""),
                    price,
                };
                placed.push(order.clone());
                new_order(
                    order,
                    ACCOUNTS[account],
                    side,
                    quantity,
                    request_id,
                    ts_unix_ms,
                )
            }
            Op::Cancel { target, wrong_book } => {
                let order = earlier(target);
                let symbol = if wrong_book {
                    other_symbol(order.symbol)
                } else {
                    order.symbol
                };
                Command::Cancel(Cancel {
                    order_id: order.order_id,
                    request_id,
                    symbol: symbol.to_owned(),
                    ts_unix_ms,
                })
            }
            Op::Replace {
                target,
                price,
                same_price,
                quantity,
            } => {
                let order = earlier(target);
                let new_price = if same_price { order.price } else { price };
                if let Some(entry) = placed.get_mut(target % slots) {
                    entry.price = new_price;
                }
                Command::Replace(Replace {
                    order_id: order.order_id,
                    request_id,
                    symbol: order.symbol.to_owned(),
                    new_price,
                    new_quantity: quantity,
                    ts_unix_ms,
                })
            }
            Op::Reuse { target, quantity } => {
                let account = ACCOUNTS[n % ACCOUNTS.len()];
                new_order(
                    earlier(target),
                    account,
                    Side::Buy,
                    quantity,
                    request_id,
                    ts_unix_ms,
                )
            }
        };
        commands.push(command);
    }
    commands
}

fn new_order(
    order: Placed,
    account_id: &str,
    side: Side,
    quantity: i64,
    request_id: String,
    ts_unix_ms: i64,
) -> Command {
    Command::NewOrder(NewOrder {
        order_id: order.order_id,
        request_id,
        account_id: account_id.to_owned(),
        symbol: order.symbol.to_owned(),
        side,
        price: order.price,
        quantity,
        ts_unix_ms,
    })
}

fn other_symbol(symbol: &str) -> &'static str {
    if symbol == SYMBOLS[0] {
        SYMBOLS[1]
    } else {
        SYMBOLS[0]
    }
}

/// Applies each command, checking the book it touched afterwards.
fn run(venue: &mut Venue, commands: &[Command]) -> Vec<Event> {
    let mut events = Vec::new();
    for command in commands {
        events.extend(venue.apply(command));
        check_book_after_command(venue, command.symbol());
    }
    events
}

/// Not crossed, and every resting order has something left to fill.
fn check_book_after_command(venue: &Venue, symbol: &str) {
    let Some(book) = venue.book(symbol) else {
        return;
    };
    if let (Some(bid), Some(ask)) = (book.best_bid(), book.best_ask()) {
        assert!(bid < ask, "{symbol} crossed: bid {bid} >= ask {ask}");
    }
    for side in [Side::Buy, Side::Sell] {
        for (id, state) in book.resting(side) {
            assert!(
                state.leaves() > 0,
                "{id} rests with nothing left: {state:?}"
            );
            assert_eq!(state.status, OrderStatus::Resting, "{id}");
            assert_eq!(state.side, side, "{id}");
        }
        assert!(book.depth(side).iter().all(|level| level.quantity > 0));
    }
}

/// What the events say about one order.
#[derive(Debug, Default)]
struct FromEvents {
    side: Option<Side>,
    price: i64,
    quantity: i64,
    filled: i64,
    canceled: i64,
}

/// Every property that the events and final books of one run must satisfy.
fn check_run(venue: &Venue, events: &[Event]) {
    let mut orders: BTreeMap<(String, String), FromEvents> = BTreeMap::new();
    let mut trades: BTreeMap<(String, u64), Vec<&Execution>> = BTreeMap::new();
    let mut execution_ids = BTreeSet::new();
    let mut last_seq: BTreeMap<&str, u64> = BTreeMap::new();

    for event in events {
        if event.symbol.is_empty() {
            assert_eq!(event.seq, 0);
            assert!(matches!(event.body, EventBody::Rejected(_)));
            continue;
        }
        let seq = last_seq.entry(event.symbol.as_str()).or_default();
        assert_eq!(event.seq, *seq + 1, "gap in {}", event.symbol);
        *seq = event.seq;

        let key = (event.symbol.clone(), event.body.order_id().to_owned());
        match &event.body {
            EventBody::Accepted(a) => {
                let fresh = orders.insert(
                    key,
                    FromEvents {
                        side: Some(a.side),
                        price: a.price,
                        quantity: a.quantity,
                        ..FromEvents::default()
                    },
                );
                assert!(fresh.is_none(), "{} accepted twice", a.order_id);
            }
            EventBody::Replaced(r) => {
                let order = orders.get_mut(&key).expect("replaced before accepted");
                order.price = r.price;
                order.quantity = r.quantity;
                assert_eq!(r.filled_quantity, order.filled);
                assert_eq!(r.leaves_quantity, order.quantity - order.filled);
            }
            EventBody::Execution(x) => {
                let order = orders.get_mut(&key).expect("executed before accepted");
                order.filled += x.quantity;
                assert!(x.quantity > 0);
                assert_eq!(x.filled_quantity, order.filled, "{}", x.execution_id);
                assert_eq!(x.leaves_quantity, order.quantity - order.filled);
                assert!(x.leaves_quantity >= 0, "{} overfilled", x.order_id);
                match x.side {
                    Side::Buy => assert!(x.price <= order.price, "buy above its limit"),
                    Side::Sell => assert!(x.price >= order.price, "sell below its limit"),
                }
                if !x.aggressor {
                    assert_eq!(x.price, order.price, "not at the resting order's price");
                }
                assert!(
                    execution_ids.insert(x.execution_id.clone()),
                    "{} twice",
                    x.execution_id
                );
                trades
                    .entry((event.symbol.clone(), x.trade_id))
                    .or_default()
                    .push(x);
            }
            EventBody::Canceled(c) => {
                let order = orders.get_mut(&key).expect("canceled before accepted");
                assert_eq!(c.filled_quantity, order.filled);
                assert_eq!(
                    c.canceled_quantity,
                    order.quantity - order.filled,
                    "cancel of all but the rest"
                );
                order.canceled += c.canceled_quantity;
            }
            EventBody::Rejected(_) => {}
        }
    }

    // Both legs of every trade.
    let mut bought: BTreeMap<&str, i64> = BTreeMap::new();
    let mut sold: BTreeMap<&str, i64> = BTreeMap::new();
    for ((symbol, trade_id), legs) in &trades {
        let [first, second] = legs.as_slice() else {
            panic!("{symbol} trade {trade_id} has {} legs", legs.len());
        };
        assert!(
            first.aggressor && !second.aggressor,
            "aggressor leg first, once"
        );
        assert_eq!(first.side, second.side.opposite());
        assert_eq!(
            (first.price, first.quantity),
            (second.price, second.quantity)
        );
        assert_eq!(first.counterparty_order_id, second.order_id);
        assert_eq!(second.counterparty_order_id, first.order_id);
        assert_ne!(first.account_id, second.account_id, "self-trade");
        for leg in [first, second] {
            let total = match leg.side {
                Side::Buy => bought.entry(symbol).or_default(),
                Side::Sell => sold.entry(symbol).or_default(),
            };
            *total += leg.quantity;
        }
    }
    assert_eq!(bought, sold, "shares bought != shares sold");

    // The events and the books tell the same story of every order.
    let mut in_books = 0;
    for book in venue.books() {
        for (id, state) in book.orders() {
            in_books += 1;
            let order = orders
                .get(&(book.symbol().to_owned(), id.to_owned()))
                .unwrap_or_else(|| panic!("{id} in the book without Accepted"));
            assert_eq!(Some(state.side), order.side);
            assert_eq!(
                (state.price, state.quantity),
                (order.price, order.quantity),
                "{id}"
            );
            assert_eq!(
                (state.filled, state.canceled),
                (order.filled, order.canceled),
                "{id}"
            );
            assert_eq!(
                state.filled + state.leaves() + state.canceled,
                state.quantity,
                "{id}"
            );
            assert!(state.leaves() >= 0);
            let expected = if state.canceled > 0 {
                OrderStatus::Canceled
            } else if state.leaves() == 0 {
                OrderStatus::Filled
            } else {
                OrderStatus::Resting
            };
            // A cancel of a rest of 0 cannot happen, so canceled > 0 iff Canceled.
            assert_eq!(state.status, expected, "{id}");
        }
    }
    assert_eq!(in_books, orders.len());

    // Conservation, as settlement will check it.
    let mut positions = Positions::new();
    positions.record_events(events);
    assert_eq!(positions.imbalances(), []);
}

fn to_json(events: &[Event]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for event in events {
        bytes.extend(serde_json::to_vec(event).expect("serialize"));
        bytes.push(b'\n');
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_streams_keep_every_invariant(ops in prop::collection::vec(op(), 1..200)) {
        let commands = commands(&ops);
        let mut venue = Venue::new();
        let events = run(&mut venue, &commands);
        check_run(&venue, &events);
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_same_commands_give_the_same_bytes(ops in prop::collection::vec(op(), 1..120)) {
        let commands = commands(&ops);
        let first = to_json(&run(&mut Venue::new(), &commands));
        // The second run reads its commands back from JSON, as from a topic.
        let replayed: Vec<Command> = commands
            .iter()
            .map(|c| serde_json::from_str(&serde_json::to_string(c).expect("serialize")).expect("parse"))
            .collect();
        prop_assert_eq!(&replayed, &commands);
        let second_events = run(&mut Venue::new(), &replayed);
        let second = to_json(&second_events);
        prop_assert!(first == second, "two runs of the same commands differ");
        for event in &second_events {
            let back: Event = serde_json::from_str(&serde_json::to_string(event).expect("serialize")).expect("parse");
            prop_assert_eq!(&back, event);
        }
    }

    #[test]
    fn the_market_maker_keeps_its_ladder_whatever_newcomers_do(
        orders in prop::collection::vec((side(), 69_500i64..=70_500, 1i64..=60, 0..ACCOUNTS.len()), 1..60),
    ) {
        let mut config = QuoteConfig::around("MM-0001", "005930", 70_000, 100);
        config.levels = 3;
        config.quantity = 20;
        let mut mm = MarketMaker::new(config).expect("valid config");
        let mut venue = Venue::new();
        let mut events = Vec::new();
        let mut pending = mm.quotes(0);
        for (n, (side, price, quantity, account)) in orders.into_iter().enumerate() {
            let price = price / 100 * 100;
            pending.push(Command::NewOrder(NewOrder {
                order_id: format!("n{n}"),
                request_id: String::new(),
                account_id: ACCOUNTS[account].to_owned(),
                symbol: "005930".into(),
                side,
                price,
                quantity,
                ts_unix_ms: n as i64,
            }));
            events.extend(mm.drive(&mut venue, std::mem::take(&mut pending)));
            check_book_after_command(&venue, "005930");
            let book = venue.book("005930").expect("book");
            let live: Vec<(Side, i64)> = mm.live_quotes().map(|(_, side, price)| (side, price)).collect();
            prop_assert_eq!(live.len(), mm.ladder().len());
            for level in mm.ladder() {
                prop_assert!(live.contains(level), "ladder price {:?} not quoted", level);
            }
            for (id, _, _) in mm.live_quotes() {
                prop_assert!(book.order(id).is_some_and(|o| o.status == OrderStatus::Resting), "{} not resting", id);
            }
        }
        check_run(&venue, &events);
    }
}
