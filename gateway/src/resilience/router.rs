//! [`Router`]: one client request in, exactly one typed answer out. It
//! composes the policies in the order a request meets them:
//!
//! 1. [`admission`](crate::resilience::admission): rate limit (cancels in a
//!    bucket of their own) and the gateway-wide in-flight limit, answered
//!    at once;
//! 2. the [`BackendSet`] leases a backend (p2c over healthy, admitting
//!    backends below their adaptive limit,
//!    [`limit`](crate::resilience::limit)); when every backend is at its
//!    limit the request waits, briefly and fairly between accounts, in the
//!    [`fair_queue`](crate::resilience::fair_queue) — or, when it could not
//!    be served within its wait budget, is refused at once: not placed,
//!    with a retry-after hint;
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

use crate::resilience::admission::{Admission, Admitted, Refusal};
use crate::resilience::attempt::{self, Call};
use crate::resilience::backend::{AttemptKind, Lease};
use crate::resilience::budget::RetryBudget;
use crate::resilience::clock;
use crate::resilience::config::{ConfigError, ResilienceConfig};
use crate::resilience::fair_queue::{NoCapacity, QueueParams, Ticket};
use crate::resilience::hedge::Hedging;
use crate::resilience::retry::Verdict;
use crate::resilience::set::{BackendSet, NoBackend};
use crate::resilience::throughput::STALL;
use crate::upstream::{timeout_message, BackendReply, BackendRequest, Class};

/// Shortest retry-after hint of a refusal.
const MIN_RETRY_AFTER: Duration = Duration::from_millis(1);
/// Longest retry-after hint of a refusal.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);
/// Most requests waiting for capacity, whatever the estimate says.
const MAX_WAITING: usize = 100_000;
/// Share of what the backends could serve within the wait budget that may
/// wait: the estimate is recent, not exact.
const QUEUE_SAFETY: f64 = 0.8;

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

/// Why a request was shed (refused before any backend work).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// The account's rate bucket was empty.
    RateLimited,
    /// The gateway-wide in-flight limit was reached.
    GatewayFull,
    /// Every backend was at its limit and the request could not wait
    /// (refused at once).
    Busy,
    /// It waited for room and none came in its wait budget (refused after
    /// waiting, still before any backend work).
    WaitExpired,
    /// No backend could take it (none, all open, all ejected).
    NoBackend,
}

impl Shed {
    /// Every reason, in label order.
    pub const ALL: [Shed; 5] = [
        Shed::RateLimited,
        Shed::GatewayFull,
        Shed::Busy,
        Shed::WaitExpired,
        Shed::NoBackend,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Shed::RateLimited => "rate_limited",
            Shed::GatewayFull => "gateway_full",
            Shed::Busy => "busy",
            Shed::WaitExpired => "wait_expired",
            Shed::NoBackend => "no_backend",
        }
    }
}

/// Admitted and shed requests of one admission class.
#[derive(Debug, Default)]
pub(crate) struct ClassCounters {
    pub(crate) admitted: AtomicU64,
    pub(crate) shed: [AtomicU64; Shed::ALL.len()],
}

/// Router-level counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) no_backend: AtomicU64,
    /// Refused because no backend had room (at once or after waiting).
    pub(crate) busy: AtomicU64,
    /// Requests that waited for room and got it.
    pub(crate) queued: AtomicU64,
    /// Per class: [normal, priority].
    pub(crate) classes: [ClassCounters; 2],
    pub(crate) retries: AtomicU64,
    pub(crate) timeouts: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The index of `class` in [`Counters::classes`].
pub(crate) fn class_index(class: Class) -> usize {
    match class {
        Class::Normal => 0,
        Class::Priority => 1,
    }
}

impl Counters {
    fn shed(&self, class: Class, why: Shed) {
        let i = Shed::ALL.iter().position(|s| *s == why).unwrap_or(0);
        inc(&self.classes[class_index(class)].shed[i]);
    }
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
        self.set.reconfigure(config.backend(self.request_timeout));
        self.config.store(Arc::new(config));
        Ok(())
    }

    /// Routes `request` of `account` and returns its answer; never fails and
    /// never runs past `deadline`. The same as [`Router::start`] then
    /// [`Router::finish`].
    pub async fn call(
        &self,
        account: &Arc<str>,
        request: BackendRequest,
        correlation_id: u64,
        deadline: Deadline,
    ) -> BackendReply {
        match self.start(account, request, correlation_id, deadline) {
            Start::Answered(reply) => reply,
            Start::Started(started) => self.finish(started).await,
        }
    }

    /// Everything decided without waiting, before any backend work:
    /// admission, and a backend lease or a place in the wait queue — or the
    /// refusal, answered at once (the connection sends it without starting
    /// a task for it).
    pub fn start(
        &self,
        account: &Arc<str>,
        request: BackendRequest,
        correlation_id: u64,
        deadline: Deadline,
    ) -> Start {
        inc(&self.counters.requests);
        let class = request.class();
        let admitted = match self.admission.admit(account, class) {
            Ok(admitted) => admitted,
            Err(refusal @ Refusal::RateLimited(wait)) => {
                self.counters.shed(class, Shed::RateLimited);
                return Start::Answered(request.refused(refusal.code(), refusal.reason(), wait));
            }
            Err(refusal @ Refusal::AtCapacity) => {
                self.counters.shed(class, Shed::GatewayFull);
                return Start::Answered(request.refused(
                    refusal.code(),
                    refusal.reason(),
                    self.busy_retry_after(),
                ));
            }
        };
        if Deadline::now() >= deadline {
            inc(&self.counters.timeouts);
            return Start::Answered(
                request.failure(Code::Timeout, timeout_message(self.request_timeout)),
            );
        }
        self.budget.deposit();
        match self.begin_lease(account, class, deadline) {
            Ok(first) => Start::Started(Started {
                _admitted: admitted,
                class,
                first,
                call: Call {
                    account: account.clone(),
                    request: Arc::new(request),
                    correlation_id,
                    deadline,
                },
            }),
            Err(why) => Start::Answered(self.no_room(&request, class, why, false)),
        }
    }

    /// Waits for room if it must, then runs the attempts of a started
    /// request until one gives the answer or its deadline passes.
    pub async fn finish(&self, started: Started) -> BackendReply {
        let Started {
            _admitted,
            class,
            first,
            call,
        } = started;
        let lease = match self.await_lease(&call.account, class, first).await {
            Ok(lease) => lease,
            Err(why) => return self.no_room(&call.request, class, why, true),
        };
        inc(&self.counters.classes[class_index(class)].admitted);
        let reply = self.race(lease, &call).await;
        // Counted from the answer, whichever path produced the TIMEOUT.
        if reply.code() == Code::Timeout as i32 {
            inc(&self.counters.timeouts);
        }
        reply
    }

    /// The refusal of a request no backend could take, counted; `waited`:
    /// after a wait in the queue.
    fn no_room(
        &self,
        request: &BackendRequest,
        class: Class,
        why: NoBackend,
        waited: bool,
    ) -> BackendReply {
        if why == NoBackend::AllBusy {
            inc(&self.counters.busy);
            let shed = if waited {
                Shed::WaitExpired
            } else {
                Shed::Busy
            };
            self.counters.shed(class, shed);
        } else {
            inc(&self.counters.no_backend);
            self.counters.shed(class, Shed::NoBackend);
        }
        request.refused(
            Code::ServiceUnavailable,
            &why.to_string(),
            self.busy_retry_after(),
        )
    }

    /// Leases a backend for the first attempt at once, or, when every
    /// backend is at its limit, takes a place in the fair queue — unless the
    /// request could not be served within its wait budget, which is then
    /// refused at once.
    fn begin_lease(
        &self,
        account: &Arc<str>,
        class: Class,
        deadline: Deadline,
    ) -> Result<FirstLease, NoBackend> {
        let waiting = self.set.waiting();
        // Cancels never queue behind places; others join the queue when
        // anyone waits, so freed room goes to those who waited first.
        if class == Class::Priority || !waiting.has_waiters() {
            match self
                .set
                .choose(&[], AttemptKind::First, class, clock::now())
            {
                Err(NoBackend::AllBusy) => {}
                chosen => return chosen.map(FirstLease::Leased),
            }
        }
        let now = Deadline::now();
        if self.set.stalled(clock::now(), Duration::ZERO) {
            return Err(NoBackend::AllBusy);
        }
        let (_, _, per_sec) = self.set.load(clock::now());
        let config = self.config();
        // Never wait so long that an answer could not come in time: leave
        // the rest of the deadline after the wait budget (twice the limit's
        // latency ceiling with the defaults), more if the backends answer
        // slower than half of that at their limits (their answers only: a
        // timed-out call says nothing of how long an answer takes).
        let service = self
            .request_timeout
            .mul_f64(1.0 - config.queue_wait_share)
            .max(self.set.limit_rtt() * 2);
        let until = (now + config.queue_wait(self.request_timeout))
            .min(deadline.checked_sub(service).unwrap_or(now));
        if until <= now {
            return Err(NoBackend::AllBusy);
        }
        let limits = queue_limits(per_sec, until - now);
        let ticket = waiting
            .join(account, class, false, limits)
            .map_err(|_: NoCapacity| NoBackend::AllBusy)?;
        // Nobody else waits: room freed before we queued would wake no one.
        if waiting.len() == 1 {
            if let Ok(lease) = self
                .set
                .choose(&[], AttemptKind::First, class, clock::now())
            {
                drop(ticket);
                inc(&self.counters.queued);
                return Ok(FirstLease::Leased(lease));
            }
        } else if self.set.has_room(class, clock::now()) {
            // Room while others wait (a limit grew, a woken waiter left):
            // hand it to the head of the queue, fairly, not to us.
            waiting.release();
        }
        Ok(FirstLease::Waiting {
            ticket,
            until,
            limits,
        })
    }

    /// The lease of `first`, waiting for it in the queue if it must.
    async fn await_lease(
        &self,
        account: &Arc<str>,
        class: Class,
        first: FirstLease,
    ) -> Result<Lease, NoBackend> {
        let (mut ticket, until, limits) = match first {
            FirstLease::Leased(lease) => return Ok(lease),
            FirstLease::Waiting {
                ticket,
                until,
                limits,
            } => (ticket, until, limits),
        };
        loop {
            // Wait in slices: as long as calls keep ending (progress), up to
            // `until`; hung backends end the wait after one slice.
            loop {
                let slice = (Deadline::now() + STALL).min(until);
                if ticket.wait(slice).await.is_ok() {
                    break;
                }
                if Deadline::now() >= until || self.set.stalled(clock::now(), Duration::ZERO) {
                    ticket.expire();
                    return Err(NoBackend::AllBusy);
                }
            }
            match self
                .set
                .choose(&[], AttemptKind::First, class, clock::now())
            {
                Ok(lease) => {
                    inc(&self.counters.queued);
                    // Wakes are one-for-one with ended calls; room beyond
                    // that (a limit that grew) would stay unused while
                    // requests wait: pass it on, one waiter at a time.
                    if self.set.has_room(class, clock::now()) {
                        self.set.waiting().release();
                    }
                    return Ok(lease);
                }
                // Another request took the room first: wait again, in front.
                Err(NoBackend::AllBusy) => {
                    ticket = self
                        .set
                        .waiting()
                        .join(account, class, true, limits)
                        .map_err(|_: NoCapacity| NoBackend::AllBusy)?;
                }
                Err(other) => return Err(other),
            }
        }
    }

    /// The retry-after hint of a request refused for want of room: how long
    /// the backends need to serve the requests now waiting.
    fn busy_retry_after(&self) -> Duration {
        let (_, _, per_sec) = self.set.load(clock::now());
        let waiting = self.set.waiting().len() as f64 + 1.0;
        let drain = if per_sec > 0.0 {
            Duration::from_secs_f64(waiting / per_sec)
        } else {
            self.config().queue_wait(self.request_timeout)
        };
        drain.clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER)
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
            &self.set,
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
        // The answer of an attempt that may have been carried out without
        // answering (timed out, connection broken): once there is one, the
        // client's final answer — unless a later attempt gives the definite
        // one — is "outcome unknown", never a refusal saying "not placed".
        let mut unknown: Option<BackendReply> = None;
        let settle = |reply: BackendReply, unknown: &mut Option<BackendReply>| {
            unknown.take().unwrap_or(reply)
        };
        loop {
            tokio::select! {
                biased;
                Some(done) = running.next() => {
                    hedge_armed = false;
                    let ambiguous = matches!(&done.result, Err(e) if e.is_ambiguous());
                    let answered = done.result.is_ok();
                    let reply = done
                        .result
                        .unwrap_or_else(|e| call.request.failure(e.code(), e.message(self.request_timeout)));
                    if done.verdict == Verdict::Final {
                        if done.kind == AttemptKind::Hedge {
                            self.hedging.won();
                        }
                        // A backend's answer is authoritative (it
                        // deduplicates by request_id); a failure is not.
                        return if answered || ambiguous {
                            reply
                        } else {
                            settle(reply, &mut unknown)
                        };
                    }
                    if ambiguous && unknown.is_none() {
                        unknown = Some(reply.clone());
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
                        None => return settle(reply, &mut unknown),
                    }
                }
                () = &mut hedge_sleep, if hedge_armed => {
                    hedge_armed = false;
                    if let Some(lease) = self.hedge_lease(&tried) {
                        self.hedging.sent();
                        tried.push(lease.backend().id());
                        running.push(attempt::run(lease, AttemptKind::Hedge, call, self.hedging.measure(), &self.set));
                    }
                }
                () = &mut retry_sleep, if retry_armed => {
                    retry_armed = false;
                    retries += 1;
                    let lease = self
                        .set
                        .choose(&tried, AttemptKind::Retry, call.request.class(), clock::now())
                        .ok()
                        .filter(|_| self.budget.withdraw());
                    match lease {
                        Some(lease) => {
                            inc(&self.counters.retries);
                            tried.push(lease.backend().id());
                            running.push(attempt::run(lease, AttemptKind::Retry, call, self.hedging.measure(), &self.set));
                        }
                        // No other backend or no budget: the client gets the
                        // previous attempt's outcome.
                        None => {
                            let reply = last.take().unwrap_or_else(|| {
                                call.request.failure(Code::ServiceUnavailable, "no backend left to retry on")
                            });
                            return settle(reply, &mut unknown);
                        }
                    }
                }
                () = &mut deadline_sleep => {
                    return call.request.failure(Code::Timeout, timeout_message(self.request_timeout));
                }
            }
        }
    }

    /// A backend for a hedge: none while requests wait for room (the pool
    /// is saturated: slowness is load, and a hedge would only add to it);
    /// else one not tried yet below its adaptive limit, with budget for it.
    fn hedge_lease(&self, tried: &[u64]) -> Option<Lease> {
        if self.set.waiting().has_waiters() {
            return None;
        }
        let lease = self
            .set
            .choose(tried, AttemptKind::Hedge, Class::Normal, clock::now())
            .ok()?;
        self.budget.withdraw().then_some(lease)
    }
}

/// What [`Router::start`] decided.
#[derive(Debug)]
pub enum Start {
    /// Answered at once (refused, or its deadline had passed).
    Answered(BackendReply),
    /// Admitted: [`Router::finish`] it.
    Started(Started),
}

/// A request past admission: it holds its slot of the global in-flight
/// limit and a backend lease or a place in the wait queue.
#[derive(Debug)]
pub struct Started {
    _admitted: Admitted,
    class: Class,
    first: FirstLease,
    call: Call,
}

/// The first attempt's backend, or the wait for one.
#[derive(Debug)]
enum FirstLease {
    Leased(Lease),
    Waiting {
        ticket: Ticket,
        until: Deadline,
        limits: QueueParams,
    },
}

/// How many may wait to be served within `budget` by backends that
/// answered `per_sec` calls per second recently, with a margin
/// ([`QUEUE_SAFETY`]) so that nearly every waiter is served rather than
/// refused late. Without recent answers (a cold or idle gateway, or
/// stalled backends) there is nothing to estimate from: up to
/// [`MAX_WAITING`] may wait, each still no longer than `budget`. One
/// account may hold all of it: the queue always lets in the first waiter of
/// another account, and round robin serves that one next.
fn queue_limits(per_sec: f64, budget: Duration) -> QueueParams {
    let servable = if per_sec > 0.0 {
        (per_sec * budget.as_secs_f64() * QUEUE_SAFETY) as usize
    } else {
        MAX_WAITING
    };
    let max_total = servable.clamp(1, MAX_WAITING);
    QueueParams {
        max_total,
        max_per_account: max_total,
    }
}

#[cfg(test)]
mod tests;
