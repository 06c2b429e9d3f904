//! The load driver: K logged-in gateway connections placing orders at a
//! steady total rate, each order with a unique request_id, recording every
//! attempt (answer, latency, time) and each request's final outcome.
//!
//! The driver runs on its own thread and Tokio runtime, so the scenario
//! code may block (pg_ctl, sleeps, process signals) without delaying the
//! clients or skewing their latency measurements.
//!
//! Orders are sent open-loop: a request starts every `1/rate` seconds per
//! connection whatever the latency of earlier ones, as terminals of many
//! traders would. A request whose outcome is unknown or retryable (TIMEOUT,
//! SERVICE_UNAVAILABLE, INTERNAL, RATE_LIMITED, a broken connection, no
//! answer within the client's own cap) is re-sent with the SAME request_id
//! after a short pause, up to `max_attempts`; a broken connection is
//! replaced by a fresh login, trying the gateways in order starting with
//! the current one (so clients of a gateway that went away move to the
//! next).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hts_client::{Client, ClientError};
use hts_proto::v1::{Code, OrderType, PlaceOrderRequest, Side};

use crate::support::token;

/// Price of every order (1 share of 005930): each reserves this much CASH.
pub const PRICE: i64 = 100;

/// How the driver behaves.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Gateways in order of preference; connections start on the first.
    pub gateways: Vec<SocketAddr>,
    /// One account per connection.
    pub accounts: Vec<String>,
    /// Orders per second over all connections.
    pub rate_per_sec: f64,
    /// Longest the client waits for one answer before it gives up on the
    /// connection (the gateway answers TIMEOUT at its own deadline first).
    pub answer_cap: Duration,
    /// Sends of one request_id at most (1 = never retried).
    pub max_attempts: u32,
    /// Pause before re-sending, multiplied by the attempt number.
    pub retry_pause: Duration,
    /// Request ids are `{prefix}-c{connection}-{n}`.
    pub prefix: String,
}

impl LoadConfig {
    /// 4 connections (accounts ACC-0601…0604) at [`rate`] orders/s on `gateways`.
    pub fn standard(prefix: &str, gateways: Vec<SocketAddr>, gateway_deadline: Duration) -> Self {
        LoadConfig {
            gateways,
            accounts: (601..605).map(|n| format!("ACC-{n:04}")).collect(),
            rate_per_sec: rate(),
            answer_cap: gateway_deadline + Duration::from_secs(3),
            max_attempts: 4,
            retry_pause: Duration::from_millis(250),
            prefix: prefix.to_owned(),
        }
    }
}

/// Orders per second of the standard load: `HTS_CHAOS_RATE`, default 60
/// (well below what this 2-core machine saturates at, so the faults, not
/// the load, decide what happens).
pub fn rate() -> f64 {
    std::env::var("HTS_CHAOS_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|r: &f64| *r > 0.0)
        .unwrap_or(60.0)
}

/// What one send got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A PlaceOrder response.
    Response {
        /// Its code.
        code: Code,
        /// The order id (OK answers).
        order_id: String,
        /// Whether the backend replayed a stored answer.
        replayed: bool,
        /// Its message.
        message: String,
    },
    /// The connection failed or closed before an answer (outcome unknown).
    Transport(String),
    /// No answer within the client's cap (outcome unknown).
    NoReply,
}

impl Answer {
    /// The response code, if there was a response.
    pub fn code(&self) -> Option<Code> {
        match self {
            Answer::Response { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True for an OK response.
    pub fn is_ok(&self) -> bool {
        self.code() == Some(Code::Ok)
    }

    /// True when the sender cannot know whether the order was stored: a
    /// TIMEOUT (deadline passed mid-flight), INTERNAL, a broken connection
    /// or no answer at all.
    pub fn is_ambiguous(&self) -> bool {
        match self {
            Answer::Response { code, .. } => matches!(code, Code::Timeout | Code::Internal),
            Answer::Transport(_) | Answer::NoReply => true,
        }
    }

    /// True when re-sending the same request_id may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Answer::Response { code, .. } => matches!(
                code,
                Code::Timeout | Code::ServiceUnavailable | Code::Internal | Code::RateLimited
            ),
            Answer::Transport(_) | Answer::NoReply => true,
        }
    }

    /// A short label for tables: the code name, `TRANSPORT` or `NO_ANSWER`.
    pub fn label(&self) -> String {
        match self {
            Answer::Response { code, .. } => code.as_str_name().to_owned(),
            Answer::Transport(_) => "TRANSPORT".into(),
            Answer::NoReply => "NO_ANSWER".into(),
        }
    }
}

/// One send of a request.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Index of the request in [`LoadResult::requests`].
    pub request: usize,
    /// 1 for the first send.
    pub number: u32,
    /// Gateway index the connection was on (`None`: no connection).
    pub gateway: Option<usize>,
    /// When it was sent.
    pub sent_at: Instant,
    /// Time to the answer (or to the failure).
    pub latency: Duration,
    /// What came back.
    pub answer: Answer,
}

impl Attempt {
    /// When the answer (or failure) arrived.
    pub fn answered_at(&self) -> Instant {
        self.sent_at + self.latency
    }
}

/// How a request ended, from its client's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged: OK with this order id.
    Ok(String),
    /// Refused for sure: the last answer was a definitive non-OK code and
    /// no earlier send was ambiguous.
    Refused(Code),
    /// Unknown: the last answer was not OK and some send was ambiguous
    /// (TIMEOUT, INTERNAL, broken connection, no answer).
    Unknown(String),
}

/// One request (one request_id) and everything that happened to it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Its request_id.
    pub request_id: String,
    /// The account (connection) it was sent on.
    pub account: String,
    /// First send.
    pub started: Instant,
    /// Every send, in order.
    pub attempts: Vec<Attempt>,
    /// The final outcome.
    pub outcome: Outcome,
}

/// Everything the driver recorded.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Every request, in start order per connection.
    pub requests: Vec<Request>,
    /// When the driver started.
    pub started: Instant,
    /// When the last request finished.
    pub finished: Instant,
}

impl LoadResult {
    /// Every attempt of every request.
    pub fn attempts(&self) -> impl Iterator<Item = &Attempt> {
        self.requests.iter().flat_map(|r| r.attempts.iter())
    }

    /// The acknowledged requests.
    pub fn acknowledged(&self) -> impl Iterator<Item = (&Request, &str)> {
        self.requests.iter().filter_map(|r| match &r.outcome {
            Outcome::Ok(id) => Some((r, id.as_str())),
            _ => None,
        })
    }
}

/// Live view of the attempts so far (scenarios poll it while the load runs).
#[derive(Debug, Clone, Default)]
pub struct Live {
    attempts: Arc<Mutex<Vec<Attempt>>>,
}

impl Live {
    fn push(&self, a: Attempt) {
        lock(&self.attempts).push(a);
    }

    /// Number of OK answers so far.
    pub fn ok_count(&self) -> usize {
        lock(&self.attempts)
            .iter()
            .filter(|a| a.answer.is_ok())
            .count()
    }

    /// The earliest OK answer to a send made at or after `after`.
    pub fn first_ok_sent_after(&self, after: Instant) -> Option<Instant> {
        lock(&self.attempts)
            .iter()
            .filter(|a| a.answer.is_ok() && a.sent_at >= after)
            .map(Attempt::answered_at)
            .min()
    }

    /// The earliest OK answer through gateway `gateway` arriving at or after `after`.
    pub fn first_ok_via(&self, gateway: usize, after: Instant) -> Option<Instant> {
        lock(&self.attempts)
            .iter()
            .filter(|a| a.answer.is_ok() && a.gateway == Some(gateway))
            .map(Attempt::answered_at)
            .filter(|t| *t >= after)
            .min()
    }

    /// Copies of the attempts answered with `label`
    /// ([`Answer::label`]) that were sent at or after `after`.
    pub fn answered(&self, label: &str, after: Instant) -> Vec<Attempt> {
        lock(&self.attempts)
            .iter()
            .filter(|a| a.sent_at >= after && a.answer.label() == label)
            .cloned()
            .collect()
    }

    /// Polls every 50 ms until `check` holds, up to `timeout`; returns the
    /// time it first held.
    pub fn wait_until(&self, timeout: Duration, check: impl Fn(&Live) -> bool) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if check(self) {
                return Some(Instant::now());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running load.
pub struct Load {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<LoadResult>>,
    /// Attempts so far.
    pub live: Live,
}

impl Load {
    /// Starts the driver; returns once every connection is logged in.
    pub fn start(config: LoadConfig) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let live = Live::default();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let (stop, live) = (stop.clone(), live.clone());
            std::thread::Builder::new()
                .name("chaos-load".into())
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .expect("load runtime");
                    rt.block_on(drive(config, stop, live, ready_tx))
                })
                .expect("spawn load thread")
        };
        match ready_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("load driver could not log in: {e}"),
            Err(_) => panic!("load driver did not log in within 60 s"),
        }
        Load {
            stop,
            thread: Some(thread),
            live,
        }
    }

    /// Stops sending new orders, waits for every request to finish
    /// (including its retries) and returns the record.
    pub fn stop(mut self) -> LoadResult {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread.take().expect("load thread");
        match thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One connection's state: the current client, the gateway it is on and
/// a generation that changes with every reconnect.
struct Conn {
    account: String,
    gateways: Vec<SocketAddr>,
    current: tokio::sync::Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    client: Option<Client>,
    gateway: usize,
    generation: u64,
}

impl Conn {
    /// The live client `(client, gateway, generation)`, reconnecting (and
    /// logging in) when it is closed or was forgotten.
    async fn client(&self) -> Result<(Client, usize, u64), String> {
        let mut slot = self.current.lock().await;
        if let Some(c) = &slot.client {
            if !c.is_closed() {
                return Ok((c.clone(), slot.gateway, slot.generation));
            }
        }
        let mut errors = Vec::new();
        for step in 0..self.gateways.len() {
            let gw = (slot.gateway + step) % self.gateways.len();
            let attempt = login(self.gateways[gw], &self.account);
            match tokio::time::timeout(Duration::from_secs(3), attempt).await {
                Ok(Ok(client)) => {
                    slot.client = Some(client.clone());
                    slot.gateway = gw;
                    slot.generation += 1;
                    return Ok((client, gw, slot.generation));
                }
                Ok(Err(e)) => errors.push(format!("gateway {gw}: {e}")),
                Err(_) => errors.push(format!("gateway {gw}: login timed out")),
            }
        }
        slot.client = None;
        Err(errors.join("; "))
    }

    /// Drops the client of `generation` (a send on it broke), so the next
    /// send reconnects.
    async fn forget(&self, generation: u64) {
        let mut slot = self.current.lock().await;
        if slot.generation == generation {
            slot.client = None;
        }
    }
}

async fn login(addr: SocketAddr, account: &str) -> Result<Client, String> {
    let client = Client::connect(addr).await.map_err(|e| e.to_string())?;
    let r = client
        .login(account, &token(account))
        .await
        .map_err(|e| e.to_string())?;
    if r.code != Code::Ok as i32 {
        return Err(format!("login refused: {}", r.message));
    }
    Ok(client)
}

fn order(request_id: &str) -> PlaceOrderRequest {
    PlaceOrderRequest {
        request_id: request_id.into(),
        account_id: String::new(),
        symbol: "005930".into(),
        side: Side::Buy as i32,
        order_type: OrderType::Limit as i32,
        price: PRICE,
        quantity: 1,
    }
}

async fn drive(
    config: LoadConfig,
    stop: Arc<AtomicBool>,
    live: Live,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) -> LoadResult {
    let config = Arc::new(config);
    let mut conns = Vec::new();
    for account in &config.accounts {
        let conn = Arc::new(Conn {
            account: account.clone(),
            gateways: config.gateways.clone(),
            current: tokio::sync::Mutex::new(Slot::default()),
        });
        if let Err(e) = conn.client().await {
            let _ = ready.send(Err(e));
            return LoadResult {
                requests: Vec::new(),
                started: Instant::now(),
                finished: Instant::now(),
            };
        }
        conns.push(conn);
    }
    let _ = ready.send(Ok(()));
    let started = Instant::now();
    let per_conn = config.rate_per_sec / conns.len() as f64;
    let interval = Duration::from_secs_f64(1.0 / per_conn);
    let mut workers = Vec::new();
    for (c, conn) in conns.into_iter().enumerate() {
        let (config, stop, live) = (config.clone(), stop.clone(), live.clone());
        workers.push(tokio::spawn(async move {
            // Connections start staggered so their sends interleave evenly.
            let offset = interval.mul_f64(c as f64 / config.accounts.len() as f64);
            let mut ticker =
                tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut requests = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                ticker.tick().await;
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let request_id = format!("{}-c{c}-{n}", config.prefix);
                n += 1;
                let (conn, config, live) = (conn.clone(), config.clone(), live.clone());
                requests.push(tokio::spawn(run_request(conn, config, live, request_id)));
            }
            let mut done = Vec::new();
            for r in requests {
                done.push(r.await.expect("request task"));
            }
            done
        }));
    }
    let mut requests = Vec::new();
    for w in workers {
        requests.extend(w.await.expect("connection task"));
    }
    for (i, r) in requests.iter_mut().enumerate() {
        for a in &mut r.attempts {
            a.request = i;
        }
    }
    LoadResult {
        requests,
        started,
        finished: Instant::now(),
    }
}

async fn run_request(
    conn: Arc<Conn>,
    config: Arc<LoadConfig>,
    live: Live,
    request_id: String,
) -> Request {
    let started = Instant::now();
    let req = order(&request_id);
    let mut attempts: Vec<Attempt> = Vec::new();
    for number in 1..=config.max_attempts.max(1) {
        if number > 1 {
            tokio::time::sleep(config.retry_pause * (number - 1)).await;
        }
        let sent_at = Instant::now();
        let (answer, gateway) =
            match conn.client().await {
                Err(e) => (Answer::Transport(format!("no connection: {e}")), None),
                Ok((client, gw, generation)) => {
                    let answer =
                        match tokio::time::timeout(config.answer_cap, client.place(req.clone()))
                            .await
                        {
                            Ok(Ok(r)) => Answer::Response {
                                code: Code::try_from(r.code).unwrap_or(Code::Unspecified),
                                order_id: r.order_id,
                                replayed: r.replayed,
                                message: r.message,
                            },
                            Ok(Err(ClientError::Gateway { code, message })) => Answer::Response {
                                code,
                                order_id: String::new(),
                                replayed: false,
                                message,
                            },
                            Ok(Err(e)) => Answer::Transport(e.to_string()),
                            Err(_) => Answer::NoReply,
                        };
                    if matches!(answer, Answer::Transport(_) | Answer::NoReply) {
                        conn.forget(generation).await;
                    }
                    (answer, Some(gw))
                }
            };
        let attempt = Attempt {
            request: 0,
            number,
            gateway,
            sent_at,
            latency: sent_at.elapsed(),
            answer,
        };
        live.push(attempt.clone());
        let retry = attempt.answer.is_retryable();
        attempts.push(attempt);
        if !retry {
            break;
        }
    }
    let last = &attempts.last().expect("one attempt").answer;
    let outcome = match last {
        Answer::Response {
            code: Code::Ok,
            order_id,
            ..
        } => Outcome::Ok(order_id.clone()),
        _ if attempts.iter().any(|a| a.answer.is_ambiguous()) => Outcome::Unknown(
            attempts
                .iter()
                .map(|a| a.answer.label())
                .collect::<Vec<_>>()
                .join(","),
        ),
        other => Outcome::Refused(other.code().unwrap_or(Code::Unspecified)),
    };
    Request {
        request_id,
        account: conn.account.clone(),
        started,
        attempts,
        outcome,
    }
}
