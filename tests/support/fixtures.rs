//! Sample values the test files share: one place for each, so that a test
//! reads as what it changes about them.

use iftb_cache::{Bar, FearGreed, FearGreedClass, Ticker};

/// 2024-01-17 08:00 UTC, in milliseconds: the time of every sample value.
pub const T0: i64 = 1_705_478_400_000;

/// A valid LLM input hash (`LlmCache::hash_input("")`).
pub const HASH: &str = "99aa06d3014798d86001c324468d497f";

/// A plausible ticker of `symbol` around the price `last`.
pub fn ticker(symbol: &str, last: f64) -> Ticker {
    Ticker {
        symbol: symbol.into(),
        bid: last - 5.0,
        ask: last + 5.0,
        last,
        volume_24h: 15_000.0,
        change_24h: -2.5,
        high_24h: last + 700.0,
        low_24h: last - 1_200.0,
        timestamp: T0,
    }
}

/// The BTCUSDT ticker most tests use.
pub fn btc_ticker() -> Ticker {
    ticker("BTCUSDT", 45_105.0)
}

/// A Fear & Greed reading at [`T0`].
pub fn fear_greed(value: u8, classification: FearGreedClass) -> FearGreed {
    FearGreed {
        value,
        classification,
        timestamp: T0,
    }
}

/// The reading most tests use: 45, fear.
pub fn sample_fear_greed() -> FearGreed {
    fear_greed(45, FearGreedClass::Fear)
}

/// A plausible BTCUSDT hourly bar at [`T0`].
pub fn sample_bar() -> Bar {
    Bar::new(T0, 45_000.0, 45_500.0, 44_800.0, 45_200.0, 1_234.5)
}

/// A bar at `ts` whose prices say nothing: open 1, high 2, low 0.5, close 1.5,
/// volume 1.
pub fn flat_bar(ts: i64) -> Bar {
    Bar::new(ts, 1.0, 2.0, 0.5, 1.5, 1.0)
}

/// `n` [`flat_bar`]s one minute apart from time 0.
pub fn flat_minute_bars(n: i64) -> Vec<Bar> {
    (0..n).map(|i| flat_bar(i * 60_000)).collect()
}

/// A bar at `ts` closing (and opening) at `close`, a point either side.
pub fn bar_at(ts: i64, close: f64) -> Bar {
    Bar::new(ts, close, close + 1.0, close - 1.0, close, 10.0)
}

/// `n` [`bar_at`]s one minute apart from time 0, closing at `close`, `close + 1`, ...
pub fn minute_bars(n: i64, close: f64) -> Vec<Bar> {
    (0..n)
        .map(|i| bar_at(i * 60_000, close + i as f64))
        .collect()
}
