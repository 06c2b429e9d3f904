//! [`Ladder`]: one side of a book, price levels in priority order, each a
//! FIFO queue of order ids.

use std::collections::{BTreeMap, VecDeque};

use crate::messages::Side;

/// One side of an order book: for each price, the resting orders' ids in
/// arrival order.
///
/// Hand-written over `BTreeMap<price, VecDeque<id>>` rather than taken from
/// an order-book crate: it is a dozen lines over the standard collections,
/// its iteration order is fixed (the determinism the venue promises), and the
/// order state lives in one place (the book's order map), not in the queue.
/// Removing an order from the middle of a level (cancel, replace) scans that
/// level: linear in the orders at one price, which is fine for a simulator.
#[derive(Debug, Clone)]
pub(crate) struct Ladder {
    side: Side,
    levels: BTreeMap<i64, VecDeque<String>>,
}

impl Ladder {
    /// An empty side.
    pub(crate) fn new(side: Side) -> Self {
        Self {
            side,
            levels: BTreeMap::new(),
        }
    }

    /// The best price: the highest bid or the lowest offer.
    pub(crate) fn best(&self) -> Option<i64> {
        match self.side {
            Side::Buy => self.levels.last_key_value(),
            Side::Sell => self.levels.first_key_value(),
        }
        .map(|(price, _)| *price)
    }

    /// The best price if an incoming order of the other side limited at
    /// `limit` trades with it.
    pub(crate) fn best_crossing(&self, limit: i64) -> Option<i64> {
        self.best().filter(|&best| match self.side {
            Side::Buy => best >= limit,
            Side::Sell => best <= limit,
        })
    }

    /// The first order in time at `price`.
    pub(crate) fn front(&self, price: i64) -> Option<&str> {
        self.levels
            .get(&price)
            .and_then(|queue| queue.front())
            .map(String::as_str)
    }

    /// Removes the first order at `price`, dropping the level once empty.
    pub(crate) fn pop_front(&mut self, price: i64) {
        if let Some(queue) = self.levels.get_mut(&price) {
            queue.pop_front();
            if queue.is_empty() {
                self.levels.remove(&price);
            }
        }
    }

    /// Puts an order last in time at `price`.
    pub(crate) fn push_back(&mut self, price: i64, order_id: String) {
        self.levels.entry(price).or_default().push_back(order_id);
    }

    /// Removes `order_id` from the level at `price`, dropping the level once
    /// empty. False when it was not there.
    pub(crate) fn remove(&mut self, price: i64, order_id: &str) -> bool {
        let Some(queue) = self.levels.get_mut(&price) else {
            return false;
        };
        let Some(at) = queue.iter().position(|id| id == order_id) else {
            return false;
        };
        queue.remove(at);
        if queue.is_empty() {
            self.levels.remove(&price);
        }
        true
    }

    /// The levels, best price first, each with its orders in time order.
    pub(crate) fn levels(&self) -> Box<dyn Iterator<Item = (i64, &VecDeque<String>)> + '_> {
        let levels = self.levels.iter().map(|(price, queue)| (*price, queue));
        match self.side {
            Side::Buy => Box::new(levels.rev()),
            Side::Sell => Box::new(levels),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ladder: &Ladder) -> Vec<(i64, Vec<String>)> {
        ladder
            .levels()
            .map(|(price, queue)| (price, queue.iter().cloned().collect()))
            .collect()
    }

    #[test]
    fn bids_are_best_highest_and_offers_best_lowest() {
        let mut bids = Ladder::new(Side::Buy);
        let mut asks = Ladder::new(Side::Sell);
        for price in [99, 101, 100] {
            bids.push_back(price, format!("b{price}"));
            asks.push_back(price, format!("a{price}"));
        }
        assert_eq!(bids.best(), Some(101));
        assert_eq!(asks.best(), Some(99));
        assert_eq!(
            bids.levels().map(|(p, _)| p).collect::<Vec<_>>(),
            [101, 100, 99]
        );
        assert_eq!(
            asks.levels().map(|(p, _)| p).collect::<Vec<_>>(),
            [99, 100, 101]
        );
        // A sell limited at 100 trades with the 101 bid; at 102 with none.
        assert_eq!(bids.best_crossing(100), Some(101));
        assert_eq!(bids.best_crossing(102), None);
        // A buy limited at 100 trades with the 99 offer; at 98 with none.
        assert_eq!(asks.best_crossing(100), Some(99));
        assert_eq!(asks.best_crossing(98), None);
    }

    #[test]
    fn a_level_is_fifo_and_disappears_when_empty() {
        let mut asks = Ladder::new(Side::Sell);
        asks.push_back(10, "first".into());
        asks.push_back(10, "second".into());
        asks.push_back(10, "third".into());
        assert_eq!(asks.front(10), Some("first"));
        assert!(asks.remove(10, "second"));
        assert!(!asks.remove(10, "second"));
        assert!(!asks.remove(11, "first"));
        asks.pop_front(10);
        assert_eq!(ids(&asks), [(10, vec!["third".to_owned()])]);
        asks.pop_front(10);
        assert_eq!(asks.best(), None);
        assert!(ids(&asks).is_empty());
        asks.pop_front(10); // nothing there: no-op
    }
}
