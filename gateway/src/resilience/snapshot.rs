//! [`RouterSnapshot`]: a point-in-time view of the router's policies and
//! every backend, for the admin API, the status page, SIGUSR1 and metrics.

use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::resilience::backend::BackendSnapshot;
use crate::resilience::clock;
use crate::resilience::router::{ClassCounters, Router, Shed};

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
    /// Requests waiting now for a backend to have room.
    pub waiting: usize,
    /// Requests that waited for room and got it.
    pub queued: u64,
    /// Requests refused because every backend was at its limit.
    pub busy: u64,
    /// Places and queries: admitted to a backend, and shed by reason.
    pub normal: ClassSnapshot,
    /// Cancels: admitted to a backend, and shed by reason.
    pub priority: ClassSnapshot,
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

/// Admitted and shed requests of one admission class.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClassSnapshot {
    /// Sent to a backend.
    pub admitted: u64,
    /// Refused because the account's rate bucket was empty.
    pub rate_limited: u64,
    /// Refused at the gateway-wide in-flight limit.
    pub gateway_full: u64,
    /// Refused at once because every backend was at its limit.
    pub busy: u64,
    /// Refused after waiting for room in vain.
    pub wait_expired: u64,
    /// Refused because no backend could take it.
    pub no_backend: u64,
}

impl ClassSnapshot {
    fn of(c: &ClassCounters) -> ClassSnapshot {
        let shed = |why: Shed| {
            let i = Shed::ALL.iter().position(|s| *s == why).unwrap_or(0);
            c.shed[i].load(Ordering::Relaxed)
        };
        ClassSnapshot {
            admitted: c.admitted.load(Ordering::Relaxed),
            rate_limited: shed(Shed::RateLimited),
            gateway_full: shed(Shed::GatewayFull),
            busy: shed(Shed::Busy),
            wait_expired: shed(Shed::WaitExpired),
            no_backend: shed(Shed::NoBackend),
        }
    }

    /// Shed requests of `why`.
    pub fn shed(&self, why: Shed) -> u64 {
        match why {
            Shed::RateLimited => self.rate_limited,
            Shed::GatewayFull => self.gateway_full,
            Shed::Busy => self.busy,
            Shed::WaitExpired => self.wait_expired,
            Shed::NoBackend => self.no_backend,
        }
    }
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
            waiting: self.set.waiting().len(),
            queued: c.queued.load(Ordering::Relaxed),
            busy: c.busy.load(Ordering::Relaxed),
            normal: ClassSnapshot::of(&c.classes[0]),
            priority: ClassSnapshot::of(&c.classes[1]),
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
