//! Fault injection for resilience tests and drills, in one place.
//!
//! * [`Faulty`] wraps an `OrderService` and, per call, may answer gRPC
//!   UNAVAILABLE, add latency, never answer, or exit the process, as its
//!   [`FaultConfig`] says. The config can be changed while serving (the CLI
//!   polls a JSON file), so a test can remove a fault without a restart.
//!   Calls are counted.
//! * [`CommitFault`] is the hook stores run right after a commit: with
//!   `exit_after_commit` it ends the process before the committed events
//!   are published or the callers answered.
//!
//! Which calls are affected is decided by a counter, not a random draw: a
//! ratio of 0.5 hits exactly every second call, so tests count exactly.
//! Only the OrderService is wrapped; the health service keeps answering, as
//! it would for a backend whose dependency misbehaves.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hts_proto::v1::order_service_server::OrderService;
use hts_proto::v1::{
    CancelOrderCall, CancelOrderResponse, PlaceOrderCall, PlaceOrderResponse, QueryOrderCall,
    QueryOrderResponse,
};
use serde::Deserialize;
use tonic::{Request, Response, Status};

/// Exit code of the [`CommitFault`] exit-after-commit hook.
pub const FAULT_EXIT_CODE: i32 = 86;

/// The fault run right after every commit that produced outbox events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitFault {
    exit_after_commit: bool,
}

impl CommitFault {
    /// With `on`: exit the process with [`FAULT_EXIT_CODE`] right after the
    /// first commit that produced an event, before it is published or
    /// answered. Off: does nothing.
    pub fn exit_after_commit(on: bool) -> Self {
        Self {
            exit_after_commit: on,
        }
    }

    /// Called by the stores' after-commit hook once events are committed.
    pub(crate) fn committed(&self) {
        if self.exit_after_commit {
            tracing::warn!("fault hook: exiting after commit, before publish");
            std::process::exit(FAULT_EXIT_CODE);
        }
    }
}

/// Faults to inject; all off by default.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Share of calls answered with gRPC UNAVAILABLE (0–1).
    pub error_ratio: f64,
    /// Latency added to the affected calls, in milliseconds.
    pub latency_ms: u64,
    /// Share of calls that get `latency_ms` (0–1; 1 when only `latency_ms` is set).
    pub latency_ratio: Option<f64>,
    /// Share of calls never answered (0–1).
    pub hang_ratio: f64,
    /// Exit the process when this many calls have arrived.
    pub crash_after: Option<u64>,
}

/// A fault file could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// Reading failed.
    #[error("cannot read fault file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The JSON is not a fault config.
    #[error("invalid fault file {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

impl FaultConfig {
    /// Reads a JSON fault config from `path`.
    pub fn from_file(path: &Path) -> Result<FaultConfig, FaultError> {
        let text = std::fs::read_to_string(path).map_err(|source| FaultError::Read {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| FaultError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    /// Whether any fault is configured.
    pub fn is_active(&self) -> bool {
        *self != FaultConfig::default()
    }
}

/// Whether call number `n` (0-based) falls in the share `ratio`: exactly
/// `ratio` of every run of calls is hit, spread evenly.
fn hits(n: u64, ratio: f64) -> bool {
    if ratio.is_nan() || ratio <= 0.0 {
        return false;
    }
    let r = ratio.min(1.0);
    ((n + 1) as f64 * r).floor() > (n as f64 * r).floor()
}

/// The shared, changeable fault settings and call counter.
#[derive(Debug, Default)]
pub struct FaultInjector {
    config: RwLock<FaultConfig>,
    calls: AtomicU64,
}

impl FaultInjector {
    /// An injector with `config`.
    pub fn new(config: FaultConfig) -> Arc<FaultInjector> {
        Arc::new(FaultInjector {
            config: RwLock::new(config),
            calls: AtomicU64::new(0),
        })
    }

    /// Replaces the fault settings.
    pub fn set(&self, config: FaultConfig) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    /// The current fault settings.
    pub fn get(&self) -> FaultConfig {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// OrderService calls received so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Applies the faults to one call; `Err` is the injected failure.
    async fn apply(&self) -> Result<(), Status> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let cfg = self.get();
        if cfg.crash_after.is_some_and(|limit| n + 1 >= limit) {
            tracing::error!(calls = n + 1, "fault injection: crashing");
            std::process::exit(3);
        }
        if hits(n, cfg.hang_ratio) {
            std::future::pending::<()>().await;
        }
        if cfg.latency_ms > 0 && hits(n, cfg.latency_ratio.unwrap_or(1.0)) {
            tokio::time::sleep(Duration::from_millis(cfg.latency_ms)).await;
        }
        if hits(n, cfg.error_ratio) {
            return Err(Status::unavailable("injected fault"));
        }
        Ok(())
    }

    /// Re-reads `path` every `interval` and applies it when it parses;
    /// a missing or broken file leaves the settings as they are.
    pub async fn watch_file(self: Arc<Self>, path: std::path::PathBuf, interval: Duration) {
        loop {
            match FaultConfig::from_file(&path) {
                Ok(cfg) if cfg != self.get() => {
                    tracing::warn!(?cfg, "fault injection settings changed");
                    self.set(cfg);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "fault file not applied"),
            }
            tokio::time::sleep(interval).await;
        }
    }
}

/// An `OrderService` with faults injected before each call.
#[derive(Debug, Clone)]
pub struct Faulty<S> {
    inner: S,
    faults: Arc<FaultInjector>,
}

impl<S> Faulty<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, faults: Arc<FaultInjector>) -> Faulty<S> {
        Faulty { inner, faults }
    }
}

#[tonic::async_trait]
impl<S: OrderService> OrderService for Faulty<S> {
    async fn place_order(
        &self,
        request: Request<PlaceOrderCall>,
    ) -> Result<Response<PlaceOrderResponse>, Status> {
        self.faults.apply().await?;
        self.inner.place_order(request).await
    }

    async fn cancel_order(
        &self,
        request: Request<CancelOrderCall>,
    ) -> Result<Response<CancelOrderResponse>, Status> {
        self.faults.apply().await?;
        self.inner.cancel_order(request).await
    }

    async fn query_order(
        &self,
        request: Request<QueryOrderCall>,
    ) -> Result<Response<QueryOrderResponse>, Status> {
        self.faults.apply().await?;
        self.inner.query_order(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_hit_exactly() {
        let count = |r: f64| (0..1000).filter(|n| hits(*n, r)).count();
        assert_eq!(count(0.0), 0);
        assert_eq!(count(0.5), 500);
        assert_eq!(count(0.1), 100);
        assert_eq!(count(1.0), 1000);
        assert_eq!(count(f64::NAN), 0);
        // Spread evenly: 0.5 alternates.
        assert_eq!(
            (0..4).map(|n| hits(n, 0.5)).collect::<Vec<_>>(),
            [false, true, false, true]
        );
    }

    #[tokio::test]
    async fn errors_latency_and_live_changes() {
        let f = FaultInjector::new(FaultConfig {
            error_ratio: 1.0,
            ..FaultConfig::default()
        });
        assert_eq!(
            f.apply().await.unwrap_err().code(),
            tonic::Code::Unavailable
        );
        f.set(FaultConfig::default());
        assert!(f.apply().await.is_ok());
        f.set(FaultConfig {
            latency_ms: 30,
            ..FaultConfig::default()
        });
        let t = std::time::Instant::now();
        f.apply().await.unwrap();
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert_eq!(f.calls(), 3);
    }

    #[tokio::test]
    async fn hang_never_answers() {
        let f = FaultInjector::new(FaultConfig {
            hang_ratio: 1.0,
            ..FaultConfig::default()
        });
        let r = tokio::time::timeout(Duration::from_millis(50), f.apply()).await;
        assert!(r.is_err(), "hung call answered");
    }

    #[tokio::test]
    async fn file_is_polled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faults.json");
        std::fs::write(&path, r#"{"error_ratio": 0.5}"#).unwrap();
        assert_eq!(FaultConfig::from_file(&path).unwrap().error_ratio, 0.5);
        let f = FaultInjector::new(FaultConfig::default());
        let task = tokio::spawn(
            f.clone()
                .watch_file(path.clone(), Duration::from_millis(10)),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(f.get().error_ratio, 0.5);
        std::fs::write(&path, "{}").unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!f.get().is_active());
        std::fs::write(&path, "not json").unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!f.get().is_active(), "broken file ignored");
        task.abort();
        assert!(FaultConfig::from_file(&dir.path().join("nope")).is_err());
    }
}
