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

use serde::Deserialize;

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}
