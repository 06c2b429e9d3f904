//! The production [`Upstream`]: an order-service backend over a tonic gRPC
//! channel.
//!
//! [`GrpcConnector`] turns a backend URL into a lazily connecting channel
//! (an unreachable backend shows up as a failed call, never as a start-up
//! failure); [`GrpcUpstream`] sends one attempt over it with the time left
//! as the gRPC timeout, and answers `grpc.health.v1` checks. A failed call's
//! `tonic::Status` is classified into a [`CallError`] here and nowhere else
//! ([`classify`]).

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use hts_proto::v1::order_service_client::OrderServiceClient;
use hts_proto::v1::{CancelOrderCall, PlaceOrderCall, QueryOrderCall};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use super::{BackendReply, BackendRequest, CallError, Connector, InvalidUrl, Upstream};

/// Default timeout for establishing a backend connection.
pub const DEFAULT_BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default HTTP/2 keep-alive ping interval towards backends.
pub const DEFAULT_BACKEND_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// The gRPC service name whose health is checked.
pub const CHECKED_SERVICE: &str = "hts.v1.OrderService";

/// Connection settings applied to every backend channel.
#[derive(Debug, Clone, Copy)]
pub struct ChannelSettings {
    /// Timeout for establishing the TCP/HTTP2 connection.
    pub connect_timeout: Duration,
    /// HTTP/2 keep-alive ping interval.
    pub keepalive_interval: Duration,
}

impl Default for ChannelSettings {
    fn default() -> ChannelSettings {
        ChannelSettings {
            connect_timeout: DEFAULT_BACKEND_CONNECT_TIMEOUT,
            keepalive_interval: DEFAULT_BACKEND_KEEPALIVE_INTERVAL,
        }
    }
}

/// A lazily connecting channel to `url`.
pub fn channel(url: &str, settings: ChannelSettings) -> Result<Channel, InvalidUrl> {
    Ok(Endpoint::from_shared(url.to_owned())
        .map_err(|e| InvalidUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?
        .connect_timeout(settings.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(settings.keepalive_interval)
        .keep_alive_while_idle(true)
        .connect_lazy())
}

/// Opens [`GrpcUpstream`]s with the same channel settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcConnector {
    settings: ChannelSettings,
}

impl GrpcConnector {
    /// A connector whose channels use `settings`.
    pub fn new(settings: ChannelSettings) -> GrpcConnector {
        GrpcConnector { settings }
    }
}

impl Connector for GrpcConnector {
    fn connect(&self, url: &str) -> Result<Arc<dyn Upstream>, InvalidUrl> {
        Ok(Arc::new(GrpcUpstream {
            channel: channel(url, self.settings)?,
        }))
    }
}

/// One order-service backend over gRPC (clones share the HTTP/2 connection).
#[derive(Debug, Clone)]
pub struct GrpcUpstream {
    channel: Channel,
}

impl Upstream for GrpcUpstream {
    fn call(
        &self,
        account: Arc<str>,
        request: Arc<BackendRequest>,
        correlation_id: u64,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<BackendReply, CallError>> {
        let client = OrderServiceClient::new(self.channel.clone());
        Box::pin(async move {
            send(client, &account, &request, correlation_id, timeout)
                .await
                .map_err(|status| classify(&status))
        })
    }

    fn check_health(&self, timeout: Duration) -> BoxFuture<'static, bool> {
        let mut client = HealthClient::new(self.channel.clone());
        Box::pin(async move {
            let mut req = tonic::Request::new(HealthCheckRequest {
                service: CHECKED_SERVICE.to_owned(),
            });
            req.set_timeout(timeout);
            match tokio::time::timeout(timeout, client.check(req)).await {
                Ok(Ok(resp)) => resp.into_inner().status == ServingStatus::Serving as i32,
                _ => false,
            }
        })
    }
}

/// Sends `request` for `account` with `timeout` as the gRPC timeout.
async fn send(
    mut client: OrderServiceClient<Channel>,
    account: &str,
    request: &BackendRequest,
    correlation_id: u64,
    timeout: Duration,
) -> Result<BackendReply, tonic::Status> {
    let account_id = account.to_owned();
    match request.clone() {
        BackendRequest::Place(r) => {
            let request_id = r.request_id.clone();
            let mut req = tonic::Request::new(PlaceOrderCall {
                account_id,
                request: Some(r),
                correlation_id,
            });
            req.set_timeout(timeout);
            let mut resp = client.place_order(req).await?.into_inner();
            if resp.request_id.is_empty() {
                resp.request_id = request_id;
            }
            Ok(BackendReply::Place(resp))
        }
        BackendRequest::Cancel(r) => {
            let mut req = tonic::Request::new(CancelOrderCall {
                account_id,
                request: Some(r),
                correlation_id,
            });
            req.set_timeout(timeout);
            Ok(BackendReply::Cancel(
                client.cancel_order(req).await?.into_inner(),
            ))
        }
        BackendRequest::Query(r) => {
            let mut req = tonic::Request::new(QueryOrderCall {
                account_id,
                request: Some(r),
                correlation_id,
            });
            req.set_timeout(timeout);
            Ok(BackendReply::Query(
                client.query_order(req).await?.into_inner(),
            ))
        }
    }
}

/// What a failed gRPC call means.
///
/// * the propagated timeout expired (DEADLINE_EXCEEDED, CANCELLED — the
///   server cancels a call whose grpc-timeout passed — or tonic's own
///   client-side timer) → [`CallError::Timeout`];
/// * the connection could not be made (tonic's `ConnectError`) →
///   [`CallError::Transport`]: nothing was sent;
/// * another connection failure underneath (reset, closed, an I/O error
///   on an established connection) → [`CallError::Broken`]: the request
///   may have reached the handler;
/// * UNAVAILABLE otherwise → [`CallError::Unavailable`];
/// * anything else → [`CallError::Server`].
pub fn classify(status: &tonic::Status) -> CallError {
    let message = status.message();
    if matches!(
        status.code(),
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
    ) || has_source::<tonic::TimeoutExpired>(status)
    {
        CallError::Timeout
    } else if has_source::<tonic::ConnectError>(status) {
        CallError::Transport(format!("order service unreachable: {message}"))
    } else if is_transport_error(status) {
        CallError::Broken(format!("order service connection lost: {message}"))
    } else if status.code() == tonic::Code::Unavailable {
        CallError::Unavailable(format!("order service unavailable: {message}"))
    } else {
        CallError::Server(format!(
            "order service failed ({:?}): {message}",
            status.code()
        ))
    }
}

/// Whether a connection failure (reset, closed, I/O error) lies under
/// `status`.
fn is_transport_error(status: &tonic::Status) -> bool {
    has_source::<tonic::transport::Error>(status) || has_source::<std::io::Error>(status)
}

fn has_source<E: std::error::Error + 'static>(status: &tonic::Status) -> bool {
    let mut source = status.source();
    while let Some(e) = source {
        if e.is::<E>() {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use hts_proto::v1::Code;

    #[test]
    fn statuses_are_classified_once() {
        let t = Duration::from_millis(50);
        let down = classify(&tonic::Status::unavailable("down"));
        assert_eq!(
            down,
            CallError::Unavailable("order service unavailable: down".into())
        );
        assert_eq!(down.code(), Code::ServiceUnavailable);
        assert_eq!(
            classify(&tonic::Status::deadline_exceeded("slow")),
            CallError::Timeout
        );
        let cancelled = classify(&tonic::Status::cancelled("Timeout expired"));
        assert_eq!(cancelled, CallError::Timeout);
        assert!(cancelled.message(t).contains("deadline of 50 ms"));
        assert_eq!(
            classify(&tonic::Status::internal("bug")).code(),
            Code::Internal
        );
        assert_eq!(
            classify(&tonic::Status::invalid_argument("x")).code(),
            Code::Internal
        );
        let io = tonic::Status::from_error(Box::new(std::io::Error::other("reset")));
        let io = classify(&io);
        assert!(matches!(io, CallError::Broken(_)), "{io:?}");
        assert_eq!(
            io.code(),
            Code::Timeout,
            "a broken connection: outcome unknown"
        );
        let expired = tonic::Status::from_error(Box::new(tonic::TimeoutExpired(())));
        assert_eq!(classify(&expired), CallError::Timeout);
    }

    #[tokio::test]
    async fn invalid_url_rejected_and_unreachable_backend_fails_health() {
        let err = channel("not a url", ChannelSettings::default()).unwrap_err();
        assert_eq!(err.url, "not a url");
        let up = GrpcConnector::default()
            .connect("http://127.0.0.1:1")
            .expect("a valid url");
        assert!(!up.check_health(Duration::from_millis(200)).await);
    }
}
