//! Protobuf messages and gRPC services of the HTS order gateway.
//!
//! Everything lives in the `hts.v1` package, re-exported here as [`v1`].
//! `wire.proto` holds the client-facing frame bodies, `order_service.proto`
//! the gateway → order-service gRPC API, and `account_service.proto` the
//! order-service → account-service gRPC API.

/// The `hts.v1` protobuf package.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("hts.v1");
}

pub use v1::*;

/// The asset name the Account service uses for cash.
pub const CASH_ASSET: &str = "CASH";
