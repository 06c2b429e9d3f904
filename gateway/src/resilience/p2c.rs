//! Power-of-two-choices load balancing: pick two distinct candidates at
//! random and keep the less loaded one, where load is
//! `(in_flight + 1) × latency EWMA`.
//!
//! Hand-written: tower's `p2c::Balance` owns its services and their
//! discovery, while here the candidates are filtered per attempt (healthy,
//! not draining, breaker admitting, not already tried), so the choice itself
//! is a small pure function.

use std::time::Duration;

use rand::Rng;

/// Parameters of load balancing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BalanceParams {
    /// Weight of the newest sample in each backend's latency EWMA.
    pub ewma_alpha: f64,
    /// A backend's EWMA halves for every this long without a sample (so an
    /// avoided backend is tried again); zero: never fades.
    pub ewma_half_life: Duration,
}

/// The load score of a backend with `in_flight` calls and latency EWMA
/// `ewma_micros` (0 when it has no samples yet).
pub fn score(in_flight: usize, ewma_micros: f64) -> f64 {
    (in_flight as f64 + 1.0) * ewma_micros.max(1.0)
}

/// Index of the chosen candidate, `None` when there is none.
pub fn pick<T>(candidates: &[T], load: impl Fn(&T) -> f64, rng: &mut impl Rng) -> Option<usize> {
    match candidates.len() {
        0 => None,
        1 => Some(0),
        n => {
            let a = rng.gen_range(0..n);
            let mut b = rng.gen_range(0..n - 1);
            if b >= a {
                b += 1;
            }
            Some(if load(&candidates[b]) < load(&candidates[a]) {
                b
            } else {
                a
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn empty_and_single() {
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(pick::<f64>(&[], |x| *x, &mut rng), None);
        assert_eq!(pick(&[5.0], |x| *x, &mut rng), Some(0));
    }

    #[test]
    fn never_picks_the_worst_of_three_and_prefers_the_best() {
        let mut rng = StdRng::seed_from_u64(7);
        let loads = [score(0, 1000.0), score(10, 1000.0), score(0, 50_000.0)];
        let mut hits = [0u32; 3];
        for _ in 0..3000 {
            hits[pick(&loads, |x| *x, &mut rng).unwrap()] += 1;
        }
        // The worst is only chosen if drawn twice, which cannot happen.
        assert_eq!(hits[2], 0, "{hits:?}");
        // The best wins every pair it is in: about 2/3 of the draws.
        assert!(hits[0] > 1800, "{hits:?}");
    }

    #[test]
    fn equal_loads_spread_evenly() {
        let mut rng = StdRng::seed_from_u64(3);
        let loads = [1.0; 4];
        let mut hits = [0u32; 4];
        for _ in 0..4000 {
            hits[pick(&loads, |x| *x, &mut rng).unwrap()] += 1;
        }
        assert!(hits.iter().all(|h| *h > 700), "{hits:?}");
    }

    #[test]
    fn in_flight_and_latency_both_count() {
        assert!(score(3, 1000.0) > score(0, 1000.0));
        assert!(score(0, 2000.0) > score(0, 1000.0));
        assert_eq!(
            score(0, 0.0),
            score(0, 1.0),
            "unknown latency is optimistic"
        );
    }
}
