//! libFuzzer entry point of [`hts_fuzz::place_order_rules`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hts_fuzz::place_order_rules::check(data));
