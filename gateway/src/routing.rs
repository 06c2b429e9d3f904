//! [`BackendPool`]: the order-service backends and round-robin selection.
//!
//! The backend list lives behind an [`ArcSwap`], so it can be replaced at
//! runtime without locking the request path. Channels are created lazily:
//! an unreachable backend shows up as `Unavailable` on the call, never as a
//! startup failure.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hts_proto::v1::order_service_client::OrderServiceClient;
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

/// One order-service backend: its URL and a (cheaply clonable) client.
#[derive(Debug, Clone)]
pub struct Backend {
    url: String,
    client: OrderServiceClient<Channel>,
}

impl Backend {
    /// A backend with a lazily connecting channel to `url`.
    pub fn new(url: &str, settings: BackendSettings) -> Result<Backend, RoutingError> {
        let channel = Endpoint::from_shared(url.to_owned())
            .map_err(|source| RoutingError {
                url: url.to_owned(),
                source,
            })?
            .connect_timeout(settings.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(settings.keepalive_interval)
            .keep_alive_while_idle(true)
            .connect_lazy();
        Ok(Backend {
            url: url.to_owned(),
            client: OrderServiceClient::new(channel),
        })
    }

    /// The backend's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A client for this backend (clones share the channel).
    pub fn client(&self) -> OrderServiceClient<Channel> {
        self.client.clone()
    }
}

/// The set of backends, with round-robin selection.
#[derive(Debug)]
pub struct BackendPool {
    backends: ArcSwap<Vec<Backend>>,
    next: AtomicUsize,
    settings: BackendSettings,
}

impl BackendPool {
    /// A pool of `urls` with default settings. Must run inside a Tokio runtime.
    pub fn new<S: AsRef<str>>(urls: &[S]) -> Result<BackendPool, RoutingError> {
        BackendPool::with_settings(urls, BackendSettings::default())
    }

    /// A pool of `urls` with the given channel settings.
    pub fn with_settings<S: AsRef<str>>(
        urls: &[S],
        settings: BackendSettings,
    ) -> Result<BackendPool, RoutingError> {
        Ok(BackendPool {
            backends: ArcSwap::from_pointee(build(urls, settings)?),
            next: AtomicUsize::new(0),
            settings,
        })
    }

    /// Replaces the backend list; in-flight calls keep their old channel.
    pub fn replace<S: AsRef<str>>(&self, urls: &[S]) -> Result<(), RoutingError> {
        self.backends.store(Arc::new(build(urls, self.settings)?));
        Ok(())
    }

    /// The next backend in round-robin order, `None` when the pool is empty.
    pub fn pick(&self) -> Option<Backend> {
        let backends = self.backends.load();
        if backends.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % backends.len();
        backends.get(i).cloned()
    }

    /// Number of backends.
    pub fn len(&self) -> usize {
        self.backends.load().len()
    }

    /// Whether the pool has no backend.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// URLs of the current backends.
    pub fn urls(&self) -> Vec<String> {
        self.backends.load().iter().map(|b| b.url.clone()).collect()
    }
}

fn build<S: AsRef<str>>(
    urls: &[S],
    settings: BackendSettings,
) -> Result<Vec<Backend>, RoutingError> {
    urls.iter()
        .map(|u| Backend::new(u.as_ref(), settings))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_robin() {
        let pool = BackendPool::new(&["http://127.0.0.1:1", "http://127.0.0.1:2"]).unwrap();
        assert_eq!(pool.len(), 2);
        let picks: Vec<String> = (0..4)
            .map(|_| pool.pick().unwrap().url().to_owned())
            .collect();
        assert_eq!(
            picks,
            [
                "http://127.0.0.1:1",
                "http://127.0.0.1:2",
                "http://127.0.0.1:1",
                "http://127.0.0.1:2"
            ]
        );
    }

    #[tokio::test]
    async fn replace_and_empty() {
        let pool = BackendPool::new(&["http://127.0.0.1:1"]).unwrap();
        pool.replace(&["http://127.0.0.1:3"]).unwrap();
        assert_eq!(pool.urls(), ["http://127.0.0.1:3"]);
        pool.replace::<&str>(&[]).unwrap();
        assert!(pool.is_empty());
        assert!(pool.pick().is_none());
    }

    #[tokio::test]
    async fn invalid_url_rejected() {
        let err = BackendPool::new(&["not a url"]).unwrap_err();
        assert_eq!(err.url, "not a url");
        // A failed replace keeps the old list.
        let pool = BackendPool::new(&["http://127.0.0.1:1"]).unwrap();
        assert!(pool.replace(&["\u{0}"]).is_err());
        assert_eq!(pool.len(), 1);
    }
}
