//! [`RetryBudget`]: retries and hedges together may add at most a ratio of
//! recent requests plus a small floor per second.
//!
//! The accounting is tower's Finagle-style [`TpsBudget`] (deposit per original
//! request, withdraw per retry or hedge, over a sliding window); this type
//! adds the counters the snapshot reports.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tower::retry::budget::{Budget, TpsBudget};

/// A retry budget shared by every request of the gateway.
#[derive(Debug)]
pub struct RetryBudget {
    inner: TpsBudget,
    deposits: AtomicU64,
    granted: AtomicU64,
    denied: AtomicU64,
}

impl RetryBudget {
    /// `ratio` of requests (0.1 = 10 %) plus `min_per_sec` extra calls per
    /// second, counted over `window` (1–60 s; validated by the config).
    pub fn new(window: Duration, min_per_sec: u32, ratio: f32) -> RetryBudget {
        let window = window.clamp(Duration::from_secs(1), Duration::from_secs(60));
        let ratio = ratio.clamp(0.0, 1000.0);
        let min_per_sec = min_per_sec.min(i32::MAX as u32 - 1);
        RetryBudget {
            inner: TpsBudget::new(window, min_per_sec, ratio),
            deposits: AtomicU64::new(0),
            granted: AtomicU64::new(0),
            denied: AtomicU64::new(0),
        }
    }

    /// Records one original client request.
    pub fn deposit(&self) {
        self.deposits.fetch_add(1, Ordering::Relaxed);
        self.inner.deposit();
    }

    /// Takes one retry or hedge from the budget; `false` when it is empty.
    pub fn withdraw(&self) -> bool {
        let ok = self.inner.withdraw();
        let counter = if ok { &self.granted } else { &self.denied };
        counter.fetch_add(1, Ordering::Relaxed);
        ok
    }

    /// (requests deposited, extra calls granted, extra calls denied).
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.deposits.load(Ordering::Relaxed),
            self.granted.load(Ordering::Relaxed),
            self.denied.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(b: &RetryBudget) -> u64 {
        let mut n = 0;
        while b.withdraw() {
            n += 1;
            assert!(n < 100_000, "budget never empties");
        }
        n
    }

    #[test]
    fn floor_allows_min_per_sec_times_window_without_requests() {
        let b = RetryBudget::new(Duration::from_secs(10), 2, 0.1);
        let n = drain(&b);
        // Reserve = min_per_sec × window = 20.
        assert!((18..=22).contains(&n), "got {n}");
    }

    #[test]
    fn ratio_of_requests_is_added_to_the_floor() {
        let b = RetryBudget::new(Duration::from_secs(10), 1, 0.1);
        for _ in 0..1_000 {
            b.deposit();
        }
        let n = drain(&b);
        // 10 % of 1000 + floor of 10.
        assert!((100..=115).contains(&n), "got {n}");
        let (dep, granted, denied) = b.counts();
        assert_eq!(dep, 1_000);
        assert_eq!(granted, n);
        assert_eq!(denied, 1);
    }

    #[test]
    fn zero_floor_and_zero_ratio_deny_everything() {
        let b = RetryBudget::new(Duration::from_secs(1), 0, 0.0);
        for _ in 0..100 {
            b.deposit();
        }
        assert!(!b.withdraw());
    }
}
