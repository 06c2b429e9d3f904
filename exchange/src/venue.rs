//! [`Venue`]: one [`OrderBook`] per symbol, routing each command by symbol.

use std::collections::BTreeMap;

use crate::book::{rejected, OrderBook};
use crate::messages::{Command, Event};
use crate::validation::check_id;

/// Every book of the venue, by symbol, each created on first use.
///
/// The books share nothing: a book's events depend only on the commands of
/// its symbol, in their order, so the venue can be split by symbol across
/// processes (a topic partitioned by symbol) without changing any output.
/// What must hold is one writer per book.
#[derive(Debug, Clone, Default)]
pub struct Venue {
    books: BTreeMap<String, OrderBook>,
}

impl Venue {
    /// A venue with no books yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes a command to its symbol's book (creating the book on first
    /// use) and returns the events it caused. A command whose symbol is not
    /// a valid id reaches no book: it gets one [`crate::Rejected`] with an
    /// empty symbol and `seq` 0.
    pub fn apply(&mut self, command: &Command) -> Vec<Event> {
        let symbol = command.symbol();
        if let Err(reason) = check_id(symbol) {
            return vec![Event {
                symbol: String::new(),
                seq: 0,
                ts_unix_ms: command.ts_unix_ms(),
                body: rejected(command, reason),
            }];
        }
        self.books
            .entry(symbol.to_owned())
            .or_insert_with(|| OrderBook::new(symbol))
            .apply(command)
    }

    /// The book of `symbol`, if it was ever used.
    pub fn book(&self, symbol: &str) -> Option<&OrderBook> {
        self.books.get(symbol)
    }

    /// Every book, by symbol.
    pub fn books(&self) -> impl Iterator<Item = &OrderBook> {
        self.books.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{Cancel, EventBody, NewOrder, Side};
    use crate::reject::RejectReason;

    fn sell(symbol: &str, id: &str) -> Command {
        Command::NewOrder(NewOrder {
            order_id: id.into(),
            request_id: String::new(),
            account_id: "A".into(),
            symbol: symbol.into(),
            side: Side::Sell,
            price: 100,
            quantity: 5,
            ts_unix_ms: 3,
        })
    }

    #[test]
    fn each_symbol_gets_its_own_book_on_first_use() {
        let mut venue = Venue::new();
        assert!(venue.book("005930").is_none());
        let first = venue.apply(&sell("005930", "o1"));
        let second = venue.apply(&sell("000660", "o1")); // ids are per book
        assert_eq!((first[0].symbol.as_str(), first[0].seq), ("005930", 1));
        assert_eq!((second[0].symbol.as_str(), second[0].seq), ("000660", 1));
        assert!(matches!(second[0].body, EventBody::Accepted(_)));
        let symbols: Vec<&str> = venue.books().map(OrderBook::symbol).collect();
        assert_eq!(symbols, ["000660", "005930"]);
        assert_eq!(
            venue.book("005930").and_then(OrderBook::best_ask),
            Some(100)
        );
    }

    #[test]
    fn a_cancel_is_routed_by_its_symbol() {
        let mut venue = Venue::new();
        venue.apply(&sell("005930", "o1"));
        let cancel = |symbol: &str| {
            Command::Cancel(Cancel {
                order_id: "o1".into(),
                request_id: "c".into(),
                symbol: symbol.into(),
                ts_unix_ms: 4,
            })
        };
        let wrong = venue.apply(&cancel("035420"));
        assert!(
            matches!(&wrong[0].body, EventBody::Rejected(r) if r.reason == RejectReason::UnknownOrder)
        );
        let right = venue.apply(&cancel("005930"));
        assert!(matches!(right[0].body, EventBody::Canceled(_)));
    }

    #[test]
    fn an_invalid_symbol_reaches_no_book() {
        let mut venue = Venue::new();
        for symbol in ["", "bad\u{0}symbol"] {
            let events = venue.apply(&sell(symbol, "o1"));
            assert_eq!(events.len(), 1);
            assert_eq!((events[0].symbol.as_str(), events[0].seq), ("", 0));
            assert!(
                matches!(&events[0].body, EventBody::Rejected(r) if r.reason == RejectReason::InvalidField)
            );
        }
        assert_eq!(venue.books().count(), 0);
    }
}
