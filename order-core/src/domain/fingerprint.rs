//! Idempotency fingerprints.

use sha2::{Digest, Sha256};

use super::ValidOrder;

/// SHA-256 (hex) over the canonical form
/// `account|symbol|side|type|price|quantity` of an order. Two requests with
/// the same `request_id` are the same order exactly when fingerprints match.
pub fn fingerprint(order: &ValidOrder) -> String {
    let canonical = format!(
        "{}|{}|{}|{}|{}|{}",
        order.account_id,
        order.symbol,
        order.side.as_str_name(),
        order.order_type.as_str_name(),
        order.price,
        order.quantity
    );
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hts_proto::v1::{OrderType, Side};

    fn order() -> ValidOrder {
        ValidOrder {
            account_id: "ACC-0001".into(),
            request_id: "r1".into(),
            symbol: "005930".into(),
            side: Side::Buy,
            order_type: OrderType::Limit,
            price: 70_000,
            quantity: 10,
            notional: 700_000,
        }
    }

    #[test]
    fn stable_known_value() {
        // Guard against accidental changes of the canonical form: stored
        // fingerprints must keep matching after upgrades.
        let expected = hex::encode(Sha256::digest(b"ACC-0001|005930|BUY|LIMIT|70000|10"));
        assert_eq!(fingerprint(&order()), expected);
        assert_eq!(fingerprint(&order()).len(), 64);
    }

    #[test]
    fn ignores_request_id_but_not_parameters() {
        let base = fingerprint(&order());
        let mut other = order();
        other.request_id = "r2".into();
        assert_eq!(fingerprint(&other), base);
        for change in [
            |o: &mut ValidOrder| o.price += 1,
            |o: &mut ValidOrder| o.quantity += 1,
            |o: &mut ValidOrder| o.side = Side::Sell,
            |o: &mut ValidOrder| o.symbol = "000660".into(),
            |o: &mut ValidOrder| o.account_id = "ACC-0002".into(),
        ] {
            let mut o = order();
            change(&mut o);
            assert_ne!(fingerprint(&o), base);
        }
    }
}
