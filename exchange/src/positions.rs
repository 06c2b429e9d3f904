//! [`Positions`]: what executions do to accounts (net shares and cash per
//! account and symbol) and the conservation check settlement must pass:
//! per symbol, over all accounts, shares bought minus sold is 0 and cash
//! paid equals cash received (fees are zero).

use std::collections::{BTreeMap, BTreeSet};

use crate::messages::{Event, EventBody, Execution, Side};

/// One account's net result in one symbol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    /// Shares bought minus shares sold.
    pub shares: i128,
    /// Cash received minus cash paid, in price ticks × shares.
    pub cash: i128,
}

/// A symbol whose positions do not sum to zero over its accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imbalance {
    /// The symbol.
    pub symbol: String,
    /// Sum over accounts of shares bought minus sold.
    pub shares: i128,
    /// Sum over accounts of cash received minus paid.
    pub cash: i128,
}

/// Net positions folded from executions, each execution counted once by its
/// id (a redelivered execution changes nothing, as settlement requires).
/// Sums are `i128` so no sequence of `i64` fills overflows them.
#[derive(Debug, Clone, Default)]
pub struct Positions {
    by_account: BTreeMap<(String, String), Position>,
    seen: BTreeSet<(String, String)>,
}

impl Positions {
    /// No positions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one execution of `symbol`; false (and nothing changes) when
    /// an execution with the same id was counted before.
    pub fn record(&mut self, symbol: &str, execution: &Execution) -> bool {
        if !self
            .seen
            .insert((symbol.to_owned(), execution.execution_id.clone()))
        {
            return false;
        }
        let position = self
            .by_account
            .entry((execution.account_id.clone(), symbol.to_owned()))
            .or_default();
        let shares = i128::from(execution.quantity);
        let cash = shares * i128::from(execution.price);
        match execution.side {
            Side::Buy => {
                position.shares += shares;
                position.cash -= cash;
            }
            Side::Sell => {
                position.shares -= shares;
                position.cash += cash;
            }
        }
        true
    }

    /// Counts every execution among `events`.
    pub fn record_events<'a>(&mut self, events: impl IntoIterator<Item = &'a Event>) {
        for event in events {
            if let EventBody::Execution(execution) = &event.body {
                self.record(&event.symbol, execution);
            }
        }
    }

    /// One account's position in one symbol (zero when it never traded it).
    pub fn position(&self, account_id: &str, symbol: &str) -> Position {
        self.by_account
            .get(&(account_id.to_owned(), symbol.to_owned()))
            .copied()
            .unwrap_or_default()
    }

    /// Every account's positions, by account then symbol.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, Position)> {
        self.by_account
            .iter()
            .map(|((account, symbol), position)| (account.as_str(), symbol.as_str(), *position))
    }

    /// The symbols that break conservation (empty when it holds).
    pub fn imbalances(&self) -> Vec<Imbalance> {
        let mut totals: BTreeMap<&str, Position> = BTreeMap::new();
        for ((_, symbol), position) in &self.by_account {
            let total = totals.entry(symbol).or_default();
            total.shares += position.shares;
            total.cash += position.cash;
        }
        totals
            .into_iter()
            .filter(|(_, total)| total.shares != 0 || total.cash != 0)
            .map(|(symbol, total)| Imbalance {
                symbol: symbol.to_owned(),
                shares: total.shares,
                cash: total.cash,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(id: &str, account: &str, side: Side, price: i64, quantity: i64) -> Execution {
        Execution {
            execution_id: id.to_owned(),
            trade_id: 1,
            order_id: format!("o-{id}"),
            account_id: account.to_owned(),
            side,
            price,
            quantity,
            filled_quantity: quantity,
            leaves_quantity: 0,
            counterparty_order_id: String::new(),
            aggressor: side == Side::Buy,
        }
    }

    #[test]
    fn a_trade_moves_shares_and_cash_between_two_accounts() {
        let mut positions = Positions::new();
        assert!(positions.record("X", &leg("X-1-B", "A", Side::Buy, 100, 3)));
        assert!(positions.record("X", &leg("X-1-S", "B", Side::Sell, 100, 3)));
        assert_eq!(
            positions.position("A", "X"),
            Position {
                shares: 3,
                cash: -300
            }
        );
        assert_eq!(
            positions.position("B", "X"),
            Position {
                shares: -3,
                cash: 300
            }
        );
        assert_eq!(positions.position("C", "X"), Position::default());
        assert!(positions.imbalances().is_empty());
    }

    #[test]
    fn a_redelivered_execution_counts_once_and_a_lone_leg_is_an_imbalance() {
        let mut positions = Positions::new();
        let buy = leg("X-1-B", "A", Side::Buy, 100, 3);
        assert!(positions.record("X", &buy));
        assert!(!positions.record("X", &buy));
        assert_eq!(
            positions.imbalances(),
            [Imbalance {
                symbol: "X".into(),
                shares: 3,
                cash: -300
            }]
        );
    }
}
