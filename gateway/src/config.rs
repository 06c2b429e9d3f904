//! [`GatewayConfig`]: every limit and timeout of the gateway, with defaults.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls::ServerConfig;

use crate::frame::DEFAULT_MAX_BODY_LEN;
use crate::resilience::ResilienceConfig;

/// Default address the gateway listens on.
pub const DEFAULT_LISTEN_ADDR: &str = "0.0.0.0:7400";
/// Default overall deadline of one request (gateway → backend → gateway).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_millis(50);
/// Default length of the listener's accept queue (capped by the kernel's
/// `net.core.somaxconn`).
pub const DEFAULT_LISTEN_BACKLOG: u32 = 4096;
/// Default time a frame that has started arriving has to complete.
pub const DEFAULT_FRAME_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time without any frame after which a connection is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default time a new connection has to log in.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default number of requests one connection may have in flight.
pub const DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION: usize = 256;
/// Default number of concurrent client connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 20_000;
/// Default number of failed logins after which a connection is closed.
pub const DEFAULT_MAX_FAILED_LOGINS: u32 = 5;
/// Default failed logins per source address per [`DEFAULT_LOGIN_FAILURE_WINDOW`].
pub const DEFAULT_LOGIN_FAILURES_PER_SOURCE: u32 = 20;
/// Default window of the per-source failed-login limit.
pub const DEFAULT_LOGIN_FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Default number of source addresses the failed-login limit tracks.
pub const DEFAULT_MAX_LOGIN_SOURCES: usize = 100_000;
/// Default time a TLS client has to complete its handshake.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default capacity of the correlation table (requests in flight, all connections).
pub const DEFAULT_CORRELATION_CAPACITY: usize = 100_000;
/// Default time one flush to a client may take before it is disconnected.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a connection may take to deliver in-flight answers on shutdown.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Default timeout for establishing a backend connection.
pub const DEFAULT_BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default HTTP/2 keep-alive ping interval towards backends.
pub const DEFAULT_BACKEND_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Configuration of a [`crate::Gateway`].
#[derive(Clone)]
pub struct GatewayConfig {
    /// Address to listen on (used by [`crate::Gateway::bind`]).
    pub listen_addr: SocketAddr,
    /// Accept queue length of the listener bound by [`crate::Gateway::bind`]
    /// (see [`crate::server::bind_listener`]).
    pub listen_backlog: u32,
    /// Largest accepted frame body; a larger `body_len` is a protocol error.
    pub max_body_len: usize,
    /// Overall deadline per request, propagated to the backend as gRPC timeout.
    pub request_timeout: Duration,
    /// A frame whose first byte arrived must complete within this time
    /// (not reset by later bytes: defeats slowloris trickling).
    pub frame_read_timeout: Duration,
    /// A connection receiving no frame for this long is closed.
    pub idle_timeout: Duration,
    /// A connection not logged in after this long is closed.
    pub login_timeout: Duration,
    /// Requests one connection may have in flight before reading pauses.
    pub max_in_flight_per_connection: usize,
    /// Concurrent client connections; beyond it new ones are refused.
    pub max_connections: usize,
    /// Failed logins after which the connection is closed.
    pub max_failed_logins: u32,
    /// Failed logins one source address (IPv4 address, IPv6 /64) may make
    /// per `login_failure_window`, across connections; beyond it its LOGINs
    /// are answered RATE_LIMITED and the connection closed. 0 = no limit.
    pub login_failures_per_source: u32,
    /// Window of `login_failures_per_source` (failures leak away evenly over it).
    pub login_failure_window: Duration,
    /// Most source addresses tracked by the failed-login limit (bounds memory).
    pub max_login_sources: usize,
    /// TLS for client connections; `None` = plain TCP.
    pub tls: Option<Arc<ServerConfig>>,
    /// Time a TLS client has to complete its handshake.
    pub tls_handshake_timeout: Duration,
    /// Capacity of the correlation table across all connections.
    pub correlation_capacity: usize,
    /// Time one flush to a client may take; a stalled client is disconnected.
    pub write_timeout: Duration,
    /// Time a connection may take on shutdown to deliver in-flight answers.
    pub drain_timeout: Duration,
    /// gRPC URLs of the order-service backends, e.g. `http://127.0.0.1:50051`.
    pub backends: Vec<String>,
    /// Timeout for establishing a backend connection.
    pub backend_connect_timeout: Duration,
    /// HTTP/2 keep-alive ping interval towards backends.
    pub backend_keepalive_interval: Duration,
    /// HS256 secret the session tokens are signed with.
    pub jwt_secret: Vec<u8>,
    /// Retry, hedging, breaker, bulkhead, rate-limit and health policies.
    pub resilience: ResilienceConfig,
    /// Redis directory of sessions (resume on any gateway); off when `None`.
    pub session_store: Option<crate::sessions::SessionStoreConfig>,
}

/// Smallest accepted `max_body_len`: the gateway's own answers (ERROR
/// frames, refusals, login responses) must fit in a frame.
pub const MIN_MAX_BODY_LEN: usize = 1024;
/// Largest accepted `max_body_len` (16 MiB): every connection may have to
/// buffer one frame of this size.
pub const MAX_MAX_BODY_LEN: usize = 16 * 1024 * 1024;
/// Largest accepted `max_connections`.
pub const MAX_CONNECTIONS_LIMIT: usize = 10_000_000;
/// Largest accepted `max_in_flight_per_connection`.
pub const MAX_IN_FLIGHT_PER_CONNECTION_LIMIT: usize = 1 << 20;
/// Largest accepted `correlation_capacity`.
pub const MAX_CORRELATION_CAPACITY: usize = 100_000_000;

/// A [`GatewayConfig`] the gateway cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum InvalidConfig {
    /// A gateway limit is out of range.
    #[error("invalid gateway setting {key}: {reason}")]
    Gateway {
        /// The setting (config-file key or flag name).
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A resilience policy is out of range.
    #[error(transparent)]
    Resilience(#[from] crate::resilience::ConfigError),
}

impl GatewayConfig {
    /// Checks every value the gateway cannot work with, before anything is
    /// built from it.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        fn bad(key: &'static str, reason: impl Into<String>) -> Result<(), InvalidConfig> {
            Err(InvalidConfig::Gateway {
                key,
                reason: reason.into(),
            })
        }
        if self.jwt_secret.is_empty() {
            return bad("jwt_secret", "must not be empty");
        }
        // Each limit sizes a semaphore, a channel or a buffer: tokio refuses
        // (panics on) semaphores above `Semaphore::MAX_PERMITS`, and a buffer
        // limit beyond a frame's u32 length field is meaningless.
        let ranges: [(&'static str, usize, usize, usize); 4] = [
            (
                "max_connections",
                self.max_connections,
                1,
                MAX_CONNECTIONS_LIMIT,
            ),
            (
                "max_in_flight_per_connection",
                self.max_in_flight_per_connection,
                1,
                MAX_IN_FLIGHT_PER_CONNECTION_LIMIT,
            ),
            (
                "max_body_len",
                self.max_body_len,
                MIN_MAX_BODY_LEN,
                MAX_MAX_BODY_LEN,
            ),
            (
                "correlation_capacity",
                self.correlation_capacity,
                1,
                MAX_CORRELATION_CAPACITY,
            ),
        ];
        for (key, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return bad(key, format!("{value} is outside {min}..={max}"));
            }
        }
        self.resilience.validate()?;
        Ok(())
    }

    /// Defaults, with the given backends and JWT secret.
    pub fn new(backends: Vec<String>, jwt_secret: impl Into<Vec<u8>>) -> GatewayConfig {
        GatewayConfig {
            backends,
            jwt_secret: jwt_secret.into(),
            ..GatewayConfig::default()
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> GatewayConfig {
        GatewayConfig {
            listen_addr: SocketAddr::from(([0, 0, 0, 0], 7400)),
            listen_backlog: DEFAULT_LISTEN_BACKLOG,
            max_body_len: DEFAULT_MAX_BODY_LEN,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            frame_read_timeout: DEFAULT_FRAME_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
            max_in_flight_per_connection: DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_failed_logins: DEFAULT_MAX_FAILED_LOGINS,
            login_failures_per_source: DEFAULT_LOGIN_FAILURES_PER_SOURCE,
            login_failure_window: DEFAULT_LOGIN_FAILURE_WINDOW,
            max_login_sources: DEFAULT_MAX_LOGIN_SOURCES,
            tls: None,
            tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            correlation_capacity: DEFAULT_CORRELATION_CAPACITY,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            backends: Vec::new(),
            backend_connect_timeout: DEFAULT_BACKEND_CONNECT_TIMEOUT,
            backend_keepalive_interval: DEFAULT_BACKEND_KEEPALIVE_INTERVAL,
            jwt_secret: Vec::new(),
            resilience: ResilienceConfig::default(),
            session_store: None,
        }
    }
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("listen_addr", &self.listen_addr)
            .field("listen_backlog", &self.listen_backlog)
            .field("max_body_len", &self.max_body_len)
            .field("request_timeout", &self.request_timeout)
            .field("frame_read_timeout", &self.frame_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("login_timeout", &self.login_timeout)
            .field(
                "max_in_flight_per_connection",
                &self.max_in_flight_per_connection,
            )
            .field("max_connections", &self.max_connections)
            .field("max_failed_logins", &self.max_failed_logins)
            .field("login_failures_per_source", &self.login_failures_per_source)
            .field("login_failure_window", &self.login_failure_window)
            .field("max_login_sources", &self.max_login_sources)
            .field("tls", &self.tls.is_some())
            .field("tls_handshake_timeout", &self.tls_handshake_timeout)
            .field("correlation_capacity", &self.correlation_capacity)
            .field("write_timeout", &self.write_timeout)
            .field("drain_timeout", &self.drain_timeout)
            .field("backends", &self.backends)
            .field("backend_connect_timeout", &self.backend_connect_timeout)
            .field(
                "backend_keepalive_interval",
                &self.backend_keepalive_interval,
            )
            .field("jwt_secret", &"<redacted>")
            .field("resilience", &self.resilience)
            .field(
                "session_store",
                &self
                    .session_store
                    .as_ref()
                    .map(|s| hts_dbkit::redact_url(&s.url)),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec() {
        let c = GatewayConfig::default();
        assert_eq!(c.max_body_len, 65536);
        assert_eq!(c.request_timeout, Duration::from_millis(50));
        assert_eq!(c.frame_read_timeout, Duration::from_secs(10));
        assert_eq!(c.idle_timeout, Duration::from_secs(300));
        assert_eq!(c.login_timeout, Duration::from_secs(30));
        assert_eq!(c.max_in_flight_per_connection, 256);
        assert_eq!(c.max_connections, 20_000);
        assert_eq!(c.listen_backlog, 4096);
        assert_eq!(c.max_failed_logins, 5);
        assert_eq!(c.login_failures_per_source, 20);
        assert_eq!(c.login_failure_window, Duration::from_secs(60));
        assert_eq!(c.max_login_sources, 100_000);
        assert!(c.tls.is_none());
        assert_eq!(c.tls_handshake_timeout, Duration::from_secs(10));
        assert_eq!(c.correlation_capacity, 100_000);
        assert_eq!(c.write_timeout, Duration::from_secs(10));
        assert_eq!(c.drain_timeout, Duration::from_secs(5));
        assert_eq!(c.listen_addr.to_string(), DEFAULT_LISTEN_ADDR);
    }

    #[test]
    fn defaults_are_valid() {
        GatewayConfig::new(vec!["http://b:1".into()], b"s".to_vec())
            .validate()
            .unwrap();
    }

    #[test]
    fn out_of_range_limits_are_refused_before_anything_is_built() {
        type Mutate = fn(&mut GatewayConfig);
        let cases: &[(&str, Mutate)] = &[
            ("jwt_secret", |c| c.jwt_secret.clear()),
            ("max_connections", |c| c.max_connections = 0),
            // fuzz/regressions/config_file: tokio's Semaphore panics above
            // MAX_PERMITS; this value used to panic the accept loop.
            ("max_connections", |c| c.max_connections = i64::MAX as usize),
            ("max_in_flight_per_connection", |c| {
                c.max_in_flight_per_connection = 0
            }),
            // Used to panic every connection task (permits and writer channel).
            ("max_in_flight_per_connection", |c| {
                c.max_in_flight_per_connection = i64::MAX as usize
            }),
            ("max_body_len", |c| c.max_body_len = MIN_MAX_BODY_LEN - 1),
            ("max_body_len", |c| c.max_body_len = MAX_MAX_BODY_LEN + 1),
            ("correlation_capacity", |c| c.correlation_capacity = 0),
        ];
        for (key, mutate) in cases {
            let mut c = GatewayConfig::new(vec!["http://b:1".into()], b"s".to_vec());
            mutate(&mut c);
            let err = c.validate().unwrap_err();
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
        let mut c = GatewayConfig::new(vec!["http://b:1".into()], b"s".to_vec());
        c.max_body_len = MIN_MAX_BODY_LEN;
        c.max_connections = MAX_CONNECTIONS_LIMIT;
        c.max_in_flight_per_connection = MAX_IN_FLIGHT_PER_CONNECTION_LIMIT;
        c.validate().unwrap();
        c.resilience.breaker_window = 0;
        assert!(matches!(
            c.validate().unwrap_err(),
            InvalidConfig::Resilience(_)
        ));
    }

    #[test]
    fn debug_redacts_secret() {
        let c = GatewayConfig::new(vec!["http://b:1".into()], b"super-secret".to_vec());
        let s = format!("{c:?}");
        assert!(s.contains("<redacted>"));
        assert!(!s.contains("super-secret"));
        assert!(!s.contains("115, 117")); // not even as bytes
    }
}
