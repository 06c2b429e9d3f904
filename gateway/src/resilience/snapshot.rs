//! [`RouterSnapshot`]: a point-in-time view of the router's policies and
//! every backend, for the admin API, the status page, SIGUSR1 and metrics.

use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::resilience::backend::BackendSnapshot;
use crate::resilience::clock;
use crate::resilience::router::Router;

/// Point-in-time view of the router and every backend.
#[derive(Debug, Clone, Serialize)]
pub struct RouterSnapshot {
    /// Client requests routed.
    pub requests: u64,
    /// Requests refused RATE_LIMITED.
    pub rate_limited: u64,
    /// Requests refused at the global in-flight limit.
    pub rejected_global: u64,
    /// Requests refused because no backend could take them.
    pub no_backend: u64,
    /// Retries sent.
    pub retries: u64,
    /// Hedges sent.
    pub hedges: u64,
    /// Requests answered by their hedge.
    pub hedge_wins: u64,
    /// Requests answered TIMEOUT (outcome unknown).
    pub timeouts: u64,
    /// Requests in flight.
    pub in_flight: usize,
    /// Retry budget: requests deposited.
    pub budget_deposits: u64,
    /// Retry budget: retries and hedges granted.
    pub budget_granted: u64,
    /// Retry budget: retries and hedges refused.
    pub budget_denied: u64,
    /// Current hedge delay in milliseconds (absent until enough samples).
    pub hedge_delay_ms: Option<f64>,
    /// Backend calls sent (sum over backends currently in the set).
    pub backend_calls: u64,
    /// Per-backend state.
    pub backends: Vec<BackendSnapshot>,
}

impl Router {
    /// Counters and per-backend state as of now.
    pub fn snapshot(&self) -> RouterSnapshot {
        let c = &self.counters;
        let (budget_deposits, budget_granted, budget_denied) = self.budget.counts();
        let (hedges, hedge_wins) = self.hedging.counts();
        let backends = self.set.snapshot();
        RouterSnapshot {
            requests: c.requests.load(Ordering::Relaxed),
            rate_limited: self.admission.rate_limited(),
            rejected_global: self.admission.at_capacity(),
            no_backend: c.no_backend.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            hedges,
            hedge_wins,
            timeouts: c.timeouts.load(Ordering::Relaxed),
            in_flight: self.admission.in_flight(),
            budget_deposits,
            budget_granted,
            budget_denied,
            hedge_delay_ms: self
                .hedging
                .measured_delay(clock::now())
                .map(|d| d.as_secs_f64() * 1000.0),
            backend_calls: backends.iter().map(|b| b.calls).sum(),
            backends,
        }
    }
}
