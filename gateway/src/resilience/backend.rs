//! [`Backend`]: one order-service backend with its upstream, breaker,
//! health, bulkhead, latency and counters; [`Lease`]: the right to send it
//! one call; [`run_health_checks`]: the loop that asks it how it is.
//!
//! The per-backend bulkhead is an in-flight counter checked against the live
//! limit with a compare-and-swap instead of a `Semaphore`: the limit can
//! change on config reload, and the same counter is the in-flight gauge that
//! load balancing and draining read. There is no waiting: a full backend is
//! simply not a candidate.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::resilience::breaker::{
    Admission, BreakerConfig, BreakerCounts, BreakerOutcome, CircuitBreaker,
};
use crate::resilience::clock;
use crate::resilience::fair_queue::FairQueue;
use crate::resilience::health::{HealthParams, HealthState};
use crate::resilience::latency::{Ewma, LatencyTracker};
use crate::resilience::limit::{AdaptiveLimit, LimitParams};
use crate::resilience::p2c::BalanceParams;
use crate::resilience::throughput::Throughput;
use crate::upstream::{CallOutcome, Class, Upstream};

/// Parameters of the per-backend policies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackendParams {
    /// The adaptive in-flight limit (its `max` is the static bulkhead).
    pub limit: LimitParams,
    /// Calls of the priority class (cancels) a backend takes beyond its
    /// limit: capacity reserved so cancels are never shed while places are
    /// admitted.
    pub priority_reserve: usize,
    /// The circuit breaker's parameters.
    pub breaker: BreakerConfig,
    /// Active checks and outlier ejection.
    pub health: HealthParams,
    /// Load balancing.
    pub balance: BalanceParams,
    /// Window of the backend's latency quantiles.
    pub latency_window: Duration,
}

/// Why an attempt was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    /// The first attempt of a request.
    First,
    /// A retry after a retryable failure.
    Retry,
    /// A hedge sent while an earlier attempt was still running.
    Hedge,
}

/// Call counters of one backend (atomics, for the snapshot and metrics).
#[derive(Debug, Default)]
pub struct BackendCounters {
    /// Calls sent (all kinds).
    pub calls: AtomicU64,
    /// Calls that failed (transport, UNAVAILABLE, server error, timeout).
    pub errors: AtomicU64,
    /// Calls that timed out.
    pub timeouts: AtomicU64,
    /// Calls sent as hedges.
    pub hedges: AtomicU64,
    /// Calls sent as retries.
    pub retries: AtomicU64,
    /// Calls abandoned (hedge losers, client deadline).
    pub cancelled: AtomicU64,
}

/// One order-service backend.
#[derive(Debug)]
pub struct Backend {
    id: u64,
    url: String,
    upstream: Arc<dyn Upstream>,
    draining: AtomicBool,
    removed: AtomicBool,
    in_flight: AtomicUsize,
    limit: AdaptiveLimit,
    /// Requests waiting for room on any backend: woken when a call here ends.
    waiting: Arc<FairQueue>,
    /// Answers of the whole set per second.
    served: Arc<Throughput>,
    breaker: CircuitBreaker,
    health: Arc<HealthState>,
    ewma: Ewma,
    latency: LatencyTracker,
    counters: BackendCounters,
}

/// Point-in-time view of one backend.
#[derive(Debug, Clone, Serialize)]
pub struct BackendSnapshot {
    /// Stable id (for drain/remove/reset).
    pub id: u64,
    /// gRPC URL.
    pub url: String,
    /// `active` or `draining`.
    pub state: &'static str,
    /// Whether it currently takes requests (checks pass, not ejected).
    pub healthy: bool,
    /// Whether active health checks pass.
    pub health_checks_pass: bool,
    /// Outlier ejections since start.
    pub ejections: u64,
    /// Breaker state and window counts.
    pub breaker: BreakerCounts,
    /// Calls in flight.
    pub in_flight: usize,
    /// Its adaptive in-flight limit now.
    pub limit: usize,
    /// The latency it shows at its limit (the limiter's long RTT), in milliseconds.
    pub limit_rtt_ms: f64,
    /// Latency EWMA in milliseconds.
    pub latency_ewma_ms: f64,
    /// Recent p50 latency in milliseconds.
    pub p50_ms: f64,
    /// Recent p99 latency in milliseconds.
    pub p99_ms: f64,
    /// Calls sent.
    pub calls: u64,
    /// Failed calls.
    pub errors: u64,
    /// Timed-out calls.
    pub timeouts: u64,
    /// Hedge calls.
    pub hedges: u64,
    /// Retry calls.
    pub retries: u64,
    /// Abandoned calls.
    pub cancelled: u64,
}

impl BackendSnapshot {
    /// Whether the backend takes new requests: active, healthy, breaker not open.
    pub fn takes_requests(&self) -> bool {
        self.state == "active"
            && self.healthy
            && self.breaker.state != crate::resilience::breaker::BreakerState::Open
    }
}

impl Backend {
    /// A backend `id` at `url`, reached through `upstream`; a call ending
    /// here wakes the next request in `waiting`, and an answer counts in
    /// `served`.
    pub fn new(
        id: u64,
        url: String,
        upstream: Arc<dyn Upstream>,
        params: &BackendParams,
        waiting: Arc<FairQueue>,
        served: Arc<Throughput>,
    ) -> Backend {
        Backend {
            id,
            url,
            upstream,
            waiting,
            served,
            draining: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            limit: AdaptiveLimit::new(&params.limit),
            breaker: CircuitBreaker::new(),
            health: Arc::new(HealthState::new()),
            ewma: Ewma::new(),
            latency: LatencyTracker::new(params.latency_window, 0.99),
            counters: BackendCounters::default(),
        }
    }

    /// Stable id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// gRPC URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How calls reach the backend.
    pub fn upstream(&self) -> &Arc<dyn Upstream> {
        &self.upstream
    }

    /// The health state.
    pub fn health(&self) -> Arc<HealthState> {
        self.health.clone()
    }

    /// The circuit breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// Calls in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Its adaptive in-flight limit under `params`.
    pub fn limit(&self, params: &BackendParams) -> usize {
        self.limit.get(&params.limit)
    }

    /// The latency its limiter sees at its limit (the long RTT average).
    pub fn limit_rtt(&self) -> Duration {
        self.limit.long_rtt()
    }

    /// Calls of `class` it may have in flight: its limit, plus the reserve
    /// for the priority class.
    pub fn capacity(&self, params: &BackendParams, class: Class) -> usize {
        match class {
            Class::Normal => self.limit(params),
            Class::Priority => self.limit(params) + params.priority_reserve,
        }
    }

    /// Latency EWMA in microseconds as of `now`, faded by `half_life`
    /// since its last sample.
    pub fn ewma_micros(&self, now: Instant, half_life: Duration) -> f64 {
        self.ewma.decayed_micros(now, half_life)
    }

    /// Whether the backend takes no new requests.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub(crate) fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether the backend left the routing table.
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    pub(crate) fn set_removed(&self) {
        self.removed.store(true, Ordering::Release);
    }

    /// Whether a new call could be admitted at `now` (no slot is taken).
    pub fn is_candidate(
        &self,
        params: &BackendParams,
        class: Class,
        now: Instant,
        respect_health: bool,
    ) -> bool {
        !self.is_draining()
            && !self.is_removed()
            && (!respect_health || self.health.is_healthy(now))
            && self.in_flight() < self.capacity(params, class)
            && self.breaker.would_admit(&params.breaker, now)
    }

    /// Takes a slot of its limit (for `class`) and a breaker admission for
    /// one call.
    pub fn try_lease(
        self: &Arc<Self>,
        params: &Arc<BackendParams>,
        kind: AttemptKind,
        class: Class,
        now: Instant,
    ) -> Option<Lease> {
        let limit = self.capacity(params, class);
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()?;
        let Some(admission) = self.breaker.try_admit(&params.breaker, now) else {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        };
        self.served.call_started(now);
        Some(Lease {
            backend: self.clone(),
            admission,
            kind,
            started: None,
            params: params.clone(),
            done: false,
        })
    }

    /// Resets the breaker (operator action).
    pub fn reset_breaker(&self) {
        self.breaker.reset();
    }

    /// A snapshot as of `now` under `params`.
    pub fn snapshot(&self, params: &BackendParams, now: Instant) -> BackendSnapshot {
        let q = self.latency.quantiles(now);
        let c = &self.counters;
        BackendSnapshot {
            id: self.id,
            url: self.url.clone(),
            state: if self.is_draining() {
                "draining"
            } else {
                "active"
            },
            healthy: self.health.is_healthy(now),
            health_checks_pass: self.health.checks_pass(),
            ejections: self.health.ejections(),
            breaker: self.breaker.counts(now),
            in_flight: self.in_flight(),
            limit: self.limit.get(&params.limit),
            limit_rtt_ms: self.limit.long_rtt().as_secs_f64() * 1000.0,
            latency_ewma_ms: self.ewma.micros() / 1000.0,
            p50_ms: q.p50.as_secs_f64() * 1000.0,
            p99_ms: q.p99.as_secs_f64() * 1000.0,
            calls: c.calls.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            hedges: c.hedges.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
        }
    }
}

/// How one leased call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// Answered, or how it failed.
    pub outcome: CallOutcome,
    /// From send to answer (or to the timeout).
    pub elapsed: Duration,
    /// The backend answered that it is overloaded (SERVICE_UNAVAILABLE,
    /// nothing done): the limit backs off as for a timeout.
    pub overloaded: bool,
    /// Whether a timeout counts as a breaker failure (the backend is slow
    /// while its peers are not; [`crate::resilience::BackendSet::is_slow_outlier`]).
    pub timeout_is_failure: bool,
}

impl Ended {
    /// An answer after `elapsed` (for tests and simple callers).
    pub fn answered(elapsed: Duration) -> Ended {
        Ended {
            outcome: CallOutcome::Answered,
            elapsed,
            overloaded: false,
            timeout_is_failure: true,
        }
    }

    /// A failure `outcome` after `elapsed`; a timeout counts against the
    /// breaker.
    pub fn failed(outcome: CallOutcome, elapsed: Duration) -> Ended {
        Ended {
            outcome,
            elapsed,
            overloaded: false,
            timeout_is_failure: true,
        }
    }
}

/// The right to send one call to a backend: holds a bulkhead slot and a
/// breaker admission. Mark it [`Lease::sent`] when the call goes out and
/// [`Lease::finish`] it with the outcome; a lease dropped unfinished frees
/// both (a sent one counts as cancelled: it lost to a hedge or the deadline).
#[derive(Debug)]
pub struct Lease {
    backend: Arc<Backend>,
    admission: Admission,
    kind: AttemptKind,
    /// Set when the call is actually sent.
    started: Option<Instant>,
    params: Arc<BackendParams>,
    done: bool,
}

impl Lease {
    /// The leased backend.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    /// Counts the call as sent (a lease never sent counts nowhere).
    pub fn sent(&mut self) {
        let c = &self.backend.counters;
        c.calls.fetch_add(1, Ordering::Relaxed);
        match self.kind {
            AttemptKind::First => {}
            AttemptKind::Retry => {
                c.retries.fetch_add(1, Ordering::Relaxed);
            }
            AttemptKind::Hedge => {
                c.hedges.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.started = Some(clock::now());
    }

    /// Records how the call ended and releases the slot.
    pub fn finish(mut self, ended: Ended) {
        self.done = true;
        let Ended {
            outcome: result,
            elapsed,
            overloaded,
            timeout_is_failure,
        } = ended;
        let b = &self.backend;
        let p = &self.params;
        let now = clock::now();
        // The limit learns from every answer, and backs off when the
        // backend is overloaded or too slow to answer at all.
        match result {
            CallOutcome::Answered if !overloaded => {
                b.served.record(now);
                b.limit.on_answer(&p.limit, elapsed, b.in_flight());
            }
            CallOutcome::Answered | CallOutcome::Timeout => b.limit.on_drop(&p.limit),
            CallOutcome::Transport | CallOutcome::ServerError => {}
        }
        // The breaker counts failures of this backend, not load: a timeout
        // counts only when the backend is slow while its peers are not.
        match result {
            CallOutcome::Answered => {
                b.breaker
                    .record(&p.breaker, self.admission, BreakerOutcome::Success, now)
            }
            CallOutcome::Timeout if !timeout_is_failure => b.breaker.cancel(self.admission),
            _ => b
                .breaker
                .record(&p.breaker, self.admission, BreakerOutcome::Failure, now),
        }
        b.health
            .record_call(result == CallOutcome::Transport, &p.health, now);
        match result {
            CallOutcome::Answered => {
                b.latency.record(elapsed, now);
                b.ewma.observe(elapsed, p.balance.ewma_alpha);
            }
            CallOutcome::Timeout => {
                b.counters.errors.fetch_add(1, Ordering::Relaxed);
                b.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                b.ewma.observe(elapsed, p.balance.ewma_alpha);
            }
            CallOutcome::Transport | CallOutcome::ServerError => {
                b.counters.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let b = &self.backend;
        if !self.done {
            b.breaker.cancel(self.admission);
            if let Some(started) = self.started {
                b.counters.cancelled.fetch_add(1, Ordering::Relaxed);
                // A call abandoned (e.g. it lost to a hedge) took at least
                // this long: load balancing must learn that, or a backend
                // that always loses would look idle and fast forever.
                let waited = clock::now().saturating_duration_since(started);
                b.ewma.observe(waited, self.params.balance.ewma_alpha);
            }
        }
        b.in_flight.fetch_sub(1, Ordering::AcqRel);
        b.served.call_ended(clock::now());
        b.waiting.release();
    }
}

/// Checks `backend` at once (which also opens its connection before the
/// first request needs it) and then every health interval of `params`,
/// until it is dropped or removed.
pub async fn run_health_checks(backend: Weak<Backend>, params: Arc<ArcSwap<BackendParams>>) {
    let mut first = true;
    loop {
        let health = params.load().health;
        if !first {
            tokio::time::sleep(health.interval).await;
        }
        first = false;
        let Some(b) = backend.upgrade() else { return };
        if b.is_removed() {
            return;
        }
        let check = b.upstream.check_health(health.timeout);
        let state = b.health();
        drop(b); // Do not keep a removed backend alive while waiting.
        let passed = check.await;
        state.record_check(passed, health.unhealthy_threshold);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resilience::breaker::BreakerState;
    use crate::resilience::ResilienceConfig;
    use crate::upstream::fake::{FakeConnector, Mode};
    use crate::upstream::Connector as _;

    fn backend(params: &BackendParams) -> Arc<Backend> {
        let (c, urls) = FakeConnector::with(&[Mode::Ok]);
        let up = c.connect(&urls[0]).unwrap();
        Arc::new(Backend::new(
            1,
            urls[0].clone(),
            up,
            params,
            Default::default(),
            served(),
        ))
    }

    fn served() -> Arc<Throughput> {
        Arc::new(Throughput::new(clock::now()))
    }

    fn params(cfg: ResilienceConfig) -> Arc<BackendParams> {
        Arc::new(cfg.backend(Duration::from_millis(50)))
    }

    #[tokio::test]
    async fn bulkhead_refuses_beyond_the_limit_and_frees_on_drop() {
        let p = params(ResilienceConfig {
            max_in_flight_per_backend: 2,
            adaptive_limit: false,
            ..ResilienceConfig::default()
        });
        let b = backend(&p);
        let now = clock::now();
        let mut l1 = b
            .try_lease(&p, AttemptKind::First, Class::Normal, now)
            .unwrap();
        l1.sent();
        let mut l2 = b
            .try_lease(&p, AttemptKind::Hedge, Class::Normal, now)
            .unwrap();
        l2.sent();
        assert!(b
            .try_lease(&p, AttemptKind::First, Class::Normal, now)
            .is_none());
        assert!(!b.is_candidate(&p, Class::Normal, now, true));
        drop(l1);
        assert_eq!(b.in_flight(), 1);
        let mut l3 = b
            .try_lease(&p, AttemptKind::Retry, Class::Normal, now)
            .unwrap();
        l3.sent();
        drop(l3);
        // A lease never sent counts nowhere.
        drop(
            b.try_lease(&p, AttemptKind::Retry, Class::Normal, now)
                .unwrap(),
        );
        let s = b.snapshot(&p, now);
        assert_eq!((s.calls, s.hedges, s.retries, s.cancelled), (3, 1, 1, 2));
        drop(l2);
    }

    #[tokio::test]
    async fn failures_open_the_breaker_and_answers_do_not() {
        let p = params(ResilienceConfig {
            breaker_window: 4,
            breaker_failure_ratio: 1.0,
            ..ResilienceConfig::default()
        });
        let b = backend(&p);
        let now = clock::now();
        for _ in 0..10 {
            let mut l = b
                .try_lease(&p, AttemptKind::First, Class::Normal, now)
                .unwrap();
            l.sent();
            l.finish(Ended::answered(Duration::from_millis(1)));
        }
        assert_eq!(b.breaker().state(now), BreakerState::Closed);
        for _ in 0..4 {
            let mut l = b
                .try_lease(&p, AttemptKind::First, Class::Normal, now)
                .unwrap();
            l.sent();
            l.finish(Ended::failed(
                CallOutcome::Timeout,
                Duration::from_millis(50),
            ));
        }
        assert_eq!(b.breaker().state(clock::now()), BreakerState::Open);
        assert!(b
            .try_lease(&p, AttemptKind::First, Class::Normal, clock::now())
            .is_none());
        assert_eq!(b.in_flight(), 0);
        let s = b.snapshot(&p, clock::now());
        assert_eq!((s.errors, s.timeouts), (4, 4));
        b.reset_breaker();
        assert!(b.is_candidate(&p, Class::Normal, clock::now(), true));
    }

    #[tokio::test(start_paused = true)]
    async fn health_checks_take_a_failing_backend_out_and_back() {
        let (c, urls) = FakeConnector::with(&[Mode::Ok]);
        let live = Arc::new(ArcSwap::from_pointee(
            ResilienceConfig::default().backend(Duration::from_millis(50)),
        ));
        let b = Arc::new(Backend::new(
            1,
            urls[0].clone(),
            c.connect(&urls[0]).unwrap(),
            &live.load(),
            Default::default(),
            served(),
        ));
        tokio::spawn(run_health_checks(Arc::downgrade(&b), live.clone()));
        let interval = live.load().health.interval;
        tokio::time::sleep(interval / 2).await;
        assert!(b.health().is_healthy(clock::now()));
        c.get(&urls[0]).set_healthy(false);
        tokio::time::sleep(interval * 3).await;
        assert!(!b.health().is_healthy(clock::now()), "two failed checks");
        c.get(&urls[0]).set_healthy(true);
        tokio::time::sleep(interval * 2).await;
        assert!(b.health().is_healthy(clock::now()), "one passing check");
    }

    #[tokio::test]
    async fn cancels_have_a_reserve_beyond_the_limit() {
        let p = params(ResilienceConfig {
            max_in_flight_per_backend: 1,
            adaptive_limit: false,
            priority_reserve: 1,
            ..ResilienceConfig::default()
        });
        let b = backend(&p);
        let now = clock::now();
        let place = b
            .try_lease(&p, AttemptKind::First, Class::Normal, now)
            .unwrap();
        assert!(b
            .try_lease(&p, AttemptKind::First, Class::Normal, now)
            .is_none());
        let cancel = b.try_lease(&p, AttemptKind::First, Class::Priority, now);
        assert!(cancel.is_some(), "a cancel gets the reserved slot");
        assert!(b
            .try_lease(&p, AttemptKind::First, Class::Priority, now)
            .is_none());
        drop((place, cancel));
    }

    #[tokio::test]
    async fn load_timeouts_leave_the_breaker_closed_and_shrink_the_limit() {
        let p = params(ResilienceConfig {
            breaker_window: 4,
            breaker_failure_ratio: 0.5,
            ..ResilienceConfig::default()
        });
        let b = backend(&p);
        let before = b.limit(&p);
        for _ in 0..20 {
            let mut l = b
                .try_lease(&p, AttemptKind::First, Class::Normal, clock::now())
                .unwrap();
            l.sent();
            l.finish(Ended {
                timeout_is_failure: false,
                ..Ended::failed(CallOutcome::Timeout, Duration::from_millis(50))
            });
        }
        assert_eq!(b.breaker().state(clock::now()), BreakerState::Closed);
        assert!(b.limit(&p) < before, "{} !< {before}", b.limit(&p));
        // An overloaded answer is no failure either, but backs off too.
        let now_limit = b.limit(&p);
        let mut l = b
            .try_lease(&p, AttemptKind::First, Class::Normal, clock::now())
            .unwrap();
        l.sent();
        l.finish(Ended {
            overloaded: true,
            ..Ended::answered(Duration::from_millis(1))
        });
        assert!(b.limit(&p) <= now_limit);
        assert_eq!(b.breaker().state(clock::now()), BreakerState::Closed);
    }
}
