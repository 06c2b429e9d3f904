//! [`BackendSet`]: the live routing table of backends.
//!
//! The table is an `ArcSwap<Vec<Arc<Backend>>>`: the request path loads it
//! without locking, and add/drain/remove publish a new vector. A call holds
//! its own `Arc<Backend>` (inside its [`Lease`]), so removing a backend never
//! fails a call already in flight. Draining stops new calls at once and
//! removes the backend once its in-flight calls have finished.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rand::thread_rng;

use crate::resilience::backend::{AttemptKind, Backend, BackendSnapshot, Lease};
use crate::resilience::breaker::BreakerState;
use crate::resilience::config::ResilienceConfig;
use crate::resilience::{health, p2c, Live};
use crate::routing::{channel, BackendSettings, RoutingError};

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
    Routing(#[from] RoutingError),
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
    settings: BackendSettings,
    live: Arc<Live>,
    edit: Mutex<()>,
}

impl BackendSet {
    /// A set of `urls`. Must run inside a Tokio runtime (health checks).
    pub fn new<S: AsRef<str>>(
        urls: &[S],
        settings: BackendSettings,
        live: Arc<Live>,
    ) -> Result<Arc<BackendSet>, SetError> {
        let set = Arc::new(BackendSet {
            table: ArcSwap::from_pointee(Vec::new()),
            next_id: AtomicU64::new(1),
            settings,
            live,
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
        let channel = channel(url, self.settings)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let backend = Arc::new(Backend::new(
            id,
            url.to_owned(),
            channel,
            &self.live.config(),
        ));
        tokio::spawn(health::run_checks(
            Arc::downgrade(&backend),
            self.live.clone(),
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
            let started = Instant::now();
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

    /// Makes the set hold exactly `urls`: adds the missing ones and drains
    /// those not listed (config reload).
    pub fn apply_urls<S: AsRef<str>>(self: &Arc<Self>, urls: &[S]) -> Result<(), SetError> {
        // Validate every URL before changing anything.
        for u in urls {
            channel(u.as_ref(), self.settings)?;
        }
        let current = self.table.load_full();
        for b in current.iter() {
            if !b.is_draining() && !urls.iter().any(|u| u.as_ref() == b.url()) {
                self.drain_backend(b.id())?;
            }
        }
        for u in urls {
            let present = self
                .table
                .load()
                .iter()
                .any(|b| b.url() == u.as_ref() && !b.is_draining());
            if !present {
                self.add_backend(u.as_ref())?;
            }
        }
        Ok(())
    }

    /// Per-backend state as of now.
    pub fn snapshot(&self) -> Vec<BackendSnapshot> {
        let now = Instant::now();
        self.table.load().iter().map(|b| b.snapshot(now)).collect()
    }

    fn get(&self, id: u64) -> Option<Arc<Backend>> {
        self.table.load().iter().find(|b| b.id() == id).cloned()
    }

    /// Leases a backend for one call: power of two choices over backends
    /// that are healthy, not draining, below their in-flight limit, admitted
    /// by their breaker and not in `exclude`. When no backend at all is
    /// healthy, health is ignored (panic routing) rather than refusing all.
    pub fn choose(
        &self,
        exclude: &[u64],
        kind: AttemptKind,
        cfg: &ResilienceConfig,
        now: Instant,
    ) -> Result<Lease, NoBackend> {
        let table = self.table.load();
        let open = |b: &Arc<Backend>| !exclude.contains(&b.id()) && !b.is_draining();
        let panic = !table.iter().any(|b| b.health().is_healthy(now));
        let mut candidates: Vec<&Arc<Backend>> = table
            .iter()
            .filter(|b| open(b) && b.is_candidate(cfg, now, !panic))
            .collect();
        let mut rng = thread_rng();
        while let Some(i) = p2c::pick(
            &candidates,
            |b| p2c::score(b.in_flight(), b.ewma_micros(now, cfg.ewma_half_life)),
            &mut rng,
        ) {
            if let Some(lease) = candidates[i].try_lease(cfg, kind, now) {
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
            .all(|b| b.in_flight() >= cfg.max_in_flight_per_backend)
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
    use crate::resilience::backend::CallResult;

    fn set(urls: &[&str], cfg: ResilienceConfig) -> Arc<BackendSet> {
        let live = Arc::new(Live::new(cfg).unwrap());
        BackendSet::new(urls, BackendSettings::default(), live).unwrap()
    }

    const A: &str = "http://127.0.0.1:1";
    const B: &str = "http://127.0.0.1:2";
    const C: &str = "http://127.0.0.1:3";

    #[tokio::test]
    async fn add_remove_and_unknown_ids() {
        let s = set(&[A], ResilienceConfig::default());
        let b = s.add_backend(B).unwrap();
        assert!(matches!(s.add_backend(B), Err(SetError::Duplicate(_))));
        assert!(matches!(
            s.add_backend("not a url"),
            Err(SetError::Routing(_))
        ));
        assert_eq!(s.snapshot().len(), 2);
        s.remove_backend(b).unwrap();
        assert_eq!(s.snapshot().len(), 1);
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
        let cfg = ResilienceConfig::default();
        let s = set(&[A], cfg.clone());
        let lease = s
            .choose(&[], AttemptKind::First, &cfg, Instant::now())
            .unwrap();
        let id = lease.backend().id();
        s.remove_backend(id).unwrap();
        // The call still has its backend and channel and completes normally.
        assert_eq!(lease.backend().url(), A);
        assert_eq!(lease.backend().in_flight(), 1);
        let backend = lease.backend().clone();
        lease.finish(CallResult::Answered, Duration::from_millis(1), &cfg);
        assert_eq!(backend.in_flight(), 0);
        assert_eq!(backend.snapshot(Instant::now()).errors, 0);
        // No new call goes to it.
        assert_eq!(
            s.choose(&[], AttemptKind::First, &cfg, Instant::now())
                .unwrap_err(),
            NoBackend::Empty
        );
    }

    #[tokio::test]
    async fn draining_takes_no_new_calls_and_leaves_after_in_flight_finish() {
        let cfg = ResilienceConfig::default();
        let s = set(&[A, B], cfg.clone());
        let ids: Vec<u64> = s.snapshot().iter().map(|b| b.id).collect();
        let now = Instant::now();
        // Hold a call on A.
        let held = loop {
            let l = s.choose(&[], AttemptKind::First, &cfg, now).unwrap();
            if l.backend().id() == ids[0] {
                break l;
            }
        };
        s.drain_backend(ids[0]).unwrap();
        for _ in 0..50 {
            let l = s.choose(&[], AttemptKind::First, &cfg, now).unwrap();
            assert_eq!(l.backend().id(), ids[1], "draining backend got a call");
        }
        tokio::time::sleep(DRAIN_POLL * 5).await;
        assert_eq!(
            s.snapshot().len(),
            2,
            "still there while a call is in flight"
        );
        assert_eq!(s.snapshot()[0].state, "draining");
        held.finish(CallResult::Answered, Duration::from_millis(1), &cfg);
        for _ in 0..100 {
            if s.snapshot().len() == 1 {
                break;
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
        let left: Vec<u64> = s.snapshot().iter().map(|b| b.id).collect();
        assert_eq!(left, [ids[1]]);
    }

    #[tokio::test]
    async fn apply_urls_adds_and_drains() {
        let s = set(&[A, B], ResilienceConfig::default());
        s.apply_urls(&[B, C]).unwrap();
        let snap = s.snapshot();
        let active: Vec<&str> = snap
            .iter()
            .filter(|b| b.state == "active")
            .map(|b| b.url.as_str())
            .collect();
        assert_eq!(active, [B, C]);
        // A bad URL changes nothing.
        assert!(s.apply_urls(&["\u{0}"]).is_err());
        assert!(s
            .snapshot()
            .iter()
            .any(|b| b.url == C && b.state == "active"));
    }

    #[tokio::test]
    async fn exclusion_busy_and_open_breakers() {
        let cfg = ResilienceConfig {
            max_in_flight_per_backend: 1,
            breaker_window: 1,
            ..ResilienceConfig::default()
        };
        let s = set(&[A, B], cfg.clone());
        let now = Instant::now();
        let first = s.choose(&[], AttemptKind::First, &cfg, now).unwrap();
        let other = s
            .choose(&[first.backend().id()], AttemptKind::Retry, &cfg, now)
            .unwrap();
        assert_ne!(first.backend().id(), other.backend().id());
        assert_eq!(
            s.choose(&[], AttemptKind::First, &cfg, now).unwrap_err(),
            NoBackend::AllBusy
        );
        first.finish(CallResult::Transport, Duration::ZERO, &cfg);
        other.finish(CallResult::Timeout, Duration::ZERO, &cfg);
        assert_eq!(
            s.choose(&[], AttemptKind::First, &cfg, Instant::now())
                .unwrap_err(),
            NoBackend::AllOpen
        );
    }
}
