//! Backend channels: [`BackendSettings`] and [`channel`]. Which backend a
//! request goes to is decided in [`crate::resilience`].

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::config::{DEFAULT_BACKEND_CONNECT_TIMEOUT, DEFAULT_BACKEND_KEEPALIVE_INTERVAL};

/// A backend URL could not be turned into a channel.
#[derive(Debug, thiserror::Error)]
#[error("invalid backend url {url:?}: {source}")]
pub struct RoutingError {
    /// The offending URL.
    pub url: String,
    /// Why it was refused.
    #[source]
    pub source: tonic::transport::Error,
}

/// Connection settings applied to every backend channel.
#[derive(Debug, Clone, Copy)]
pub struct BackendSettings {
    /// Timeout for establishing the TCP/HTTP2 connection.
    pub connect_timeout: Duration,
    /// HTTP/2 keep-alive ping interval.
    pub keepalive_interval: Duration,
}

impl Default for BackendSettings {
    fn default() -> BackendSettings {
        BackendSettings {
            connect_timeout: DEFAULT_BACKEND_CONNECT_TIMEOUT,
            keepalive_interval: DEFAULT_BACKEND_KEEPALIVE_INTERVAL,
        }
    }
}

/// A lazily connecting channel to `url`: an unreachable backend shows up
/// as a failed call, never as a startup failure.
pub fn channel(url: &str, settings: BackendSettings) -> Result<Channel, RoutingError> {
    Ok(Endpoint::from_shared(url.to_owned())
        .map_err(|source| RoutingError {
            url: url.to_owned(),
            source,
        })?
        .connect_timeout(settings.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(settings.keepalive_interval)
        .keep_alive_while_idle(true)
        .connect_lazy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn invalid_url_rejected() {
        let err = channel("not a url", BackendSettings::default()).unwrap_err();
        assert_eq!(err.url, "not a url");
        assert!(channel("http://127.0.0.1:1", BackendSettings::default()).is_ok());
    }
}
