//! `hts gateway`: the TCP front door in front of order-service backends.

use clap::Args;
use hts_gateway::{Gateway, GatewayConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Flags of `hts gateway`; every limit defaults to [`GatewayConfig::default`].
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address to listen on for client terminals.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: String,
    /// gRPC URL of an order-service backend; repeat for several.
    #[arg(long = "backend", required = true)]
    pub backends: Vec<String>,
    /// File holding the JWT secret (else HTS_JWT_SECRET, else hts-data/jwt.secret).
    #[arg(long)]
    pub jwt_secret_file: Option<PathBuf>,
    /// Overall deadline of each request, in milliseconds.
    #[arg(long)]
    pub request_timeout_ms: Option<u64>,
    /// Largest accepted frame body, in bytes.
    #[arg(long)]
    pub max_body_len: Option<usize>,
    /// A frame that has started arriving must complete within this many milliseconds.
    #[arg(long)]
    pub frame_read_timeout_ms: Option<u64>,
    /// A connection that sends nothing (not even a heartbeat) for this long is closed.
    #[arg(long)]
    pub idle_timeout_secs: Option<u64>,
    /// Most simultaneous client connections.
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Most requests in flight on one connection.
    #[arg(long)]
    pub max_in_flight_per_connection: Option<usize>,
}

impl GatewayArgs {
    /// The gateway configuration these flags describe.
    pub fn config(&self, jwt_secret: Vec<u8>) -> GatewayConfig {
        let mut config = GatewayConfig {
            backends: self.backends.clone(),
            jwt_secret,
            ..GatewayConfig::default()
        };
        if let Some(ms) = self.request_timeout_ms {
            config.request_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = self.max_body_len {
            config.max_body_len = n;
        }
        if let Some(ms) = self.frame_read_timeout_ms {
            config.frame_read_timeout = Duration::from_millis(ms);
        }
        if let Some(s) = self.idle_timeout_secs {
            config.idle_timeout = Duration::from_secs(s);
        }
        if let Some(n) = self.max_connections {
            config.max_connections = n;
        }
        if let Some(n) = self.max_in_flight_per_connection {
            config.max_in_flight_per_connection = n;
        }
        config
    }
}

/// Runs the gateway until SIGINT/SIGTERM, then drains in-flight requests.
pub async fn run(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    let secret = crate::secret::resolve(args.jwt_secret_file.as_deref())?;
    let (listener, _) = super::bind_and_announce("gateway", &args.listen).await?;
    let gateway = Gateway::from_listener(listener, args.config(secret))?;
    gateway.run(crate::shutdown::signal()).await?;
    Ok(ExitCode::SUCCESS)
}
