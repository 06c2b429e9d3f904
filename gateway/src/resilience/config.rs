//! [`ResilienceConfig`]: every policy setting between the correlation table
//! and the backends, declared once.
//!
//! Each field is at the same time a key of the `[resilience]` table of the
//! gateway's config file and a flag of `hts gateway` (`retry_backoff_ms` ↔
//! `--retry-backoff-ms`), with its default in the flag's `default_value_t`
//! (shown by `--help`) taken from a `DEFAULT_*` constant. Durations are
//! [`Millis`] (keys ending in `_ms`). [`ResilienceConfig::default`] is those
//! declared defaults.
//!
//! The policies never see this struct: each gets only its own parameters
//! ([`ResilienceConfig::admission`], [`ResilienceConfig::retry`],
//! [`ResilienceConfig::budget`], [`ResilienceConfig::hedge`],
//! [`ResilienceConfig::backend`]).

use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};

use crate::resilience::admission::AdmissionParams;
use crate::resilience::backend::BackendParams;
use crate::resilience::breaker::BreakerConfig;
use crate::resilience::budget::BudgetParams;
use crate::resilience::health::HealthParams;
use crate::resilience::hedge::HedgeParams;
use crate::resilience::limit::LimitParams;
use crate::resilience::p2c::BalanceParams;
use crate::resilience::retry::RetryParams;
use crate::units::Millis;

/// Default number of retries of one client request.
pub const DEFAULT_MAX_RETRIES: u32 = 1;
/// Default pause before a retry.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(10);
/// Default share of recent requests that retries and hedges may add.
pub const DEFAULT_RETRY_BUDGET_RATIO: f32 = 0.1;
/// Default retries per second always allowed on top of the ratio.
pub const DEFAULT_RETRY_BUDGET_MIN_PER_SEC: u32 = 10;
/// Default window over which the retry budget counts requests.
pub const DEFAULT_RETRY_BUDGET_WINDOW: Duration = Duration::from_secs(10);
/// Hedging is on by default.
pub const DEFAULT_HEDGING: bool = true;
/// Default lower bound of the hedge delay.
pub const DEFAULT_HEDGE_MIN_DELAY: Duration = Duration::from_millis(2);
/// Default upper bound of the hedge delay.
pub const DEFAULT_HEDGE_MAX_DELAY: Duration = Duration::from_millis(40);
/// Default quantile of the pool's recent latency used as the hedge delay.
pub const DEFAULT_HEDGE_QUANTILE: f64 = 0.95;
/// Default length of the rotating latency window (p95/p99 cover one to two windows).
pub const DEFAULT_LATENCY_WINDOW: Duration = Duration::from_secs(5);
/// Default number of recent calls the breaker looks at (and minimum volume).
pub const DEFAULT_BREAKER_WINDOW: usize = 50;
/// Default failure ratio at which the breaker opens.
pub const DEFAULT_BREAKER_FAILURE_RATIO: f64 = 0.2;
/// Default time an open breaker stays open before half-open.
pub const DEFAULT_BREAKER_DELAY: Duration = Duration::from_secs(30);
/// Default cap of the open delay after repeated half-open failures.
pub const DEFAULT_BREAKER_MAX_DELAY: Duration = Duration::from_secs(300);
/// Default number of probe calls a half-open breaker lets through.
pub const DEFAULT_BREAKER_HALF_OPEN_PROBES: u32 = 3;
/// Default in-flight limit per backend.
pub const DEFAULT_MAX_IN_FLIGHT_PER_BACKEND: usize = 128;
/// Default in-flight limit over all backends.
pub const DEFAULT_MAX_IN_FLIGHT_GLOBAL: usize = 1024;
/// Default sustained requests per second per account.
pub const DEFAULT_ACCOUNT_RATE_PER_SEC: u32 = 2_000;
/// Default burst per account.
pub const DEFAULT_ACCOUNT_BURST: u32 = 4_000;
/// Default interval of active gRPC health checks.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_millis(500);
/// Default timeout of one health check.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_millis(250);
/// Default consecutive failed health checks that eject a backend.
pub const DEFAULT_HEALTH_UNHEALTHY_THRESHOLD: u32 = 2;
/// Default consecutive transport failures that eject a backend (0 = off).
pub const DEFAULT_OUTLIER_CONSECUTIVE_FAILURES: u32 = 5;
/// Default time an outlier stays ejected.
pub const DEFAULT_OUTLIER_EJECTION: Duration = Duration::from_secs(5);
/// Default weight of the newest sample in the latency EWMA.
pub const DEFAULT_EWMA_ALPHA: f64 = 0.2;
/// Default half-life of a latency EWMA that receives no samples.
pub const DEFAULT_EWMA_HALF_LIFE: Duration = Duration::from_millis(500);
/// Per-backend in-flight limits adapt by default.
pub const DEFAULT_ADAPTIVE_LIMIT: bool = true;
/// Default adaptive limit of a new backend (low: it grows within a few
/// dozen fast answers, while a high start would queue a cold burst deep in
/// a slow backend before the first answer says so).
pub const DEFAULT_LIMIT_INITIAL: usize = 4;
/// Default floor of the adaptive limit.
pub const DEFAULT_LIMIT_MIN: usize = 2;
/// Default share of the request deadline an answer may take before the
/// adaptive limit shrinks whatever its long average says.
pub const DEFAULT_LIMIT_LATENCY_SHARE: f64 = 0.25;
/// Default latency rise over the long average tolerated before the limit shrinks.
pub const DEFAULT_LIMIT_TOLERANCE: f64 = 3.0;
/// Default calls per backend reserved beyond its limit for cancels.
pub const DEFAULT_PRIORITY_RESERVE: usize = 8;
/// Default requests of the global in-flight limit only cancels may use.
pub const DEFAULT_GLOBAL_PRIORITY_RESERVE: usize = 128;
/// Default share of the request deadline a request may wait for capacity.
pub const DEFAULT_QUEUE_WAIT_SHARE: f64 = 0.5;
/// Default sustained cancels per second per account (their own bucket).
pub const DEFAULT_CANCEL_RATE_PER_SEC: u32 = 2_000;
/// Default cancel burst per account.
pub const DEFAULT_CANCEL_BURST: u32 = 4_000;

/// A configuration value is out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid resilience setting {key}: {reason}")]
pub struct ConfigError {
    /// The offending key.
    pub key: &'static str,
    /// Why it was refused.
    pub reason: String,
}

/// All resilience policies; see the module documentation.
#[derive(Debug, Clone, PartialEq, Parser, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResilienceConfig {
    /// Retries per request (each to a different backend).
    #[arg(long, default_value_t = DEFAULT_MAX_RETRIES)]
    pub max_retries: u32,
    /// Pause before a retry, in milliseconds.
    #[arg(long, default_value_t = Millis(DEFAULT_RETRY_BACKOFF))]
    pub retry_backoff_ms: Millis,
    /// Share of recent requests that retries and hedges may add (0.1 = 10 %).
    #[arg(long, default_value_t = DEFAULT_RETRY_BUDGET_RATIO)]
    pub retry_budget_ratio: f32,
    /// Retries per second always allowed on top of the ratio.
    #[arg(long, default_value_t = DEFAULT_RETRY_BUDGET_MIN_PER_SEC)]
    pub retry_budget_min_per_sec: u32,
    /// Window of the retry budget, in milliseconds (1000-60000).
    #[arg(long, default_value_t = Millis(DEFAULT_RETRY_BUDGET_WINDOW))]
    pub retry_budget_window_ms: Millis,
    /// Hedge slow requests that carry a request_id (true/false).
    #[arg(long, default_value_t = DEFAULT_HEDGING, action = clap::ArgAction::Set)]
    pub hedging: bool,
    /// Lower bound of the hedge delay, in milliseconds.
    #[arg(long, default_value_t = Millis(DEFAULT_HEDGE_MIN_DELAY))]
    pub hedge_min_delay_ms: Millis,
    /// Upper bound of the hedge delay, in milliseconds.
    #[arg(long, default_value_t = Millis(DEFAULT_HEDGE_MAX_DELAY))]
    pub hedge_max_delay_ms: Millis,
    /// Quantile of the pool's recent latency used as the hedge delay (0-1).
    #[arg(long, default_value_t = DEFAULT_HEDGE_QUANTILE)]
    pub hedge_quantile: f64,
    /// Length of the rotating latency window, in milliseconds.
    #[arg(long, default_value_t = Millis(DEFAULT_LATENCY_WINDOW))]
    pub latency_window_ms: Millis,
    /// Recent calls per backend the breaker evaluates (and its minimum volume).
    #[arg(long, default_value_t = DEFAULT_BREAKER_WINDOW)]
    pub breaker_window: usize,
    /// Failure ratio (0-1] at which a backend's breaker opens.
    #[arg(long, default_value_t = DEFAULT_BREAKER_FAILURE_RATIO)]
    pub breaker_failure_ratio: f64,
    /// Time an open breaker waits before half-open, in milliseconds.
    #[arg(long, default_value_t = Millis(DEFAULT_BREAKER_DELAY))]
    pub breaker_delay_ms: Millis,
    /// Cap of the doubled open period after failed probes, in milliseconds.
    #[arg(long, default_value_t = Millis(DEFAULT_BREAKER_MAX_DELAY))]
    pub breaker_max_delay_ms: Millis,
    /// Probe calls a half-open breaker lets through; all must succeed to close.
    #[arg(long, default_value_t = DEFAULT_BREAKER_HALF_OPEN_PROBES)]
    pub breaker_half_open_probes: u32,
    /// In-flight calls per backend at most (the ceiling of its adaptive limit).
    #[arg(long, default_value_t = DEFAULT_MAX_IN_FLIGHT_PER_BACKEND)]
    pub max_in_flight_per_backend: usize,
    /// Adapt each backend's in-flight limit to its latency (true/false);
    /// false: the limit is max_in_flight_per_backend.
    #[arg(long, default_value_t = DEFAULT_ADAPTIVE_LIMIT, action = clap::ArgAction::Set)]
    pub adaptive_limit: bool,
    /// Adaptive limit of a backend before its first answers.
    #[arg(long, default_value_t = DEFAULT_LIMIT_INITIAL)]
    pub limit_initial: usize,
    /// Floor of the adaptive limit.
    #[arg(long, default_value_t = DEFAULT_LIMIT_MIN)]
    pub limit_min: usize,
    /// Share of the request deadline (0-1] an answer may take before the
    /// adaptive limit shrinks, whatever the backend's long-run latency.
    #[arg(long, default_value_t = DEFAULT_LIMIT_LATENCY_SHARE)]
    pub limit_latency_share: f64,
    /// Latency rise over the backend's long-run average tolerated before the
    /// adaptive limit shrinks (>= 1).
    #[arg(long, default_value_t = DEFAULT_LIMIT_TOLERANCE)]
    pub limit_tolerance: f64,
    /// Calls per backend reserved beyond its limit for cancels.
    #[arg(long, default_value_t = DEFAULT_PRIORITY_RESERVE)]
    pub priority_reserve: usize,
    /// Share of the request deadline (0-1) a request may wait for a backend
    /// to have room; a request that could not be served in it is refused at
    /// once ("not placed", with a retry-after hint).
    #[arg(long, default_value_t = DEFAULT_QUEUE_WAIT_SHARE)]
    pub queue_wait_share: f64,
    /// Client requests in flight towards backends over the whole gateway.
    #[arg(long, default_value_t = DEFAULT_MAX_IN_FLIGHT_GLOBAL)]
    pub max_in_flight_global: usize,
    /// Requests of max_in_flight_global only cancels may use.
    #[arg(long, default_value_t = DEFAULT_GLOBAL_PRIORITY_RESERVE)]
    pub global_priority_reserve: usize,
    /// Sustained places and queries per second per account (0 = no limit).
    #[arg(long, default_value_t = DEFAULT_ACCOUNT_RATE_PER_SEC)]
    pub account_rate_per_sec: u32,
    /// Burst per account.
    #[arg(long, default_value_t = DEFAULT_ACCOUNT_BURST)]
    pub account_burst: u32,
    /// Sustained cancels per second per account, a bucket of their own (0 = no limit).
    #[arg(long, default_value_t = DEFAULT_CANCEL_RATE_PER_SEC)]
    pub cancel_rate_per_sec: u32,
    /// Cancel burst per account.
    #[arg(long, default_value_t = DEFAULT_CANCEL_BURST)]
    pub cancel_burst: u32,
    /// Interval of active gRPC health checks, in milliseconds.
    #[arg(long, default_value_t = Millis(DEFAULT_HEALTH_INTERVAL))]
    pub health_interval_ms: Millis,
    /// Timeout of one health check, in milliseconds.
    #[arg(long, default_value_t = Millis(DEFAULT_HEALTH_TIMEOUT))]
    pub health_timeout_ms: Millis,
    /// Consecutive failed health checks that take a backend out of the pool.
    #[arg(long, default_value_t = DEFAULT_HEALTH_UNHEALTHY_THRESHOLD)]
    pub health_unhealthy_threshold: u32,
    /// Consecutive transport failures that eject a backend (0 = off).
    #[arg(long, default_value_t = DEFAULT_OUTLIER_CONSECUTIVE_FAILURES)]
    pub outlier_consecutive_failures: u32,
    /// Time an ejected outlier stays out, in milliseconds.
    #[arg(long, default_value_t = Millis(DEFAULT_OUTLIER_EJECTION))]
    pub outlier_ejection_ms: Millis,
    /// Weight of the newest sample in each backend's latency EWMA (0-1].
    #[arg(long, default_value_t = DEFAULT_EWMA_ALPHA)]
    pub ewma_alpha: f64,
    /// A backend's EWMA halves for every this long without a sample, in
    /// milliseconds (so an avoided backend is tried again); 0 = never fades.
    #[arg(long, default_value_t = Millis(DEFAULT_EWMA_HALF_LIFE))]
    pub ewma_half_life_ms: Millis,
}

impl Default for ResilienceConfig {
    /// The declared defaults (each flag's `default_value_t`).
    fn default() -> ResilienceConfig {
        ResilienceConfig::try_parse_from(["defaults"])
            .expect("the declared defaults of every resilience flag parse")
    }
}

impl ResilienceConfig {
    /// Checks every value the policies cannot work with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(key: &'static str, reason: impl Into<String>) -> Result<(), ConfigError> {
            Err(ConfigError {
                key,
                reason: reason.into(),
            })
        }
        let window = *self.retry_budget_window_ms;
        if window < Duration::from_secs(1) || window > Duration::from_secs(60) {
            return bad("retry_budget_window_ms", "must be between 1000 and 60000");
        }
        if !(0.0..=10.0).contains(&self.retry_budget_ratio) {
            return bad("retry_budget_ratio", "must be between 0 and 10");
        }
        if self.retry_budget_min_per_sec >= i32::MAX as u32 {
            return bad("retry_budget_min_per_sec", "too large");
        }
        if self.hedge_min_delay_ms > self.hedge_max_delay_ms {
            return bad("hedge_min_delay_ms", "must not exceed hedge_max_delay_ms");
        }
        if !(0.0..=1.0).contains(&self.hedge_quantile) {
            return bad("hedge_quantile", "must be between 0 and 1");
        }
        if self.latency_window_ms.is_zero() {
            return bad("latency_window_ms", "must be positive");
        }
        if self.breaker_window == 0 {
            return bad("breaker_window", "must be positive");
        }
        if self.breaker_failure_ratio.is_nan() || self.breaker_failure_ratio <= 0.0 {
            return bad("breaker_failure_ratio", "must be positive");
        }
        if self.breaker_half_open_probes == 0 {
            return bad("breaker_half_open_probes", "must be positive");
        }
        if self.max_in_flight_per_backend == 0 || self.max_in_flight_global == 0 {
            return bad("max_in_flight_*", "must be positive");
        }
        if self.account_rate_per_sec > 0 && self.account_burst == 0 {
            return bad("account_burst", "must be positive when a rate is set");
        }
        if self.cancel_rate_per_sec > 0 && self.cancel_burst == 0 {
            return bad("cancel_burst", "must be positive when a rate is set");
        }
        if self.limit_min == 0 || self.limit_min > self.max_in_flight_per_backend {
            return bad(
                "limit_min",
                "must be between 1 and max_in_flight_per_backend",
            );
        }
        if !(self.limit_latency_share > 0.0 && self.limit_latency_share <= 1.0) {
            return bad("limit_latency_share", "must be in (0, 1]");
        }
        if self.limit_tolerance.is_nan() || self.limit_tolerance < 1.0 {
            return bad("limit_tolerance", "must be at least 1");
        }
        if !(0.0..1.0).contains(&self.queue_wait_share) {
            return bad("queue_wait_share", "must be in [0, 1)");
        }
        if self.global_priority_reserve >= self.max_in_flight_global {
            return bad(
                "global_priority_reserve",
                "must be below max_in_flight_global",
            );
        }
        if self.health_interval_ms.is_zero() || self.health_timeout_ms.is_zero() {
            return bad("health_*_ms", "must be positive");
        }
        if self.ewma_alpha.is_nan() || self.ewma_alpha <= 0.0 || self.ewma_alpha > 1.0 {
            return bad("ewma_alpha", "must be in (0, 1]");
        }
        Ok(())
    }

    /// The admission policy's parameters.
    pub fn admission(&self) -> AdmissionParams {
        AdmissionParams {
            max_in_flight: self.max_in_flight_global,
            priority_reserve: self.global_priority_reserve,
            account_rate_per_sec: self.account_rate_per_sec,
            account_burst: self.account_burst,
            cancel_rate_per_sec: self.cancel_rate_per_sec,
            cancel_burst: self.cancel_burst,
        }
    }

    /// The retry policy's parameters.
    pub fn retry(&self) -> RetryParams {
        RetryParams {
            max_retries: self.max_retries,
            backoff: *self.retry_backoff_ms,
        }
    }

    /// The retry budget's parameters (shared by retries and hedges).
    pub fn budget(&self) -> BudgetParams {
        BudgetParams {
            window: *self.retry_budget_window_ms,
            min_per_sec: self.retry_budget_min_per_sec,
            ratio: self.retry_budget_ratio,
        }
    }

    /// How long a request with deadline `request_timeout` may wait for a
    /// backend to have room.
    pub fn queue_wait(&self, request_timeout: Duration) -> Duration {
        request_timeout.mul_f64(self.queue_wait_share)
    }

    /// The hedging policy's parameters.
    pub fn hedge(&self) -> HedgeParams {
        HedgeParams {
            enabled: self.hedging,
            min_delay: *self.hedge_min_delay_ms,
            max_delay: *self.hedge_max_delay_ms,
            quantile: self.hedge_quantile,
            latency_window: *self.latency_window_ms,
        }
    }

    /// The breaker's parameters.
    pub fn breaker(&self) -> BreakerConfig {
        BreakerConfig {
            window: self.breaker_window,
            failure_ratio: self.breaker_failure_ratio,
            delay: *self.breaker_delay_ms,
            max_delay: *self.breaker_max_delay_ms,
            half_open_probes: self.breaker_half_open_probes,
        }
    }

    /// The per-backend policies' parameters for requests with deadline
    /// `request_timeout`: adaptive limit, breaker, health and load balancing.
    pub fn backend(&self, request_timeout: Duration) -> BackendParams {
        BackendParams {
            limit: LimitParams {
                adaptive: self.adaptive_limit,
                initial: self.limit_initial,
                min: self.limit_min,
                max: self.max_in_flight_per_backend,
                target: request_timeout.mul_f64(self.limit_latency_share),
                tolerance: self.limit_tolerance,
                smoothing: 0.2,
                long_window: 600,
            },
            priority_reserve: self.priority_reserve,
            breaker: self.breaker(),
            health: HealthParams {
                interval: *self.health_interval_ms,
                timeout: *self.health_timeout_ms,
                unhealthy_threshold: self.health_unhealthy_threshold,
                outlier_consecutive_failures: self.outlier_consecutive_failures,
                outlier_ejection: *self.outlier_ejection_ms,
            },
            balance: BalanceParams {
                ewma_alpha: self.ewma_alpha,
                ewma_half_life: *self.ewma_half_life_ms,
            },
            latency_window: *self.latency_window_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_design() {
        let c = ResilienceConfig::default();
        assert_eq!(c.max_retries, 1);
        assert_eq!(*c.retry_backoff_ms, Duration::from_millis(10));
        assert!((c.retry_budget_ratio - 0.1).abs() < f32::EPSILON);
        assert_eq!(*c.retry_budget_window_ms, Duration::from_secs(10));
        assert_eq!(c.breaker_window, 50);
        assert!((c.breaker_failure_ratio - 0.2).abs() < f64::EPSILON);
        assert_eq!(*c.breaker_delay_ms, Duration::from_secs(30));
        assert_eq!(c.max_in_flight_per_backend, 128);
        assert!(c.hedging);
        assert_eq!(*c.ewma_half_life_ms, DEFAULT_EWMA_HALF_LIFE);
        c.validate().unwrap();
    }

    #[test]
    fn toml_overrides_some_keys_and_keeps_defaults() {
        let c: ResilienceConfig =
            toml::from_str("max_retries = 2\nbreaker_delay_ms = 1000\nhedging = false\n").unwrap();
        assert_eq!(c.max_retries, 2);
        assert_eq!(*c.breaker_delay_ms, Duration::from_secs(1));
        assert!(!c.hedging);
        assert_eq!(c.breaker_window, DEFAULT_BREAKER_WINDOW);
        assert!(toml::from_str::<ResilienceConfig>("no_such_key = 1").is_err());
    }

    #[test]
    fn every_key_is_also_a_flag() {
        let c = ResilienceConfig::try_parse_from([
            "gateway",
            "--hedging",
            "false",
            "--retry-budget-window-ms",
            "2000",
            "--ewma-alpha",
            "0.5",
        ])
        .unwrap();
        assert!(!c.hedging);
        assert_eq!(*c.retry_budget_window_ms, Duration::from_secs(2));
        assert!((c.ewma_alpha - 0.5).abs() < f64::EPSILON);
        // Every serialised key has a flag of the same name.
        let keys = serde_json::to_value(&c).unwrap();
        let command = <ResilienceConfig as clap::CommandFactory>::command();
        for key in keys.as_object().unwrap().keys() {
            assert!(
                command.get_arguments().any(|a| a.get_id() == key.as_str()),
                "{key} has no flag"
            );
        }
    }

    #[test]
    fn validation_refuses_bad_values() {
        let c = ResilienceConfig {
            retry_budget_window_ms: Millis(Duration::from_millis(10)),
            ..ResilienceConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "retry_budget_window_ms");
        let c = ResilienceConfig {
            hedge_min_delay_ms: Millis(Duration::from_secs(1)),
            ..ResilienceConfig::default()
        };
        assert!(c.validate().is_err());
        let c = ResilienceConfig {
            breaker_failure_ratio: f64::NAN,
            ..ResilienceConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
