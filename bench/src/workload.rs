//! What the bench sends: accounts, unique request ids and order bodies.
//!
//! Orders are tiny (price 1..=100 ticks, quantity 1) so that the demo
//! balances (1e9 cash, 1e6 shares of each symbol per account) last through
//! long runs. Cancels and queries target orders the same connection placed
//! earlier in the run (a connection is logged in as one account, and another
//! account's orders are FORBIDDEN).

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use hts_proto::v1::{CancelOrderRequest, OrderType, PlaceOrderRequest, QueryOrderRequest, Side};
use rand::Rng;

use crate::mix::Kind;

/// Symbols the demo accounts hold positions in.
pub const SYMBOLS: [&str; 3] = ["005930", "000660", "035420"];

/// Most recent order ids a connection remembers for cancels and queries.
const POOL_CAPACITY: usize = 4096;

/// The demo account id number `index` (0-based): `ACC-0001`, `ACC-0002`, ...
pub fn account_id(index: usize) -> String {
    format!("ACC-{:04}", index + 1)
}

/// A short id unique to this run, prefixed to every request_id.
pub fn new_run_id() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let salt: u16 = rand::thread_rng().gen();
    format!("b{millis:x}{salt:04x}")
}

/// One request body, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A PlaceOrderRequest.
    Place(PlaceOrderRequest),
    /// A CancelOrderRequest.
    Cancel(CancelOrderRequest),
    /// A QueryOrderRequest.
    Query(QueryOrderRequest),
}

impl Body {
    /// The kind of request this body is.
    pub fn kind(&self) -> Kind {
        match self {
            Body::Place(_) => Kind::Place,
            Body::Cancel(_) => Kind::Cancel,
            Body::Query(_) => Kind::Query,
        }
    }
}

/// Orders one connection placed, for its later cancels and queries.
#[derive(Debug, Default)]
pub struct OrderPool {
    ids: VecDeque<String>,
}

impl OrderPool {
    /// Remembers a placed order.
    pub fn push(&mut self, order_id: String) {
        if self.ids.len() == POOL_CAPACITY {
            self.ids.pop_front();
        }
        self.ids.push_back(order_id);
    }

    /// Takes the oldest remembered order (it is about to be cancelled).
    pub fn take_oldest(&mut self) -> Option<String> {
        self.ids.pop_front()
    }

    /// A random remembered order, left in the pool.
    pub fn any(&self, rng: &mut impl Rng) -> Option<String> {
        if self.ids.is_empty() {
            return None;
        }
        self.ids.get(rng.gen_range(0..self.ids.len())).cloned()
    }

    /// How many orders are remembered.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no order is remembered.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Builds the body of request number `seq` of run `run_id`. A cancel or query
/// when `pool` holds no order yet becomes a place.
pub fn build(run_id: &str, seq: u64, kind: Kind, pool: &mut OrderPool, rng: &mut impl Rng) -> Body {
    let request_id = format!("{run_id}-{seq}");
    match kind {
        Kind::Cancel => {
            if let Some(order_id) = pool.take_oldest() {
                return Body::Cancel(CancelOrderRequest {
                    request_id,
                    order_id,
                });
            }
        }
        Kind::Query => {
            if let Some(order_id) = pool.any(rng) {
                return Body::Query(QueryOrderRequest { order_id });
            }
        }
        Kind::Place => {}
    }
    let side = if seq % 2 == 0 { Side::Buy } else { Side::Sell };
    Body::Place(PlaceOrderRequest {
        request_id,
        account_id: String::new(),
        symbol: SYMBOLS[(seq / 2 % SYMBOLS.len() as u64) as usize].to_owned(),
        side: side as i32,
        order_type: OrderType::Limit as i32,
        price: 1 + rng.gen_range(0..100),
        quantity: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn account_ids_match_the_demo_seed() {
        assert_eq!(account_id(0), "ACC-0001");
        assert_eq!(account_id(999), "ACC-1000");
    }

    #[test]
    fn run_ids_differ_and_fit_request_ids() {
        let a = new_run_id();
        let b = new_run_id();
        assert_ne!(a, b);
        assert!(format!("{a}-{}", u64::MAX).len() <= 64);
    }

    #[test]
    fn cancels_and_queries_need_placed_orders() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut pool = OrderPool::default();
        let b = build("r", 1, Kind::Cancel, &mut pool, &mut rng);
        let Body::Place(p) = b else {
            panic!("expected a place, got {b:?}")
        };
        assert_eq!(p.request_id, "r-1");
        assert!((1..=100).contains(&p.price));
        assert_eq!(p.quantity, 1);
        pool.push("o-1".into());
        pool.push("o-2".into());
        assert!(
            matches!(build("r", 2, Kind::Query, &mut pool, &mut rng), Body::Query(q) if q.order_id.starts_with("o-"))
        );
        assert_eq!(pool.len(), 2);
        assert!(
            matches!(build("r", 3, Kind::Cancel, &mut pool, &mut rng), Body::Cancel(c) if c.order_id == "o-1" && c.request_id == "r-3")
        );
        assert_eq!(pool.len(), 1);
    }

    #[test]
    fn pool_is_bounded() {
        let mut pool = OrderPool::default();
        for i in 0..(POOL_CAPACITY + 10) {
            pool.push(i.to_string());
        }
        assert_eq!(pool.len(), POOL_CAPACITY);
        assert_eq!(pool.take_oldest().as_deref(), Some("10"));
    }
}
