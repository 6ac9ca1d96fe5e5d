//! OHLCV behaviour, the same on both backends: order, upsert by timestamp,
//! windows, limits, retention, TTL, many series at once, zero-copy reads.

mod support;

use iftb_cache::{Bar, BarWriteOptions, ErrorKind, Timeframe, MAX_BARS_PER_READ};
use std::num::NonZeroUsize;
use std::time::Duration;
use support::{TestCache, T0};

const HOUR: i64 = 3_600_000;

fn bar(i: i64) -> Bar {
    let open = 100.0 + i as f64;
    Bar::new(
        T0 + i * HOUR,
        open,
        open + 2.0,
        open - 1.0,
        open + 1.0,
        10.0 + i as f64,
    )
}

fn bars(range: std::ops::Range<i64>) -> Vec<Bar> {
    range.map(bar).collect()
}

on_both_backends!(
    get_bars_returns_newest_first_up_to_limit,
    missing_series_is_none_not_an_error,
    same_timestamp_replaces_the_bar,
    unordered_and_duplicate_input_is_normalised,
    get_range_is_oldest_first_and_inclusive,
    latest_bar_follows_writes,
    invalidate_drops_the_series,
    limits_outside_bounds_are_invalid_input,
    invalid_bar_in_a_batch_writes_nothing,
    retention_cap_keeps_the_newest,
    large_backfill_spans_many_chunks,
    latest_bars_of_many_series_in_order,
    archived_view_matches_owned_bars,
    series_are_independent_per_symbol_and_timeframe,
    empty_write_is_a_no_op,
    sparse_series_read_whole,
    a_window_over_the_read_cap_is_invalid_input,
);

async fn get_bars_returns_newest_first_up_to_limit(t: &TestCache) {
    let o = t.cache.ohlcv();
    o.set_bars("BTCUSDT", Timeframe::H1, &bars(0..150))
        .await
        .unwrap();
    let got = o
        .get_bars("BTCUSDT", Timeframe::H1, 100)
        .await
        .unwrap()
        .unwrap();
    let want: Vec<Bar> = (50..150).rev().map(bar).collect();
    assert_eq!(got, want);
    let all = o
        .get_bars("BTCUSDT", Timeframe::H1, 1_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(all.len(), 150);
}

async fn missing_series_is_none_not_an_error(t: &TestCache) {
    let o = t.cache.ohlcv();
    assert_eq!(o.get_bars("NOPE", Timeframe::M1, 10).await.unwrap(), None);
    assert_eq!(o.get_latest_bar("NOPE", Timeframe::M1).await.unwrap(), None);
    assert_eq!(
        o.get_range("NOPE", Timeframe::M1, 0, i64::MAX)
            .await
            .unwrap(),
        None
    );
    assert!(o
        .get_bars_archived("NOPE", Timeframe::M1, 10)
        .await
        .unwrap()
        .is_none());
    assert!(!o.invalidate("NOPE", Timeframe::M1).await.unwrap());
}

async fn same_timestamp_replaces_the_bar(t: &TestCache) {
    let o = t.cache.ohlcv();
    o.set_bars("BTCUSDT", Timeframe::M1, &bars(0..10))
        .await
        .unwrap();
    // The in-progress candle, updated many times.
    for tick in 0..20 {
        let live = Bar {
            close: 200.0 + tick as f64,
            volume: 50.0 + tick as f64,
            ..bar(9)
        };
        o.set_bars("BTCUSDT", Timeframe::M1, &[live]).await.unwrap();
    }
    let got = o
        .get_bars("BTCUSDT", Timeframe::M1, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), 10, "one bar per timestamp");
    assert_eq!(
        got[0],
        Bar {
            close: 219.0,
            volume: 69.0,
            ..bar(9)
        }
    );
    assert_eq!(got[1], bar(8));
}

async fn unordered_and_duplicate_input_is_normalised(t: &TestCache) {
    let o = t.cache.ohlcv();
    let changed = Bar {
        close: 999.0,
        ..bar(2)
    };
    let input = vec![bar(3), bar(1), bar(2), changed, bar(0)];
    o.set_bars("ETHUSDT", Timeframe::H1, &input).await.unwrap();
    let got = o
        .get_range("ETHUSDT", Timeframe::H1, T0, T0 + 3 * HOUR)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, vec![bar(0), bar(1), changed, bar(3)]);
}

async fn get_range_is_oldest_first_and_inclusive(t: &TestCache) {
    let o = t.cache.ohlcv();
    o.set_bars("BTCUSDT", Timeframe::H1, &bars(0..48))
        .await
        .unwrap();
    let got = o
        .get_range("BTCUSDT", Timeframe::H1, T0 + 10 * HOUR, T0 + 20 * HOUR)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, bars(10..21));
    let between = o
        .get_range("BTCUSDT", Timeframe::H1, T0 + 1, T0 + HOUR - 1)
        .await
        .unwrap();
    assert_eq!(between, None);
    let err = o
        .get_range("BTCUSDT", Timeframe::H1, T0 + 1, T0)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

async fn latest_bar_follows_writes(t: &TestCache) {
    let o = t.cache.ohlcv();
    o.set_bars("BTCUSDT", Timeframe::M5, &bars(0..5))
        .await
        .unwrap();
    assert_eq!(
        o.get_latest_bar("BTCUSDT", Timeframe::M5).await.unwrap(),
        Some(bar(4))
    );
    // An older bar arriving late does not become the latest.
    o.set_bars(
        "BTCUSDT",
        Timeframe::M5,
        &[Bar {
            close: 1.0,
            ..bar(1)
        }],
    )
    .await
    .unwrap();
    assert_eq!(
        o.get_latest_bar("BTCUSDT", Timeframe::M5).await.unwrap(),
        Some(bar(4))
    );
    o.set_bars("BTCUSDT", Timeframe::M5, &[bar(7)])
        .await
        .unwrap();
    assert_eq!(
        o.get_latest_bar("BTCUSDT", Timeframe::M5).await.unwrap(),
        Some(bar(7))
    );
}

async fn invalidate_drops_the_series(t: &TestCache) {
    let o = t.cache.ohlcv();
    o.set_bars("BTCUSDT", Timeframe::H1, &bars(0..5))
        .await
        .unwrap();
    o.set_bars("BTCUSDT", Timeframe::H4, &bars(0..5))
        .await
        .unwrap();
    assert!(o.invalidate("BTCUSDT", Timeframe::H1).await.unwrap());
    assert_eq!(
        o.get_bars("BTCUSDT", Timeframe::H1, 10).await.unwrap(),
        None
    );
    assert_eq!(
        o.get_bars("BTCUSDT", Timeframe::H4, 10)
            .await
            .unwrap()
            .unwrap()
            .len(),
        5
    );
}

async fn limits_outside_bounds_are_invalid_input(t: &TestCache) {
    let o = t.cache.ohlcv();
    o.set_bars("BTCUSDT", Timeframe::H1, &bars(0..3))
        .await
        .unwrap();
    for limit in [0, MAX_BARS_PER_READ + 1, usize::MAX] {
        let err = o
            .get_bars("BTCUSDT", Timeframe::H1, limit)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "limit {limit}");
    }
    let at_cap = o
        .get_bars("BTCUSDT", Timeframe::H1, MAX_BARS_PER_READ)
        .await
        .unwrap();
    assert_eq!(at_cap.unwrap().len(), 3);
}

async fn invalid_bar_in_a_batch_writes_nothing(t: &TestCache) {
    let o = t.cache.ohlcv();
    let mut batch = bars(0..10);
    batch[7].low = f64::NAN;
    let err = o
        .set_bars("BTCUSDT", Timeframe::H1, &batch)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("bars[7]"), "{err}");
    assert_eq!(
        o.get_bars("BTCUSDT", Timeframe::H1, 100).await.unwrap(),
        None
    );
}

async fn retention_cap_keeps_the_newest(t: &TestCache) {
    let o = t.cache.ohlcv();
    let cap = BarWriteOptions::new().max_bars(NonZeroUsize::new(50).unwrap());
    o.set_bars_with("BTCUSDT", Timeframe::M1, &bars(0..40), cap)
        .await
        .unwrap();
    o.set_bars_with("BTCUSDT", Timeframe::M1, &bars(40..80), cap)
        .await
        .unwrap();
    let got = o
        .get_range("BTCUSDT", Timeframe::M1, 0, i64::MAX)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, bars(30..80));
}

async fn large_backfill_spans_many_chunks(t: &TestCache) {
    let o = t.cache.ohlcv();
    // Reversed input, more than two write chunks, with an overlap rewritten.
    let mut input: Vec<Bar> = bars(0..5_500);
    input.reverse();
    o.set_bars("BTCUSDT", Timeframe::H1, &input).await.unwrap();
    let rewrite: Vec<Bar> = (1_990..2_010)
        .map(|i| Bar {
            close: -1.0,
            low: -2.0,
            ..bar(i)
        })
        .collect();
    o.set_bars("BTCUSDT", Timeframe::H1, &rewrite)
        .await
        .unwrap();
    let got = o
        .get_range("BTCUSDT", Timeframe::H1, 0, i64::MAX)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), 5_500);
    for (i, b) in got.iter().enumerate() {
        let want = if (1_990..2_010).contains(&(i as i64)) {
            rewrite[i - 1_990]
        } else {
            bar(i as i64)
        };
        assert_eq!(*b, want, "bar {i}");
    }
}

async fn latest_bars_of_many_series_in_order(t: &TestCache) {
    let o = t.cache.ohlcv();
    let symbols: Vec<String> = (0..30).map(|i| format!("SYM{i}USDT")).collect();
    for (i, s) in symbols.iter().enumerate() {
        if i % 3 != 0 {
            o.set_bars(s, Timeframe::M15, &bars(0..(i as i64 + 1)))
                .await
                .unwrap();
        }
    }
    let series: Vec<(&str, Timeframe)> = symbols
        .iter()
        .map(|s| (s.as_str(), Timeframe::M15))
        .collect();
    let got = o.get_latest_bars(&series).await.unwrap();
    assert_eq!(got.len(), 30);
    for (i, latest) in got.into_iter().enumerate() {
        let want = (i % 3 != 0).then(|| bar(i as i64));
        assert_eq!(latest, want, "series {i}");
    }
    assert!(o.get_latest_bars(&[]).await.unwrap().is_empty());
    let bad = o
        .get_latest_bars(&[("OK", Timeframe::M1), ("B AD", Timeframe::M1)])
        .await;
    assert_eq!(bad.unwrap_err().kind(), ErrorKind::InvalidInput);
}

async fn archived_view_matches_owned_bars(t: &TestCache) {
    let o = t.cache.ohlcv();
    o.set_bars("BTCUSDT", Timeframe::D1, &bars(0..100))
        .await
        .unwrap();
    let view = o
        .get_bars_archived("BTCUSDT", Timeframe::D1, 100)
        .await
        .unwrap()
        .unwrap();
    let owned = o
        .get_bars("BTCUSDT", Timeframe::D1, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.len(), 100);
    assert_eq!(view.to_vec(), owned);
    assert_eq!(
        view.get(0).unwrap().timestamp.to_native(),
        bar(99).timestamp
    );
    assert!(view.get(100).is_none());
    for (i, bar) in owned.iter().enumerate() {
        assert_eq!(view.get(i).unwrap().to_bar(), *bar, "bar {i}");
    }
    let volume: f64 = view.iter().map(|b| b.volume.to_native()).sum();
    assert_eq!(volume, owned.iter().map(|b| b.volume).sum::<f64>());
}

async fn series_are_independent_per_symbol_and_timeframe(t: &TestCache) {
    let o = t.cache.ohlcv();
    o.set_bars("BTCUSDT", Timeframe::M1, &bars(0..3))
        .await
        .unwrap();
    o.set_bars("BTCUSDT", Timeframe::Mo1, &bars(10..12))
        .await
        .unwrap();
    o.set_bars("ETHUSDT", Timeframe::M1, &bars(20..21))
        .await
        .unwrap();
    assert_eq!(
        o.get_bars("BTCUSDT", Timeframe::M1, 10)
            .await
            .unwrap()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        o.get_latest_bar("BTCUSDT", Timeframe::Mo1).await.unwrap(),
        Some(bar(11))
    );
    assert_eq!(
        o.get_latest_bar("ETHUSDT", Timeframe::M1).await.unwrap(),
        Some(bar(20))
    );
}

/// Bars 64 intervals apart (an illiquid symbol): read whole, newest first and
/// by window, as a dense series would be.
async fn sparse_series_read_whole(t: &TestCache) {
    let o = t.cache.ohlcv();
    let sparse: Vec<Bar> = (0..1_000).map(|i| bar(i * 64)).collect();
    o.set_bars("BTCUSDT", Timeframe::H1, &sparse).await.unwrap();
    let window = o
        .get_range("BTCUSDT", Timeframe::H1, 0, i64::MAX)
        .await
        .unwrap();
    assert_eq!(window.unwrap(), sparse);
    let newest = o
        .get_bars("BTCUSDT", Timeframe::H1, 300)
        .await
        .unwrap()
        .unwrap();
    let want: Vec<Bar> = sparse.iter().rev().take(300).copied().collect();
    assert_eq!(newest, want);
}

async fn a_window_over_the_read_cap_is_invalid_input(t: &TestCache) {
    let o = t.cache.ohlcv();
    let n = MAX_BARS_PER_READ as i64 + 1;
    o.set_bars("BTCUSDT", Timeframe::M1, &bars(0..n))
        .await
        .unwrap();
    let all = o.get_range("BTCUSDT", Timeframe::M1, 0, i64::MAX).await;
    assert_eq!(all.unwrap_err().kind(), ErrorKind::InvalidInput);
    // Exactly at the cap is fine.
    let last = T0 + (n - 2) * HOUR;
    let capped = o
        .get_range("BTCUSDT", Timeframe::M1, 0, last)
        .await
        .unwrap();
    assert_eq!(capped.unwrap().len(), MAX_BARS_PER_READ);
}

async fn empty_write_is_a_no_op(t: &TestCache) {
    let o = t.cache.ohlcv();
    o.set_bars("BTCUSDT", Timeframe::H1, &[]).await.unwrap();
    assert_eq!(
        o.get_bars("BTCUSDT", Timeframe::H1, 10).await.unwrap(),
        None
    );
}

/// TTL on the embedded backend, with tokio's paused clock: a series expires one
/// TTL after its last write, and each write pushes the expiry out.
#[tokio::test(start_paused = true)]
async fn embedded_series_expires_ttl_after_last_write() {
    let t = support::embedded().await;
    let o = t.cache.ohlcv();
    let ttl = Duration::from_secs(300);
    o.set_bars_with(
        "BTCUSDT",
        Timeframe::H1,
        &bars(0..3),
        BarWriteOptions::new().ttl(ttl),
    )
    .await
    .unwrap();
    tokio::time::advance(Duration::from_secs(200)).await;
    o.set_bars_with(
        "BTCUSDT",
        Timeframe::H1,
        &[bar(3)],
        BarWriteOptions::new().ttl(ttl),
    )
    .await
    .unwrap();
    tokio::time::advance(Duration::from_secs(200)).await;
    let alive = o.get_bars("BTCUSDT", Timeframe::H1, 10).await.unwrap();
    assert_eq!(alive.unwrap().len(), 4, "the second write extended the TTL");
    tokio::time::advance(Duration::from_secs(101)).await;
    assert_eq!(
        o.get_bars("BTCUSDT", Timeframe::H1, 10).await.unwrap(),
        None
    );
}

/// TTL on Redis: a short real TTL, and the key's PTTL as Redis reports it.
#[tokio::test]
async fn redis_series_expires_ttl_after_last_write() {
    let t = support::with_redis().await;
    let server = t.server.as_ref().unwrap();
    let o = t.cache.ohlcv();
    o.set_bars("BTCUSDT", Timeframe::H1, &bars(0..3))
        .await
        .unwrap();
    let pttl = server.pttl("iftb:v2:ohlcv:{BTCUSDT:1h}");
    assert!(
        (299_000..=300_000).contains(&pttl),
        "default bar TTL, got {pttl}"
    );
    o.set_bars_with(
        "BTCUSDT",
        Timeframe::H1,
        &bars(0..3),
        BarWriteOptions::new().ttl(Duration::from_millis(150)),
    )
    .await
    .unwrap();
    assert!(o
        .get_bars("BTCUSDT", Timeframe::H1, 10)
        .await
        .unwrap()
        .is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        o.get_bars("BTCUSDT", Timeframe::H1, 10).await.unwrap(),
        None
    );
}

/// A foreign or corrupt member in a series (another program, an older format)
/// is a codec error, not a wrong bar.
#[tokio::test]
async fn corrupt_member_in_redis_is_a_codec_error() {
    let t = support::with_redis().await;
    let server = t.server.as_ref().unwrap();
    let o = t.cache.ohlcv();
    o.set_bars("BTCUSDT", Timeframe::H1, &bars(0..3))
        .await
        .unwrap();
    let key = "iftb:v2:ohlcv:{BTCUSDT:1h}";
    let json = r#"{"timestamp": 1705489200000, "open": 1.0}"#;
    let _: i64 = redis::cmd("ZADD")
        .arg(key)
        .arg(T0 + 10 * HOUR)
        .arg(json)
        .query(&mut server.raw())
        .unwrap();
    let err = o.get_bars("BTCUSDT", Timeframe::H1, 10).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Codec, "{err}");
    // The head is a key of its own, written with the bars: the newest bar
    // this cache wrote, whatever another program added to the run set.
    let latest = o.get_latest_bar("BTCUSDT", Timeframe::H1).await.unwrap();
    assert_eq!(latest, Some(bars(2..3)[0]));
    // Bars before the foreign member still read.
    let ok = o
        .get_range("BTCUSDT", Timeframe::H1, T0, T0 + 2 * HOUR)
        .await
        .unwrap();
    assert_eq!(ok.unwrap(), bars(0..3));
    assert_eq!(t.cache.stats().codec_errors, 1);
}
