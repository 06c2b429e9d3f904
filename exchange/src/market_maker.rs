//! [`MarketMaker`]: the quotes a market-maker account keeps on one symbol's
//! book so the demo has liquidity: `levels` bids at one, two, … ticks below
//! the reference price and `levels` offers at one, two, … ticks above it,
//! `quantity` shares each, and a fresh quote at the same price whenever one
//! fills completely. Pure: it turns events into commands and holds no I/O,
//! no clock (timestamps are passed in) and no randomness.

use std::collections::BTreeMap;

use crate::messages::{Command, Event, EventBody, NewOrder, Side};
use crate::validation::check_id;
use crate::venue::Venue;

/// What the market maker quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteConfig {
    /// The account that owns the quotes.
    pub account_id: String,
    /// The symbol quoted.
    pub symbol: String,
    /// The price quoted around, in ticks (not quoted itself: the best bid is
    /// one tick below it and the best offer one tick above).
    pub reference_price: i64,
    /// Distance between quote levels, in price ticks. Where the exchange's
    /// tick size changes inside the ladder, pass the larger one: its
    /// multiples lie on both grids.
    pub tick: i64,
    /// Price levels per side.
    pub levels: u32,
    /// Shares per quote.
    pub quantity: i64,
    /// Start of every quote's order id: `{prefix}-{symbol}-{n}`, n = 1, 2, …
    /// A restarted market maker facing the same book needs another prefix,
    /// or its ids are refused as duplicates.
    pub order_id_prefix: String,
}

impl QuoteConfig {
    /// Five levels a side of 100 shares, ids prefixed `MM`.
    pub fn around(
        account_id: impl Into<String>,
        symbol: impl Into<String>,
        reference_price: i64,
        tick: i64,
    ) -> Self {
        Self {
            account_id: account_id.into(),
            symbol: symbol.into(),
            reference_price,
            tick,
            levels: 5,
            quantity: 100,
            order_id_prefix: "MM".to_owned(),
        }
    }
}

/// Why a [`QuoteConfig`] cannot be quoted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarketMakerError {
    /// The reference price or tick is not positive, or the ladder reaches
    /// a price ≤ 0 or beyond `i64`.
    #[error("reference price {reference_price} and tick {tick} do not give {levels} positive price levels a side")]
    InvalidPrices {
        /// The configured reference price.
        reference_price: i64,
        /// The configured tick.
        tick: i64,
        /// The configured levels.
        levels: u32,
    },
    /// Levels is 0, or the quantity is not positive or too large for the
    /// highest quote's notional to fit in `i64`.
    #[error("{levels} levels of {quantity} shares cannot be quoted")]
    InvalidSize {
        /// The configured levels.
        levels: u32,
        /// The configured quantity.
        quantity: i64,
    },
    /// The account, symbol or id prefix would make an invalid id.
    #[error(
        "account, symbol or order id prefix is not a valid id (1-64 printable ASCII, ids included)"
    )]
    InvalidId,
}

/// The market maker's state: its configuration, its id counter and the
/// quotes it believes are working.
#[derive(Debug, Clone)]
pub struct MarketMaker {
    config: QuoteConfig,
    ladder: Vec<(Side, i64)>,
    last_order_no: u64,
    live: BTreeMap<String, (Side, i64)>,
}

impl MarketMaker {
    /// Checks the configuration and computes the ladder.
    pub fn new(config: QuoteConfig) -> Result<Self, MarketMakerError> {
        let ladder = ladder(&config)?;
        let longest_id = format!("{}-{}-{}", config.order_id_prefix, config.symbol, u64::MAX);
        if check_id(&config.account_id).is_err() || check_id(&longest_id).is_err() {
            return Err(MarketMakerError::InvalidId);
        }
        Ok(Self {
            config,
            ladder,
            last_order_no: 0,
            live: BTreeMap::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &QuoteConfig {
        &self.config
    }

    /// The quoted prices: bids best first, then offers best first.
    pub fn ladder(&self) -> &[(Side, i64)] {
        &self.ladder
    }

    /// The quotes believed working: order id, side, price.
    pub fn live_quotes(&self) -> impl Iterator<Item = (&str, Side, i64)> {
        self.live
            .iter()
            .map(|(id, (side, price))| (id.as_str(), *side, *price))
    }

    /// New orders for every ladder price without a working quote: the whole
    /// ladder on the first call; after that, what cancels or rejections
    /// took away.
    pub fn quotes(&mut self, ts_unix_ms: i64) -> Vec<Command> {
        let missing: Vec<(Side, i64)> = self
            .ladder
            .iter()
            .copied()
            .filter(|level| !self.live.values().any(|live| live == level))
            .collect();
        missing
            .into_iter()
            .map(|(side, price)| self.post(side, price, ts_unix_ms))
            .collect()
    }

    /// Follows one venue event: a quote that filled completely is posted
    /// again at the same price (the returned command); a quote cancelled or
    /// rejected is forgotten and not re-posted (a later [`Self::quotes`]
    /// puts it back). Events of other symbols or orders change nothing.
    pub fn on_event(&mut self, event: &Event) -> Vec<Command> {
        if event.symbol != self.config.symbol {
            return Vec::new();
        }
        let order_id = event.body.order_id();
        let Some(&(side, price)) = self.live.get(order_id) else {
            return Vec::new();
        };
        match &event.body {
            EventBody::Execution(execution) if execution.leaves_quantity == 0 => {
                self.live.remove(order_id);
                vec![self.post(side, price, event.ts_unix_ms)]
            }
            EventBody::Canceled(_) | EventBody::Rejected(_) => {
                self.live.remove(order_id);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// Applies `commands` to `venue`, then the market maker's answers to the
    /// events they cause, and so on until it has nothing to add, as a
    /// simulator that hosts the market maker beside its books would; returns
    /// every event in order. It ends: a quote is re-posted only after it
    /// filled completely, and each fill takes liquidity some other account
    /// left on the book (a quote meeting the market maker's own order is
    /// cancelled by self-trade prevention, not filled).
    pub fn drive(&mut self, venue: &mut Venue, commands: Vec<Command>) -> Vec<Event> {
        let mut pending = commands;
        let mut events = Vec::new();
        while !pending.is_empty() {
            let mut answers = Vec::new();
            for command in &pending {
                for event in venue.apply(command) {
                    answers.extend(self.on_event(&event));
                    events.push(event);
                }
            }
            pending = answers;
        }
        events
    }

    fn post(&mut self, side: Side, price: i64, ts_unix_ms: i64) -> Command {
        self.last_order_no += 1;
        let order_id = format!(
            "{}-{}-{}",
            self.config.order_id_prefix, self.config.symbol, self.last_order_no
        );
        self.live.insert(order_id.clone(), (side, price));
        Command::NewOrder(NewOrder {
            order_id,
            request_id: String::new(),
            account_id: self.config.account_id.clone(),
            symbol: self.config.symbol.clone(),
            side,
            price,
            quantity: self.config.quantity,
            ts_unix_ms,
        })
    }
}

/// The quote prices: bids at reference − k·tick, offers at reference + k·tick,
/// k = 1..=levels, each side best first.
fn ladder(config: &QuoteConfig) -> Result<Vec<(Side, i64)>, MarketMakerError> {
    let invalid_prices = MarketMakerError::InvalidPrices {
        reference_price: config.reference_price,
        tick: config.tick,
        levels: config.levels,
    };
    let invalid_size = MarketMakerError::InvalidSize {
        levels: config.levels,
        quantity: config.quantity,
    };
    if config.levels == 0 || config.quantity <= 0 {
        return Err(invalid_size);
    }
    if config.reference_price <= 0 || config.tick <= 0 {
        return Err(invalid_prices);
    }
    let span = config
        .tick
        .checked_mul(i64::from(config.levels))
        .ok_or(invalid_prices.clone())?;
    let lowest_bid = config.reference_price - span;
    let highest_ask = config
        .reference_price
        .checked_add(span)
        .ok_or(invalid_prices.clone())?;
    if lowest_bid <= 0 {
        return Err(invalid_prices);
    }
    if highest_ask.checked_mul(config.quantity).is_none() {
        return Err(invalid_size);
    }
    let steps = 1..=i64::from(config.levels);
    let bids = steps
        .clone()
        .map(|k| (Side::Buy, config.reference_price - k * config.tick));
    let asks = steps.map(|k| (Side::Sell, config.reference_price + k * config.tick));
    Ok(bids.chain(asks).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{Cancel, CancelReason};

    fn samsung() -> MarketMaker {
        let mut config = QuoteConfig::around("MM-0001", "005930", 70_000, 100);
        config.levels = 3;
        config.quantity = 10;
        MarketMaker::new(config).expect("valid config")
    }

    /// The market maker with its ladder posted on a fresh venue.
    fn quoted() -> (MarketMaker, Venue) {
        let mut mm = samsung();
        let mut venue = Venue::new();
        let quotes = mm.quotes(0);
        mm.drive(&mut venue, quotes);
        (mm, venue)
    }

    fn buy(order_id: &str, price: i64, quantity: i64) -> Command {
        Command::NewOrder(NewOrder {
            order_id: order_id.into(),
            request_id: format!("req-{order_id}"),
            account_id: "ACC-0001".into(),
            symbol: "005930".into(),
            side: Side::Buy,
            price,
            quantity,
            ts_unix_ms: 1_000,
        })
    }

    #[test]
    fn quotes_a_ladder_around_the_reference_price() {
        let mut mm = samsung();
        assert_eq!(
            mm.ladder(),
            [
                (Side::Buy, 69_900),
                (Side::Buy, 69_800),
                (Side::Buy, 69_700),
                (Side::Sell, 70_100),
                (Side::Sell, 70_200),
                (Side::Sell, 70_300),
            ]
        );
        let quotes = mm.quotes(0);
        assert_eq!(quotes.len(), 6);
        assert_eq!(quotes[0].order_id(), "MM-005930-1");
        assert!(mm.quotes(0).is_empty(), "a full ladder posts nothing more");

        let mut venue = Venue::new();
        mm.drive(&mut venue, quotes);
        let book = venue.book("005930").expect("book");
        assert_eq!(
            (book.best_bid(), book.best_ask()),
            (Some(69_900), Some(70_100))
        );
    }

    #[test]
    fn a_marketable_buy_fills_and_the_filled_quote_is_posted_again() {
        let (mut mm, mut venue) = quoted();

        // 15 shares at 70,200: all 10 of the 70,100 offer, 5 of the 70,200 one.
        let events = mm.drive(&mut venue, vec![buy("newcomer", 70_200, 15)]);
        let fills: Vec<(i64, i64)> = events
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Execution(x) if x.order_id == "newcomer" => Some((x.price, x.quantity)),
                _ => None,
            })
            .collect();
        assert_eq!(fills, [(70_100, 10), (70_200, 5)]);
        let book = venue.book("005930").expect("book");
        assert_eq!(book.order("newcomer").map(|o| o.leaves()), Some(0));
        // The filled 70,100 quote is back (a new id), the 70,200 one is partly filled.
        let asks = book.depth(Side::Sell);
        assert_eq!(asks[0].price, 70_100);
        assert_eq!(asks[0].quantity, 10);
        assert_eq!(asks[1].quantity, 5);
        assert!(mm
            .live_quotes()
            .any(|(id, _, price)| id == "MM-005930-7" && price == 70_100));
    }

    #[test]
    fn a_cancelled_quote_is_not_reposted_until_quotes_is_called() {
        let (mut mm, mut venue) = quoted();
        let cancel = Command::Cancel(Cancel {
            order_id: "MM-005930-1".into(),
            request_id: "ops".into(),
            symbol: "005930".into(),
            ts_unix_ms: 5,
        });
        let events = mm.drive(&mut venue, vec![cancel]);
        assert!(matches!(
            &events[0].body,
            EventBody::Canceled(c) if c.reason == CancelReason::Requested
        ));
        assert_eq!(mm.live_quotes().count(), 5);
        let again = mm.quotes(6);
        assert_eq!(again.len(), 1);
        assert!(matches!(&again[0], Command::NewOrder(o) if o.price == 69_900));
    }

    #[test]
    fn configurations_that_cannot_be_quoted_are_refused() {
        let base = QuoteConfig::around("MM", "005930", 70_000, 100);
        // What kind of refusal a changed config gets ("ok": none).
        let refusal = |change: fn(&mut QuoteConfig)| {
            let mut config = base.clone();
            change(&mut config);
            match MarketMaker::new(config) {
                Ok(_) => "ok",
                Err(MarketMakerError::InvalidPrices { .. }) => "prices",
                Err(MarketMakerError::InvalidSize { .. }) => "size",
                Err(MarketMakerError::InvalidId) => "id",
            }
        };
        type Change = fn(&mut QuoteConfig);
        let cases: [(Change, &str); 8] = [
            (|_| {}, "ok"),
            (|c| c.tick = 0, "prices"),
            (|c| c.reference_price = 300, "prices"), // 300 - 5 x 100 <= 0
            (|c| c.tick = i64::MAX, "prices"),
            (|c| c.levels = 0, "size"),
            (|c| c.quantity = i64::MAX, "size"),
            (|c| c.account_id.clear(), "id"),
            (|c| c.order_id_prefix = "p".repeat(40), "id"),
        ];
        for (n, (change, expected)) in cases.into_iter().enumerate() {
            assert_eq!(refusal(change), expected, "case {n}");
        }
    }
}
