//! Prometheus metrics of the gateway (names are stable: dashboards and
//! alert rules use them; docs/operations.md lists them).
//!
//! Counters are kept once, in atomics ([`GatewayStats`], the router's
//! policies), and exported at scrape time by [`Exporter`]; only the latency
//! histogram is recorded as requests finish, through the [`metrics`] facade
//! (a no-op until a recorder is installed). Labels are bounded: `code` (the
//! response codes), `msg_type` (3) and `backend` (the configured backend
//! URLs); never account ids.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use hts_proto::v1::Code;

use crate::frame::MsgType;
use crate::resilience::RouterSnapshot;
use crate::stats::GatewayStats;

/// Histogram: order-path latency in seconds, labels `msg_type`, `code`.
pub const ORDER_LATENCY: &str = "hts_order_latency_seconds";
/// Counter: responses sent to clients, label `code`.
pub const REQUESTS: &str = "hts_requests_total";
/// Gauge: client connections open.
pub const CONNECTIONS_OPEN: &str = "hts_connections_open";
/// Counter: client connections accepted.
pub const CONNECTIONS_ACCEPTED: &str = "hts_connections_accepted_total";
/// Counter: client connections refused at `max_connections`.
pub const CONNECTIONS_REJECTED: &str = "hts_connections_rejected_total";
/// Counter: TLS handshakes with clients that failed or timed out.
pub const TLS_HANDSHAKE_FAILURES: &str = "hts_tls_handshake_failures_total";
/// Counter: logins refused RATE_LIMITED by the per-source failed-login limit.
pub const LOGINS_THROTTLED: &str = "hts_logins_throttled_total";
/// Gauge: source addresses tracked by the failed-login limit.
pub const LOGIN_SOURCES_TRACKED: &str = "hts_login_sources_tracked";
/// Counter: failed logins not tracked per source (table full).
pub const LOGIN_FAILURES_UNTRACKED: &str = "hts_login_failures_untracked_total";
/// Gauge: entries in the correlation table (backend requests in flight).
pub const CORRELATION_SIZE: &str = "hts_correlation_table_size";
/// Gauge: capacity of the correlation table.
pub const CORRELATION_CAPACITY: &str = "hts_correlation_table_capacity";
/// Gauge: backends able to take a request now.
pub const BACKENDS_READY: &str = "hts_backends_ready";
/// Gauge: requests in flight in the router.
pub const ROUTER_IN_FLIGHT: &str = "hts_router_in_flight";
/// Counter: retries sent.
pub const RETRIES: &str = "hts_retries_total";
/// Counter: hedges sent.
pub const HEDGES: &str = "hts_hedges_total";
/// Counter: retries and hedges refused by the retry budget.
pub const BUDGET_EXHAUSTED: &str = "hts_retry_budget_exhausted_total";
/// Counter: requests answered TIMEOUT at the client deadline.
pub const TIMEOUTS: &str = "hts_request_timeouts_total";
/// Counter: requests refused because no backend could take them.
pub const NO_BACKEND: &str = "hts_no_backend_total";
/// Counter: requests refused RATE_LIMITED.
pub const RATE_LIMITED: &str = "hts_rate_limited_total";
/// Counter: requests sent to a backend, label `class` (`normal`: places and
/// queries; `priority`: cancels).
pub const ADMITTED: &str = "hts_admitted_total";
/// Counter: requests refused before any backend work, labels `class` and
/// `reason` (`rate_limited`, `gateway_full`, `busy`: every backend at its
/// limit, `no_backend`).
pub const SHED: &str = "hts_shed_total";
/// Gauge: requests waiting now for a backend to have room.
pub const WAITING: &str = "hts_waiting_requests";
/// Gauge: each backend's adaptive in-flight limit, label `backend`.
pub const BACKEND_LIMIT: &str = "hts_backend_limit";
/// Gauge: calls in flight per backend, label `backend`.
pub const BACKEND_IN_FLIGHT: &str = "hts_backend_in_flight";
/// Gauge: breaker state per backend (0 closed, 1 half-open, 2 open), label `backend`.
pub const BACKEND_BREAKER: &str = "hts_backend_breaker_state";
/// Gauge: 1 when the backend takes requests (active, healthy, breaker not open), label `backend`.
pub const BACKEND_UP: &str = "hts_backend_up";
/// Counter: calls sent per backend, label `backend`.
pub const BACKEND_CALLS: &str = "hts_backend_calls_total";
/// Counter: failed calls per backend, label `backend`.
pub const BACKEND_ERRORS: &str = "hts_backend_errors_total";
/// Counter: timed-out calls per backend, label `backend`.
pub const BACKEND_TIMEOUTS: &str = "hts_backend_timeouts_total";
/// Counter: retry calls per backend, label `backend`.
pub const BACKEND_RETRIES: &str = "hts_backend_retries_total";
/// Counter: hedge calls per backend, label `backend`.
pub const BACKEND_HEDGES: &str = "hts_backend_hedges_total";

/// Bucket bounds (seconds) of [`ORDER_LATENCY`]: dense around the 100 ms objective.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The `code` label of a response code.
pub fn code_label(code: i32) -> &'static str {
    Code::try_from(code).map_or("UNKNOWN", |c| c.as_str_name())
}

/// The `msg_type` label of a request type.
pub fn msg_type_label(msg_type: MsgType) -> &'static str {
    match msg_type {
        MsgType::Login => "LOGIN",
        MsgType::PlaceOrder => "PLACE_ORDER",
        MsgType::CancelOrder => "CANCEL_ORDER",
        MsgType::QueryOrder => "QUERY_ORDER",
        MsgType::Heartbeat => "HEARTBEAT",
        MsgType::ReplaceOrder => "REPLACE_ORDER",
        MsgType::MassCancel => "MASS_CANCEL",
        MsgType::ListOrders => "LIST_ORDERS",
        MsgType::GetPositions => "GET_POSITIONS",
        MsgType::OrderUpdate => "ORDER_UPDATE",
        MsgType::Error => "ERROR",
    }
}

/// Records one backend request's latency, from the frame's arrival to its answer.
pub(crate) fn order_latency(msg_type: MsgType, code: i32, elapsed: Duration) {
    metrics::histogram!(
        ORDER_LATENCY,
        "msg_type" => msg_type_label(msg_type),
        "code" => code_label(code)
    )
    .record(elapsed.as_secs_f64());
}

/// Exports router, backend and connection state at scrape time.
#[derive(Debug, Default)]
pub struct Exporter {
    /// Backend URLs exported last time (a removed one is zeroed once).
    exported: Mutex<HashSet<String>>,
}

impl Exporter {
    /// An exporter that has exported nothing yet.
    pub fn new() -> Exporter {
        Exporter::default()
    }

    /// Sets every state-derived metric from `snapshot` and `stats`.
    pub fn export(&self, snapshot: &RouterSnapshot, stats: &GatewayStats) {
        use metrics::{counter, gauge};
        for (code, n) in stats.responses_all() {
            counter!(REQUESTS, "code" => code.as_str_name()).absolute(n);
        }
        gauge!(CONNECTIONS_OPEN).set(stats.open_connections() as f64);
        counter!(CONNECTIONS_ACCEPTED).absolute(stats.accepted_connections());
        counter!(CONNECTIONS_REJECTED).absolute(stats.rejected_connections());
        counter!(TLS_HANDSHAKE_FAILURES).absolute(stats.tls_handshake_failures());
        counter!(LOGINS_THROTTLED).absolute(stats.logins_throttled());
        gauge!(LOGIN_SOURCES_TRACKED).set(stats.login_sources_tracked() as f64);
        counter!(LOGIN_FAILURES_UNTRACKED).absolute(stats.login_failures_untracked());
        gauge!(CORRELATION_SIZE).set(stats.correlation_len() as f64);
        gauge!(CORRELATION_CAPACITY).set(stats.correlation_capacity() as f64);
        gauge!(ROUTER_IN_FLIGHT).set(snapshot.in_flight as f64);
        counter!(RETRIES).absolute(snapshot.retries);
        counter!(HEDGES).absolute(snapshot.hedges);
        counter!(BUDGET_EXHAUSTED).absolute(snapshot.budget_denied);
        counter!(TIMEOUTS).absolute(snapshot.timeouts);
        counter!(NO_BACKEND).absolute(snapshot.no_backend);
        counter!(RATE_LIMITED).absolute(snapshot.rate_limited);
        gauge!(WAITING).set(snapshot.waiting as f64);
        for (class, c) in [
            ("normal", &snapshot.normal),
            ("priority", &snapshot.priority),
        ] {
            counter!(ADMITTED, "class" => class).absolute(c.admitted);
            for why in crate::resilience::router::Shed::ALL {
                counter!(SHED, "class" => class, "reason" => why.label()).absolute(c.shed(why));
            }
        }
        let mut ready = 0usize;
        let mut now = HashSet::new();
        for b in &snapshot.backends {
            let up = b.takes_requests();
            ready += usize::from(up);
            let l = [("backend", b.url.clone())];
            gauge!(BACKEND_IN_FLIGHT, &l).set(b.in_flight as f64);
            gauge!(BACKEND_LIMIT, &l).set(b.limit as f64);
            gauge!(BACKEND_BREAKER, &l).set(b.breaker.state.gauge_value());
            gauge!(BACKEND_UP, &l).set(if up { 1.0 } else { 0.0 });
            counter!(BACKEND_CALLS, &l).absolute(b.calls);
            counter!(BACKEND_ERRORS, &l).absolute(b.errors);
            counter!(BACKEND_TIMEOUTS, &l).absolute(b.timeouts);
            counter!(BACKEND_RETRIES, &l).absolute(b.retries);
            counter!(BACKEND_HEDGES, &l).absolute(b.hedges);
            now.insert(b.url.clone());
        }
        gauge!(BACKENDS_READY).set(ready as f64);
        let mut exported = self.exported.lock().unwrap_or_else(|e| e.into_inner());
        for gone in exported.difference(&now) {
            // A removed backend: neither in flight, nor open, nor up.
            let l = [("backend", gone.clone())];
            gauge!(BACKEND_IN_FLIGHT, &l).set(0.0);
            gauge!(BACKEND_LIMIT, &l).set(0.0);
            gauge!(BACKEND_BREAKER, &l).set(0.0);
            gauge!(BACKEND_UP, &l).set(0.0);
        }
        *exported = now;
    }
}
