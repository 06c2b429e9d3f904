//! Backend health: active `grpc.health.v1` checks and passive outlier
//! detection, combined in one [`HealthState`] per backend.
//!
//! * Active: every `health_interval` the backend's `hts.v1.OrderService`
//!   health is asked (timeout `health_timeout`); `health_unhealthy_threshold`
//!   failed checks in a row take it out of the pool, one passing check brings
//!   it back.
//! * Passive: `outlier_consecutive_failures` transport failures in a row
//!   (refused, reset) eject it for `outlier_ejection`; any answer resets the
//!   count.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::resilience::backend::Backend;
use crate::resilience::config::ResilienceConfig;
use crate::resilience::Live;

/// The gRPC service name whose health is checked.
pub const CHECKED_SERVICE: &str = "hts.v1.OrderService";

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
    pub fn record_call(&self, transport_failure: bool, cfg: &ResilienceConfig, now: Instant) {
        if !transport_failure {
            self.consecutive_transport_failures
                .store(0, Ordering::Release);
            return;
        }
        let n = self
            .consecutive_transport_failures
            .fetch_add(1, Ordering::AcqRel)
            + 1;
        if cfg.outlier_consecutive_failures > 0 && n >= cfg.outlier_consecutive_failures {
            self.consecutive_transport_failures
                .store(0, Ordering::Release);
            let mut until = self.ejected_until.lock().unwrap_or_else(|e| e.into_inner());
            *until = Some(now + cfg.outlier_ejection);
            self.ejections.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(failures = n, "backend ejected as an outlier");
        }
    }
}

/// One active health check of `channel`; `true` when it reports SERVING.
pub async fn check(channel: Channel, timeout: Duration) -> bool {
    let mut client = HealthClient::new(channel);
    let mut req = tonic::Request::new(HealthCheckRequest {
        service: CHECKED_SERVICE.to_owned(),
    });
    req.set_timeout(timeout);
    match tokio::time::timeout(timeout, client.check(req)).await {
        Ok(Ok(resp)) => resp.into_inner().status == ServingStatus::Serving as i32,
        _ => false,
    }
}

/// Checks `backend` at once (which also opens its connection before the
/// first request needs it) and then every `health_interval`, until it is
/// dropped or removed.
pub async fn run_checks(backend: Weak<Backend>, live: std::sync::Arc<Live>) {
    let mut first = true;
    loop {
        if !first {
            tokio::time::sleep(live.config().health_interval).await;
        }
        first = false;
        let Some(b) = backend.upgrade() else { return };
        if b.is_removed() {
            return;
        }
        let cfg = live.config();
        let channel = b.channel();
        let healthy = b.health();
        drop(b); // Do not keep a removed backend alive while waiting.
        let passed = check(channel, cfg.health_timeout).await;
        healthy.record_check(passed, cfg.health_unhealthy_threshold);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let cfg = ResilienceConfig {
            outlier_consecutive_failures: 3,
            outlier_ejection: Duration::from_secs(5),
            ..ResilienceConfig::default()
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
        let cfg = ResilienceConfig {
            outlier_consecutive_failures: 0,
            ..ResilienceConfig::default()
        };
        let h = HealthState::new();
        let now = Instant::now();
        for _ in 0..100 {
            h.record_call(true, &cfg, now);
        }
        assert!(h.is_healthy(now));
    }

    #[tokio::test]
    async fn check_of_an_unreachable_backend_fails() {
        let ch = crate::routing::channel("http://127.0.0.1:1", Default::default()).unwrap();
        assert!(!check(ch, Duration::from_millis(200)).await);
    }
}
