//! The Fear & Greed decoder (`codec::decode` / `codec::access` for `FearGreed`) on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| iftb_cache_fuzz::check_decode_fear_greed(data));
