//! The ticker decoder (`codec::decode` / `codec::access` for `Ticker`) on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| iftb_cache_fuzz::check_decode_ticker(data));
