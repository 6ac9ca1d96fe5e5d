//! The embedded (in-process) backend through the public API: what a strategy
//! pays per call when no Redis is configured.
//!
//! `cargo bench --bench embedded`

#[path = "common/mod.rs"]
mod common;

use common::{SYMBOL, TF};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use iftb_cache::{CacheConfig, CacheManager};
use std::hint::black_box;
use std::time::Duration;
use tokio::runtime::Runtime;

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g
}

/// A cache holding a 1,000-bar series of `SYMBOL`.
fn cache_with_series(rt: &Runtime) -> CacheManager {
    rt.block_on(common::embedded_with_series(SYMBOL, TF))
}

fn reads(c: &mut Criterion) {
    let rt = common::runtime();
    let cache = cache_with_series(&rt);
    let ohlcv = cache.ohlcv();
    let mut g = group(c, "embedded/ohlcv");
    g.throughput(Throughput::Elements(100));
    g.bench_function("get_bars_100", |b| {
        b.to_async(&rt).iter(|| async {
            ohlcv
                .get_bars(black_box(SYMBOL), TF, 100)
                .await
                .expect("get")
        })
    });
    g.bench_function("get_bars_archived_100", |b| {
        b.to_async(&rt).iter(|| async {
            ohlcv
                .get_bars_archived(black_box(SYMBOL), TF, 100)
                .await
                .expect("get")
        })
    });
    g.throughput(Throughput::Elements(1));
    common::bench_latest_bar(&mut g, "get_latest_bar", &rt, ohlcv);
    g.finish();
}

/// The key the peers are read under, built per call as ours is: the same
/// string, pushed part by part.
fn peer_key(symbol: &str) -> String {
    let tf = TF.as_str();
    let mut key = String::with_capacity(22 + symbol.len() + tf.len());
    for part in ["iftb:v2:ohlcv:{", symbol, ":", tf, "}:head"] {
        key.push_str(part);
    }
    key
}

/// The yardsticks: moka and quick-cache holding the same latest bar as a
/// native `Bar` (no decoding), under the same key built per call.
fn vs_peers(c: &mut Criterion) {
    let rt = common::runtime();
    let cache = cache_with_series(&rt);
    let ohlcv = cache.ohlcv();
    let latest = rt
        .block_on(ohlcv.get_latest_bar(SYMBOL, TF))
        .expect("get")
        .expect("cached");
    let moka: moka::sync::Cache<String, iftb_cache::Bar> = moka::sync::Cache::new(10_000);
    moka.insert(peer_key(SYMBOL), latest);
    let quick: quick_cache::sync::Cache<String, iftb_cache::Bar> =
        quick_cache::sync::Cache::new(10_000);
    quick.insert(peer_key(SYMBOL), latest);
    let mut g = group(c, "embedded/vs_peers");
    g.throughput(Throughput::Elements(1));
    common::bench_latest_bar(&mut g, "iftb_get_latest_bar", &rt, ohlcv);
    g.bench_function("moka_get", |b| {
        b.iter(|| moka.get(&peer_key(black_box(SYMBOL))))
    });
    g.bench_function("quick_cache_get", |b| {
        b.iter(|| quick.get(&peer_key(black_box(SYMBOL))))
    });
    g.finish();
}

fn writes(c: &mut Criterion) {
    let rt = common::runtime();
    let cache = cache_with_series(&rt);
    let ohlcv = cache.ohlcv();
    // The same 1,000 open times again, with other prices: a refresh of the series.
    let bars = common::bars(1_000, TF.millis() as i64, common::SEED + 1);
    let mut g = group(c, "embedded/ohlcv");
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("set_bars_1000", |b| {
        b.to_async(&rt).iter(|| async {
            ohlcv
                .set_bars(SYMBOL, TF, black_box(&bars))
                .await
                .expect("set")
        })
    });
    g.finish();
}

fn market(c: &mut Criterion) {
    let rt = common::runtime();
    let cache = rt
        .block_on(CacheManager::connect(CacheConfig::embedded()))
        .expect("embedded");
    let market = cache.market();
    let ticker = common::ticker(SYMBOL, common::SEED);
    rt.block_on(market.set_ticker(SYMBOL, &ticker))
        .expect("set_ticker");
    let mut g = group(c, "embedded/market");
    g.throughput(Throughput::Elements(1));
    g.bench_function("get_ticker", |b| {
        b.to_async(&rt)
            .iter(|| async { market.get_ticker(black_box(SYMBOL)).await.expect("get") })
    });
    g.finish();
}

/// What `stats()`' per-operation counting costs a call: the same reads with
/// it on (the default) and off, side by side.
fn metrics(c: &mut Criterion) {
    let rt = common::runtime();
    let mut g = group(c, "embedded/metrics");
    g.throughput(Throughput::Elements(1));
    for on in [true, false] {
        let config = CacheConfig::builder().metrics(on).build().expect("config");
        let cache = rt.block_on(common::cache_with_series(config, SYMBOL, TF));
        let ticker = common::ticker(SYMBOL, common::SEED);
        rt.block_on(cache.market().set_ticker(SYMBOL, &ticker))
            .expect("set_ticker");
        let (ohlcv, market) = (cache.ohlcv(), cache.market());
        let label = if on { "on" } else { "off" };
        common::bench_latest_bar(&mut g, &format!("get_latest_bar/{label}"), &rt, ohlcv);
        g.bench_function(format!("get_ticker/{label}"), |b| {
            b.to_async(&rt)
                .iter(|| async { market.get_ticker(black_box(SYMBOL)).await.expect("get") })
        });
    }
    g.finish();
}

criterion_group!(benches, reads, vs_peers, writes, market, metrics);
criterion_main!(benches);
