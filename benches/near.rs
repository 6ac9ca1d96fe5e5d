//! The near cache, against a `redis-server` this bench starts itself: each
//! hit beside the same read from Redis (a manager without a near cache) and
//! beside redis-rs's own client-side cache (`cache-aio`) reading the same
//! key; then the delay from another thread's write, acknowledged by Redis,
//! to the first read of this one that returns it (p50, p99, max).
//!
//! `cargo bench --bench near` (two cores) and `taskset -c 0 cargo bench
//! --bench near` (client, tracking and server on one core).

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use common::{SYMBOL, TF, TTL};
use criterion::{criterion_group, criterion_main, Criterion};
use iftb_cache::{BarWriteOptions, CacheConfig, CacheManager, Ticker, WriteOptions};
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::RedisServer;
use tokio::runtime::Runtime;

const NEAR_BYTES: NonZeroUsize = NonZeroUsize::new(64 << 20).unwrap();

/// The ticker's and the series' keys, as `redis-cli` shows them.
const TICKER_KEY: &str = "iftb:v2:ticker:{BTCUSDT}";
const HEAD_KEY: &str = "iftb:v2:ohlcv:{BTCUSDT:1m}:head";
const SET_KEY: &str = "iftb:v2:ohlcv:{BTCUSDT:1m}";

struct Fixture {
    rt: Runtime,
    near: CacheManager,
    plain: CacheManager,
    aio: redis::aio::MultiplexedConnection,
    server: RedisServer,
}

fn manager(rt: &Runtime, server: &RedisServer, near: bool) -> CacheManager {
    let mut builder = CacheConfig::builder().redis_url(&server.url());
    if near {
        builder = builder.near_cache(NEAR_BYTES);
    }
    let config = builder.build().expect("config");
    let cache = rt.block_on(CacheManager::connect(config)).expect("connect");
    assert!(
        !near || cache.stats().near_serving,
        "near cache not serving"
    );
    cache
}

impl Fixture {
    fn start() -> Self {
        let server = RedisServer::start();
        let rt = common::runtime();
        let near = manager(&rt, &server, true);
        let plain = manager(&rt, &server, false);
        let client = redis::Client::open(format!("{}?protocol=resp3", server.url())).unwrap();
        let config = redis::AsyncConnectionConfig::new()
            .set_cache_config(redis::caching::CacheConfig::new());
        let aio = rt
            .block_on(client.get_multiplexed_async_connection_with_config(&config))
            .expect("cache-aio connection");
        let bars = common::bars(1_000, TF.millis() as i64, common::SEED);
        let (ohlcv, market) = (plain.ohlcv(), plain.market());
        let write = ohlcv.set_bars_with(SYMBOL, TF, &bars, BarWriteOptions::new().ttl(TTL));
        rt.block_on(write).expect("set_bars");
        let ticker = common::ticker(SYMBOL, common::SEED);
        let write = market.set_ticker_with(SYMBOL, &ticker, WriteOptions::new().ttl(TTL));
        rt.block_on(write).expect("set_ticker");
        Self {
            rt,
            near,
            plain,
            aio,
            server,
        }
    }

    /// A read through redis-rs's client-side cache, warmed once.
    fn aio_read<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        let mut conn = self.aio.clone();
        self.rt
            .block_on(cmd.query_async(&mut conn))
            .expect("cache-aio read")
    }
}

fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g
}

fn hits(c: &mut Criterion) {
    let f = Fixture::start();
    let newest = redis::cmd("ZRANGE")
        .arg(SET_KEY)
        .arg(0)
        .arg(4)
        .arg("REV")
        .to_owned();
    let head = redis::cmd("GET").arg(HEAD_KEY).to_owned();
    let ticker = redis::cmd("GET").arg(TICKER_KEY).to_owned();
    // The pushes of the fixture's writes arrive, then every cache is warmed
    // once: what follows are hits.
    std::thread::sleep(Duration::from_millis(50));
    let _: Vec<Vec<u8>> = f.aio_read(&newest);
    let _: Vec<u8> = f.aio_read(&head);
    let _: Vec<u8> = f.aio_read(&ticker);
    for cache in [&f.near, &f.plain] {
        f.rt.block_on(cache.ohlcv().get_bars(SYMBOL, TF, 100))
            .unwrap();
        f.rt.block_on(cache.ohlcv().get_latest_bar(SYMBOL, TF))
            .unwrap();
        f.rt.block_on(cache.market().get_ticker(SYMBOL)).unwrap();
    }

    let mut g = group(c, "near/get_latest_bar");
    for (name, cache) in [("near_hit", &f.near), ("redis", &f.plain)] {
        g.bench_function(name, |b| {
            b.to_async(&f.rt).iter(|| async {
                cache
                    .ohlcv()
                    .get_latest_bar(black_box(SYMBOL), TF)
                    .await
                    .unwrap()
            })
        });
    }
    // The same key's bytes, not decoded: redis-rs's cache answers a `Value`.
    g.bench_function("cache_aio_get_bytes", |b| {
        b.to_async(&f.rt).iter(|| async {
            let mut conn = f.aio.clone();
            head.query_async::<Vec<u8>>(&mut conn).await.unwrap()
        })
    });
    g.finish();

    let mut g = group(c, "near/get_ticker");
    for (name, cache) in [("near_hit", &f.near), ("redis", &f.plain)] {
        g.bench_function(name, |b| {
            b.to_async(&f.rt)
                .iter(|| async { cache.market().get_ticker(black_box(SYMBOL)).await.unwrap() })
        });
    }
    g.bench_function("cache_aio_get_decoded", |b| {
        b.to_async(&f.rt).iter(|| async {
            let mut conn = f.aio.clone();
            let bytes: Vec<u8> = ticker.query_async(&mut conn).await.unwrap();
            iftb_cache::codec::decode::<Ticker>(&bytes).unwrap()
        })
    });
    g.finish();

    let mut g = group(c, "near/get_bars_archived_100");
    for (name, cache) in [("near_hit", &f.near), ("redis", &f.plain)] {
        g.bench_function(name, |b| {
            b.to_async(&f.rt).iter(|| async {
                cache
                    .ohlcv()
                    .get_bars_archived(black_box(SYMBOL), TF, 100)
                    .await
                    .unwrap()
            })
        });
    }
    // The members that hold the newest 100 bars, as bytes, not checked.
    g.bench_function("cache_aio_zrange_bytes", |b| {
        b.to_async(&f.rt).iter(|| async {
            let mut conn = f.aio.clone();
            newest.query_async::<Vec<Vec<u8>>>(&mut conn).await.unwrap()
        })
    });
    g.finish();

    let mut g = group(c, "near/get_bars_100");
    for (name, cache) in [("near_hit", &f.near), ("redis", &f.plain)] {
        g.bench_function(name, |b| {
            b.to_async(&f.rt).iter(|| async {
                cache
                    .ohlcv()
                    .get_bars(black_box(SYMBOL), TF, 100)
                    .await
                    .unwrap()
            })
        });
    }
    g.finish();
    // Three misses warmed the copies (a late push of the fixture's writes
    // may have cost each one more); every timed read was a hit. (Under
    // `cargo test --benches` each function runs once: the check holds too.)
    let stats = f.near.stats();
    assert!(stats.near_misses <= 6, "timed reads missed: {stats:?}");
    drop(f.server);
}

/// The delay from a write acknowledged to another thread (its own runtime
/// and connection: another process, as far as Redis can tell) to the
/// first read of the near cache that returns it, over 2,000 writes 1 ms
/// apart, read back by a loop that reads nothing else.
fn invalidation_delay(_: &mut Criterion) {
    const WRITES: u64 = 2_000;
    let server = RedisServer::start();
    let rt = common::runtime();
    let reader = manager(&rt, &server, true);
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..=WRITES).map(|_| AtomicU64::new(0)).collect());
    let epoch = Instant::now();
    let url = server.url();
    let writer = {
        let acked = Arc::clone(&acked);
        std::thread::spawn(move || {
            let rt = common::runtime();
            let config = CacheConfig::builder().redis_url(&url).build().unwrap();
            let writer = rt.block_on(CacheManager::connect(config)).unwrap();
            for v in 1..=WRITES {
                let ticker = Ticker {
                    last: v as f64,
                    ..common::ticker(SYMBOL, 1)
                };
                rt.block_on(writer.market().set_ticker(SYMBOL, &ticker))
                    .unwrap();
                acked[v as usize].store(epoch.elapsed().as_nanos() as u64, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let mut first_seen = vec![0u64; WRITES as usize + 1];
    let mut seen = 0u64;
    let limit = Instant::now() + Duration::from_secs(60);
    while seen < WRITES && Instant::now() < limit {
        let got = rt.block_on(reader.market().get_ticker(SYMBOL)).unwrap();
        let version = got.map_or(0, |t| t.last as u64);
        let now = epoch.elapsed().as_nanos() as u64;
        for v in seen + 1..=version.min(WRITES) {
            first_seen[v as usize] = now;
        }
        seen = seen.max(version);
    }
    writer.join().unwrap();
    assert_eq!(seen, WRITES, "the reader never saw the last write");
    let mut delays: Vec<u64> = (1..=WRITES as usize)
        .map(|v| first_seen[v].saturating_sub(acked[v].load(Ordering::SeqCst)))
        .collect();
    delays.sort_unstable();
    let at = |q: f64| Duration::from_nanos(delays[((delays.len() - 1) as f64 * q) as usize]);
    println!(
        "near/invalidation_delay: {WRITES} writes, p50 {:?}, p99 {:?}, max {:?} ({:?})",
        at(0.5),
        at(0.99),
        at(1.0),
        reader.stats()
    );
}

criterion_group!(benches, invalidation_delay, hits);
criterion_main!(benches);
