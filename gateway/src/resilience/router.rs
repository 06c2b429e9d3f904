//! [`Router`]: one client request in, exactly one typed answer out. It
//! composes the policies in the order a request meets them:
//!
//! 1. [`admission`](crate::resilience::admission): rate limit and the
//!    gateway-wide in-flight limit, answered at once;
//! 2. the [`BackendSet`] leases a backend (p2c over healthy, admitting,
//!    non-full backends: breaker and bulkhead live there);
//! 3. [`attempt`]s race: the first, a [`hedge`](crate::resilience::hedge)
//!    after the pool's recent p95, a [`retry`](crate::resilience::retry)
//!    after a retryable failure — each to a backend not tried yet, the
//!    extra ones only with the [`RetryBudget`]'s permission;
//! 4. the client's deadline ends it: TIMEOUT, outcome unknown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::stream::{FuturesUnordered, StreamExt};
use hts_proto::v1::Code;
use tokio::time::Instant as Deadline;

use crate::resilience::admission::Admission;
use crate::resilience::attempt::{self, Call};
use crate::resilience::backend::{AttemptKind, Lease};
use crate::resilience::budget::RetryBudget;
use crate::resilience::clock;
use crate::resilience::config::{ConfigError, ResilienceConfig};
use crate::resilience::hedge::Hedging;
use crate::resilience::retry::Verdict;
use crate::resilience::set::BackendSet;
use crate::upstream::{timeout_message, BackendReply, BackendRequest};

/// Routes client requests to backends under the resilience policies.
#[derive(Debug)]
pub struct Router {
    pub(crate) set: Arc<BackendSet>,
    pub(crate) admission: Admission,
    pub(crate) budget: RetryBudget,
    pub(crate) hedging: Hedging,
    config: ArcSwap<ResilienceConfig>,
    request_timeout: Duration,
    pub(crate) counters: Counters,
}

/// Router-level counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) no_backend: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) timeouts: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Router {
    /// A router over `set` with the policies of `config` (validated by the
    /// caller: the set was built from it); `request_timeout` is quoted in
    /// TIMEOUT answers.
    pub fn new(
        set: Arc<BackendSet>,
        config: ResilienceConfig,
        request_timeout: Duration,
    ) -> Router {
        Router {
            set,
            admission: Admission::new(config.admission()),
            budget: RetryBudget::new(config.budget()),
            hedging: Hedging::new(config.hedge()),
            config: ArcSwap::from_pointee(config),
            request_timeout,
            counters: Counters::default(),
        }
    }

    /// The backend set (the admin API's add/drain/remove/reset act on it).
    pub fn set(&self) -> &Arc<BackendSet> {
        &self.set
    }

    /// The policies in force.
    pub fn config(&self) -> Arc<ResilienceConfig> {
        self.config.load_full()
    }

    /// The hedging policy (and the pool latency it measures).
    pub fn hedging(&self) -> &Hedging {
        &self.hedging
    }

    /// Switches every policy to `config` (config reload); parts whose own
    /// settings changed start afresh, the others keep their state. A
    /// config that does not validate changes nothing.
    pub fn reconfigure(&self, config: ResilienceConfig) -> Result<(), ConfigError> {
        config.validate()?;
        self.admission.reconfigure(config.admission());
        self.budget.reconfigure(config.budget());
        self.hedging.reconfigure(config.hedge());
        self.set.reconfigure(config.backend());
        self.config.store(Arc::new(config));
        Ok(())
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
        let reply = self.route(account, request, correlation_id, deadline).await;
        // Counted from the answer, whichever path produced the TIMEOUT.
        if reply.code() == Code::Timeout as i32 {
            inc(&self.counters.timeouts);
        }
        reply
    }

    async fn route(
        &self,
        account: &Arc<str>,
        request: BackendRequest,
        correlation_id: u64,
        deadline: Deadline,
    ) -> BackendReply {
        inc(&self.counters.requests);
        let _admitted = match self.admission.admit(account) {
            Ok(admitted) => admitted,
            Err(refusal) => return request.failure(refusal.code(), refusal.message()),
        };
        if Deadline::now() >= deadline {
            return request.failure(Code::Timeout, timeout_message(self.request_timeout));
        }
        self.budget.deposit();
        let first = match self.set.choose(&[], AttemptKind::First, clock::now()) {
            Ok(lease) => lease,
            Err(why) => {
                inc(&self.counters.no_backend);
                return request.failure(
                    Code::ServiceUnavailable,
                    format!("{why}: nothing was sent, retry later"),
                );
            }
        };
        let call = Call {
            account: account.clone(),
            request: Arc::new(request),
            correlation_id,
            deadline,
        };
        self.race(first, &call).await
    }

    /// Runs the attempts of `call`, starting with `first`, until one gives
    /// the answer or the deadline passes.
    async fn race(&self, first: Lease, call: &Call) -> BackendReply {
        let config = self.config();
        let retry = config.retry();
        let mut tried = vec![first.backend().id()];
        let mut running = FuturesUnordered::new();
        running.push(attempt::run(
            first,
            AttemptKind::First,
            call,
            self.hedging.measure(),
        ));
        let hedge_delay = self.hedging.delay(call.idempotent(), clock::now());
        let mut hedge_armed = hedge_delay.is_some();
        let hedge_sleep = tokio::time::sleep(hedge_delay.unwrap_or(Duration::ZERO));
        tokio::pin!(hedge_sleep);
        let mut retry_armed = false;
        let retry_sleep = tokio::time::sleep_until(call.deadline);
        tokio::pin!(retry_sleep);
        let deadline_sleep = tokio::time::sleep_until(call.deadline);
        tokio::pin!(deadline_sleep);
        let mut retries = 0u32;
        // The answer of the last retryable failure, if nothing better comes.
        let mut last: Option<BackendReply> = None;
        loop {
            tokio::select! {
                biased;
                Some(done) = running.next() => {
                    hedge_armed = false;
                    let reply = done
                        .result
                        .unwrap_or_else(|e| call.request.failure(e.code(), e.message(self.request_timeout)));
                    if done.verdict == Verdict::Final {
                        if done.kind == AttemptKind::Hedge {
                            self.hedging.won();
                        }
                        return reply;
                    }
                    if !running.is_empty() {
                        // Another attempt is still running: wait for it.
                        last = Some(reply);
                        continue;
                    }
                    match retry.next_at(retries, Deadline::now(), call.deadline) {
                        Some(at) => {
                            last = Some(reply);
                            retry_armed = true;
                            retry_sleep.as_mut().reset(at);
                        }
                        None => return reply,
                    }
                }
                () = &mut hedge_sleep, if hedge_armed => {
                    hedge_armed = false;
                    if let Some(lease) = self.hedge_lease(&tried) {
                        self.hedging.sent();
                        tried.push(lease.backend().id());
                        running.push(attempt::run(lease, AttemptKind::Hedge, call, self.hedging.measure()));
                    }
                }
                () = &mut retry_sleep, if retry_armed => {
                    retry_armed = false;
                    retries += 1;
                    let lease = self
                        .set
                        .choose(&tried, AttemptKind::Retry, clock::now())
                        .ok()
                        .filter(|_| self.budget.withdraw());
                    match lease {
                        Some(lease) => {
                            inc(&self.counters.retries);
                            tried.push(lease.backend().id());
                            running.push(attempt::run(lease, AttemptKind::Retry, call, self.hedging.measure()));
                        }
                        // No other backend or no budget: the client gets the
                        // previous attempt's outcome.
                        None => {
                            return last.take().unwrap_or_else(|| {
                                call.request.failure(Code::ServiceUnavailable, "no backend left to retry on")
                            })
                        }
                    }
                }
                () = &mut deadline_sleep => {
                    return call.request.failure(Code::Timeout, timeout_message(self.request_timeout));
                }
            }
        }
    }

    /// A backend for a hedge: one not tried yet, with room (a busy target
    /// means the pool is saturated, not that this one call is unlucky: a
    /// hedge would only add load), and budget for it.
    fn hedge_lease(&self, tried: &[u64]) -> Option<Lease> {
        let lease = self
            .set
            .choose(tried, AttemptKind::Hedge, clock::now())
            .ok()?;
        let limit = self.set.params().max_in_flight;
        (Hedging::has_room(lease.backend().in_flight(), limit) && self.budget.withdraw())
            .then_some(lease)
    }
}

#[cfg(test)]
mod tests;
