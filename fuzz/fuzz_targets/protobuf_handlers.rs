//! libFuzzer entry point of [`hts_fuzz::protobuf_handlers`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hts_fuzz::protobuf_handlers::check(data));
