//! Optional Redis cache of order summaries (order id → order).
//!
//! Redis is never the source of truth: the database is. The cache only
//! spares the database repeated reads of the same order. Every cache
//! operation is bounded by a short timeout and skipped while the client is
//! disconnected, so a slow, failing or absent Redis costs an order request
//! at most that timeout and never an error: a miss or a failure reads the
//! database. Sentinel deployments are configured by URL
//! (`redis-sentinel://host:26379/0?sentinelServiceName=mymaster&node=h2:26379`).
//!
//! Consistency: entries expire after `ttl`; a cancel deletes the entry after
//! its commit. If that delete fails (Redis unreachable at that moment), this
//! process bypasses the cache for that order until the entry has expired;
//! another process may serve the old status for at most `ttl`, and only if
//! Redis was unreachable for the delete but reachable for its read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fred::prelude::{ClientLike, Expiration, KeysInterface};
use hts_proto::v1::{Code, OrderStatus, OrderType, Side};
use serde::{Deserialize, Serialize};

use crate::store::StoredOrder;

/// Settings of the order cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// `redis://host:port/db`, `rediss://…`, or `redis-sentinel://…`.
    pub url: String,
    /// How long an entry lives.
    pub ttl: Duration,
    /// Upper bound of one cache operation.
    pub op_timeout: Duration,
}

impl CacheConfig {
    /// Default entry lifetime.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
    /// Default bound of one cache operation.
    pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_millis(20);

    /// Settings with the defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ttl: Self::DEFAULT_TTL,
            op_timeout: Self::DEFAULT_OP_TIMEOUT,
        }
    }
}

/// Why the cache could not be configured.
#[derive(Debug, thiserror::Error)]
#[error("redis cache: {0}")]
pub struct CacheError(String);

/// Counters of cache use.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads answered from Redis.
    pub hits: u64,
    /// Reads Redis did not have.
    pub misses: u64,
    /// Operations skipped or failed because Redis was unreachable or slow.
    pub unavailable: u64,
}

/// The Redis cache of order summaries.
pub struct OrderCache {
    client: fred::prelude::Client,
    config: CacheConfig,
    /// Orders whose invalidation failed, bypassed until the instant given.
    bypass: Mutex<HashMap<String, Instant>>,
    hits: AtomicU64,
    misses: AtomicU64,
    unavailable: AtomicU64,
}

/// Most orders remembered as "bypass the cache" at once; beyond it the
/// cache is bypassed for every order until entries expire.
const MAX_BYPASS: usize = 100_000;

impl OrderCache {
    /// Configures the client and starts connecting in the background; never
    /// waits for Redis, so the order service starts with Redis down too.
    /// Must be called inside a Tokio runtime.
    pub fn connect(config: CacheConfig) -> Result<Self, CacheError> {
        let client = hts_dbkit::redis::cache_client(&config.url, config.op_timeout)
            .map_err(|e| CacheError(e.to_string()))?;
        Ok(Self {
            client,
            config,
            bypass: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            unavailable: self.unavailable.load(Ordering::Relaxed),
        }
    }

    fn key(order_id: &str) -> String {
        format!("hts:order:{order_id}")
    }

    fn bypassed(&self, order_id: &str) -> bool {
        let Ok(mut bypass) = self.bypass.lock() else {
            return true;
        };
        let now = Instant::now();
        if bypass.len() >= MAX_BYPASS {
            bypass.retain(|_, until| *until > now);
            if bypass.len() >= MAX_BYPASS {
                return true;
            }
        }
        match bypass.get(order_id) {
            Some(until) if *until > now => true,
            Some(_) => {
                bypass.remove(order_id);
                false
            }
            None => false,
        }
    }

    /// The cached order, or None on a miss, a decoding problem or any
    /// Redis trouble.
    pub async fn get(&self, order_id: &str) -> Option<StoredOrder> {
        if self.bypassed(order_id) {
            return None;
        }
        if !self.client.is_connected() {
            self.unavailable.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let read = self.client.get::<Option<String>, _>(Self::key(order_id));
        match tokio::time::timeout(self.config.op_timeout, read).await {
            Ok(Ok(Some(text))) => match serde_json::from_str::<CachedOrder>(&text)
                .ok()
                .and_then(CachedOrder::into_stored)
            {
                Some(order) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    Some(order)
                }
                None => {
                    tracing::warn!(order_id, "undecodable order cache entry ignored");
                    self.misses.fetch_add(1, Ordering::Relaxed);
                    None
                }
            },
            Ok(Ok(None)) => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
            Ok(Err(_)) | Err(_) => {
                self.unavailable.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Stores `order` for `ttl`; failures are counted and otherwise ignored.
    pub async fn put(&self, order: &StoredOrder) {
        if self.bypassed(&order.order_id) || !self.client.is_connected() {
            return;
        }
        let Ok(text) = serde_json::to_string(&CachedOrder::from_stored(order)) else {
            return;
        };
        let ttl = i64::try_from(self.config.ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let write = self.client.set::<(), _, _>(
            Self::key(&order.order_id),
            text,
            Some(Expiration::EX(ttl)),
            None,
            false,
        );
        if !matches!(
            tokio::time::timeout(self.config.op_timeout, write).await,
            Ok(Ok(()))
        ) {
            self.unavailable.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops the entry of an order whose state changed. If Redis cannot be
    /// reached, this process stops using the cache for that order until any
    /// entry written before has expired.
    pub async fn invalidate(&self, order_id: &str) {
        let delete = self.client.del::<i64, _>(Self::key(order_id));
        let ok = self.client.is_connected()
            && matches!(
                tokio::time::timeout(self.config.op_timeout, delete).await,
                Ok(Ok(_))
            );
        if !ok {
            self.unavailable.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                order_id,
                "order cache invalidation failed; bypassing the cache for it"
            );
            if let Ok(mut bypass) = self.bypass.lock() {
                bypass.insert(order_id.to_owned(), Instant::now() + self.config.ttl);
            }
        }
    }
}

impl std::fmt::Debug for OrderCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderCache")
            .field("ttl", &self.config.ttl)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// The cached form of a [`StoredOrder`] (enums as their protobuf numbers).
#[derive(Debug, Serialize, Deserialize)]
struct CachedOrder {
    order_id: String,
    request_id: String,
    account_id: String,
    symbol: String,
    side: i32,
    order_type: i32,
    price: i64,
    quantity: i64,
    status: i32,
    code: i32,
    message: String,
    fingerprint: String,
    reservation_id: String,
    created_at_unix_ms: i64,
    updated_at_unix_ms: i64,
}

impl CachedOrder {
    fn from_stored(o: &StoredOrder) -> Self {
        Self {
            order_id: o.order_id.clone(),
            request_id: o.request_id.clone(),
            account_id: o.account_id.clone(),
            symbol: o.symbol.clone(),
            side: o.side as i32,
            order_type: o.order_type as i32,
            price: o.price,
            quantity: o.quantity,
            status: o.status as i32,
            code: o.code as i32,
            message: o.message.clone(),
            fingerprint: o.fingerprint.clone(),
            reservation_id: o.reservation_id.clone(),
            created_at_unix_ms: o.created_at_unix_ms,
            updated_at_unix_ms: o.updated_at_unix_ms,
        }
    }

    /// None when an enum number is unknown (an entry from a newer version).
    fn into_stored(self) -> Option<StoredOrder> {
        Some(StoredOrder {
            order_id: self.order_id,
            request_id: self.request_id,
            account_id: self.account_id,
            symbol: self.symbol,
            side: Side::try_from(self.side).ok()?,
            order_type: OrderType::try_from(self.order_type).ok()?,
            price: self.price,
            quantity: self.quantity,
            status: OrderStatus::try_from(self.status).ok()?,
            code: Code::try_from(self.code).ok()?,
            message: self.message,
            fingerprint: self.fingerprint,
            reservation_id: self.reservation_id,
            created_at_unix_ms: self.created_at_unix_ms,
            updated_at_unix_ms: self.updated_at_unix_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> StoredOrder {
        StoredOrder {
            order_id: "o-1".into(),
            request_id: "r-1".into(),
            account_id: "ACC-0001".into(),
            symbol: "005930".into(),
            side: Side::Sell,
            order_type: OrderType::Limit,
            price: 70_000,
            quantity: 3,
            status: OrderStatus::Canceled,
            code: Code::Ok,
            message: String::new(),
            fingerprint: "f".into(),
            reservation_id: "place:ACC-0001:r-1".into(),
            created_at_unix_ms: 1,
            updated_at_unix_ms: 2,
        }
    }

    #[test]
    fn cached_form_round_trips() {
        let text = serde_json::to_string(&CachedOrder::from_stored(&order())).unwrap();
        let back: CachedOrder = serde_json::from_str(&text).unwrap();
        assert_eq!(back.into_stored(), Some(order()));
    }

    #[test]
    fn unknown_enum_numbers_are_a_miss_not_a_guess() {
        let mut cached = CachedOrder::from_stored(&order());
        cached.status = 99;
        assert_eq!(cached.into_stored(), None);
    }

    #[test]
    fn bad_urls_are_rejected() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _guard = rt.enter();
        assert!(OrderCache::connect(CacheConfig::new("http://not-redis")).is_err());
        assert!(OrderCache::connect(CacheConfig::new("127.0.0.1:6379")).is_err());
        assert!(OrderCache::connect(CacheConfig::new("redis://127.0.0.1:1/0")).is_ok());
        assert!(OrderCache::connect(CacheConfig::new(
            "redis-sentinel://127.0.0.1:1/0?sentinelServiceName=mymaster"
        ))
        .is_ok());
    }
}
