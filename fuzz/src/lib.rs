//! The checks every fuzz target runs, shared with `tests/fuzz_corpus.rs`
//! (which includes this file) so that a plain `cargo test` replays the saved
//! corpus with exactly the fuzzers' checks.
//!
//! Needs only what the library's own tests have: `iftb_cache`, `tokio` (with
//! `test-util`, for paused time). Inputs are read by a small
//! byte reader rather than `arbitrary`, so that no other crate is needed.

mod market;
mod model;
mod ops;
mod series;

pub use ops::check_cache_ops;

use iftb_cache::codec;
use iftb_cache::{Bar, FearGreed, Ticker};

pub(crate) use series::bar_bits;

pub(crate) fn ticker_bits(t: &Ticker) -> (String, [u64; 8]) {
    let f = [
        t.bid,
        t.ask,
        t.last,
        t.volume_24h,
        t.change_24h,
        t.high_24h,
        t.low_24h,
    ];
    let mut bits = [0u64; 8];
    for (b, v) in bits.iter_mut().zip(f) {
        *b = v.to_bits();
    }
    bits[7] = t.timestamp as u64;
    (t.symbol.clone(), bits)
}

/// `decode` and `access` agree on any bytes, fail only with a codec error,
/// and what they accept re-encodes to the very same bytes (a bar is a
/// fixed-size record).
pub fn check_decode_bar(data: &[u8]) {
    let decoded = codec::decode::<Bar>(data);
    let accessed = codec::access::<Bar>(data).map(|a| a.to_bar());
    match (decoded, accessed) {
        (Ok(d), Ok(a)) => {
            assert_eq!(bar_bits(&d), bar_bits(&a), "decode and access differ");
            assert_eq!(
                &codec::encode(&d)[..],
                data,
                "re-encoding changed the bytes"
            );
            assert_eq!(codec::encode_bars(&[d])[0], codec::encode(&d));
        }
        (Err(d), Err(a)) => assert!(d.is_codec() && a.is_codec(), "{d} / {a}"),
        (d, a) => panic!("decode {d:?} but access {a:?}"),
    }
}

/// A run of bars (a series member): decodes only as whole, valid bars in
/// strictly increasing time, fails only with a codec error, and what it
/// accepts re-encodes to the very same bytes.
pub fn check_decode_bar_run(data: &[u8]) {
    match codec::decode_bar_run(data) {
        Ok(bars) => {
            assert!(!bars.is_empty(), "an empty run decoded");
            assert!(bars.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
            assert!(
                bars.iter().all(|b| b.validate().is_ok()),
                "an invalid bar decoded"
            );
            assert_eq!(
                &codec::encode_bar_run(&bars)[..],
                data,
                "re-encoding changed the bytes"
            );
        }
        Err(e) => assert!(e.is_codec(), "{e}"),
    }
}

/// As [`check_decode_bar`], for a funding rate (`f64`).
pub fn check_decode_funding_rate(data: &[u8]) {
    let decoded = codec::decode::<f64>(data);
    let accessed = codec::access::<f64>(data).map(|a| a.to_native());
    match (decoded, accessed) {
        (Ok(d), Ok(a)) => {
            assert_eq!(d.to_bits(), a.to_bits(), "decode and access differ");
            assert_eq!(
                &codec::encode(&d)[..],
                data,
                "re-encoding changed the bytes"
            );
        }
        (Err(d), Err(a)) => assert!(d.is_codec() && a.is_codec(), "{d} / {a}"),
        (d, a) => panic!("decode {d:?} but access {a:?}"),
    }
}

/// A ticker holds a string, so its archive may be laid out in more than one
/// way: what decodes re-encodes to bytes that decode to the same ticker.
pub fn check_decode_ticker(data: &[u8]) {
    let decoded = codec::decode::<Ticker>(data);
    let accessed = codec::access::<Ticker>(data);
    match (decoded, accessed) {
        (Ok(d), Ok(a)) => {
            assert_eq!(a.symbol.as_str(), d.symbol, "decode and access differ");
            let again = codec::decode::<Ticker>(&codec::encode(&d)).expect("re-encoded ticker");
            assert_eq!(
                ticker_bits(&again),
                ticker_bits(&d),
                "round trip changed it"
            );
        }
        (Err(d), Err(a)) => assert!(d.is_codec() && a.is_codec(), "{d} / {a}"),
        (d, a) => panic!("decode {d:?} but access {:?}", a.map(|_| ())),
    }
}

/// As [`check_decode_ticker`], for a Fear & Greed reading (an enum inside:
/// its tag is validated).
pub fn check_decode_fear_greed(data: &[u8]) {
    let decoded = codec::decode::<FearGreed>(data);
    let accessed = codec::access::<FearGreed>(data);
    match (decoded, accessed) {
        (Ok(d), Ok(a)) => {
            assert_eq!(a.value, d.value, "decode and access differ");
            let again = codec::decode::<FearGreed>(&codec::encode(&d)).expect("re-encoded");
            assert_eq!(again, d, "round trip changed it");
        }
        (Err(d), Err(a)) => assert!(d.is_codec() && a.is_codec(), "{d} / {a}"),
        (d, a) => panic!("decode {d:?} but access {:?}", a.map(|_| ())),
    }
}
