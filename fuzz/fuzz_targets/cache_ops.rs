//! A sequence of cache operations on the embedded backend, checked against a reference model after each step.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| iftb_cache_fuzz::check_cache_ops(data));
