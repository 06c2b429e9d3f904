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

/// gRPC response header of the OrderService: set on a SERVICE_UNAVAILABLE
/// answer whose cause every order service shares (its circuit breaker in
/// front of the Account service is open), so the gateway answers the client
/// at once instead of retrying the refusal on another backend.
pub const SHARED_DEPENDENCY_DOWN_HEADER: &str = "hts-shared-dependency-down";
