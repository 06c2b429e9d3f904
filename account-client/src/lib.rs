//! Client of the Account gRPC service, used by the order service.
//!
//! [`AccountClient`] wraps the generated `AccountServiceClient` over a lazily
//! connected [`tonic::transport::Channel`], bounds every call with a per-call
//! timeout and classifies failures into [`AccountError`] so callers can tell a
//! retryable infrastructure failure apart from a business outcome (business
//! outcomes are carried in the response body, never as errors).
//!
//! # Resilience policy
//!
//! The client deliberately carries no circuit breaker, retry or load-shedding
//! policy yet. All calls go through the single [`Transport`] type alias; a
//! policy can later be introduced as a `tower::Layer` wrapped around the
//! channel (changing `Transport` to the layered service type) without
//! touching the public API of [`AccountClient`].
#![deny(missing_docs)]

mod client;
mod config;
mod error;

pub use client::{AccountClient, Transport};
pub use config::AccountClientConfig;
pub use error::AccountError;
