//! Fuzz properties of the HTS gateway, one module per cargo-fuzz target.
//!
//! Each module's `check(data)` runs one input and panics when a property
//! fails. The libFuzzer entry points (`fuzz_targets/`) call them, and so
//! does the gateway's `tests/fuzz_regressions.rs`, which replays the saved
//! regression inputs (`fuzz/regressions/`) under a plain `cargo test`: the
//! modules therefore use only crates the gateway's tests also have, and no
//! `crate::` paths.

pub mod config_file;
pub mod frame_decoder;
pub mod place_order_rules;
pub mod protobuf_handlers;
