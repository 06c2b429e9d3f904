//! Resilience policies between the correlation table and the backends.
//!
//! A client request enters [`Router::call`] with its deadline and leaves with
//! exactly one typed answer. On the way, small single-purpose pieces decide:
//!
//! * [`rate_limit`]: per-account token bucket → RATE_LIMITED;
//! * the global in-flight limit and each backend's bulkhead ([`backend`]) →
//!   SERVICE_UNAVAILABLE at once, never a queue;
//! * [`set`] + [`p2c`]: which healthy, non-draining, breaker-admitting backend
//!   gets the attempt (power of two choices by in-flight × latency EWMA);
//! * [`breaker`]: per-backend circuit breaker; [`health`]: active gRPC
//!   health checks and passive outlier ejection;
//! * [`router`]: deadline, retries (to a different backend, only when safe)
//!   and hedging after the pool's recent p95 ([`latency`]), both drawing on
//!   the [`budget`].
//!
//! Every value comes from one [`ResilienceConfig`], held in [`Live`] so a
//! config reload changes policies without a restart.

pub mod backend;
pub mod breaker;
pub mod budget;
pub mod config;
pub mod health;
pub mod latency;
pub mod p2c;
pub mod rate_limit;
pub mod router;
pub mod set;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

pub use backend::BackendSnapshot;
pub use config::{ConfigError, ResilienceConfig};
pub use router::{Router, RouterSnapshot};
pub use set::{BackendSet, NoBackend, SetError};

use budget::RetryBudget;
use latency::LatencyTracker;
use rate_limit::AccountLimiter;

/// Samples the pool needs in its recent window before hedging starts:
/// without a measured p95 there is no sound hedge delay (and a cold start is
/// exactly when extra load hurts most).
pub const MIN_HEDGE_SAMPLES: u64 = 20;

/// The live policy state: the current config and the pieces built from it.
/// Readers load without locking; [`Live::apply`] swaps in new values.
#[derive(Debug)]
pub struct Live {
    config: ArcSwap<ResilienceConfig>,
    budget: ArcSwap<RetryBudget>,
    limiter: ArcSwap<Option<AccountLimiter>>,
    pool_latency: ArcSwap<LatencyTracker>,
}

fn budget_of(c: &ResilienceConfig) -> RetryBudget {
    RetryBudget::new(
        c.retry_budget_window,
        c.retry_budget_min_per_sec,
        c.retry_budget_ratio,
    )
}

fn latency_of(c: &ResilienceConfig) -> LatencyTracker {
    LatencyTracker::new(c.latency_window, c.hedge_quantile)
}

impl Live {
    /// Live state for a validated `config`.
    pub fn new(config: ResilienceConfig) -> Result<Live, ConfigError> {
        config.validate()?;
        Ok(Live {
            budget: ArcSwap::from_pointee(budget_of(&config)),
            limiter: ArcSwap::from_pointee(AccountLimiter::new(
                config.account_rate_per_sec,
                config.account_burst,
            )),
            pool_latency: ArcSwap::from_pointee(latency_of(&config)),
            config: ArcSwap::from_pointee(config),
        })
    }

    /// The current configuration.
    pub fn config(&self) -> Arc<ResilienceConfig> {
        self.config.load_full()
    }

    /// Switches to `config`; parts whose settings changed start afresh.
    pub fn apply(&self, config: ResilienceConfig) -> Result<(), ConfigError> {
        config.validate()?;
        let old = self.config();
        if (
            old.retry_budget_window,
            old.retry_budget_min_per_sec,
            old.retry_budget_ratio,
        ) != (
            config.retry_budget_window,
            config.retry_budget_min_per_sec,
            config.retry_budget_ratio,
        ) {
            self.budget.store(Arc::new(budget_of(&config)));
        }
        if (old.account_rate_per_sec, old.account_burst)
            != (config.account_rate_per_sec, config.account_burst)
        {
            self.limiter.store(Arc::new(AccountLimiter::new(
                config.account_rate_per_sec,
                config.account_burst,
            )));
        }
        if (old.latency_window, old.hedge_quantile)
            != (config.latency_window, config.hedge_quantile)
        {
            self.pool_latency.store(Arc::new(latency_of(&config)));
        }
        self.config.store(Arc::new(config));
        Ok(())
    }

    /// The retry budget.
    pub fn budget(&self) -> Arc<RetryBudget> {
        self.budget.load_full()
    }

    /// The per-account limiter (`None` = no limit).
    pub fn limiter(&self) -> Arc<Option<AccountLimiter>> {
        self.limiter.load_full()
    }

    /// The pool's latency tracker.
    pub fn pool_latency(&self) -> Arc<LatencyTracker> {
        self.pool_latency.load_full()
    }

    /// The hedge delay as of `now`: the pool's recent configured quantile
    /// (p95 by default) clamped to [hedge_min_delay, hedge_max_delay];
    /// `None` (no hedging) until [`MIN_HEDGE_SAMPLES`] calls were measured.
    pub fn hedge_delay(&self, now: Instant) -> Option<Duration> {
        let cfg = self.config.load();
        let q = self.pool_latency.load().quantiles(now);
        if q.count < MIN_HEDGE_SAMPLES {
            return None;
        }
        Some(q.configured.clamp(cfg.hedge_min_delay, cfg.hedge_max_delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hedge_delay_follows_p95_within_bounds() {
        let live = Live::new(ResilienceConfig {
            hedge_min_delay: Duration::from_millis(2),
            hedge_max_delay: Duration::from_millis(40),
            ..ResilienceConfig::default()
        })
        .unwrap();
        let now = Instant::now();
        assert_eq!(live.hedge_delay(now), None, "no samples yet: no hedging");
        for _ in 0..100 {
            live.pool_latency().record(Duration::from_millis(10), now);
        }
        let now = now + latency::REFRESH;
        let d = live.hedge_delay(now).unwrap();
        assert!(
            d >= Duration::from_millis(9) && d <= Duration::from_millis(11),
            "{d:?}"
        );
        for _ in 0..100 {
            live.pool_latency().record(Duration::from_secs(1), now);
        }
        let later = now + latency::REFRESH;
        assert_eq!(
            live.hedge_delay(later),
            Some(Duration::from_millis(40)),
            "capped"
        );
    }

    #[test]
    fn apply_validates_and_rebuilds_changed_parts() {
        let live = Live::new(ResilienceConfig::default()).unwrap();
        let budget = live.budget();
        let bad = ResilienceConfig {
            breaker_window: 0,
            ..ResilienceConfig::default()
        };
        assert!(live.apply(bad).is_err());
        assert_eq!(
            live.config().breaker_window,
            50,
            "a bad config changes nothing"
        );
        live.apply(ResilienceConfig {
            max_retries: 3,
            ..ResilienceConfig::default()
        })
        .unwrap();
        assert_eq!(live.config().max_retries, 3);
        assert!(Arc::ptr_eq(&budget, &live.budget()), "budget kept");
        live.apply(ResilienceConfig {
            retry_budget_ratio: 0.5,
            account_rate_per_sec: 0,
            ..ResilienceConfig::default()
        })
        .unwrap();
        assert!(!Arc::ptr_eq(&budget, &live.budget()), "budget rebuilt");
        assert!(live.limiter().is_none());
    }
}
