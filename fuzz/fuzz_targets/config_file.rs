//! libFuzzer entry point of [`hts_fuzz::config_file`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hts_fuzz::config_file::check(data));
