//! Backend health: active checks and passive outlier detection, combined
//! in one [`HealthState`] per backend.
//!
//! * Active: every `interval` the backend is asked for its health (the
//!   upstream's `grpc.health.v1` check, bounded by `timeout`);
//!   `unhealthy_threshold` failed checks in a row take it out of the pool,
//!   one passing check brings it back. The loop that asks lives with the
//!   backend ([`crate::resilience::backend`]); this module only keeps score.
//! * Passive: `outlier_consecutive_failures` transport failures in a row
//!   (refused, reset) eject it for `outlier_ejection`; any answer resets the
//!   count.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Parameters of the health policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthParams {
    /// Interval of active health checks.
    pub interval: Duration,
    /// Timeout of one health check.
    pub timeout: Duration,
    /// Consecutive failed checks that take a backend out of the pool.
    pub unhealthy_threshold: u32,
    /// Consecutive transport failures that eject a backend (0 = off).
    pub outlier_consecutive_failures: u32,
    /// Time an ejected outlier stays out.
    pub outlier_ejection: Duration,
}

/// Health of one backend, updated by checks and by call outcomes.
#[derive(Debug, Default)]
pub struct HealthState {
    failing_checks: AtomicU32,
    /// `false` once active checks failed `health_unhealthy_threshold` times.
    check_ok: AtomicBool,
    consecutive_transport_failures: AtomicU32,
    ejected_until: Mutex<Option<Instant>>,
    ejections: AtomicU64,
}

impl HealthState {
    /// A backend presumed healthy until checks say otherwise.
    pub fn new() -> HealthState {
        HealthState {
            check_ok: AtomicBool::new(true),
            ..HealthState::default()
        }
    }

    /// Whether the backend may take requests as of `now`.
    pub fn is_healthy(&self, now: Instant) -> bool {
        self.check_ok.load(Ordering::Acquire) && !self.is_ejected(now)
    }

    /// Whether passive outlier detection has the backend ejected at `now`.
    pub fn is_ejected(&self, now: Instant) -> bool {
        let until = *self.ejected_until.lock().unwrap_or_else(|e| e.into_inner());
        until.is_some_and(|u| now < u)
    }

    /// Whether the last active checks passed.
    pub fn checks_pass(&self) -> bool {
        self.check_ok.load(Ordering::Acquire)
    }

    /// Outlier ejections since start.
    pub fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Records an active check result.
    pub fn record_check(&self, passed: bool, unhealthy_threshold: u32) {
        if passed {
            self.failing_checks.store(0, Ordering::Release);
            if !self.check_ok.swap(true, Ordering::AcqRel) {
                tracing::info!("backend passes health checks again: rejoining the pool");
            }
        } else {
            let n = self.failing_checks.fetch_add(1, Ordering::AcqRel) + 1;
            if n >= unhealthy_threshold.max(1) && self.check_ok.swap(false, Ordering::AcqRel) {
                tracing::warn!(
                    failures = n,
                    "backend fails health checks: leaving the pool"
                );
            }
        }
    }

    /// Records a call outcome for outlier detection: `transport_failure` is
    /// a refused/reset connection; anything else (an answer) resets the count.
    pub fn record_call(&self, transport_failure: bool, params: &HealthParams, now: Instant) {
        if !transport_failure {
            self.consecutive_transport_failures
                .store(0, Ordering::Release);
            return;
        }
        let n = self
            .consecutive_transport_failures
            .fetch_add(1, Ordering::AcqRel)
            + 1;
        if params.outlier_consecutive_failures > 0 && n >= params.outlier_consecutive_failures {
            self.consecutive_transport_failures
                .store(0, Ordering::Release);
            let mut until = self.ejected_until.lock().unwrap_or_else(|e| e.into_inner());
            *until = Some(now + params.outlier_ejection);
            self.ejections.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(failures = n, "backend ejected as an outlier");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> HealthParams {
        crate::resilience::ResilienceConfig::default()
            .backend(Duration::from_millis(50))
            .health
    }

    #[test]
    fn active_checks_eject_after_threshold_and_rejoin_on_success() {
        let h = HealthState::new();
        let now = Instant::now();
        assert!(h.is_healthy(now));
        h.record_check(false, 2);
        assert!(h.is_healthy(now), "one failure is tolerated");
        h.record_check(false, 2);
        assert!(!h.is_healthy(now));
        h.record_check(true, 2);
        assert!(h.is_healthy(now));
    }

    #[test]
    fn consecutive_transport_failures_eject_for_a_while() {
        let cfg = HealthParams {
            outlier_consecutive_failures: 3,
            outlier_ejection: Duration::from_secs(5),
            ..params()
        };
        let h = HealthState::new();
        let now = Instant::now();
        h.record_call(true, &cfg, now);
        h.record_call(true, &cfg, now);
        h.record_call(false, &cfg, now); // an answer resets the run
        h.record_call(true, &cfg, now);
        h.record_call(true, &cfg, now);
        assert!(h.is_healthy(now));
        h.record_call(true, &cfg, now);
        assert!(!h.is_healthy(now));
        assert_eq!(h.ejections(), 1);
        assert!(h.is_healthy(now + Duration::from_secs(5)));
    }

    #[test]
    fn zero_threshold_disables_outlier_detection() {
        let cfg = HealthParams {
            outlier_consecutive_failures: 0,
            ..params()
        };
        let h = HealthState::new();
        let now = Instant::now();
        for _ in 0..100 {
            h.record_call(true, &cfg, now);
        }
        assert!(h.is_healthy(now));
    }
}
