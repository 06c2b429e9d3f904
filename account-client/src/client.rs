//! The account-service client handle.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use hts_breaker::{Admission, BreakerCounts, BreakerOutcome, BreakerState, CircuitBreaker};

use hts_proto::v1::account_service_client::AccountServiceClient;
use hts_proto::v1::{
    GetAccountRequest, GetAccountResponse, GetStoreIdentityRequest, GetStoreIdentityResponse,
    ListHeldReservationsRequest, ListHeldReservationsResponse, ReleaseOutcome, ReleaseRequest,
    ReserveBatchRequest, ReserveOutcome, ReserveRequest,
};
use tonic::transport::{Channel, Endpoint};

use crate::{AccountClientConfig, AccountError};

/// The channel every call goes through.
pub type Transport = Channel;

/// Cheaply cloneable handle to the Account service.
///
/// The underlying channel connects lazily on first use and reconnects after
/// failures, so constructing the client never blocks and never fails because
/// the service is down. Every call passes one circuit breaker shared by all
/// clones: while it is open, calls fail at once with
/// [`AccountError::CircuitOpen`] instead of waiting for a dead service.
#[derive(Debug, Clone)]
pub struct AccountClient {
    inner: AccountServiceClient<Transport>,
    config: AccountClientConfig,
    breaker: Arc<CircuitBreaker>,
}

impl AccountClient {
    /// Creates a lazily connecting client with the default configuration.
    pub fn connect_lazy(url: &str) -> Result<Self, AccountError> {
        Self::connect_lazy_with(url, AccountClientConfig::default())
    }

    /// Creates a lazily connecting client with an explicit configuration.
    pub fn connect_lazy_with(url: &str, config: AccountClientConfig) -> Result<Self, AccountError> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| AccountError::InvalidUrl(format!("{url}: {e}")))?
            .tcp_nodelay(true)
            .connect_timeout(config.connect_timeout)
            .http2_keep_alive_interval(config.keepalive_interval)
            .keep_alive_timeout(config.keepalive_timeout)
            .keep_alive_while_idle(true);
        let channel: Transport = endpoint.connect_lazy();
        Ok(Self {
            inner: AccountServiceClient::new(channel),
            config,
            breaker: Arc::new(CircuitBreaker::new()),
        })
    }

    /// The breaker's state now (an open breaker whose delay passed reports
    /// half-open).
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state(Instant::now())
    }

    /// The breaker's state and window counts now.
    pub fn breaker_counts(&self) -> BreakerCounts {
        self.breaker.counts(Instant::now())
    }

    /// Publishes the breaker state gauge ([`BREAKER_STATE_METRIC`]); called
    /// after every call and at scrape time so an idle breaker is current.
    pub fn export_breaker_state(&self) {
        metrics::gauge!(BREAKER_STATE_METRIC).set(self.breaker_state().gauge_value());
    }

    /// Holds `amount` of `asset` on `account_id` under `reservation_id`.
    /// Idempotent by `reservation_id`.
    pub async fn reserve(
        &self,
        reservation_id: &str,
        account_id: &str,
        asset: &str,
        amount: i64,
    ) -> Result<ReserveOutcome, AccountError> {
        let request = ReserveRequest {
            reservation_id: reservation_id.to_owned(),
            account_id: account_id.to_owned(),
            asset: asset.to_owned(),
            amount,
            request_id: String::new(),
        };
        let mut client = self.inner.clone();
        let response = self
            .bounded(async move { client.reserve(request).await })
            .await?;
        Ok(response.outcome())
    }

    /// Reserves every item in one call (one breaker admission, one timeout):
    /// the service decides them in order, as one-at-a-time calls would be.
    /// One outcome per item, in order; an item the service could not decide
    /// is `UNSPECIFIED`. An answer with another number of results than
    /// items is a failure of the service.
    pub async fn reserve_batch(
        &self,
        items: Vec<ReserveRequest>,
    ) -> Result<Vec<ReserveOutcome>, AccountError> {
        let n = items.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut client = self.inner.clone();
        let response = self
            .bounded(async move {
                let response = client.reserve_batch(ReserveBatchRequest { items }).await?;
                if response.get_ref().results.len() != n {
                    return Err(tonic::Status::internal(format!(
                        "reserve batch of {n} items answered with {} results",
                        response.get_ref().results.len()
                    )));
                }
                Ok(response)
            })
            .await?;
        Ok(response.results.iter().map(|r| r.outcome()).collect())
    }

    /// Releases the reservation `reservation_id` of `account_id`.
    /// Idempotent: releasing twice reports `WAS_RELEASED`.
    pub async fn release(
        &self,
        reservation_id: &str,
        account_id: &str,
    ) -> Result<ReleaseOutcome, AccountError> {
        let request = ReleaseRequest {
            reservation_id: reservation_id.to_owned(),
            account_id: account_id.to_owned(),
        };
        let mut client = self.inner.clone();
        let response = self
            .bounded(async move { client.release(request).await })
            .await?;
        Ok(response.outcome())
    }

    /// One page (at most `limit` items, 0: the service's cap) of the HELD
    /// reservations backing orders that are at least `older_than_ms` old
    /// by the account service's clock, with ids after `after`.
    pub async fn list_held_reservations(
        &self,
        older_than_ms: i64,
        after: &str,
        limit: u32,
    ) -> Result<ListHeldReservationsResponse, AccountError> {
        let request = ListHeldReservationsRequest {
            older_than_ms,
            after_reservation_id: after.to_owned(),
            limit,
        };
        let mut client = self.inner.clone();
        self.bounded(async move { client.list_held_reservations(request).await })
            .await
    }

    /// Reads the balances of `account_id`.
    pub async fn get_account(&self, account_id: &str) -> Result<GetAccountResponse, AccountError> {
        let request = GetAccountRequest {
            account_id: account_id.to_owned(),
        };
        let mut client = self.inner.clone();
        self.bounded(async move { client.get_account(request).await })
            .await
    }

    /// The identity of the account store the service serves. Not counted
    /// by the breaker (a start-up check, not traffic), but bounded by the
    /// per-call timeout.
    pub async fn store_identity(&self) -> Result<GetStoreIdentityResponse, AccountError> {
        let mut client = self.inner.clone();
        match tokio::time::timeout(
            self.config.call_timeout,
            client.get_store_identity(GetStoreIdentityRequest {}),
        )
        .await
        {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(AccountError::from(status)),
            Err(_elapsed) => Err(AccountError::Timeout),
        }
    }

    /// Passes the call through the breaker, applies the per-call timeout
    /// and classifies the failure.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, AccountError> {
        let Some(admission) = self.breaker.try_admit(&self.config.breaker, Instant::now()) else {
            metrics::counter!(ERRORS_METRIC, "kind" => "circuit_open").increment(1);
            self.export_breaker_state();
            return Err(AccountError::CircuitOpen);
        };
        // Records the outcome; if the caller drops this future mid-call
        // (its own deadline), the admission is given back uncounted.
        let mut guard = AdmissionGuard {
            client: self,
            admission: Some(admission),
        };
        let result = match tokio::time::timeout(self.config.call_timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(AccountError::from(status)),
            Err(_elapsed) => Err(AccountError::Timeout),
        };
        let outcome = match &result {
            Err(e) if e.is_service_failure() => BreakerOutcome::Failure,
            _ => BreakerOutcome::Success,
        };
        guard.finish(outcome);
        if let Err(e) = &result {
            metrics::counter!(ERRORS_METRIC, "kind" => error_kind(e)).increment(1);
        }
        result
    }
}

/// An admitted call's claim on the breaker, settled exactly once.
struct AdmissionGuard<'a> {
    client: &'a AccountClient,
    admission: Option<Admission>,
}

impl AdmissionGuard<'_> {
    fn finish(&mut self, outcome: BreakerOutcome) {
        if let Some(admission) = self.admission.take() {
            let c = self.client;
            c.breaker
                .record(&c.config.breaker, admission, outcome, Instant::now());
            c.export_breaker_state();
        }
    }
}

impl Drop for AdmissionGuard<'_> {
    fn drop(&mut self) {
        self.finish(BreakerOutcome::Cancelled);
    }
}

/// Gauge: state of the account client's circuit breaker (0 closed,
/// 1 half-open, 2 open).
pub const BREAKER_STATE_METRIC: &str = "hts_account_client_breaker_state";

/// Counter of failed account-service calls, label `kind`
/// (`timeout`, `unavailable`, `circuit_open`, `other`).
pub const ERRORS_METRIC: &str = "hts_account_client_errors_total";

/// The bounded `kind` label of a failed call.
fn error_kind(e: &AccountError) -> &'static str {
    match e {
        AccountError::Timeout => "timeout",
        AccountError::CircuitOpen => "circuit_open",
        e if e.is_retryable() => "unavailable",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A listener that accepts but never speaks HTTP/2: calls hang.
    async fn silent_server() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        addr
    }

    #[test]
    fn invalid_url_is_reported() {
        let err = AccountClient::connect_lazy("not a url").unwrap_err();
        assert!(matches!(err, AccountError::InvalidUrl(_)));
    }

    #[tokio::test]
    async fn refused_connection_is_unavailable() {
        // Bind then drop a listener so the port is (almost certainly) closed.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = AccountClient::connect_lazy_with(
            &format!("http://{addr}"),
            AccountClientConfig {
                call_timeout: Duration::from_secs(5),
                ..AccountClientConfig::default()
            },
        )
        .unwrap();
        let err = client.reserve("r", "a", "CASH", 1).await.unwrap_err();
        assert!(matches!(err, AccountError::Unavailable(_)), "{err:?}");
    }

    #[tokio::test]
    async fn breaker_opens_on_a_dead_service_and_fails_fast() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let breaker = hts_breaker::BreakerConfig {
            window: 4,
            failure_ratio: 0.5,
            delay: Duration::from_millis(300),
            max_delay: Duration::from_secs(5),
            half_open_probes: 1,
        };
        let client = AccountClient::connect_lazy_with(
            &format!("http://{addr}"),
            AccountClientConfig {
                call_timeout: Duration::from_secs(5),
                breaker,
                ..AccountClientConfig::default()
            },
        )
        .unwrap();
        for _ in 0..4 {
            let err = client.reserve("r", "a", "CASH", 1).await.unwrap_err();
            assert!(matches!(err, AccountError::Unavailable(_)), "{err:?}");
        }
        assert_eq!(client.breaker_state(), BreakerState::Open);
        // Clones share the breaker: refused without touching the network.
        let clone = client.clone();
        let err = clone.release("r", "a").await.unwrap_err();
        assert!(matches!(err, AccountError::CircuitOpen), "{err:?}");
        // After the open period one probe goes out; it fails, so the
        // breaker opens again.
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(client.breaker_state(), BreakerState::HalfOpen);
        let err = client.get_account("a").await.unwrap_err();
        assert!(matches!(err, AccountError::Unavailable(_)), "{err:?}");
        assert_eq!(client.breaker_state(), BreakerState::Open);
        assert_eq!(client.breaker_counts().times_opened, 2);
    }

    #[tokio::test]
    async fn abandoned_call_counts_neither_way() {
        let addr = silent_server().await;
        let client = AccountClient::connect_lazy_with(
            &format!("http://{addr}"),
            AccountClientConfig {
                call_timeout: Duration::from_secs(30),
                ..AccountClientConfig::default()
            },
        )
        .unwrap();
        for _ in 0..30 {
            let call = client.release("r", "a");
            assert!(tokio::time::timeout(Duration::from_millis(10), call)
                .await
                .is_err());
        }
        let counts = client.breaker_counts();
        assert_eq!(
            (counts.state, counts.window_calls),
            (BreakerState::Closed, 0)
        );
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let addr = silent_server().await;
        let client = AccountClient::connect_lazy_with(
            &format!("http://{addr}"),
            AccountClientConfig {
                call_timeout: Duration::from_millis(300),
                ..AccountClientConfig::default()
            },
        )
        .unwrap();
        let err = client.release("r", "a").await.unwrap_err();
        assert!(matches!(err, AccountError::Timeout), "{err:?}");
    }
}
