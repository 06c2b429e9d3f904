//! [`GatewayFile`]: the gateway's TOML config file.
//!
//! ```toml
//! backends = ["http://10.0.0.1:50051", "http://10.0.0.2:50051"]
//! request_timeout_ms = 50
//! tls_cert = "/etc/hts/tls/gateway.crt"
//! tls_key = "/etc/hts/tls/gateway.key"
//! login_failures_per_source = 20
//!
//! [resilience]
//! max_retries = 1
//! breaker_delay_ms = 30000
//! ```
//!
//! Every key is optional; command-line flags override file values. On
//! SIGHUP the file is read again and its backend list and `[resilience]`
//! values are applied live ([`crate::Router::reload`]); the other keys
//! (listener, TLS, limits) take effect at the next start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::GatewayConfig;
use crate::resilience::ResilienceConfig;

/// The config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Reading failed.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is invalid or has unknown keys.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: toml::de::Error,
    },
}

/// Contents of the gateway config file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayFile {
    /// Address to listen on.
    pub listen: Option<String>,
    /// gRPC URLs of the order-service backends.
    pub backends: Vec<String>,
    /// Overall deadline of each request, in milliseconds.
    pub request_timeout_ms: Option<u64>,
    /// Most requests in flight on one connection.
    pub max_in_flight_per_connection: Option<usize>,
    /// Most simultaneous client connections.
    pub max_connections: Option<usize>,
    /// Failed logins after which a connection is closed.
    pub max_failed_logins: Option<u32>,
    /// Failed logins per source address per window (0 = no limit).
    pub login_failures_per_source: Option<u32>,
    /// Window of `login_failures_per_source`, in seconds.
    pub login_failure_window_secs: Option<u64>,
    /// Most source addresses the failed-login limit tracks.
    pub max_login_sources: Option<usize>,
    /// PEM certificate chain for TLS on the client listener (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS on the client listener (with `tls_cert`).
    pub tls_key: Option<PathBuf>,
    /// Time a TLS client has to complete its handshake, in milliseconds.
    pub tls_handshake_timeout_ms: Option<u64>,
    /// Resilience policies.
    pub resilience: ResilienceConfig,
}

impl GatewayFile {
    /// Parses TOML text.
    pub fn parse(text: &str, path: &str) -> Result<GatewayFile, FileError> {
        toml::from_str(text).map_err(|source| FileError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<GatewayFile, FileError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
            path: name.clone(),
            source,
        })?;
        GatewayFile::parse(&text, &name)
    }

    /// Sets every value the file gives in `config` (command-line flags are
    /// applied afterwards and win). `listen` is the caller's (a string until
    /// bound), and so are `tls_cert`/`tls_key` (files to load).
    pub fn apply_to(&self, config: &mut GatewayConfig) {
        if !self.backends.is_empty() {
            config.backends = self.backends.clone();
        }
        if let Some(ms) = self.request_timeout_ms {
            config.request_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = self.max_in_flight_per_connection {
            config.max_in_flight_per_connection = n;
        }
        if let Some(n) = self.max_connections {
            config.max_connections = n;
        }
        if let Some(n) = self.max_failed_logins {
            config.max_failed_logins = n;
        }
        if let Some(n) = self.login_failures_per_source {
            config.login_failures_per_source = n;
        }
        if let Some(s) = self.login_failure_window_secs {
            config.login_failure_window = Duration::from_secs(s);
        }
        if let Some(n) = self.max_login_sources {
            config.max_login_sources = n;
        }
        if let Some(ms) = self.tls_handshake_timeout_ms {
            config.tls_handshake_timeout = Duration::from_millis(ms);
        }
        config.resilience = self.resilience.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_backends_and_nested_resilience() {
        let f = GatewayFile::parse(
            r#"
backends = ["http://127.0.0.1:1", "http://127.0.0.1:2"]
request_timeout_ms = 80
tls_cert = "/etc/hts/gw.crt"
tls_key = "/etc/hts/gw.key"
login_failures_per_source = 7
[resilience]
hedging = false
breaker_delay_ms = 1000
"#,
            "t.toml",
        )
        .unwrap();
        assert_eq!(f.backends.len(), 2);
        assert_eq!(f.request_timeout_ms, Some(80));
        assert_eq!(f.tls_cert, Some(PathBuf::from("/etc/hts/gw.crt")));
        assert_eq!(f.tls_key, Some(PathBuf::from("/etc/hts/gw.key")));
        assert_eq!(f.login_failures_per_source, Some(7));
        assert!(!f.resilience.hedging);
        assert_eq!(f.resilience.breaker_delay, Duration::from_secs(1));
        assert_eq!(f.resilience.max_retries, 1, "defaults kept");
    }

    #[test]
    fn empty_file_is_all_defaults_and_typos_are_refused() {
        assert_eq!(GatewayFile::parse("", "t").unwrap(), GatewayFile::default());
        let e = GatewayFile::parse("backend = []", "t.toml").unwrap_err();
        assert!(e.to_string().contains("t.toml"));
        assert!(GatewayFile::load(Path::new("/nonexistent/gw.toml")).is_err());
    }

    #[test]
    fn apply_to_sets_only_what_the_file_gives() {
        let mut config = GatewayConfig::new(vec!["http://a:1".into()], b"s".to_vec());
        GatewayFile::default().apply_to(&mut config);
        assert_eq!(config.backends, vec!["http://a:1".to_owned()]);
        assert_eq!(
            config.max_connections,
            GatewayConfig::default().max_connections
        );
        let f = GatewayFile::parse(
            "backends = [\"http://b:2\"]\nrequest_timeout_ms = 80\nmax_connections = 7\n\
             max_in_flight_per_connection = 3\nmax_failed_logins = 2\n\
             login_failure_window_secs = 9\n[resilience]\nmax_retries = 0\n",
            "t.toml",
        )
        .unwrap();
        f.apply_to(&mut config);
        assert_eq!(config.backends, vec!["http://b:2".to_owned()]);
        assert_eq!(config.request_timeout, Duration::from_millis(80));
        assert_eq!(config.max_connections, 7);
        assert_eq!(config.max_in_flight_per_connection, 3);
        assert_eq!(config.max_failed_logins, 2);
        assert_eq!(config.login_failure_window, Duration::from_secs(9));
        assert_eq!(config.resilience.max_retries, 0);
    }
}
