//! The terminal client library of the HTS order gateway.
//!
//! A [`Client`] holds one TCP connection (or TLS, [`Client::connect_tls`])
//! to a gateway and multiplexes calls over it: each call gets a fresh
//! correlation id and waits for its own answer, so thousands of calls may
//! be in flight at once. The wire format (24-byte header + protobuf body,
//! docs/protocol.md) comes from [`hts_proto::frame`] and
//! [`hts_proto::codec`].
//!
//! This crate depends on no server code: a terminal developer pulls in
//! tokio, prost, rustls and the message definitions, nothing else.
//!
//! ```no_run
//! # async fn run() -> Result<(), hts_client::ClientError> {
//! use hts_client::Client;
//! use hts_proto::v1::{OrderType, PlaceOrderRequest, Side};
//!
//! let client = Client::connect("127.0.0.1:7070").await?;
//! client.login("", "<token from `hts token`>").await?;
//! let answer = client
//!     .place(PlaceOrderRequest {
//!         request_id: "my-first-order".into(),
//!         symbol: "005930".into(),
//!         side: Side::Buy as i32,
//!         order_type: OrderType::Limit as i32,
//!         price: 70_000,
//!         quantity: 10,
//!         ..Default::default()
//!     })
//!     .await?;
//! println!("{answer:?}");
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod client;
pub mod tls;

pub use client::{Client, ClientError};
pub use hts_proto::frame::{Frame, MsgType};
