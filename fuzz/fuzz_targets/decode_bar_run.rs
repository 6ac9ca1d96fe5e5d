//! The decoder of a series member (`codec::decode_bar_run`) on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| iftb_cache_fuzz::check_decode_bar_run(data));
