//! [`BackendSet`]: the live routing table of backends.
//!
//! The table is an `ArcSwap<Vec<Arc<Backend>>>`: the request path loads it
//! without locking, and add/drain/remove publish a new vector. A call holds
//! its own `Arc<Backend>` (inside its [`Lease`]), so removing a backend never
//! fails a call already in flight. Draining stops new calls at once and
//! removes the backend once its in-flight calls have finished.
//!
//! Two sources change the set, under one rule (docs/operations.md, "Reload
//! and admin changes"): the admin API acts on single backends, and a config
//! reload applies only what the file *changed* since it was last applied
//! ([`BackendSet::apply_file_change`]): backends it newly lists are added,
//! backends it no longer lists are drained, and a backend it still lists is
//! left as the admin API left it (a drained one stays drained).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rand::thread_rng;

use crate::resilience::backend::{
    run_health_checks, AttemptKind, Backend, BackendParams, BackendSnapshot, Lease,
};
use crate::resilience::breaker::BreakerState;
use crate::resilience::fair_queue::FairQueue;
use crate::resilience::throughput::Throughput;
use crate::resilience::{clock, p2c};
use crate::upstream::{Class, Connector, InvalidUrl};

/// A timeout counts against a backend's breaker only if its latency EWMA
/// is at least this many times the median of its peers': slow while its
/// peers are fast is a broken backend; slow with its peers is load.
pub const SLOW_OUTLIER_FACTOR: f64 = 3.0;

/// How often a draining backend's in-flight count is checked.
const DRAIN_POLL: Duration = Duration::from_millis(10);
/// A draining backend is removed after this long even if calls remain
/// (they are bounded by the request deadline, so this is a safety net).
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// A change to the backend set was refused.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// The URL cannot be used.
    #[error(transparent)]
    InvalidUrl(#[from] InvalidUrl),
    /// No backend has this id.
    #[error("no backend with id {0}")]
    UnknownBackend(u64),
    /// A backend with this URL is already in the set.
    #[error("backend {0} is already in the set")]
    Duplicate(String),
}

/// Why no backend could take a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NoBackend {
    /// The set has no backend that is not draining (or all were tried).
    #[error("no order-service backend available")]
    Empty,
    /// Every remaining backend's circuit breaker is open.
    #[error("every order-service backend's circuit breaker is open")]
    AllOpen,
    /// Every remaining backend is at its in-flight limit.
    #[error("every order-service backend is at its in-flight limit")]
    AllBusy,
}

/// The live set of backends.
#[derive(Debug)]
pub struct BackendSet {
    table: ArcSwap<Vec<Arc<Backend>>>,
    next_id: AtomicU64,
    connector: Arc<dyn Connector>,
    params: Arc<ArcSwap<BackendParams>>,
    waiting: Arc<FairQueue>,
    served: Arc<Throughput>,
    edit: Mutex<()>,
}

impl BackendSet {
    /// A set of `urls` reached through `connector`, with the per-backend
    /// policies' `params`. Must run inside a Tokio runtime (health checks).
    pub fn new<S: AsRef<str>>(
        urls: &[S],
        connector: Arc<dyn Connector>,
        params: BackendParams,
    ) -> Result<Arc<BackendSet>, SetError> {
        let set = Arc::new(BackendSet {
            table: ArcSwap::from_pointee(Vec::new()),
            next_id: AtomicU64::new(1),
            connector,
            params: Arc::new(ArcSwap::from_pointee(params)),
            waiting: Arc::new(FairQueue::new()),
            served: Arc::new(Throughput::new(clock::now())),
            edit: Mutex::new(()),
        });
        for url in urls {
            set.add_backend(url.as_ref())?;
        }
        Ok(set)
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.edit.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Switches every backend to `params` (limits, breaker, health, balance).
    pub fn reconfigure(&self, params: BackendParams) {
        self.params.store(Arc::new(params));
    }

    /// The per-backend policies' parameters in force.
    pub fn params(&self) -> Arc<BackendParams> {
        self.params.load_full()
    }

    /// Requests waiting for a backend to have room (every call that ends
    /// here wakes the next one).
    pub fn waiting(&self) -> &Arc<FairQueue> {
        &self.waiting
    }

    /// Over the backends that take requests now: (calls in flight, sum of
    /// their limits, answers per second recently) — what they can serve.
    pub fn load(&self, now: Instant) -> (usize, usize, f64) {
        let params = self.params();
        let (mut in_flight, mut limits) = (0, 0);
        for b in self.table.load().iter() {
            if b.is_draining() || !b.health().is_healthy(now) {
                continue;
            }
            in_flight += b.in_flight();
            limits += b.limit(&params);
        }
        (in_flight, limits, self.served.per_sec(now))
    }

    /// Whether the pool is saturated: requests wait for room, or the
    /// healthy backends together are at their limits. A timeout then says
    /// the pool is loaded, not that one backend is broken.
    pub fn saturated(&self, now: Instant) -> bool {
        if self.waiting.has_waiters() {
            return true;
        }
        let (in_flight, limits, _) = self.load(now);
        limits > 0 && in_flight >= limits
    }

    /// Whether calls are in flight and none ended for a while — twice the
    /// latency the backends show at their limits, at least `at_least` and
    /// [`crate::resilience::throughput::STALL`] (hung backends: waiting for
    /// room is pointless).
    pub fn stalled(&self, now: Instant, at_least: Duration) -> bool {
        self.served
            .stalled(now, (self.limit_rtt() * 2).max(at_least))
    }

    /// The slowest latency the active backends' limiters see at their
    /// limits (zero before any answer).
    pub fn limit_rtt(&self) -> Duration {
        self.table
            .load()
            .iter()
            .filter(|b| !b.is_draining())
            .map(|b| b.limit_rtt())
            .max()
            .unwrap_or_default()
    }

    /// Whether `backend` is slow while its peers are not (see
    /// [`SLOW_OUTLIER_FACTOR`]); peers are the backends taking traffic
    /// (breaker not open, healthy); without one to compare with, no.
    pub fn is_slow_outlier(&self, backend: &Backend, now: Instant) -> bool {
        let half_life = self.params().balance.ewma_half_life;
        let mut peers: Vec<f64> = self
            .table
            .load()
            .iter()
            // Peers that take traffic: an open or unhealthy backend's
            // latency average fades while it gets no calls, and comparing
            // with it made the last serving backend look slow, so pure
            // overload opened every breaker one after another.
            .filter(|b| {
                b.id() != backend.id()
                    && !b.is_draining()
                    && !b.is_removed()
                    && b.breaker().state(now) != BreakerState::Open
                    && b.health().is_healthy(now)
            })
            .map(|b| b.ewma_micros(now, half_life))
            .collect();
        if peers.is_empty() {
            return false;
        }
        peers.sort_by(f64::total_cmp);
        let median = peers[peers.len() / 2].max(1.0);
        backend.ewma_micros(now, half_life) >= SLOW_OUTLIER_FACTOR * median
    }

    /// The backends currently in the table (draining ones included).
    pub fn backends(&self) -> Arc<Vec<Arc<Backend>>> {
        self.table.load_full()
    }

    /// Adds a backend at `url` and returns its id; it takes traffic at once.
    pub fn add_backend(&self, url: &str) -> Result<u64, SetError> {
        let _edit = self.lock();
        let current = self.table.load_full();
        if current.iter().any(|b| b.url() == url && !b.is_draining()) {
            return Err(SetError::Duplicate(url.to_owned()));
        }
        let upstream = self.connector.connect(url)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let backend = Arc::new(Backend::new(
            id,
            url.to_owned(),
            upstream,
            &self.params(),
            self.waiting.clone(),
            self.served.clone(),
        ));
        tokio::spawn(run_health_checks(
            Arc::downgrade(&backend),
            self.params.clone(),
        ));
        let mut next = Vec::with_capacity(current.len() + 1);
        next.extend(current.iter().cloned());
        next.push(backend);
        self.table.store(Arc::new(next));
        tracing::info!(id, url, "backend added");
        Ok(id)
    }

    /// Stops sending new calls to backend `id`; it leaves the table once its
    /// in-flight calls have finished.
    pub fn drain_backend(self: &Arc<Self>, id: u64) -> Result<(), SetError> {
        let backend = self.get(id).ok_or(SetError::UnknownBackend(id))?;
        backend.set_draining();
        tracing::info!(id, url = backend.url(), "backend draining");
        let set = Arc::downgrade(self);
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            while backend.in_flight() > 0 && started.elapsed() < DRAIN_LIMIT {
                tokio::time::sleep(DRAIN_POLL).await;
            }
            if let Some(set) = set.upgrade() {
                let _ = set.remove_backend(id);
            }
        });
        Ok(())
    }

    /// Removes backend `id` from the table now. Calls already sent to it
    /// finish normally; no new call goes to it.
    pub fn remove_backend(&self, id: u64) -> Result<(), SetError> {
        let _edit = self.lock();
        let current = self.table.load_full();
        let Some(gone) = current.iter().find(|b| b.id() == id) else {
            return Err(SetError::UnknownBackend(id));
        };
        gone.set_removed();
        tracing::info!(id, url = gone.url(), "backend removed");
        let next: Vec<_> = current.iter().filter(|b| b.id() != id).cloned().collect();
        self.table.store(Arc::new(next));
        Ok(())
    }

    /// Closes backend `id`'s circuit breaker.
    pub fn reset_breaker(&self, id: u64) -> Result<(), SetError> {
        let backend = self.get(id).ok_or(SetError::UnknownBackend(id))?;
        backend.reset_breaker();
        tracing::info!(id, url = backend.url(), "circuit breaker reset");
        Ok(())
    }

    /// Applies a config reload's change of the backend list from
    /// `previous` to `next` (see the module documentation): adds what
    /// `next` newly lists, drains what it no longer lists, and leaves
    /// every backend both list as it is. Every new URL is checked before
    /// anything changes.
    pub fn apply_file_change<S: AsRef<str>>(
        self: &Arc<Self>,
        previous: &[S],
        next: &[S],
    ) -> Result<(), SetError> {
        let listed = |list: &[S], url: &str| list.iter().any(|u| u.as_ref() == url);
        let added: Vec<&str> = next
            .iter()
            .map(AsRef::as_ref)
            .filter(|u| !listed(previous, u))
            .collect();
        for url in &added {
            self.connector.connect(url)?;
        }
        for gone in previous
            .iter()
            .map(AsRef::as_ref)
            .filter(|u| !listed(next, u))
        {
            let ids: Vec<u64> = self
                .table
                .load()
                .iter()
                .filter(|b| b.url() == gone && !b.is_draining())
                .map(|b| b.id())
                .collect();
            for id in ids {
                self.drain_backend(id)?;
            }
        }
        for url in added {
            let present = self
                .table
                .load()
                .iter()
                .any(|b| b.url() == url && !b.is_draining());
            if !present {
                self.add_backend(url)?;
            }
        }
        Ok(())
    }

    /// Per-backend state as of now.
    pub fn snapshot(&self) -> Vec<BackendSnapshot> {
        let now = clock::now();
        let params = self.params();
        self.table
            .load()
            .iter()
            .map(|b| b.snapshot(&params, now))
            .collect()
    }

    fn get(&self, id: u64) -> Option<Arc<Backend>> {
        self.table.load().iter().find(|b| b.id() == id).cloned()
    }

    /// Whether some backend could take a call of `class` now (the check
    /// [`BackendSet::choose`] makes, without leasing): the wait queue uses
    /// it to wake more waiters when room appeared without a call ending (a
    /// limit that grew, a waiter that was served elsewhere).
    pub fn has_room(&self, class: Class, now: Instant) -> bool {
        let params = self.params();
        let table = self.table.load();
        let panic = !table.iter().any(|b| b.health().is_healthy(now));
        table
            .iter()
            .any(|b| b.is_candidate(&params, class, now, !panic))
    }

    /// Leases a backend for one call of `class`: power of two choices over
    /// backends that are healthy, not draining, below their in-flight limit
    /// (plus the reserve for the priority class), admitted by their breaker
    /// and not in `exclude`. When no backend at all is healthy, health is
    /// ignored (panic routing) rather than refusing all.
    pub fn choose(
        &self,
        exclude: &[u64],
        kind: AttemptKind,
        class: Class,
        now: Instant,
    ) -> Result<Lease, NoBackend> {
        let params = self.params();
        let table = self.table.load();
        let open = |b: &Arc<Backend>| !exclude.contains(&b.id()) && !b.is_draining();
        let panic = !table.iter().any(|b| b.health().is_healthy(now));
        let mut candidates: Vec<&Arc<Backend>> = table
            .iter()
            .filter(|b| open(b) && b.is_candidate(&params, class, now, !panic))
            .collect();
        let mut rng = thread_rng();
        while let Some(i) = p2c::pick(
            &candidates,
            |b| {
                p2c::score(
                    b.in_flight(),
                    b.ewma_micros(now, params.balance.ewma_half_life),
                )
            },
            &mut rng,
        ) {
            if let Some(lease) = candidates[i].try_lease(&params, kind, class, now) {
                return Ok(lease);
            }
            candidates.swap_remove(i);
        }
        let remaining: Vec<_> = table.iter().filter(|b| open(b)).collect();
        if remaining.is_empty() {
            Err(NoBackend::Empty)
        } else if remaining
            .iter()
            .all(|b| b.breaker().state(now) == BreakerState::Open)
        {
            Err(NoBackend::AllOpen)
        } else if remaining
            .iter()
            .all(|b| b.in_flight() >= b.capacity(&params, class))
        {
            Err(NoBackend::AllBusy)
        } else {
            Err(NoBackend::Empty)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resilience::backend::Ended;
    use crate::resilience::ResilienceConfig;
    use crate::upstream::fake::{FakeConnector, Mode};
    use crate::upstream::CallOutcome;

    fn set(n: usize, cfg: ResilienceConfig) -> (Arc<BackendSet>, Vec<String>) {
        let (c, urls) = FakeConnector::with(&vec![Mode::Ok; n]);
        let set = BackendSet::new(&urls, c, cfg.backend(Duration::from_millis(50))).unwrap();
        (set, urls)
    }

    fn active(s: &BackendSet) -> Vec<String> {
        s.snapshot()
            .into_iter()
            .filter(|b| b.state == "active")
            .map(|b| b.url)
            .collect()
    }

    #[tokio::test]
    async fn add_remove_and_unknown_ids() {
        let (s, urls) = set(1, ResilienceConfig::default());
        let b = s.add_backend("http://fake:9").unwrap();
        assert!(matches!(
            s.add_backend("http://fake:9"),
            Err(SetError::Duplicate(_))
        ));
        assert!(matches!(
            s.add_backend("not a url"),
            Err(SetError::InvalidUrl(_))
        ));
        assert_eq!(s.snapshot().len(), 2);
        s.remove_backend(b).unwrap();
        assert_eq!(active(&s), urls);
        assert!(matches!(
            s.remove_backend(b),
            Err(SetError::UnknownBackend(_))
        ));
        assert!(matches!(
            s.reset_breaker(99),
            Err(SetError::UnknownBackend(99))
        ));
    }

    #[tokio::test]
    async fn removing_a_backend_does_not_fail_its_in_flight_call() {
        let (s, urls) = set(1, ResilienceConfig::default());
        let lease = s
            .choose(&[], AttemptKind::First, Class::Normal, clock::now())
            .unwrap();
        let id = lease.backend().id();
        s.remove_backend(id).unwrap();
        // The call still has its backend and upstream and completes normally.
        assert_eq!(lease.backend().url(), urls[0]);
        assert_eq!(lease.backend().in_flight(), 1);
        let backend = lease.backend().clone();
        lease.finish(Ended::answered(Duration::from_millis(1)));
        assert_eq!(backend.in_flight(), 0);
        assert_eq!(backend.snapshot(&s.params(), clock::now()).errors, 0);
        // No new call goes to it.
        assert_eq!(
            s.choose(&[], AttemptKind::First, Class::Normal, clock::now())
                .unwrap_err(),
            NoBackend::Empty
        );
    }

    #[tokio::test(start_paused = true)]
    async fn draining_takes_no_new_calls_and_leaves_after_in_flight_finish() {
        let (s, _) = set(2, ResilienceConfig::default());
        let ids: Vec<u64> = s.snapshot().iter().map(|b| b.id).collect();
        let now = clock::now();
        // Hold a call on the first.
        let held = loop {
            let l = s
                .choose(&[], AttemptKind::First, Class::Normal, now)
                .unwrap();
            if l.backend().id() == ids[0] {
                break l;
            }
        };
        s.drain_backend(ids[0]).unwrap();
        for _ in 0..50 {
            let l = s
                .choose(&[], AttemptKind::First, Class::Normal, now)
                .unwrap();
            assert_eq!(l.backend().id(), ids[1], "draining backend got a call");
        }
        tokio::time::sleep(DRAIN_POLL * 5).await;
        assert_eq!(
            s.snapshot().len(),
            2,
            "still there while a call is in flight"
        );
        assert_eq!(s.snapshot()[0].state, "draining");
        held.finish(Ended::answered(Duration::from_millis(1)));
        tokio::time::sleep(DRAIN_POLL * 2).await;
        let left: Vec<u64> = s.snapshot().iter().map(|b| b.id).collect();
        assert_eq!(left, [ids[1]]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_applies_only_what_the_file_changed() {
        let (s, urls) = set(2, ResilienceConfig::default());
        let (a, b) = (urls[0].clone(), urls[1].clone());
        let c = "http://fake:7".to_owned();
        let file = vec![a.clone(), b.clone()];
        // An operator drains A and adds C through the admin API.
        let id_a = s.snapshot()[0].id;
        s.drain_backend(id_a).unwrap();
        s.add_backend(&c).unwrap();
        tokio::time::sleep(DRAIN_POLL * 2).await;
        // A reload of the unchanged file keeps both admin changes.
        s.apply_file_change(&file, &file).unwrap();
        tokio::time::sleep(DRAIN_POLL * 2).await;
        assert_eq!(active(&s), [b.clone(), c.clone()]);
        // The file drops B and lists D: B drains, D joins, C stays.
        let d = "http://fake:8".to_owned();
        let next = vec![a.clone(), d.clone()];
        s.apply_file_change(&file, &next).unwrap();
        tokio::time::sleep(DRAIN_POLL * 2).await;
        assert_eq!(active(&s), [c.clone(), d.clone()]);
        // A bad new URL changes nothing.
        let bad = vec![a.clone(), d.clone(), "\u{0}".to_owned()];
        assert!(s.apply_file_change(&next, &bad).is_err());
        assert_eq!(active(&s), [c, d]);
    }

    #[tokio::test]
    async fn exclusion_busy_and_open_breakers() {
        let (s, _) = set(
            2,
            ResilienceConfig {
                max_in_flight_per_backend: 1,
                limit_min: 1,
                breaker_window: 1,
                ..ResilienceConfig::default()
            },
        );
        let now = clock::now();
        let first = s
            .choose(&[], AttemptKind::First, Class::Normal, now)
            .unwrap();
        let other = s
            .choose(
                &[first.backend().id()],
                AttemptKind::Retry,
                Class::Normal,
                now,
            )
            .unwrap();
        assert_ne!(first.backend().id(), other.backend().id());
        assert_eq!(
            s.choose(&[], AttemptKind::First, Class::Normal, now)
                .unwrap_err(),
            NoBackend::AllBusy
        );
        first.finish(Ended::failed(CallOutcome::Transport, Duration::ZERO));
        other.finish(Ended::failed(CallOutcome::Timeout, Duration::ZERO));
        assert_eq!(
            s.choose(&[], AttemptKind::First, Class::Normal, clock::now())
                .unwrap_err(),
            NoBackend::AllOpen
        );
    }
}
