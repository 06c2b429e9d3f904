//! A Redis client for caches (fred), configured by URL: one server
//! (`redis://host:port/db`, `rediss://` with TLS) or a Sentinel deployment
//! (`redis-sentinel://host:26379/db?sentinelServiceName=mymaster&node=h2:26379`).
//!
//! Built for caches that must never slow or fail their caller: every command
//! is bounded by a short timeout and tried once, and the client connects and
//! reconnects in the background with backoff, so a process starts and serves
//! with Redis down.

use std::time::Duration;

use fred::prelude::{Builder, ClientLike, Config, ReconnectPolicy};

pub use fred::prelude::Client;

/// URL schemes of a single server (TLS or not) or a Sentinel deployment.
pub const SCHEMES: [&str; 4] = ["redis", "rediss", "redis-sentinel", "rediss-sentinel"];

/// Why a Redis client could not be configured.
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct RedisConfigError(String);

/// A client for `url` whose commands time out after `op_timeout`; starts
/// connecting in the background and returns at once. Must be called inside
/// a Tokio runtime.
pub fn cache_client(url: &str, op_timeout: Duration) -> Result<Client, RedisConfigError> {
    // fred accepts any scheme as a plain server; a typo must not pass silently.
    let scheme = url.split("://").next().unwrap_or_default();
    if !SCHEMES.contains(&scheme) || !url.contains("://") {
        return Err(RedisConfigError(format!(
            "unsupported URL {:?}: use one of {}",
            crate::redact_url(url),
            SCHEMES.join("://, ") + "://"
        )));
    }
    let config = Config::from_url(url).map_err(|e| RedisConfigError(e.to_string()))?;
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_millis(500);
            c.max_command_attempts = 1;
        })
        .with_performance_config(|p| {
            p.default_command_timeout = op_timeout;
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
        .build()
        .map_err(|e| RedisConfigError(e.to_string()))?;
    // The connection task reconnects forever with backoff.
    drop(client.connect());
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_schemes_are_refused_without_leaking_the_password() {
        let err = cache_client("http://u:pw@h:1", Duration::from_millis(20)).unwrap_err();
        assert!(!err.to_string().contains("pw@"), "{err}");
        assert!(cache_client("redis://127.0.0.1:1/0", Duration::from_millis(20)).is_ok());
    }
}
