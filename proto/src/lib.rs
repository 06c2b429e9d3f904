//! The HTS wire protocol.
//!
//! * [`v1`]: the `hts.v1` protobuf package. `wire.proto` holds the
//!   client-facing frame bodies, `order_service.proto` the gateway →
//!   order-service gRPC API, and `account_service.proto` the order-service →
//!   account-service gRPC API (the service stubs need the `grpc` feature).
//! * [`frame`] / [`codec`]: the 24-byte frame header around each body and
//!   its tokio-util codec, shared by the gateway and the terminal client.
#![deny(missing_docs)]

pub mod codec;
pub mod frame;

/// The `hts.v1` protobuf package.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/hts.v1.rs"));
}

pub use v1::*;

/// The asset name the Account service uses for cash.
pub const CASH_ASSET: &str = "CASH";
