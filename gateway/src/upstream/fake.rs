//! In-memory [`Upstream`]s for the resilience tests: each backend URL gets a
//! scripted [`FakeUpstream`] whose behaviour ([`Mode`]) can change while it
//! runs. Slow answers sleep on Tokio's clock, so tests run under paused time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use hts_proto::v1::Code;

use super::{BackendReply, BackendRequest, CallError, Connector, InvalidUrl, Upstream};

/// How a fake backend answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// OK at once.
    Ok,
    /// INSUFFICIENT_BALANCE at once (a business refusal).
    Reject,
    /// An answer SERVICE_UNAVAILABLE (nothing done) at once.
    RefuseUnavailable,
    /// gRPC UNAVAILABLE at once.
    Unavailable,
    /// Connection refused at once.
    Transport,
    /// The connection broke while the call was on it (outcome unknown).
    Broken,
    /// A server error at once.
    Internal,
    /// OK after this many milliseconds.
    Slow(u64),
    /// A backend that serves `workers` calls at a time, each taking
    /// `service_ms`; the rest queue inside it (as behind a store's writer).
    Capacity {
        /// Calls served at once.
        workers: usize,
        /// Time per call, milliseconds.
        service_ms: u64,
    },
}

/// One scripted backend.
#[derive(Debug)]
pub struct FakeUpstream {
    mode: Mutex<Mode>,
    calls: AtomicU64,
    healthy: AtomicBool,
    workers: Arc<tokio::sync::Semaphore>,
}

impl FakeUpstream {
    fn new(mode: Mode) -> FakeUpstream {
        let workers = match mode {
            Mode::Capacity { workers, .. } => workers,
            _ => 1,
        };
        FakeUpstream {
            mode: Mutex::new(mode),
            calls: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
            workers: Arc::new(tokio::sync::Semaphore::new(workers)),
        }
    }

    /// Calls received so far (health checks not counted).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Changes how it answers from now on.
    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Whether its health checks pass.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }
}

impl Upstream for FakeUpstream {
    fn call(
        &self,
        _account: Arc<str>,
        request: Arc<BackendRequest>,
        _correlation_id: u64,
        _timeout: Duration,
    ) -> BoxFuture<'static, Result<BackendReply, CallError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mode = *self.mode.lock().unwrap();
        let workers = self.workers.clone();
        Box::pin(async move {
            match mode {
                Mode::Ok => Ok(request.failure(Code::Ok, "ok")),
                Mode::Reject => Ok(request.failure(Code::InsufficientBalance, "no funds")),
                Mode::RefuseUnavailable => {
                    Ok(request.failure(Code::ServiceUnavailable, "overloaded"))
                }
                Mode::Unavailable => Err(CallError::Unavailable("down".into())),
                Mode::Transport => Err(CallError::Transport("refused".into())),
                Mode::Broken => Err(CallError::Broken("reset".into())),
                Mode::Internal => Err(CallError::Server("bug".into())),
                Mode::Slow(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(request.failure(Code::Ok, "ok"))
                }
                Mode::Capacity { service_ms, .. } => {
                    let _worker = workers.acquire_owned().await;
                    tokio::time::sleep(Duration::from_millis(service_ms)).await;
                    Ok(request.failure(Code::Ok, "ok"))
                }
            }
        })
    }

    fn check_health(&self, _timeout: Duration) -> BoxFuture<'static, bool> {
        let healthy = self.healthy.load(Ordering::SeqCst);
        Box::pin(async move { healthy })
    }
}

/// Hands out one [`FakeUpstream`] per URL (created `Ok` on first use).
#[derive(Debug, Default)]
pub struct FakeConnector {
    backends: Mutex<HashMap<String, Arc<FakeUpstream>>>,
}

impl FakeConnector {
    /// A connector whose backends `http://fake:0`, `http://fake:1`, … answer
    /// as `modes` says; returns it and the URLs.
    pub fn with(modes: &[Mode]) -> (Arc<FakeConnector>, Vec<String>) {
        let c = Arc::new(FakeConnector::default());
        let urls = modes
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let url = format!("http://fake:{i}");
                c.backends
                    .lock()
                    .unwrap()
                    .insert(url.clone(), Arc::new(FakeUpstream::new(*m)));
                url
            })
            .collect();
        (c, urls)
    }

    /// The fake behind `url`.
    pub fn get(&self, url: &str) -> Arc<FakeUpstream> {
        self.backends
            .lock()
            .unwrap()
            .entry(url.to_owned())
            .or_insert_with(|| Arc::new(FakeUpstream::new(Mode::Ok)))
            .clone()
    }

    /// Calls over every fake.
    pub fn total_calls(&self) -> u64 {
        self.backends
            .lock()
            .unwrap()
            .values()
            .map(|b| b.calls())
            .sum()
    }
}

impl Connector for FakeConnector {
    fn connect(&self, url: &str) -> Result<Arc<dyn Upstream>, InvalidUrl> {
        if !url.starts_with("http://") {
            return Err(InvalidUrl {
                url: url.to_owned(),
                reason: "not an http url".into(),
            });
        }
        Ok(self.get(url))
    }
}
