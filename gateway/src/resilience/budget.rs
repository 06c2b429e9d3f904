//! [`RetryBudget`]: retries and hedges together may add at most a ratio of
//! recent requests plus a small floor per second.
//!
//! The accounting is tower's Finagle-style [`TpsBudget`] (deposit per original
//! request, withdraw per retry or hedge, over a sliding window); this type
//! adds the counters the snapshot reports and a live [`RetryBudget::reconfigure`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tower::retry::budget::{Budget, TpsBudget};

/// Parameters of [`RetryBudget`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetParams {
    /// Window over which requests are counted (1–60 s; validated by the config).
    pub window: Duration,
    /// Extra calls per second always allowed.
    pub min_per_sec: u32,
    /// Share of requests (0.1 = 10 %) retries and hedges may add.
    pub ratio: f32,
}

/// A retry budget shared by every request of the gateway.
#[derive(Debug)]
pub struct RetryBudget {
    params: ArcSwap<BudgetParams>,
    inner: ArcSwap<TpsBudget>,
    deposits: AtomicU64,
    granted: AtomicU64,
    denied: AtomicU64,
}

fn tps(p: &BudgetParams) -> TpsBudget {
    let window = p
        .window
        .clamp(Duration::from_secs(1), Duration::from_secs(60));
    let ratio = p.ratio.clamp(0.0, 1000.0);
    let min_per_sec = p.min_per_sec.min(i32::MAX as u32 - 1);
    TpsBudget::new(window, min_per_sec, ratio)
}

impl RetryBudget {
    /// A full budget with `params`.
    pub fn new(params: BudgetParams) -> RetryBudget {
        RetryBudget {
            inner: ArcSwap::from_pointee(tps(&params)),
            params: ArcSwap::from_pointee(params),
            deposits: AtomicU64::new(0),
            granted: AtomicU64::new(0),
            denied: AtomicU64::new(0),
        }
    }

    /// Switches to `params`; the accounting starts afresh only if they changed.
    pub fn reconfigure(&self, params: BudgetParams) {
        if **self.params.load() != params {
            self.inner.store(Arc::new(tps(&params)));
            self.params.store(Arc::new(params));
        }
    }

    /// Records one original client request.
    pub fn deposit(&self) {
        self.deposits.fetch_add(1, Ordering::Relaxed);
        self.inner.load().deposit();
    }

    /// Takes one retry or hedge from the budget; `false` when it is empty.
    pub fn withdraw(&self) -> bool {
        let ok = self.inner.load().withdraw();
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

    fn budget(window: Duration, min_per_sec: u32, ratio: f32) -> RetryBudget {
        RetryBudget::new(BudgetParams {
            window,
            min_per_sec,
            ratio,
        })
    }

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
        let b = budget(Duration::from_secs(10), 2, 0.1);
        let n = drain(&b);
        // Reserve = min_per_sec × window = 20.
        assert!((18..=22).contains(&n), "got {n}");
    }

    #[test]
    fn ratio_of_requests_is_added_to_the_floor() {
        let b = budget(Duration::from_secs(10), 1, 0.1);
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
        let b = budget(Duration::from_secs(1), 0, 0.0);
        for _ in 0..100 {
            b.deposit();
        }
        assert!(!b.withdraw());
    }

    #[test]
    fn reconfigure_rebuilds_only_on_change() {
        let b = budget(Duration::from_secs(1), 0, 0.0);
        assert!(!b.withdraw());
        b.reconfigure(BudgetParams {
            window: Duration::from_secs(1),
            min_per_sec: 0,
            ratio: 0.0,
        });
        assert!(!b.withdraw(), "same parameters: same (empty) budget");
        b.reconfigure(BudgetParams {
            window: Duration::from_secs(10),
            min_per_sec: 5,
            ratio: 0.0,
        });
        assert!(b.withdraw(), "a new floor refills the budget");
    }
}
