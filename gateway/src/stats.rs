//! [`GatewayStats`]: cheap counters for the admin/metrics surface. Each
//! event is counted once, here, in an atomic; the Prometheus exporter
//! ([`crate::telemetry::Exporter`]) reads them at scrape time.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use hts_proto::v1::Code;

use crate::correlation::CorrelationTable;
use crate::login_throttle::LoginThrottle;

/// Number of distinct `Code` values (0 = unspecified … 12 = PROTOCOL_ERROR).
const CODES: usize = 13;

#[derive(Debug)]
struct Inner {
    open_connections: AtomicUsize,
    accepted_connections: AtomicU64,
    rejected_connections: AtomicU64,
    tls_handshake_failures: AtomicU64,
    login_throttle: Option<Arc<LoginThrottle>>,
    responses: [AtomicU64; CODES],
    table: Arc<CorrelationTable>,
    /// Backend requests in flight per account (entries removed at zero).
    by_account: DashMap<Arc<str>, usize>,
}

/// A clonable handle on the gateway's counters.
#[derive(Debug, Clone)]
pub struct GatewayStats {
    inner: Arc<Inner>,
}

impl GatewayStats {
    pub(crate) fn new(
        table: Arc<CorrelationTable>,
        login_throttle: Option<Arc<LoginThrottle>>,
    ) -> GatewayStats {
        GatewayStats {
            inner: Arc::new(Inner {
                open_connections: AtomicUsize::new(0),
                accepted_connections: AtomicU64::new(0),
                rejected_connections: AtomicU64::new(0),
                tls_handshake_failures: AtomicU64::new(0),
                login_throttle,
                responses: std::array::from_fn(|_| AtomicU64::new(0)),
                table,
                by_account: DashMap::new(),
            }),
        }
    }

    /// Client connections currently open.
    pub fn open_connections(&self) -> usize {
        self.inner.open_connections.load(Ordering::Relaxed)
    }

    /// Connections accepted since start.
    pub fn accepted_connections(&self) -> u64 {
        self.inner.accepted_connections.load(Ordering::Relaxed)
    }

    /// Connections refused because `max_connections` was reached.
    pub fn rejected_connections(&self) -> u64 {
        self.inner.rejected_connections.load(Ordering::Relaxed)
    }

    /// TLS handshakes that failed or timed out.
    pub fn tls_handshake_failures(&self) -> u64 {
        self.inner.tls_handshake_failures.load(Ordering::Relaxed)
    }

    /// Logins refused RATE_LIMITED by the per-source failed-login limit.
    pub fn logins_throttled(&self) -> u64 {
        self.inner
            .login_throttle
            .as_ref()
            .map_or(0, |t| t.refused())
    }

    /// Source addresses the failed-login limit currently tracks.
    pub fn login_sources_tracked(&self) -> usize {
        self.inner
            .login_throttle
            .as_ref()
            .map_or(0, |t| t.tracked_sources())
    }

    /// Failed logins not tracked per source because the table was full.
    pub fn login_failures_untracked(&self) -> u64 {
        self.inner
            .login_throttle
            .as_ref()
            .map_or(0, |t| t.untracked_failures())
    }

    /// Backend requests currently in flight.
    pub fn correlation_len(&self) -> usize {
        self.inner.table.len()
    }

    /// Backend answers dropped because their client had disconnected.
    pub fn dropped_answers(&self) -> u64 {
        self.inner.table.dropped_answers()
    }

    /// Responses sent with `code` (typed responses and ERROR frames).
    pub fn responses_with_code(&self, code: Code) -> u64 {
        self.inner
            .responses
            .get(code as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Every response counter, zero or not, in code order.
    pub fn responses_all(&self) -> Vec<(Code, u64)> {
        self.inner
            .responses
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let code = Code::try_from(i32::try_from(i).ok()?).ok()?;
                Some((code, c.load(Ordering::Relaxed)))
            })
            .collect()
    }

    /// All non-zero response counters.
    pub fn responses_by_code(&self) -> Vec<(Code, u64)> {
        self.inner
            .responses
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let n = c.load(Ordering::Relaxed);
                let code = Code::try_from(i32::try_from(i).ok()?).ok()?;
                (n > 0).then_some((code, n))
            })
            .collect()
    }

    /// Capacity of the correlation table.
    pub fn correlation_capacity(&self) -> usize {
        self.inner.table.capacity()
    }

    /// Backend requests in flight per account, largest first, at most `limit`.
    pub fn in_flight_by_account(&self, limit: usize) -> Vec<(String, usize)> {
        let mut all: Vec<(String, usize)> = self
            .inner
            .by_account
            .iter()
            .map(|e| (e.key().to_string(), *e.value()))
            .filter(|(_, n)| *n > 0)
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(limit);
        all
    }

    /// Accounts with at least one backend request in flight.
    pub fn accounts_in_flight(&self) -> usize {
        self.inner.by_account.len()
    }

    /// Counts one backend request of `account` until the guard is dropped.
    pub(crate) fn account_request(&self, account: &Arc<str>) -> AccountGuard {
        *self.inner.by_account.entry(account.clone()).or_insert(0) += 1;
        AccountGuard {
            stats: self.clone(),
            account: account.clone(),
        }
    }

    pub(crate) fn record(&self, code: i32) {
        let slot = usize::try_from(code)
            .ok()
            .filter(|i| *i < CODES)
            .unwrap_or(0);
        self.inner.responses[slot].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_opened(&self) -> ConnectionGuard {
        self.inner.open_connections.fetch_add(1, Ordering::Relaxed);
        self.inner
            .accepted_connections
            .fetch_add(1, Ordering::Relaxed);
        ConnectionGuard {
            stats: self.clone(),
        }
    }

    pub(crate) fn tls_handshake_failed(&self) {
        self.inner
            .tls_handshake_failures
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_rejected(&self) {
        self.inner
            .rejected_connections
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// Decrements the open-connection gauge when dropped.
#[derive(Debug)]
pub(crate) struct ConnectionGuard {
    stats: GatewayStats,
}

/// Decrements an account's in-flight count when dropped.
#[derive(Debug)]
pub(crate) struct AccountGuard {
    stats: GatewayStats,
    account: Arc<str>,
}

impl Drop for AccountGuard {
    fn drop(&mut self) {
        let map = &self.stats.inner.by_account;
        if let Some(mut n) = map.get_mut(&self.account) {
            *n = n.saturating_sub(1);
        }
        map.remove_if(&self.account, |_, n| *n == 0);
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.stats
            .inner
            .open_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters() {
        let s = GatewayStats::new(Arc::new(CorrelationTable::new(1)), None);
        s.record(Code::Ok as i32);
        s.record(Code::Ok as i32);
        s.record(99);
        assert_eq!(s.responses_with_code(Code::Ok), 2);
        assert_eq!(s.responses_with_code(Code::Unspecified), 1);
        {
            let _g = s.connection_opened();
            assert_eq!(s.open_connections(), 1);
        }
        assert_eq!(s.open_connections(), 0);
        assert_eq!(s.accepted_connections(), 1);
        let acc: Arc<str> = Arc::from("ACC-1");
        {
            let _a = s.account_request(&acc);
            let _b = s.account_request(&acc);
            assert_eq!(s.in_flight_by_account(10), vec![("ACC-1".to_owned(), 2)]);
        }
        assert_eq!(s.accounts_in_flight(), 0);
        assert_eq!(
            s.responses_by_code(),
            vec![(Code::Unspecified, 1), (Code::Ok, 2)]
        );
    }
}
