//! Seeded, deterministic data shared by the benches and `examples/compare.rs`:
//! every run measures the same bars, tickers and LLM documents.
#![allow(dead_code)]

pub mod samples;

use criterion::measurement::WallTime;
use criterion::BenchmarkGroup;
use iftb_cache::{Bar, CacheConfig, CacheManager, OhlcvCache, Ticker, Timeframe};
use std::hint::black_box;
use tokio::runtime::Runtime;

/// The series every bench reads and writes.
pub const SYMBOL: &str = "BTCUSDT";
pub const TF: Timeframe = Timeframe::M1;
/// Every key the Redis benches write lives an hour: nothing expires mid-run.
pub const TTL: std::time::Duration = std::time::Duration::from_secs(3_600);

/// The seed of every generator here.
pub const SEED: u64 = 0x1F7B_CAC4_E000_0005;

/// Open time of the first bar: 2024-01-17 08:00 UTC, as in the original's docs.
pub const START_MS: i64 = 1_705_478_400_000;

/// SplitMix64: a tiny, seeded, reproducible generator (no dependency).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` consecutive bars `step_ms` apart: a seeded random walk around 45,000.
pub fn bars(n: usize, step_ms: i64, seed: u64) -> Vec<Bar> {
    let mut rng = Rng::new(seed);
    let mut close = 45_000.0;
    (0..n)
        .map(|i| {
            let open: f64 = close;
            close = open * (1.0 + (rng.unit() - 0.5) * 0.004);
            let high = open.max(close) * (1.0 + rng.unit() * 0.001);
            let low = open.min(close) * (1.0 - rng.unit() * 0.001);
            let ts = START_MS + i as i64 * step_ms;
            Bar::new(ts, open, high, low, close, rng.unit() * 2_000.0)
        })
        .collect()
}

/// A seeded ticker of `symbol`.
pub fn ticker(symbol: &str, seed: u64) -> Ticker {
    let mut rng = Rng::new(seed);
    let last = 45_000.0 + rng.unit() * 1_000.0;
    Ticker {
        symbol: symbol.to_string(),
        bid: last - 0.5,
        ask: last + 0.5,
        last,
        volume_24h: rng.unit() * 20_000.0,
        change_24h: (rng.unit() - 0.5) * 10.0,
        high_24h: last * 1.02,
        low_24h: last * 0.98,
        timestamp: START_MS,
    }
}

/// `n` distinct symbols: `SYM0000USDT`, `SYM0001USDT`, ...
pub fn symbols(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("SYM{i:04}USDT")).collect()
}

/// An LLM analysis result shaped like the original's, grown with seeded key
/// points until its JSON text is about `bytes` long.
pub fn llm_result(bytes: usize, seed: u64) -> serde_json::Value {
    const WORDS: [&str; 12] = [
        "momentum",
        "volume",
        "resistance",
        "support",
        "breakout",
        "funding",
        "liquidity",
        "divergence",
        "trend",
        "volatility",
        "whales",
        "macro",
    ];
    let mut rng = Rng::new(seed);
    let mut points = Vec::new();
    let mut len = 64;
    while len < bytes {
        let point: Vec<&str> = (0..8)
            .map(|_| WORDS[(rng.next_u64() % WORDS.len() as u64) as usize])
            .collect();
        let point = point.join(" ");
        len += point.len() + 3;
        points.push(serde_json::Value::String(point));
    }
    serde_json::json!({
        "sentiment": "bullish",
        "confidence": 0.85,
        "key_points": points,
    })
}

/// The runtime every bench's client runs on: one thread, as a strategy's
/// hot loop would.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// An embedded cache holding a 1,000-bar `tf` series of `symbol`.
pub async fn embedded_with_series(symbol: &str, tf: Timeframe) -> CacheManager {
    cache_with_series(CacheConfig::embedded(), symbol, tf).await
}

/// A cache of `config` holding a 1,000-bar series of `symbol`.
pub async fn cache_with_series(config: CacheConfig, symbol: &str, tf: Timeframe) -> CacheManager {
    let cache = CacheManager::connect(config).await.expect("connect");
    let bars = bars(1_000, tf.millis() as i64, SEED);
    cache
        .ohlcv()
        .set_bars(symbol, tf, &bars)
        .await
        .expect("set_bars");
    cache
}

/// `get_latest_bar` of the benches' series, as bench `name` of `g`.
pub fn bench_latest_bar(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    rt: &Runtime,
    ohlcv: OhlcvCache<'_>,
) {
    g.bench_function(name, |b| {
        b.to_async(rt).iter(|| async {
            ohlcv
                .get_latest_bar(black_box(SYMBOL), TF)
                .await
                .expect("get")
        })
    });
}
