//! [`SessionDirectory`]: session id → account in Redis, so a client can
//! resume its session on any gateway instance (after a reconnect, a
//! gateway restart or a load-balancer move) by sending LOGIN with its
//! `session_id` and no token.
//!
//! Redis is never the source of truth: the signed token is. A session is
//! registered at a token login with a lifetime that ends with the token's
//! `exp`, so a resumed session never outlives the credential that opened
//! it. On a miss, or with Redis slow, down or not configured, a resume is
//! refused UNAUTHENTICATED with a message telling the client to log in with
//! its token, which always works: token logins never wait for Redis (the
//! registration runs in the background, bounded by the operation timeout).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fred::prelude::{Expiration, KeysInterface};
use serde::Serialize;

use crate::auth::TokenClaims;

/// Settings of the session directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStoreConfig {
    /// `redis://host:port/db`, `rediss://…` or `redis-sentinel://…`.
    pub url: String,
    /// Upper bound of one Redis operation.
    pub op_timeout: Duration,
}

impl SessionStoreConfig {
    /// Default bound of one Redis operation.
    pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_millis(50);
}

/// What a resume found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// The session exists: its account and the expiry of the token that
    /// opened it.
    Session(TokenClaims),
    /// No such session (never registered, expired, or malformed id).
    Unknown,
    /// The directory could not be asked (not configured, Redis down or slow).
    Unavailable,
}

/// Counters of the directory, for the admin snapshot.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SessionStats {
    /// Sessions written to Redis.
    pub registered: u64,
    /// Resumes that found their session.
    pub resumed: u64,
    /// Resumes of unknown or expired sessions.
    pub unknown: u64,
    /// Operations that failed because Redis was unreachable or slow.
    pub unavailable: u64,
}

/// Counter of session-directory operations, label `outcome`
/// (`registered`, `resumed`, `unknown`, `unavailable`).
pub const SESSIONS_METRIC: &str = "hts_session_directory_total";

fn count(counter: &AtomicU64, outcome: &'static str) {
    counter.fetch_add(1, Ordering::Relaxed);
    metrics::counter!(SESSIONS_METRIC, "outcome" => outcome).increment(1);
}

/// Longest session id looked up; ours are 36-character UUIDs.
const MAX_SESSION_ID_LEN: usize = 64;

/// The shared session directory (absent Redis: every resume is refused).
pub struct SessionDirectory {
    client: Option<hts_dbkit::redis::Client>,
    registered: AtomicU64,
    resumed: AtomicU64,
    unknown: AtomicU64,
    unavailable: AtomicU64,
}

impl std::fmt::Debug for SessionDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionDirectory")
            .field("configured", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

impl SessionDirectory {
    /// A directory on `config`'s Redis, or a disabled one. Connects in the
    /// background; never waits for Redis. Must run inside a Tokio runtime.
    pub fn new(
        config: Option<&SessionStoreConfig>,
    ) -> Result<SessionDirectory, hts_dbkit::redis::RedisConfigError> {
        let client = config
            .map(|c| hts_dbkit::redis::cache_client(&c.url, c.op_timeout))
            .transpose()?;
        Ok(SessionDirectory {
            client,
            registered: AtomicU64::new(0),
            resumed: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
            unavailable: AtomicU64::new(0),
        })
    }

    /// Whether sessions are shared through Redis at all.
    pub fn is_enabled(&self) -> bool {
        self.client.is_some()
    }

    fn key(session_id: &str) -> String {
        format!("hts:session:{session_id}")
    }

    /// Records `session_id` → the token's account and `exp` until that
    /// `exp`, in the background; a failure only means that session cannot
    /// be resumed elsewhere.
    pub fn register(self: &std::sync::Arc<Self>, session_id: &str, claims: &TokenClaims) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let secs = i64::try_from(claims.remaining().as_secs()).unwrap_or(i64::MAX);
        if secs == 0 {
            return;
        }
        let key = Self::key(session_id);
        let value = encode(claims);
        let this = std::sync::Arc::clone(self);
        tokio::spawn(async move {
            let set: Result<(), _> = client
                .set(key, value, Some(Expiration::EX(secs)), None, false)
                .await;
            match set {
                Ok(()) => count(&this.registered, "registered"),
                Err(e) => {
                    tracing::debug!(error = %e, "session not registered in redis");
                    count(&this.unavailable, "unavailable")
                }
            }
        });
    }

    /// Looks `session_id` up.
    pub async fn resolve(&self, session_id: &str) -> Resolved {
        let Some(client) = &self.client else {
            return Resolved::Unavailable;
        };
        if session_id.is_empty()
            || session_id.len() > MAX_SESSION_ID_LEN
            || uuid::Uuid::parse_str(session_id).is_err()
        {
            count(&self.unknown, "unknown");
            return Resolved::Unknown;
        }
        let got: Result<Option<String>, _> = client.get(Self::key(session_id)).await;
        match got.map(|v| v.as_deref().and_then(decode)) {
            // The Redis TTL may lag; the token's own expiry decides.
            Ok(Some(claims)) if !claims.remaining().is_zero() => {
                count(&self.resumed, "resumed");
                Resolved::Session(claims)
            }
            Ok(_) => {
                count(&self.unknown, "unknown");
                Resolved::Unknown
            }
            Err(e) => {
                tracing::debug!(error = %e, "session lookup failed");
                count(&self.unavailable, "unavailable");
                Resolved::Unavailable
            }
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            registered: self.registered.load(Ordering::Relaxed),
            resumed: self.resumed.load(Ordering::Relaxed),
            unknown: self.unknown.load(Ordering::Relaxed),
            unavailable: self.unavailable.load(Ordering::Relaxed),
        }
    }
}

/// The Redis value of a session: `EXP_UNIX:ACCOUNT`.
fn encode(claims: &TokenClaims) -> String {
    format!("{}:{}", claims.expires_at_unix, claims.account)
}

/// Parses [`encode`]'s value; `None` for anything else.
fn decode(value: &str) -> Option<TokenClaims> {
    let (exp, account) = value.split_once(':')?;
    if account.is_empty() {
        return None;
    }
    Some(TokenClaims {
        account: account.to_owned(),
        expires_at_unix: exp.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_garbage_is_refused() {
        let claims = TokenClaims {
            account: "ACC:0001".into(),
            expires_at_unix: 1_900_000_000,
        };
        assert_eq!(decode(&encode(&claims)), Some(claims));
        for bad in ["", "ACC-1", "x:ACC-1", "123:", ":ACC"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn without_redis_every_resume_is_unavailable() {
        let d = SessionDirectory::new(None).unwrap();
        assert!(!d.is_enabled());
        let id = uuid::Uuid::new_v4().to_string();
        assert_eq!(d.resolve(&id).await, Resolved::Unavailable);
    }

    #[tokio::test]
    async fn malformed_ids_never_reach_redis() {
        // Port 1: nothing listens; a lookup would be Unavailable, not Unknown.
        let config = SessionStoreConfig {
            url: "redis://127.0.0.1:1/0".into(),
            op_timeout: Duration::from_millis(20),
        };
        let d = SessionDirectory::new(Some(&config)).unwrap();
        for bad in ["", "x", "hts:*", &"a".repeat(1000)] {
            assert_eq!(d.resolve(bad).await, Resolved::Unknown, "{bad:?}");
        }
        let id = uuid::Uuid::new_v4().to_string();
        assert_eq!(d.resolve(&id).await, Resolved::Unavailable);
        assert_eq!(d.stats().unknown, 4);
        assert_eq!(d.stats().unavailable, 1);
    }
}
