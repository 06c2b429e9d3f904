//! What an order must hold on the account before it is accepted.

use hts_proto::v1::Side;
use hts_proto::CASH_ASSET;

use super::ValidOrder;

/// The reservation backing an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationSpec {
    /// Deterministic id `place:{account}:{request_id}`, so retries and
    /// concurrent twins of a request share one reservation.
    pub reservation_id: String,
    /// `CASH` for buys, the symbol for sells.
    pub asset: String,
    /// `price × quantity` of cash for buys, `quantity` shares for sells.
    pub amount: i64,
}

/// Computes the reservation an order needs.
pub fn reservation_for(order: &ValidOrder) -> ReservationSpec {
    let (asset, amount) = match order.side {
        Side::Sell => (order.symbol.clone(), order.quantity),
        // Validation admits only BUY and SELL.
        _ => (CASH_ASSET.to_owned(), order.notional),
    };
    ReservationSpec {
        reservation_id: format!("place:{}:{}", order.account_id, order.request_id),
        asset,
        amount,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hts_proto::v1::OrderType;

    fn order(side: Side) -> ValidOrder {
        ValidOrder {
            account_id: "ACC-0001".into(),
            request_id: "r1".into(),
            symbol: "005930".into(),
            side,
            order_type: OrderType::Limit,
            price: 70_000,
            quantity: 10,
            notional: 700_000,
        }
    }

    #[test]
    fn buy_reserves_cash() {
        let spec = reservation_for(&order(Side::Buy));
        assert_eq!(spec.reservation_id, "place:ACC-0001:r1");
        assert_eq!((spec.asset.as_str(), spec.amount), (CASH_ASSET, 700_000));
    }

    #[test]
    fn sell_reserves_shares() {
        let spec = reservation_for(&order(Side::Sell));
        assert_eq!((spec.asset.as_str(), spec.amount), ("005930", 10));
    }
}
