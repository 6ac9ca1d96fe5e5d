//! The Redis backend over loopback, against a `redis-server` this bench starts
//! itself (the tests' harness: free port, no persistence, killed on drop).
//!
//! `cargo bench --bench redis` (needs `redis-server` on the PATH; `scripts/test`
//! installs it).

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use common::{SYMBOL, TF, TTL};
use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use iftb_cache::{Bar, BarWriteOptions, CacheConfig, CacheManager, WriteOptions};
use std::hint::black_box;
use std::time::{Duration, Instant};
use support::RedisServer;
use tokio::runtime::Runtime;

/// A server of the bench's own and a cache connected to it, on one runtime.
struct Fixture {
    rt: Runtime,
    cache: CacheManager,
    _server: RedisServer,
}

impl Fixture {
    fn start() -> Self {
        Self::start_with(|b| b)
    }

    fn start_with(
        configure: impl FnOnce(iftb_cache::CacheConfigBuilder) -> iftb_cache::CacheConfigBuilder,
    ) -> Self {
        let server = RedisServer::start();
        let rt = common::runtime();
        let builder = CacheConfig::builder().redis_url(&server.url());
        let config = configure(builder).build().expect("config");
        let cache = rt
            .block_on(CacheManager::connect(config))
            .unwrap_or_else(|e| panic!("connect: {e}\n{}", server.log()));
        Self {
            rt,
            cache,
            _server: server,
        }
    }

    fn set_bars(&self, symbol: &str, bars: &[Bar]) {
        let ohlcv = self.cache.ohlcv();
        let write = ohlcv.set_bars_with(symbol, TF, bars, BarWriteOptions::new().ttl(TTL));
        self.rt.block_on(write).expect("set_bars");
    }
}

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g
}

fn ohlcv_reads(c: &mut Criterion) {
    let f = Fixture::start();
    let bars = common::bars(1_000, TF.millis() as i64, common::SEED);
    f.set_bars(SYMBOL, &bars);
    let ohlcv = f.cache.ohlcv();
    let mut g = group(c, "redis/ohlcv_read");
    g.throughput(Throughput::Elements(100));
    g.bench_function("get_bars_100", |b| {
        b.to_async(&f.rt).iter(|| async {
            ohlcv
                .get_bars(black_box(SYMBOL), TF, 100)
                .await
                .expect("get")
        })
    });
    // A window of 100 bars in the middle of the series.
    let (from, to) = (bars[450].timestamp, bars[549].timestamp);
    g.bench_function("get_range_100", |b| {
        b.to_async(&f.rt)
            .iter(|| async { ohlcv.get_range(SYMBOL, TF, from, to).await.expect("range") })
    });
    g.throughput(Throughput::Elements(1));
    common::bench_latest_bar(&mut g, "get_latest_bar", &f.rt, ohlcv);
    g.finish();
}

/// `set_bars` of `n` bars into a series dropped (untimed) before each write.
fn bench_new_series(g: &mut BenchmarkGroup<'_, WallTime>, f: &Fixture, n: usize) {
    let bars = common::bars(n, TF.millis() as i64, common::SEED);
    let ohlcv = f.cache.ohlcv();
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(format!("set_bars_{n}/new_series"), |b| {
        b.to_async(&f.rt).iter_custom(|iters| {
            let bars = &bars;
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    ohlcv.invalidate("WRITEUSDT", TF).await.expect("invalidate");
                    let start = Instant::now();
                    let write =
                        ohlcv.set_bars_with("WRITEUSDT", TF, bars, BarWriteOptions::new().ttl(TTL));
                    write.await.expect("set_bars");
                    total += start.elapsed();
                }
                total
            }
        })
    });
}

fn ohlcv_writes(c: &mut Criterion) {
    let f = Fixture::start();
    let mut g = group(c, "redis/ohlcv_write");
    bench_new_series(&mut g, &f, 1_000);
    // A refresh: the same 1,000 open times again, every bar replaced.
    let first = common::bars(1_000, TF.millis() as i64, common::SEED);
    f.set_bars(SYMBOL, &first);
    let again = common::bars(1_000, TF.millis() as i64, common::SEED + 1);
    let ohlcv = f.cache.ohlcv();
    g.bench_function("set_bars_1000/replace", |b| {
        b.to_async(&f.rt).iter(|| async {
            let write = ohlcv.set_bars_with(
                SYMBOL,
                TF,
                black_box(&again),
                BarWriteOptions::new().ttl(TTL),
            );
            write.await.expect("set_bars")
        })
    });
    // The live path: the in-progress candle, re-sent with a new close.
    let newest = again[again.len() - 1];
    let tick = std::cell::Cell::new(0u32);
    g.throughput(Throughput::Elements(1));
    g.bench_function("set_bars_1/update_newest", |b| {
        b.to_async(&f.rt).iter(|| {
            tick.set(tick.get().wrapping_add(1));
            let bar = Bar {
                close: newest.low + f64::from(tick.get() % 100) * 1e-3,
                ..newest
            };
            async move {
                let one = [bar];
                let write = ohlcv.set_bars_with(SYMBOL, TF, &one, BarWriteOptions::new().ttl(TTL));
                write.await.expect("set_bars")
            }
        })
    });
    g.finish();
    // 100,000 bars take a good part of a second each: ten flat samples.
    let mut g = group(c, "redis/ohlcv_write_large");
    g.sampling_mode(SamplingMode::Flat).sample_size(10);
    bench_new_series(&mut g, &f, 100_000);
    g.finish();
}

fn market_reads(c: &mut Criterion) {
    let f = Fixture::start();
    let market = f.cache.market();
    let symbols = common::symbols(50);
    let tickers: Vec<_> = (0..50u64)
        .map(|i| common::ticker(&symbols[i as usize], common::SEED + i))
        .collect();
    let write = market.set_tickers_with(&tickers, WriteOptions::new().ttl(TTL));
    f.rt.block_on(write).expect("set_tickers");
    let mut g = group(c, "redis/market_read");
    g.throughput(Throughput::Elements(1));
    let one = symbols[0].as_str();
    g.bench_function("get_ticker", |b| {
        b.to_async(&f.rt)
            .iter(|| async { market.get_ticker(black_box(one)).await.expect("get") })
    });
    g.throughput(Throughput::Elements(50));
    g.bench_function("get_tickers_50", |b| {
        b.to_async(&f.rt)
            .iter(|| async { market.get_tickers(black_box(&symbols)).await.expect("get") })
    });
    g.finish();
}

/// LLM results of about 1 KB (stored as is) and 50 KB of JSON (over the
/// compression threshold: stored LZ4-compressed, decompressed on read).
fn llm_reads(c: &mut Criterion) {
    let f = Fixture::start();
    let llm = f.cache.llm();
    let mut g = group(c, "redis/llm_read");
    for (name, size) in [
        ("get_analysis_1KB", 1_024),
        ("get_analysis_50KB", 50 * 1_024),
    ] {
        let value = common::llm_result(size, common::SEED + size as u64);
        let json_len = serde_json::to_vec(&value).expect("json").len();
        let hash = iftb_cache::LlmCache::hash_input(name);
        let write = llm.set_analysis_with("sentiment", &hash, &value, WriteOptions::new().ttl(TTL));
        f.rt.block_on(write).expect("set_analysis");
        g.throughput(Throughput::Bytes(json_len as u64));
        g.bench_function(name, |b| {
            b.to_async(&f.rt).iter(|| async {
                let hit: Option<serde_json::Value> = llm
                    .get_analysis("sentiment", black_box(&hash))
                    .await
                    .expect("get");
                hit.expect("cached")
            })
        });
    }
    g.finish();
}

/// What `stats()`' per-operation counting costs a Redis read: the same
/// `get_latest_bar` with it on (the default) and off, side by side, each on
/// a server of its own.
fn metrics(c: &mut Criterion) {
    let bars = common::bars(1_000, TF.millis() as i64, common::SEED);
    let mut g = group(c, "redis/metrics");
    g.throughput(Throughput::Elements(1));
    for on in [true, false] {
        let f = Fixture::start_with(|b| b.metrics(on));
        f.set_bars(SYMBOL, &bars);
        let ohlcv = f.cache.ohlcv();
        let label = if on { "on" } else { "off" };
        common::bench_latest_bar(&mut g, &format!("get_latest_bar/{label}"), &f.rt, ohlcv);
    }
    g.finish();
}

criterion_group!(
    benches,
    ohlcv_reads,
    ohlcv_writes,
    market_reads,
    llm_reads,
    metrics
);
criterion_main!(benches);
