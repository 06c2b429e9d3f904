//! The account-service client handle.

use std::future::Future;

use hts_proto::v1::account_service_client::AccountServiceClient;
use hts_proto::v1::{
    GetAccountRequest, GetAccountResponse, ReleaseOutcome, ReleaseRequest, ReserveOutcome,
    ReserveRequest,
};
use tonic::transport::{Channel, Endpoint};

use crate::{AccountClientConfig, AccountError};

/// The service stack every call goes through. A resilience policy (circuit
/// breaker, retry budget) is meant to be added here as a `tower` layer.
pub type Transport = Channel;

/// Cheaply cloneable handle to the Account service.
///
/// The underlying channel connects lazily on first use and reconnects after
/// failures, so constructing the client never blocks and never fails because
/// the service is down.
#[derive(Debug, Clone)]
pub struct AccountClient {
    inner: AccountServiceClient<Transport>,
    config: AccountClientConfig,
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
        })
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
        };
        let mut client = self.inner.clone();
        let response = self
            .bounded(async move { client.reserve(request).await })
            .await?;
        Ok(response.outcome())
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

    /// Reads the balances of `account_id`.
    pub async fn get_account(&self, account_id: &str) -> Result<GetAccountResponse, AccountError> {
        let request = GetAccountRequest {
            account_id: account_id.to_owned(),
        };
        let mut client = self.inner.clone();
        self.bounded(async move { client.get_account(request).await })
            .await
    }

    /// Applies the per-call timeout and classifies the failure.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, AccountError> {
        let result = match tokio::time::timeout(self.config.call_timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(AccountError::from(status)),
            Err(_elapsed) => Err(AccountError::Timeout),
        };
        if let Err(e) = &result {
            metrics::counter!(ERRORS_METRIC, "kind" => error_kind(e)).increment(1);
        }
        result
    }
}

/// Counter of failed account-service calls, label `kind`
/// (`timeout`, `unavailable`, `other`).
pub const ERRORS_METRIC: &str = "hts_account_client_errors_total";

/// The bounded `kind` label of a failed call.
fn error_kind(e: &AccountError) -> &'static str {
    match e {
        AccountError::Timeout => "timeout",
        e if e.is_retryable() => "unavailable",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
    async fn silent_server_times_out() {
        // A listener that accepts but never speaks HTTP/2.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _keep = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
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
