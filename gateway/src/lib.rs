//! HTS Order Gateway: the TCP front door of the trading system.
//!
//! Trading terminals connect over TCP and speak a framed protocol (24-byte
//! header + protobuf body, see [`frame`]). The gateway authenticates each
//! connection with a JWT ([`auth`]), forwards orders to the order-service
//! backends over gRPC ([`dispatch`]) under the [`resilience`] policies
//! (deadline, retry, hedging, breakers, bulkheads, health, live backend set)
//! and writes the answers back
//! in completion order, matched by correlation id ([`correlation`]).
//!
//! Layout (one job per module):
//! * [`frame`] / [`codec`]: the wire format and its tokio-util codec;
//! * [`connection`] (private) / [`writer`]: one client connection's read loop and writer task;
//! * [`request`]: a frame's body decoded into a request, and the login/account checks (pure);
//! * [`resilience`]: deadline, retries, hedging, retry budget, circuit
//!   breakers, bulkheads, rate limit, health, load balancing and the live
//!   backend set ([`Router`]);
//! * [`config`] / [`config_file`]: every limit with its default, and the TOML file;
//! * [`server`]: accept loop, connection limit, optional TLS ([`tls`]),
//!   graceful shutdown;
//! * [`login_throttle`]: failed logins per source address;
//! * [`client`]: an async client for the CLI, benches and tests;
//! * [`admin`] / [`telemetry`]: the admin HTTP surface and Prometheus metrics.
#![deny(missing_docs)]

pub mod admin;
pub mod auth;
pub mod client;
pub mod codec;
pub mod config;
pub mod config_file;
mod connection;
pub mod correlation;
pub mod dispatch;
pub mod frame;
pub mod login_throttle;
pub mod request;
pub mod resilience;
pub mod routing;
pub mod server;
pub mod sessions;
pub mod stats;
pub mod telemetry;
pub mod tls;
pub mod writer;

pub use auth::{mint_token, AuthError, JwtAuth, TokenClaims};
pub use client::{Client, ClientError};
pub use codec::{FrameCodec, FrameError};
pub use config::{GatewayConfig, InvalidConfig};
pub use config_file::GatewayFile;
pub use correlation::CorrelationTable;
pub use frame::{Frame, MsgType};
pub use resilience::{ResilienceConfig, Router};
pub use server::Gateway;
pub use stats::GatewayStats;
