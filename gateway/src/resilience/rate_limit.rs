//! [`AccountLimiter`]: a per-account token bucket (GCRA, `governor`), so one
//! noisy account cannot starve the others. Over the limit the request is
//! answered RATE_LIMITED without touching a backend.
//!
//! Memory stays bounded: accounts are authenticated (the key space is the
//! set of real accounts), and every [`PRUNE_EVERY`] checks the limiter
//! forgets accounts whose bucket is full again (idle accounts).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Checks between two prunes of idle accounts.
pub const PRUNE_EVERY: u64 = 4096;

/// Per-account request rate limit.
#[derive(Debug)]
pub struct AccountLimiter {
    limiter: DefaultKeyedRateLimiter<Arc<str>>,
    checks: AtomicU64,
    limited: AtomicU64,
}

impl AccountLimiter {
    /// `per_sec` sustained requests with bursts of `burst`; `None` when
    /// `per_sec` is 0 (no limit).
    pub fn new(per_sec: u32, burst: u32) -> Option<AccountLimiter> {
        let rate = NonZeroU32::new(per_sec)?;
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        Some(AccountLimiter {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            checks: AtomicU64::new(0),
            limited: AtomicU64::new(0),
        })
    }

    /// Takes one request of `account`; when it is over its limit, how long
    /// until its bucket holds a request again.
    pub fn check(&self, account: &Arc<str>) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(account).map_err(|not_until| {
            self.limited.fetch_add(1, Ordering::Relaxed);
            not_until.wait_time_from(DefaultClock::default().now())
        })
    }

    /// Requests refused since start.
    pub fn limited(&self) -> u64 {
        self.limited.load(Ordering::Relaxed)
    }

    /// Accounts currently tracked.
    pub fn tracked_accounts(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_rate_means_no_limiter() {
        assert!(AccountLimiter::new(0, 10).is_none());
    }

    #[test]
    fn burst_then_refuse_and_accounts_are_independent() {
        let l = AccountLimiter::new(1, 5).unwrap();
        let noisy: Arc<str> = Arc::from("ACC-NOISY");
        let quiet: Arc<str> = Arc::from("ACC-QUIET");
        let passed = (0..100).filter(|_| l.check(&noisy).is_ok()).count();
        assert_eq!(passed, 5, "burst of 5, then refused");
        assert_eq!(l.limited(), 95);
        let wait = l.check(&noisy).unwrap_err();
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::ZERO,
            "{wait:?}"
        );
        assert!(l.check(&quiet).is_ok(), "another account is unaffected");
    }

    #[test]
    fn idle_accounts_are_pruned() {
        let l = AccountLimiter::new(1_000_000, 1_000_000).unwrap();
        for i in 0..10_000 {
            let a: Arc<str> = Arc::from(format!("ACC-{i}"));
            assert!(l.check(&a).is_ok());
        }
        // With this rate every bucket refills at once: pruning keeps very few.
        assert!(l.tracked_accounts() < 5_000, "{}", l.tracked_accounts());
    }
}
