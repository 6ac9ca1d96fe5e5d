//! The embedded engine on the sizes a bot reaches: a series of months of
//! one-minute bars, one value as big as the format allows, a read of the
//! most bars a call may ask for.

mod support;

use iftb_cache::{CacheConfig, CacheManager, Timeframe, MAX_BARS_PER_READ, MAX_VALUE_LEN};
use std::num::NonZeroUsize;
use support::{bar_at, minute_bars};

async fn cache_of(capacity: usize) -> CacheManager {
    let config = CacheConfig::builder()
        .embedded_capacity(NonZeroUsize::new(capacity).unwrap())
        .build()
        .unwrap();
    CacheManager::connect(config).await.unwrap()
}

#[tokio::test]
async fn a_series_of_300k_bars_keeps_taking_its_in_progress_candle() {
    // Seven months of 1m bars, 14 MB archived: past a sixteenth of the
    // default capacity, where the old engine refused every write.
    let cache = CacheManager::connect(CacheConfig::embedded())
        .await
        .unwrap();
    let o = cache.ohlcv();
    let history = minute_bars(300_000, 1.0);
    for chunk in history.chunks(50_000) {
        o.set_bars("BTCUSDT", Timeframe::M1, chunk).await.unwrap();
    }
    let last = history.last().unwrap().timestamp;
    for tick in 0..100 {
        let bar = bar_at(last, 2.0 + f64::from(tick));
        o.set_bars("BTCUSDT", Timeframe::M1, &[bar]).await.unwrap();
    }
    let latest = o.get_latest_bar("BTCUSDT", Timeframe::M1).await.unwrap();
    assert_eq!(latest, Some(bar_at(last, 101.0)));
    let newest = o
        .get_bars("BTCUSDT", Timeframe::M1, 3)
        .await
        .unwrap()
        .unwrap();
    let times: Vec<i64> = newest.iter().map(|b| b.timestamp).collect();
    assert_eq!(times, vec![last, last - 60_000, last - 120_000]);
}

#[tokio::test]
async fn one_value_may_be_as_big_as_the_format_allows() {
    let cache = cache_of(MAX_VALUE_LEN + (8 << 20)).await;
    let big = "x".repeat(MAX_VALUE_LEN);
    cache.client().set("big", &big, None).await.unwrap();
    let back = cache.client().get("big").await.unwrap().unwrap();
    assert_eq!(back.len(), MAX_VALUE_LEN);
}

#[tokio::test]
async fn a_value_bigger_than_the_capacity_is_refused_and_nothing_is_evicted() {
    let cache = cache_of(1 << 20).await;
    cache.client().set("keep", "v", None).await.unwrap();
    let err = cache
        .client()
        .set("big", &"x".repeat(1 << 20), None)
        .await
        .unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    assert!(err.to_string().contains("embedded_capacity"), "{err}");
    assert_eq!(
        cache.client().get("keep").await.unwrap().as_deref(),
        Some("v")
    );
}

#[tokio::test]
async fn every_bar_of_the_biggest_read_is_indexed_as_it_is_iterated() {
    let cache = CacheManager::connect(CacheConfig::embedded())
        .await
        .unwrap();
    let o = cache.ohlcv();
    let bars = minute_bars(MAX_BARS_PER_READ as i64 + 10, 1.0);
    o.set_bars("ETHUSDT", Timeframe::M1, &bars).await.unwrap();
    let view = o
        .get_bars_archived("ETHUSDT", Timeframe::M1, MAX_BARS_PER_READ)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.len(), MAX_BARS_PER_READ);
    for (i, bar) in view.iter().enumerate() {
        let got = view.get(i).expect("in range");
        assert_eq!(got.timestamp, bar.timestamp, "bar {i}");
    }
    assert!(view.get(MAX_BARS_PER_READ).is_none());
    let newest = bars.last().unwrap().timestamp;
    assert_eq!(view.get(0).map(|b| b.timestamp.to_native()), Some(newest));
}
