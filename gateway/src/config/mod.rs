//! [`GatewayConfig`]: every setting of the gateway, declared once.
//!
//! Each field is at the same time a key of the TOML config file and a flag
//! of `hts gateway` (`max_body_len` ↔ `--max-body-len`; the policies are the
//! `[resilience]` table and flat flags, [`ResilienceConfig`]). Its doc
//! comment is the flag's help, and its default the flag's
//! `default_value_t`, taken from a `DEFAULT_*` constant and shown by
//! `--help`; [`GatewayConfig::default`] is those declared defaults.
//! Durations carry their unit in the key: [`Millis`] (`_ms`) or [`Secs`]
//! (`_secs`).
//!
//! The settings in force are defaults ← file ← flags, merged by
//! [`layers`]; a live reload follows one rule ([`reload`]). The JWT secret
//! and the loaded TLS configuration are not settings: the caller loads them
//! (from `jwt_secret_file` / `tls_cert` + `tls_key`) into [`GatewayConfig::jwt_secret`]
//! and [`GatewayConfig::tls`], which are never serialised.

pub mod layers;
pub mod reload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};
use tokio_rustls::rustls::ServerConfig;

use crate::frame::DEFAULT_MAX_BODY_LEN;
use crate::resilience::ResilienceConfig;

pub use crate::units::{Millis, Secs};

/// Default address the gateway listens on.
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:7070";
/// Default address of the admin HTTP surface.
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:7071";
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
pub use crate::upstream::grpc::{
    DEFAULT_BACKEND_CONNECT_TIMEOUT, DEFAULT_BACKEND_KEEPALIVE_INTERVAL,
};
/// Default bound of one session-directory (Redis) operation.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(50);

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

/// Every setting of the gateway; see the module documentation.
#[derive(Clone, Parser, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address to listen on for client terminals (host:port; port 0 picks a free one).
    #[arg(long, default_value = DEFAULT_LISTEN_ADDR)]
    pub listen: String,
    /// Accept queue length of the client listener (capped by net.core.somaxconn).
    #[arg(long, default_value_t = DEFAULT_LISTEN_BACKLOG)]
    pub listen_backlog: u32,
    /// gRPC URL of an order-service backend, e.g. http://10.0.0.1:50051; repeat for several.
    #[arg(long = "backend")]
    pub backends: Vec<String>,
    /// Overall deadline of each request, in milliseconds; past it the client
    /// gets TIMEOUT (outcome unknown, retry with the same request_id is safe).
    #[arg(long, default_value_t = Millis(DEFAULT_REQUEST_TIMEOUT))]
    pub request_timeout_ms: Millis,
    /// Largest accepted frame body, in bytes (1024 - 16 MiB).
    #[arg(long, default_value_t = DEFAULT_MAX_BODY_LEN)]
    pub max_body_len: usize,
    /// A frame that has started arriving must complete within this many milliseconds.
    #[arg(long, default_value_t = Millis(DEFAULT_FRAME_READ_TIMEOUT))]
    pub frame_read_timeout_ms: Millis,
    /// A connection that sends nothing (not even a heartbeat) for this many seconds is closed.
    #[arg(long, default_value_t = Secs(DEFAULT_IDLE_TIMEOUT))]
    pub idle_timeout_secs: Secs,
    /// A connection not logged in within this many seconds is closed.
    #[arg(long, default_value_t = Secs(DEFAULT_LOGIN_TIMEOUT))]
    pub login_timeout_secs: Secs,
    /// In-flight slots per connection (one per started 4 KiB of frame); a
    /// terminal pipelining beyond it is back-pressured (1 - 1,048,576).
    #[arg(long, default_value_t = DEFAULT_MAX_IN_FLIGHT_PER_CONNECTION)]
    pub max_in_flight_per_connection: usize,
    /// Most simultaneous client connections; beyond it new ones are refused (1 - 10,000,000).
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Failed logins after which a connection is closed.
    #[arg(long, default_value_t = DEFAULT_MAX_FAILED_LOGINS)]
    pub max_failed_logins: u32,
    /// Failed logins one source address (IPv4 address, IPv6 /64) may make per
    /// window, across connections; beyond it LOGIN is answered RATE_LIMITED (0 = no limit).
    #[arg(long, default_value_t = DEFAULT_LOGIN_FAILURES_PER_SOURCE)]
    pub login_failures_per_source: u32,
    /// Window of --login-failures-per-source, in seconds.
    #[arg(long, default_value_t = Secs(DEFAULT_LOGIN_FAILURE_WINDOW))]
    pub login_failure_window_secs: Secs,
    /// Most source addresses the failed-login limit tracks (bounds its memory).
    #[arg(long, default_value_t = DEFAULT_MAX_LOGIN_SOURCES)]
    pub max_login_sources: usize,
    /// PEM certificate chain (leaf first): serve clients over TLS only (needs tls_key).
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of tls_cert.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Time a TLS client has to complete its handshake, in milliseconds.
    #[arg(long, default_value_t = Millis(DEFAULT_TLS_HANDSHAKE_TIMEOUT))]
    pub tls_handshake_timeout_ms: Millis,
    /// Requests in flight over all connections (the correlation table's capacity).
    #[arg(long, default_value_t = DEFAULT_CORRELATION_CAPACITY)]
    pub correlation_capacity: usize,
    /// Time one flush to a client may take before it is disconnected, in milliseconds.
    #[arg(long, default_value_t = Millis(DEFAULT_WRITE_TIMEOUT))]
    pub write_timeout_ms: Millis,
    /// Time a connection may take on shutdown to deliver in-flight answers, in
    /// milliseconds (never less than the request deadline + 1 s).
    #[arg(long, default_value_t = Millis(DEFAULT_DRAIN_TIMEOUT))]
    pub drain_timeout_ms: Millis,
    /// Timeout for establishing a backend connection, in milliseconds.
    #[arg(long, default_value_t = Millis(DEFAULT_BACKEND_CONNECT_TIMEOUT))]
    pub backend_connect_timeout_ms: Millis,
    /// HTTP/2 keep-alive ping interval towards backends, in milliseconds.
    #[arg(long, default_value_t = Millis(DEFAULT_BACKEND_KEEPALIVE_INTERVAL))]
    pub backend_keepalive_interval_ms: Millis,
    /// Redis holding the session directory (`redis://HOST:PORT/DB` or
    /// `redis-sentinel://HOST:26379/DB?sentinelServiceName=NAME&node=HOST2:26379`):
    /// a session opened on one gateway can be resumed on another. Never the
    /// source of truth: a miss or Redis down means logging in with the token.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// Upper bound of one session-directory operation, in milliseconds.
    #[arg(long, default_value_t = Millis(DEFAULT_REDIS_TIMEOUT))]
    pub redis_timeout_ms: Millis,
    /// Address of the admin HTTP surface (probes, /metrics, /admin/*, status page).
    #[arg(long, default_value = DEFAULT_ADMIN_ADDR)]
    pub admin_listen: String,
    /// File holding the admin bearer token (else HTS_ADMIN_TOKEN); without
    /// one, state-changing admin requests are refused.
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// File holding the JWT secret (else HTS_JWT_SECRET, else hts-data/jwt.secret).
    #[arg(long)]
    pub jwt_secret_file: Option<PathBuf>,
    /// Retry, hedging, breaker, bulkhead, rate-limit and health policies.
    #[command(flatten)]
    pub resilience: ResilienceConfig,
    /// HS256 secret the session tokens are signed with (loaded by the caller).
    #[arg(skip)]
    #[serde(skip)]
    pub jwt_secret: Vec<u8>,
    /// TLS for client connections, loaded from `tls_cert`/`tls_key` by the
    /// caller; `None` = plain TCP.
    #[arg(skip)]
    #[serde(skip)]
    pub tls: Option<Arc<ServerConfig>>,
}

/// A [`GatewayConfig`] the gateway cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum InvalidConfig {
    /// A gateway limit is out of range.
    #[error("invalid gateway setting {key}: {reason}")]
    Gateway {
        /// The setting (config-file key, also the flag's name).
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A resilience policy is out of range.
    #[error(transparent)]
    Resilience(#[from] crate::resilience::ConfigError),
}

impl Default for GatewayConfig {
    /// The declared defaults (each flag's default value).
    fn default() -> GatewayConfig {
        GatewayConfig::try_parse_from(["defaults"])
            .expect("the declared defaults of every gateway flag parse")
    }
}

impl GatewayConfig {
    /// Defaults, with the given backends and JWT secret.
    pub fn new(backends: Vec<String>, jwt_secret: impl Into<Vec<u8>>) -> GatewayConfig {
        GatewayConfig {
            backends,
            jwt_secret: jwt_secret.into(),
            ..GatewayConfig::default()
        }
    }

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
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return bad(
                    "tls_cert",
                    "--tls-cert needs --tls-key (tls_key in the file)",
                )
            }
            (None, Some(_)) => {
                return bad(
                    "tls_key",
                    "--tls-key needs --tls-cert (tls_cert in the file)",
                )
            }
            _ => {}
        }
        self.resilience.validate()?;
        Ok(())
    }

    /// The session directory's settings; `None` without `redis_url`.
    pub fn session_store(&self) -> Option<crate::sessions::SessionStoreConfig> {
        self.redis_url
            .as_ref()
            .map(|url| crate::sessions::SessionStoreConfig {
                url: url.clone(),
                op_timeout: (*self.redis_timeout_ms).max(Duration::from_millis(1)),
            })
    }

    /// The settings as JSON with every secret redacted: what
    /// `/admin/config` shows and what `Debug` prints. The JWT secret and
    /// the TLS key material are never serialised; the Redis URL loses its
    /// password.
    pub fn redacted(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(url) = v.get_mut("redis_url") {
            if let Some(s) = url.as_str() {
                *url = serde_json::Value::String(hts_dbkit::redact_url(s));
            }
        }
        v
    }
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GatewayConfig {} jwt_secret: <redacted>, tls: {}",
            self.redacted(),
            self.tls.is_some()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec() {
        let c = GatewayConfig::default();
        assert_eq!(c.max_body_len, 65536);
        assert_eq!(*c.request_timeout_ms, Duration::from_millis(50));
        assert_eq!(*c.frame_read_timeout_ms, Duration::from_secs(10));
        assert_eq!(*c.idle_timeout_secs, Duration::from_secs(300));
        assert_eq!(*c.login_timeout_secs, Duration::from_secs(30));
        assert_eq!(c.max_in_flight_per_connection, 256);
        assert_eq!(c.max_connections, 20_000);
        assert_eq!(c.listen_backlog, 4096);
        assert_eq!(c.max_failed_logins, 5);
        assert_eq!(c.login_failures_per_source, 20);
        assert_eq!(*c.login_failure_window_secs, Duration::from_secs(60));
        assert_eq!(c.max_login_sources, 100_000);
        assert!(c.tls.is_none());
        assert_eq!(*c.tls_handshake_timeout_ms, Duration::from_secs(10));
        assert_eq!(c.correlation_capacity, 100_000);
        assert_eq!(*c.write_timeout_ms, Duration::from_secs(10));
        assert_eq!(*c.drain_timeout_ms, Duration::from_secs(5));
        assert_eq!(c.listen, DEFAULT_LISTEN_ADDR);
        assert_eq!(c.admin_listen, DEFAULT_ADMIN_ADDR);
        assert_eq!(c.resilience, ResilienceConfig::default());
    }

    #[test]
    fn defaults_are_valid() {
        GatewayConfig::new(vec!["http://b:1".into()], b"s".to_vec())
            .validate()
            .unwrap();
    }

    #[test]
    fn every_key_is_also_a_flag() {
        let c = GatewayConfig::default();
        let keys = serde_json::to_value(&c).unwrap();
        let command = <GatewayConfig as clap::CommandFactory>::command();
        for key in keys.as_object().unwrap().keys() {
            if key == "resilience" {
                continue; // its own keys are flags, tested with it
            }
            assert!(
                command.get_arguments().any(|a| a.get_id() == key.as_str()),
                "{key} has no flag"
            );
        }
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
            ("tls_key", |c| c.tls_key = Some("k.pem".into())),
            ("--tls-cert needs --tls-key", |c| {
                c.tls_cert = Some("c.pem".into())
            }),
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
    fn debug_redacts_secrets() {
        let mut c = GatewayConfig::new(vec!["http://b:1".into()], b"super-secret".to_vec());
        c.redis_url = Some("redis://user:hunter2@cache:6379/0".into());
        let s = format!("{c:?}");
        assert!(s.contains("<redacted>"));
        assert!(!s.contains("super-secret"));
        assert!(!s.contains("115, 117")); // not even as bytes
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("cache:6379"), "{s}");
    }
}
