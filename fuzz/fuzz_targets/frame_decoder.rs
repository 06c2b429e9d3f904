//! libFuzzer entry point of [`hts_fuzz::frame_decoder`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hts_fuzz::frame_decoder::check(data));
