//! HTS Order Gateway: the TCP front door of the trading system.
//!
//! Trading terminals connect over TCP and speak a framed protocol (24-byte
//! header + protobuf body, [`frame`]). Follow one order through the modules
//! (docs/architecture.md walks it hop by hop):
//!
//! 1. [`server`]: the accept loop, connection limit, optional TLS ([`tls`]),
//!    graceful shutdown;
//! 2. [`connection`] (private): one connection's read loop; frames decoded
//!    by [`codec`], bodies by the pure [`request`] checks;
//! 3. [`login`] (private): LOGIN, sessions ([`sessions`], [`auth`]) and the
//!    failed-login limits ([`login_throttle`]);
//! 4. [`forward`] (private): a request registered in the
//!    [`correlation`] table and sent on; its answer's way back;
//! 5. [`resilience`]: the [`Router`] composing admission, retry, hedging,
//!    per-backend breakers and bulkheads, health and load balancing;
//! 6. [`upstream`]: one attempt at one backend (gRPC) and its typed failure;
//! 7. [`writer`]: the connection's write half, answers in completion order.
//!
//! Around them: [`config`] (every setting, declared once; file and flags
//! merged; the reload rule), [`shared`] (private: what connections share),
//! [`stats`] / [`telemetry`] (counters, exported at scrape time), [`units`]
//! (durations as files and flags write them) and
//! [`admin`] (the admin HTTP surface). The terminal client library is its
//! own crate, `hts-client`.
#![deny(missing_docs)]

pub mod admin;
pub mod auth;
pub mod config;
mod connection;
pub mod correlation;
mod forward;
mod login;
pub mod login_throttle;
pub mod request;
pub mod resilience;
pub mod server;
pub mod sessions;
mod shared;
pub mod stats;
pub mod telemetry;
pub mod tls;
pub mod units;
pub mod upstream;
pub mod writer;

pub use hts_proto::{codec, frame};

pub use auth::{mint_token, AuthError, JwtAuth, TokenClaims};
pub use codec::{FrameCodec, FrameError};
pub use config::{GatewayConfig, InvalidConfig};
pub use correlation::CorrelationTable;
pub use frame::{Frame, MsgType};
pub use resilience::{ResilienceConfig, Router};
pub use server::Gateway;
pub use stats::GatewayStats;
