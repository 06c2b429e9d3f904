//! [`Router`]: one client request in, exactly one typed answer out, with
//! the deadline, retry, hedging, rate-limit and bulkhead policies applied.
//!
//! * Deadline: every attempt gets the time left as its gRPC timeout; when
//!   the client deadline passes the answer is TIMEOUT (outcome unknown,
//!   retrying with the same request_id is safe).
//! * Retry (at most `max_retries`, after `retry_backoff`, always to another
//!   backend, only with budget): for transport errors, UNAVAILABLE, a
//!   SERVICE_UNAVAILABLE answer, and any failure of a request carrying a
//!   request_id. Business codes are never retried.
//! * Hedging (requests with a request_id only): if the first attempt has not
//!   answered after the pool's recent p95, the same request goes to another
//!   backend; the first answer wins and the other attempt's future is
//!   dropped, which cancels the call, so its late answer never reaches the
//!   client. The order services deduplicate by (account, request_id).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use hts_proto::v1::Code;
use serde::Serialize;
use tokio::time::Instant as Deadline;

use crate::dispatch::{
    is_timeout, is_transport_error, send, status_to_code, timeout_message, BackendReply,
    BackendRequest,
};
use crate::resilience::backend::{AttemptKind, BackendSnapshot, CallResult, Lease};
use crate::resilience::config::ResilienceConfig;
use crate::resilience::set::{BackendSet, SetError};
use crate::resilience::Live;

/// A hedge is sent only to a backend using at most 1/this of its in-flight
/// limit: when backends are that busy, slowness is load, and hedging would
/// amplify it.
pub const HEDGE_LOAD_DIVISOR: usize = 2;

/// Router-level counters.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    rate_limited: AtomicU64,
    rejected_global: AtomicU64,
    no_backend: AtomicU64,
    retries: AtomicU64,
    hedges: AtomicU64,
    hedge_wins: AtomicU64,
    timeouts: AtomicU64,
}

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
    /// Requests answered TIMEOUT at the client deadline.
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

/// What an attempt's result means for the request.
#[derive(Debug)]
enum Verdict {
    /// Send this answer to the client.
    Final(BackendReply),
    /// A failure that may be retried; the answer if it is not.
    Retryable(BackendReply),
}

/// One finished attempt.
#[derive(Debug)]
struct Done {
    kind: AttemptKind,
    verdict: Verdict,
}

/// Routes client requests to backends under the resilience policies. The
/// add/drain/remove/reset/snapshot functions are what the admin surface calls.
#[derive(Debug)]
pub struct Router {
    set: Arc<BackendSet>,
    live: Arc<Live>,
    request_timeout: Duration,
    in_flight: AtomicUsize,
    counters: Counters,
}

/// Records a cancelled attempt's time so far in the pool's latency: it took
/// at least that long. Without these censored samples the slow calls that
/// hedging cuts short would vanish from the distribution, the p95 would
/// describe only fast calls, and hedging would fire for more than the
/// intended 5 % of requests.
struct PoolSample {
    tracker: Arc<crate::resilience::latency::LatencyTracker>,
    started: Instant,
    done: bool,
}

impl Drop for PoolSample {
    fn drop(&mut self) {
        if !self.done {
            self.tracker.record(self.started.elapsed(), Instant::now());
        }
    }
}

/// Holds one slot of the global in-flight limit.
struct GlobalSlot<'a>(&'a AtomicUsize);

impl Drop for GlobalSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Router {
    /// A router over `set` with the policies in `live`; `request_timeout` is
    /// quoted in TIMEOUT messages.
    pub fn new(set: Arc<BackendSet>, live: Arc<Live>, request_timeout: Duration) -> Router {
        Router {
            set,
            live,
            request_timeout,
            in_flight: AtomicUsize::new(0),
            counters: Counters::default(),
        }
    }

    /// The backend set.
    pub fn set(&self) -> &Arc<BackendSet> {
        &self.set
    }

    /// The live policy state.
    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    /// Adds a backend; returns its id.
    pub fn add_backend(&self, url: &str) -> Result<u64, SetError> {
        self.set.add_backend(url)
    }

    /// Drains backend `id` (no new requests; removed once idle).
    pub fn drain_backend(&self, id: u64) -> Result<(), SetError> {
        self.set.drain_backend(id)
    }

    /// Removes backend `id` now (its in-flight calls still finish).
    pub fn remove_backend(&self, id: u64) -> Result<(), SetError> {
        self.set.remove_backend(id)
    }

    /// Closes backend `id`'s circuit breaker.
    pub fn reset_breaker(&self, id: u64) -> Result<(), SetError> {
        self.set.reset_breaker(id)
    }

    /// Applies a new policy configuration and backend list (config reload).
    pub fn reload<S: AsRef<str>>(
        &self,
        config: ResilienceConfig,
        backends: &[S],
    ) -> anyhow::Result<()> {
        self.live.apply(config)?;
        self.set.apply_urls(backends)?;
        Ok(())
    }

    /// Counters and per-backend state.
    pub fn snapshot(&self) -> RouterSnapshot {
        let c = &self.counters;
        let (budget_deposits, budget_granted, budget_denied) = self.live.budget().counts();
        let backends = self.set.snapshot();
        RouterSnapshot {
            requests: c.requests.load(Ordering::Relaxed),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
            rejected_global: c.rejected_global.load(Ordering::Relaxed),
            no_backend: c.no_backend.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            hedges: c.hedges.load(Ordering::Relaxed),
            hedge_wins: c.hedge_wins.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            budget_deposits,
            budget_granted,
            budget_denied,
            hedge_delay_ms: self
                .live
                .hedge_delay(Instant::now())
                .map(|d| d.as_secs_f64() * 1000.0),
            backend_calls: backends.iter().map(|b| b.calls).sum(),
            backends,
        }
    }

    fn global_slot(&self, limit: usize) -> Option<GlobalSlot<'_>> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| GlobalSlot(&self.in_flight))
    }

    /// Routes `request` of `account` and returns its answer; never fails and
    /// never runs past `deadline`.
    pub async fn call(
        &self,
        account: &Arc<str>,
        request: BackendRequest,
        correlation_id: u64,
        deadline: Deadline,
    ) -> BackendReply {
        let cfg = self.live.config();
        inc(&self.counters.requests);
        if let Some(limiter) = self.live.limiter().as_ref() {
            if !limiter.check(account) {
                inc(&self.counters.rate_limited);
                return request.failure(
                    Code::RateLimited,
                    "account is over its request rate limit: slow down and retry",
                );
            }
        }
        let Some(_slot) = self.global_slot(cfg.max_in_flight_global) else {
            inc(&self.counters.rejected_global);
            return request.failure(
                Code::ServiceUnavailable,
                "gateway is at its in-flight limit: nothing was sent, retry later",
            );
        };
        if Deadline::now() >= deadline {
            inc(&self.counters.timeouts);
            return request.failure(Code::Timeout, timeout_message(self.request_timeout));
        }
        let budget = self.live.budget();
        budget.deposit();
        let idempotent = request.request_id().is_some();
        let first = match self
            .set
            .choose(&[], AttemptKind::First, &cfg, Instant::now())
        {
            Ok(lease) => lease,
            Err(why) => {
                inc(&self.counters.no_backend);
                return request.failure(
                    Code::ServiceUnavailable,
                    format!("{why}: nothing was sent, retry later"),
                );
            }
        };
        let request = Arc::new(request);
        let mut tried = vec![first.backend().id()];
        let mut running = FuturesUnordered::new();
        running.push(self.attempt(
            first,
            AttemptKind::First,
            account.clone(),
            request.clone(),
            correlation_id,
            deadline,
            cfg.clone(),
        ));
        let hedge_delay = self.live.hedge_delay(Instant::now());
        let mut hedge_armed = cfg.hedging && idempotent && hedge_delay.is_some();
        let hedge_sleep = tokio::time::sleep(hedge_delay.unwrap_or(Duration::ZERO));
        tokio::pin!(hedge_sleep);
        let mut retry_armed = false;
        let retry_sleep = tokio::time::sleep_until(deadline);
        tokio::pin!(retry_sleep);
        let deadline_sleep = tokio::time::sleep_until(deadline);
        tokio::pin!(deadline_sleep);
        let mut retries = 0u32;
        let mut last: Option<BackendReply> = None;
        loop {
            tokio::select! {
                biased;
                Some(done) = running.next() => {
                    hedge_armed = false;
                    match done.verdict {
                        Verdict::Final(reply) => {
                            if done.kind == AttemptKind::Hedge {
                                inc(&self.counters.hedge_wins);
                            }
                            return reply;
                        }
                        Verdict::Retryable(reply) => {
                            if !running.is_empty() {
                                // Another attempt is still running: wait for it.
                                last = Some(reply);
                                continue;
                            }
                            let at = Deadline::now() + cfg.retry_backoff;
                            if retries < cfg.max_retries && at < deadline {
                                last = Some(reply);
                                retry_armed = true;
                                retry_sleep.as_mut().reset(at);
                                continue;
                            }
                            return reply;
                        }
                    }
                }
                () = &mut hedge_sleep, if hedge_armed => {
                    hedge_armed = false;
                    if let Ok(lease) = self.set.choose(&tried, AttemptKind::Hedge, &cfg, Instant::now()) {
                        // A busy target means the pool is saturated, not that
                        // this one call is unlucky: a hedge would only add load.
                        let busy = lease.backend().in_flight() * HEDGE_LOAD_DIVISOR
                            > cfg.max_in_flight_per_backend;
                        if !busy && budget.withdraw() {
                            inc(&self.counters.hedges);
                            tried.push(lease.backend().id());
                            running.push(self.attempt(
                                lease,
                                AttemptKind::Hedge,
                                account.clone(),
                                request.clone(),
                                correlation_id,
                                deadline,
                                cfg.clone(),
                            ));
                        }
                    }
                }
                () = &mut retry_sleep, if retry_armed => {
                    retry_armed = false;
                    retries += 1;
                    let lease = self
                        .set
                        .choose(&tried, AttemptKind::Retry, &cfg, Instant::now())
                        .ok()
                        .filter(|_| budget.withdraw());
                    match (lease, last.take()) {
                        (Some(lease), previous) => {
                            last = previous;
                            inc(&self.counters.retries);
                            tried.push(lease.backend().id());
                            running.push(self.attempt(
                                lease,
                                AttemptKind::Retry,
                                account.clone(),
                                request.clone(),
                                correlation_id,
                                deadline,
                                cfg.clone(),
                            ));
                        }
                        // No other backend or no budget: the client gets the
                        // previous attempt's outcome.
                        (None, Some(previous)) => return previous,
                        (None, None) => {
                            return request.failure(
                                Code::ServiceUnavailable,
                                "no backend left to retry on",
                            )
                        }
                    }
                }
                () = &mut deadline_sleep => {
                    inc(&self.counters.timeouts);
                    return request.failure(Code::Timeout, timeout_message(self.request_timeout));
                }
            }
        }
    }

    /// One call to the leased backend, bounded by `deadline`.
    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        mut lease: Lease,
        kind: AttemptKind,
        account: Arc<str>,
        request: Arc<BackendRequest>,
        correlation_id: u64,
        deadline: Deadline,
        cfg: Arc<ResilienceConfig>,
    ) -> Done {
        lease.sent();
        let started = Instant::now();
        let mut pool_sample = PoolSample {
            tracker: self.live.pool_latency(),
            started,
            done: false,
        };
        let remaining = deadline.saturating_duration_since(Deadline::now());
        let client = lease.backend().client();
        let call = send(client, &account, &request, correlation_id, remaining);
        let outcome = tokio::time::timeout_at(deadline, call).await;
        let elapsed = started.elapsed();
        let idempotent = request.request_id().is_some();
        let (result, verdict) = match outcome {
            Ok(Ok(reply)) => {
                let verdict = if reply.code() == Code::ServiceUnavailable as i32 {
                    // The backend is overloaded or its dependency is down.
                    Verdict::Retryable(reply)
                } else {
                    Verdict::Final(reply)
                };
                (CallResult::Answered, verdict)
            }
            Ok(Err(status)) => {
                let (code, message) = status_to_code(&status, self.request_timeout);
                let reply = request.failure(code, message);
                let result = if is_timeout(&status) {
                    CallResult::Timeout
                } else if is_transport_error(&status) {
                    CallResult::Transport
                } else {
                    CallResult::ServerError
                };
                let safe = idempotent
                    || result == CallResult::Transport
                    || status.code() == tonic::Code::Unavailable;
                tracing::debug!(backend = lease.backend().url(), %status, "backend call failed");
                (
                    result,
                    if safe {
                        Verdict::Retryable(reply)
                    } else {
                        Verdict::Final(reply)
                    },
                )
            }
            Err(_) => {
                let reply = request.failure(Code::Timeout, timeout_message(self.request_timeout));
                (
                    CallResult::Timeout,
                    if idempotent {
                        Verdict::Retryable(reply)
                    } else {
                        Verdict::Final(reply)
                    },
                )
            }
        };
        // Fast failures say nothing about how long an answer takes.
        if matches!(result, CallResult::Answered | CallResult::Timeout) {
            pool_sample.tracker.record(elapsed, Instant::now());
        }
        pool_sample.done = true;
        lease.finish(result, elapsed, &cfg);
        Done { kind, verdict }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::BackendSettings;
    use hts_proto::v1::order_service_server::{OrderService, OrderServiceServer};
    use hts_proto::v1::{
        CancelOrderCall, CancelOrderResponse, PlaceOrderCall, PlaceOrderRequest,
        PlaceOrderResponse, QueryOrderCall, QueryOrderRequest, QueryOrderResponse,
    };
    use std::sync::atomic::AtomicU64;
    use tonic::{Request, Response, Status};

    /// How a fake backend behaves.
    #[derive(Debug, Clone, Copy)]
    enum Mode {
        Ok,
        Unavailable,
        Internal,
        Reject,
        Slow(u64),
    }

    #[derive(Debug)]
    struct Fake {
        mode: Mode,
        calls: Arc<AtomicU64>,
    }

    impl Fake {
        async fn behave(&self) -> Result<i32, Status> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match self.mode {
                Mode::Ok => Ok(Code::Ok as i32),
                Mode::Unavailable => Err(Status::unavailable("down")),
                Mode::Internal => Err(Status::internal("bug")),
                Mode::Reject => Ok(Code::InsufficientBalance as i32),
                Mode::Slow(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(Code::Ok as i32)
                }
            }
        }
    }

    #[tonic::async_trait]
    impl OrderService for Fake {
        async fn place_order(
            &self,
            request: Request<PlaceOrderCall>,
        ) -> Result<Response<PlaceOrderResponse>, Status> {
            let code = self.behave().await?;
            let r = request.into_inner().request.unwrap_or_default();
            Ok(Response::new(PlaceOrderResponse {
                code,
                request_id: r.request_id,
                ..Default::default()
            }))
        }

        async fn cancel_order(
            &self,
            _: Request<CancelOrderCall>,
        ) -> Result<Response<CancelOrderResponse>, Status> {
            let code = self.behave().await?;
            Ok(Response::new(CancelOrderResponse {
                code,
                ..Default::default()
            }))
        }

        async fn query_order(
            &self,
            _: Request<QueryOrderCall>,
        ) -> Result<Response<QueryOrderResponse>, Status> {
            let code = self.behave().await?;
            Ok(Response::new(QueryOrderResponse {
                code,
                ..Default::default()
            }))
        }
    }

    async fn fake(mode: Mode) -> (String, Arc<AtomicU64>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(AtomicU64::new(0));
        let svc = OrderServiceServer::new(Fake {
            mode,
            calls: calls.clone(),
        });
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (format!("http://{addr}"), calls)
    }

    async fn router(modes: &[Mode], cfg: ResilienceConfig) -> (Router, Vec<Arc<AtomicU64>>) {
        let mut urls = Vec::new();
        let mut counters = Vec::new();
        for m in modes {
            let (u, c) = fake(*m).await;
            urls.push(u);
            counters.push(c);
        }
        let live = Arc::new(Live::new(cfg).unwrap());
        let set = BackendSet::new(&urls, BackendSettings::default(), live.clone()).unwrap();
        (Router::new(set, live, Duration::from_secs(2)), counters)
    }

    fn place(id: &str) -> BackendRequest {
        BackendRequest::Place(PlaceOrderRequest {
            request_id: id.into(),
            ..Default::default()
        })
    }

    fn query() -> BackendRequest {
        BackendRequest::Query(QueryOrderRequest::default())
    }

    fn total(c: &[Arc<AtomicU64>]) -> u64 {
        c.iter().map(|c| c.load(Ordering::SeqCst)).sum()
    }

    fn no_hedging() -> ResilienceConfig {
        ResilienceConfig {
            hedging: false,
            ..ResilienceConfig::default()
        }
    }

    async fn call(r: &Router, req: BackendRequest, within: Duration) -> BackendReply {
        let account: Arc<str> = Arc::from("ACC");
        r.call(&account, req, 1, Deadline::now() + within).await
    }

    #[tokio::test]
    async fn unavailable_is_retried_once_on_another_backend() {
        // Whichever backend is picked first, the answer is OK after at most
        // one retry, and a retry never goes to the backend that failed.
        for _ in 0..10 {
            let (r, c) = router(&[Mode::Unavailable, Mode::Ok], no_hedging()).await;
            let reply = call(&r, query(), Duration::from_secs(2)).await;
            assert_eq!(reply.code(), Code::Ok as i32);
            assert!(c[0].load(Ordering::SeqCst) <= 1);
            assert_eq!(c[1].load(Ordering::SeqCst), 1);
        }
    }

    #[tokio::test]
    async fn at_most_max_retries_then_the_failure_is_answered() {
        let (r, c) = router(&[Mode::Unavailable; 3], no_hedging()).await;
        let reply = call(&r, place("p-1"), Duration::from_secs(2)).await;
        assert_eq!(reply.code(), Code::ServiceUnavailable as i32);
        assert_eq!(total(&c), 2, "first attempt + one retry");
        assert_eq!(r.snapshot().retries, 1);
    }

    #[tokio::test]
    async fn business_rejections_are_never_retried() {
        let (r, c) = router(&[Mode::Reject, Mode::Reject], no_hedging()).await;
        let reply = call(&r, place("p-1"), Duration::from_secs(2)).await;
        assert_eq!(reply.code(), Code::InsufficientBalance as i32);
        assert_eq!(total(&c), 1);
    }

    #[tokio::test]
    async fn server_errors_are_retried_only_with_a_request_id() {
        let (r, c) = router(&[Mode::Internal, Mode::Internal], no_hedging()).await;
        let reply = call(&r, query(), Duration::from_secs(2)).await;
        assert_eq!(reply.code(), Code::Internal as i32);
        assert_eq!(total(&c), 1, "a query without request_id is not retried");
        let reply = call(&r, place("p-1"), Duration::from_secs(2)).await;
        assert_eq!(reply.code(), Code::Internal as i32);
        assert_eq!(total(&c), 3, "a place with request_id is retried");
    }

    #[tokio::test]
    async fn slow_attempt_is_hedged_and_the_loser_cancelled() {
        let cfg = ResilienceConfig {
            hedge_min_delay: Duration::from_millis(10),
            hedge_max_delay: Duration::from_millis(20),
            ..ResilienceConfig::default()
        };
        let (r, c) = router(&[Mode::Slow(1_000), Mode::Ok], cfg).await;
        let before = 0;
        // A measured pool (p95 1 ms, clamped to 10 ms).
        for _ in 0..crate::resilience::MIN_HEDGE_SAMPLES {
            r.live()
                .pool_latency()
                .record(Duration::from_millis(1), Instant::now());
        }
        tokio::time::sleep(crate::resilience::latency::REFRESH).await;
        for i in 0..6 {
            let started = Instant::now();
            let reply = call(&r, place(&format!("h-{i}")), Duration::from_secs(3)).await;
            assert_eq!(reply.code(), Code::Ok as i32);
            assert!(
                started.elapsed() < Duration::from_millis(900),
                "hedge answered"
            );
        }
        let s = r.snapshot();
        let slow_calls = c[0].load(Ordering::SeqCst) - before;
        assert!(slow_calls >= 1, "the unknown backend is tried first");
        assert_eq!(s.hedges, slow_calls, "every slow first attempt was hedged");
        assert_eq!(s.hedge_wins, s.hedges);
        let slow = s
            .backends
            .iter()
            .find(|b| b.hedges == 0 && b.calls == slow_calls + before);
        let slow = slow.expect("slow backend in snapshot");
        assert_eq!(slow.cancelled, slow.calls, "losers are cancelled");
        assert!(
            slow.latency_ewma_ms >= 10.0,
            "a cancelled call still costs its wait"
        );
        assert!(slow_calls <= 2, "load balancing learns from lost hedges");
    }

    #[tokio::test]
    async fn no_hedge_before_the_pool_is_measured() {
        let cfg = ResilienceConfig {
            hedge_min_delay: Duration::from_millis(5),
            hedge_max_delay: Duration::from_millis(5),
            ..ResilienceConfig::default()
        };
        let (r, c) = router(&[Mode::Slow(100), Mode::Slow(100)], cfg).await;
        let reply = call(&r, place("cold"), Duration::from_secs(2)).await;
        assert_eq!(reply.code(), Code::Ok as i32);
        assert_eq!(total(&c), 1, "cold start: no p95 yet, no hedge");
        assert_eq!(r.snapshot().hedge_delay_ms, None);
    }

    #[tokio::test]
    async fn queries_are_not_hedged() {
        let cfg = ResilienceConfig {
            hedge_min_delay: Duration::from_millis(5),
            hedge_max_delay: Duration::from_millis(5),
            ..ResilienceConfig::default()
        };
        let (r, c) = router(&[Mode::Slow(100), Mode::Slow(100)], cfg).await;
        for _ in 0..crate::resilience::MIN_HEDGE_SAMPLES {
            r.live()
                .pool_latency()
                .record(Duration::from_millis(1), Instant::now());
        }
        tokio::time::sleep(crate::resilience::latency::REFRESH).await;
        let reply = call(&r, query(), Duration::from_secs(2)).await;
        assert_eq!(reply.code(), Code::Ok as i32);
        assert_eq!(total(&c), 1);
        assert_eq!(r.snapshot().hedges, 0);
    }

    #[tokio::test]
    async fn deadline_answers_timeout_with_retry_advice() {
        let (r, _c) = router(&[Mode::Slow(2_000)], no_hedging()).await;
        let started = Instant::now();
        let reply = call(&r, place("t-1"), Duration::from_millis(100)).await;
        assert!(started.elapsed() < Duration::from_millis(1_500));
        assert_eq!(reply.code(), Code::Timeout as i32);
        let BackendReply::Place(p) = reply else {
            panic!("wrong reply type")
        };
        assert!(p.message.contains("outcome is unknown"), "{}", p.message);
        assert!(p.message.contains("same request_id"), "{}", p.message);
        assert_eq!(p.request_id, "t-1");
    }

    #[tokio::test]
    async fn global_limit_refuses_at_once() {
        let cfg = ResilienceConfig {
            max_in_flight_global: 1,
            hedging: false,
            ..ResilienceConfig::default()
        };
        let (r, c) = router(&[Mode::Slow(500)], cfg).await;
        let r = Arc::new(r);
        let held = {
            let r = r.clone();
            tokio::spawn(async move { call(&r, place("held"), Duration::from_secs(3)).await })
        };
        while c[0].load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let started = Instant::now();
        let reply = call(&r, place("refused"), Duration::from_secs(3)).await;
        assert_eq!(reply.code(), Code::ServiceUnavailable as i32);
        assert!(started.elapsed() < Duration::from_millis(400), "not queued");
        assert_eq!(held.await.unwrap().code(), Code::Ok as i32);
        assert_eq!(r.snapshot().rejected_global, 1);
    }

    #[tokio::test]
    async fn all_breakers_open_refuses_without_calling_anyone() {
        let cfg = ResilienceConfig {
            breaker_window: 2,
            max_retries: 0,
            hedging: false,
            ..ResilienceConfig::default()
        };
        let (r, c) = router(&[Mode::Unavailable], cfg).await;
        for _ in 0..2 {
            call(&r, query(), Duration::from_secs(1)).await;
        }
        assert_eq!(total(&c), 2);
        let reply = call(&r, query(), Duration::from_secs(1)).await;
        assert_eq!(reply.code(), Code::ServiceUnavailable as i32);
        let BackendReply::Query(q) = reply else {
            panic!("wrong reply type")
        };
        assert!(
            q.message.contains("circuit breaker is open"),
            "{}",
            q.message
        );
        assert_eq!(total(&c), 2, "no call to an open backend");
        r.reset_breaker(r.snapshot().backends[0].id).unwrap();
        call(&r, query(), Duration::from_secs(1)).await;
        assert_eq!(total(&c), 3, "reset breaker lets calls through");
    }

    #[tokio::test]
    async fn rate_limit_answers_rate_limited_without_a_call() {
        let cfg = ResilienceConfig {
            account_rate_per_sec: 1,
            account_burst: 2,
            ..ResilienceConfig::default()
        };
        let (r, c) = router(&[Mode::Ok], cfg).await;
        let codes: Vec<i32> =
            futures::future::join_all((0..4).map(|_| call(&r, query(), Duration::from_secs(1))))
                .await
                .iter()
                .map(BackendReply::code)
                .collect();
        assert_eq!(
            codes
                .iter()
                .filter(|c| **c == Code::RateLimited as i32)
                .count(),
            2
        );
        assert_eq!(total(&c), 2);
    }
}
