//! The funding-rate decoder (`codec::decode` / `codec::access` for `f64`) on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| iftb_cache_fuzz::check_decode_funding_rate(data));
