//! Waiting for a gRPC service to report SERVING on the standard health API.

use anyhow::{bail, Context};
use std::time::{Duration, Instant};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// Polls `grpc.health.v1.Health/Check` for `service` at `url` until it reports
/// SERVING, or fails after `timeout`.
pub async fn wait_serving(url: &str, service: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .with_context(|| format!("bad URL {url}"))?
        .connect_timeout(Duration::from_millis(500))
        .connect_lazy();
    let mut client = HealthClient::new(channel);
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        let request = HealthCheckRequest {
            service: service.to_string(),
        };
        match client.check(request).await {
            Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => return Ok(()),
            Ok(r) => last = format!("status {}", r.get_ref().status),
            Err(e) => last = e.message().to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{service} at {url} not serving after {timeout:?}: {last}")
}
