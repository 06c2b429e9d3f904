//! Readiness: can the gateway serve a request now, and if not, what is missing.

use serde::Serialize;

use crate::resilience::BackendSnapshot;

/// Seconds a load balancer should wait before asking again when not ready.
pub const RETRY_AFTER_SECS: u64 = 5;

/// The readiness verdict with its reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// What is missing (empty when ready): `draining`, `no_backend`,
    /// `all_backends_draining`, `no_healthy_backend`, `all_breakers_open`.
    pub missing: Vec<&'static str>,
    /// Backends in the table (draining ones included).
    pub backends_total: usize,
    /// Backends that take requests now.
    pub backends_ready: usize,
}

impl Readiness {
    /// Whether the gateway can serve.
    pub fn is_ready(&self) -> bool {
        self.missing.is_empty()
    }
}

/// Evaluates readiness from the backend table and the shutdown flag.
pub fn evaluate(backends: &[BackendSnapshot], shutting_down: bool) -> Readiness {
    let mut missing = Vec::new();
    if shutting_down {
        missing.push("draining");
    }
    let active: Vec<_> = backends.iter().filter(|b| b.state == "active").collect();
    let ready = backends.iter().filter(|b| b.takes_requests()).count();
    if backends.is_empty() {
        missing.push("no_backend");
    } else if active.is_empty() {
        missing.push("all_backends_draining");
    } else if !active.iter().any(|b| b.healthy) {
        missing.push("no_healthy_backend");
    } else if ready == 0 {
        missing.push("all_breakers_open");
    }
    Readiness {
        status: if missing.is_empty() {
            "ready"
        } else {
            "not_ready"
        },
        missing,
        backends_total: backends.len(),
        backends_ready: ready,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resilience::breaker::BreakerCounts;
    use crate::resilience::breaker::BreakerState;

    fn backend(state: &'static str, healthy: bool, breaker: BreakerState) -> BackendSnapshot {
        BackendSnapshot {
            id: 1,
            url: "http://127.0.0.1:1".into(),
            state,
            healthy,
            health_checks_pass: healthy,
            ejections: 0,
            breaker: BreakerCounts {
                state: breaker,
                window_calls: 0,
                window_failures: 0,
                times_opened: 0,
            },
            in_flight: 0,
            limit: 16,
            limit_rtt_ms: 0.0,
            latency_ewma_ms: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            calls: 0,
            errors: 0,
            timeouts: 0,
            hedges: 0,
            retries: 0,
            cancelled: 0,
        }
    }

    #[test]
    fn names_what_is_missing() {
        use BreakerState::*;
        assert_eq!(evaluate(&[], false).missing, vec!["no_backend"]);
        let ok = backend("active", true, Closed);
        assert!(evaluate(std::slice::from_ref(&ok), false).is_ready());
        assert_eq!(
            evaluate(std::slice::from_ref(&ok), true).missing,
            vec!["draining"]
        );
        assert_eq!(
            evaluate(&[backend("draining", true, Closed)], false).missing,
            vec!["all_backends_draining"]
        );
        assert_eq!(
            evaluate(&[backend("active", false, Closed)], false).missing,
            vec!["no_healthy_backend"]
        );
        let r = evaluate(&[backend("active", true, Open), ok.clone()], false);
        assert!(r.is_ready());
        assert_eq!(r.backends_ready, 1);
        assert_eq!(
            evaluate(&[backend("active", true, Open)], false).missing,
            vec!["all_breakers_open"]
        );
    }
}
