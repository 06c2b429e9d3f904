//! Real components for the durable-path tests: PostgreSQL clusters, a
//! Kafka-protocol broker (tansu) with a real consumer, and the hts
//! processes wired to them.

#![allow(dead_code)]

pub mod kafka;
pub mod pg;
pub mod stack;
