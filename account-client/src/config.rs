//! Tunables of the account client.

use std::time::Duration;

/// Connection and timeout settings of an [`crate::AccountClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountClientConfig {
    /// Upper bound on every call, including waiting for a connection.
    pub call_timeout: Duration,
    /// Upper bound on establishing a TCP/HTTP2 connection.
    pub connect_timeout: Duration,
    /// Interval of HTTP/2 keepalive pings on an idle connection.
    pub keepalive_interval: Duration,
    /// How long to wait for a keepalive ping acknowledgement.
    pub keepalive_timeout: Duration,
}

impl Default for AccountClientConfig {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(5),
        }
    }
}
