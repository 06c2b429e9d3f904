//! [`ResilienceConfig`]: every policy between the correlation table and the
//! backends, with named defaults. Deserialisable from the `[resilience]`
//! table of the gateway's TOML config file; durations are milliseconds in
//! fields ending in `_ms`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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

/// A configuration value is out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid resilience setting {key}: {reason}")]
pub struct ConfigError {
    /// The offending key.
    pub key: &'static str,
    /// Why it was refused.
    pub reason: String,
}

/// All resilience policies. Every field has a `DEFAULT_*` constant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResilienceConfig {
    /// Retries of one client request (each to a different backend).
    pub max_retries: u32,
    /// Pause before a retry.
    #[serde(rename = "retry_backoff_ms", with = "millis")]
    pub retry_backoff: Duration,
    /// Share of recent requests that retries and hedges may add (0.1 = 10 %).
    pub retry_budget_ratio: f32,
    /// Retries per second always allowed on top of the ratio.
    pub retry_budget_min_per_sec: u32,
    /// Window of the retry budget (1–60 s).
    #[serde(rename = "retry_budget_window_ms", with = "millis")]
    pub retry_budget_window: Duration,
    /// Whether slow attempts of requests with a request_id are hedged.
    pub hedging: bool,
    /// Lower bound of the hedge delay.
    #[serde(rename = "hedge_min_delay_ms", with = "millis")]
    pub hedge_min_delay: Duration,
    /// Upper bound of the hedge delay.
    #[serde(rename = "hedge_max_delay_ms", with = "millis")]
    pub hedge_max_delay: Duration,
    /// Quantile of the pool's recent latency used as hedge delay.
    pub hedge_quantile: f64,
    /// Length of the rotating latency window.
    #[serde(rename = "latency_window_ms", with = "millis")]
    pub latency_window: Duration,
    /// Recent calls per backend the breaker evaluates; also the minimum volume.
    pub breaker_window: usize,
    /// Failure ratio (0–1] at which a backend's breaker opens.
    pub breaker_failure_ratio: f64,
    /// Time an open breaker waits before half-open.
    #[serde(rename = "breaker_delay_ms", with = "millis")]
    pub breaker_delay: Duration,
    /// Cap of the doubled open delay after failed probes.
    #[serde(rename = "breaker_max_delay_ms", with = "millis")]
    pub breaker_max_delay: Duration,
    /// Probe calls a half-open breaker lets through; all must succeed to close.
    pub breaker_half_open_probes: u32,
    /// In-flight calls per backend; beyond it the backend takes no more.
    pub max_in_flight_per_backend: usize,
    /// Client requests in flight towards backends over the whole gateway.
    pub max_in_flight_global: usize,
    /// Sustained requests per second per account (0 = no limit).
    pub account_rate_per_sec: u32,
    /// Burst per account.
    pub account_burst: u32,
    /// Interval of active gRPC health checks.
    #[serde(rename = "health_interval_ms", with = "millis")]
    pub health_interval: Duration,
    /// Timeout of one health check.
    #[serde(rename = "health_timeout_ms", with = "millis")]
    pub health_timeout: Duration,
    /// Consecutive failed health checks that take a backend out of the pool.
    pub health_unhealthy_threshold: u32,
    /// Consecutive transport failures that eject a backend (0 = off).
    pub outlier_consecutive_failures: u32,
    /// Time an ejected outlier stays out.
    #[serde(rename = "outlier_ejection_ms", with = "millis")]
    pub outlier_ejection: Duration,
    /// Weight of the newest sample in each backend's latency EWMA.
    pub ewma_alpha: f64,
    /// A backend's EWMA halves for every this long without a sample (so an
    /// avoided backend is tried again); 0 = never fades.
    #[serde(rename = "ewma_half_life_ms", with = "millis")]
    pub ewma_half_life: Duration,
}

impl Default for ResilienceConfig {
    fn default() -> ResilienceConfig {
        ResilienceConfig {
            max_retries: DEFAULT_MAX_RETRIES,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            retry_budget_ratio: DEFAULT_RETRY_BUDGET_RATIO,
            retry_budget_min_per_sec: DEFAULT_RETRY_BUDGET_MIN_PER_SEC,
            retry_budget_window: DEFAULT_RETRY_BUDGET_WINDOW,
            hedging: DEFAULT_HEDGING,
            hedge_min_delay: DEFAULT_HEDGE_MIN_DELAY,
            hedge_max_delay: DEFAULT_HEDGE_MAX_DELAY,
            hedge_quantile: DEFAULT_HEDGE_QUANTILE,
            latency_window: DEFAULT_LATENCY_WINDOW,
            breaker_window: DEFAULT_BREAKER_WINDOW,
            breaker_failure_ratio: DEFAULT_BREAKER_FAILURE_RATIO,
            breaker_delay: DEFAULT_BREAKER_DELAY,
            breaker_max_delay: DEFAULT_BREAKER_MAX_DELAY,
            breaker_half_open_probes: DEFAULT_BREAKER_HALF_OPEN_PROBES,
            max_in_flight_per_backend: DEFAULT_MAX_IN_FLIGHT_PER_BACKEND,
            max_in_flight_global: DEFAULT_MAX_IN_FLIGHT_GLOBAL,
            account_rate_per_sec: DEFAULT_ACCOUNT_RATE_PER_SEC,
            account_burst: DEFAULT_ACCOUNT_BURST,
            health_interval: DEFAULT_HEALTH_INTERVAL,
            health_timeout: DEFAULT_HEALTH_TIMEOUT,
            health_unhealthy_threshold: DEFAULT_HEALTH_UNHEALTHY_THRESHOLD,
            outlier_consecutive_failures: DEFAULT_OUTLIER_CONSECUTIVE_FAILURES,
            outlier_ejection: DEFAULT_OUTLIER_EJECTION,
            ewma_alpha: DEFAULT_EWMA_ALPHA,
            ewma_half_life: DEFAULT_EWMA_HALF_LIFE,
        }
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
        let window = self.retry_budget_window;
        if window < Duration::from_secs(1) || window > Duration::from_secs(60) {
            return bad("retry_budget_window_ms", "must be between 1000 and 60000");
        }
        if !(0.0..=10.0).contains(&self.retry_budget_ratio) {
            return bad("retry_budget_ratio", "must be between 0 and 10");
        }
        if self.retry_budget_min_per_sec >= i32::MAX as u32 {
            return bad("retry_budget_min_per_sec", "too large");
        }
        if self.hedge_min_delay > self.hedge_max_delay {
            return bad("hedge_min_delay_ms", "must not exceed hedge_max_delay_ms");
        }
        if !(0.0..=1.0).contains(&self.hedge_quantile) {
            return bad("hedge_quantile", "must be between 0 and 1");
        }
        if self.latency_window.is_zero() {
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
        if self.health_interval.is_zero() || self.health_timeout.is_zero() {
            return bad("health_*_ms", "must be positive");
        }
        if self.ewma_alpha.is_nan() || self.ewma_alpha <= 0.0 || self.ewma_alpha > 1.0 {
            return bad("ewma_alpha", "must be in (0, 1]");
        }
        Ok(())
    }

    /// The breaker's part of the configuration.
    pub fn breaker(&self) -> crate::resilience::breaker::BreakerConfig {
        crate::resilience::breaker::BreakerConfig {
            window: self.breaker_window,
            failure_ratio: self.breaker_failure_ratio,
            delay: self.breaker_delay,
            max_delay: self.breaker_max_delay,
            half_open_probes: self.breaker_half_open_probes,
        }
    }
}

/// `Duration` as integer milliseconds in config files.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_design() {
        let c = ResilienceConfig::default();
        assert_eq!(c.max_retries, 1);
        assert_eq!(c.retry_backoff, Duration::from_millis(10));
        assert!((c.retry_budget_ratio - 0.1).abs() < f32::EPSILON);
        assert_eq!(c.retry_budget_window, Duration::from_secs(10));
        assert_eq!(c.breaker_window, 50);
        assert!((c.breaker_failure_ratio - 0.2).abs() < f64::EPSILON);
        assert_eq!(c.breaker_delay, Duration::from_secs(30));
        assert_eq!(c.max_in_flight_per_backend, 128);
        assert!(c.hedging);
        c.validate().unwrap();
    }

    #[test]
    fn toml_overrides_some_keys_and_keeps_defaults() {
        let c: ResilienceConfig =
            toml::from_str("max_retries = 2\nbreaker_delay_ms = 1000\nhedging = false\n").unwrap();
        assert_eq!(c.max_retries, 2);
        assert_eq!(c.breaker_delay, Duration::from_secs(1));
        assert!(!c.hedging);
        assert_eq!(c.breaker_window, DEFAULT_BREAKER_WINDOW);
        assert!(toml::from_str::<ResilienceConfig>("no_such_key = 1").is_err());
    }

    #[test]
    fn validation_refuses_bad_values() {
        let c = ResilienceConfig {
            retry_budget_window: Duration::from_millis(10),
            ..ResilienceConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "retry_budget_window_ms");
        let c = ResilienceConfig {
            hedge_min_delay: Duration::from_secs(1),
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
