//! Codec properties: every value type round-trips; arbitrary, truncated and
//! bit-flipped bytes never panic the decoder, and what does decode is exact.

use iftb_cache::codec::{self, Record};
use iftb_cache::{Bar, FearGreed, FearGreedClass, Ticker};
use proptest::prelude::*;

fn any_f64() -> impl Strategy<Value = f64> {
    // Every bit pattern, NaNs included: the codec must carry them exactly.
    any::<u64>().prop_map(f64::from_bits)
}

fn bar() -> impl Strategy<Value = Bar> {
    (
        any::<i64>(),
        any_f64(),
        any_f64(),
        any_f64(),
        any_f64(),
        any_f64(),
    )
        .prop_map(|(t, o, h, l, c, v)| Bar::new(t, o, h, l, c, v))
}

fn ticker() -> impl Strategy<Value = Ticker> {
    (".{0,80}", prop::array::uniform7(any_f64()), any::<i64>()).prop_map(
        |(symbol, f, timestamp)| Ticker {
            symbol,
            bid: f[0],
            ask: f[1],
            last: f[2],
            volume_24h: f[3],
            change_24h: f[4],
            high_24h: f[5],
            low_24h: f[6],
            timestamp,
        },
    )
}

fn fear_greed() -> impl Strategy<Value = FearGreed> {
    let class = prop_oneof![
        Just(FearGreedClass::ExtremeFear),
        Just(FearGreedClass::Fear),
        Just(FearGreedClass::Neutral),
        Just(FearGreedClass::Greed),
        Just(FearGreedClass::ExtremeGreed),
    ];
    (any::<u8>(), class, any::<i64>()).prop_map(|(value, classification, timestamp)| FearGreed {
        value,
        classification,
        timestamp,
    })
}

/// Bit-exact equality through the encoded form (NaN != NaN otherwise).
fn same_bytes<R: Record>(a: &R, b: &R) -> bool
where
    R::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rkyv::rancor::Error>>
        + rkyv::Deserialize<R, rkyv::api::high::HighDeserializer<rkyv::rancor::Error>>,
{
    codec::encode(a) == codec::encode(b)
}

/// Every decoder on `bytes`: an error or a value, never a panic. A value that
/// decodes re-encodes to the same bytes, so nothing is silently reinterpreted.
fn decode_all(bytes: &[u8]) {
    if let Ok(v) = codec::decode::<Bar>(bytes) {
        assert_eq!(&codec::encode(&v)[..], bytes);
    }
    if let Ok(v) = codec::decode::<f64>(bytes) {
        assert_eq!(&codec::encode(&v)[..], bytes);
    }
    if let Ok(v) = codec::decode::<FearGreed>(bytes) {
        assert_eq!(codec::decode::<FearGreed>(&codec::encode(&v)).unwrap(), v);
    }
    if let Ok(v) = codec::decode::<Ticker>(bytes) {
        let again = codec::decode::<Ticker>(&codec::encode(&v)).unwrap();
        assert!(same_bytes(&again, &v));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn bars_round_trip(b in bar()) {
        let bytes = codec::encode(&b);
        prop_assert_eq!(bytes.len(), codec::BAR_LEN);
        prop_assert!(same_bytes(&codec::decode::<Bar>(&bytes).unwrap(), &b));
        prop_assert_eq!(codec::access::<Bar>(&bytes).unwrap().timestamp.to_native(), b.timestamp);
    }

    #[test]
    fn bar_batches_round_trip(bars in prop::collection::vec(bar(), 0..50)) {
        for (b, record) in bars.iter().zip(codec::encode_bars(&bars)) {
            prop_assert!(same_bytes(&codec::decode::<Bar>(&record).unwrap(), b));
        }
    }

    #[test]
    fn tickers_round_trip(t in ticker()) {
        let back = codec::decode::<Ticker>(&codec::encode(&t)).unwrap();
        prop_assert_eq!(&back.symbol, &t.symbol);
        prop_assert!(same_bytes(&back, &t));
    }

    #[test]
    fn fear_greed_round_trips(fg in fear_greed()) {
        prop_assert_eq!(codec::decode::<FearGreed>(&codec::encode(&fg)).unwrap(), fg);
    }

    #[test]
    fn funding_rates_round_trip(r in any_f64()) {
        prop_assert_eq!(codec::decode::<f64>(&codec::encode(&r)).unwrap().to_bits(), r.to_bits());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        decode_all(&bytes);
    }

    #[test]
    fn arbitrary_bytes_behind_a_valid_header_never_panic(
        kind in 1u8..=4,
        body in prop::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut bytes = vec![b'I', b'F', kind, codec::FORMAT_VERSION];
        bytes.extend(body);
        decode_all(&bytes);
    }

    #[test]
    fn truncated_and_flipped_values_never_panic(t in ticker(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
        let bytes = codec::encode(&t).to_vec();
        decode_all(&bytes[..cut.index(bytes.len())]);
        let mut flipped = bytes.clone();
        let i = flip.index(flipped.len());
        flipped[i] ^= 1 << bit;
        decode_all(&flipped);
    }

    #[test]
    fn a_truncated_bar_is_always_an_error(b in bar(), cut in 0usize..codec::BAR_LEN) {
        prop_assert!(codec::decode::<Bar>(&codec::encode(&b)[..cut]).unwrap_err().is_codec());
    }
}
