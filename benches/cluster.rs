//! A Redis Cluster against one standalone server, side by side in one run,
//! over loopback: each starts its own processes (3 cluster primaries with
//! `redis-cli --cluster create`, one plain server), killed on drop.
//!
//! - `get_bars_100`: the same series read on the standalone server and on
//!   the cluster (target: cluster ≤ 1.1× standalone);
//! - `get_tickers_100`: 100 tickers spread over the 3 primaries, against one
//!   raw redis-rs `MGET` of the same 100 keys on the standalone server, the
//!   floor (target ≤ 1.5×: the per-slot reads run in parallel).
//!
//! `cargo bench --bench cluster`; `taskset -c 0 cargo bench --bench cluster`
//! puts the client and every server on one core.

#[path = "common/mod.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use common::{SYMBOL, TF, TTL};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use iftb_cache::{BarWriteOptions, CacheConfig, CacheManager, Ticker, WriteOptions};
use std::hint::black_box;
use std::time::Duration;
use support::{RedisCluster, RedisServer};
use tokio::runtime::Runtime;

struct Fixture {
    rt: Runtime,
    standalone: CacheManager,
    cluster: CacheManager,
    /// A raw redis-rs connection to the standalone server: the floor.
    raw: redis::aio::MultiplexedConnection,
    _server: RedisServer,
    _cluster: RedisCluster,
}

impl Fixture {
    fn start() -> Self {
        let server = RedisServer::start();
        let topology = RedisCluster::start(3, 0);
        let rt = common::runtime();
        let config = CacheConfig::builder()
            .redis_url(&server.url())
            .build()
            .unwrap();
        let standalone = rt
            .block_on(CacheManager::connect(config))
            .expect("standalone");
        let cluster = rt
            .block_on(CacheManager::connect(topology.config(|b| b)))
            .expect("cluster");
        let client = redis::Client::open(server.url()).unwrap();
        let raw = rt
            .block_on(client.get_multiplexed_async_connection())
            .expect("raw connection");
        Self {
            rt,
            standalone,
            cluster,
            raw,
            _server: server,
            _cluster: topology,
        }
    }

    /// Writes the same bars and tickers to both.
    fn fill(&self, tickers: &[Ticker]) {
        let bars = common::bars(1_000, TF.millis() as i64, common::SEED);
        for cache in [&self.standalone, &self.cluster] {
            let ohlcv = cache.ohlcv();
            let write = ohlcv.set_bars_with(SYMBOL, TF, &bars, BarWriteOptions::new().ttl(TTL));
            self.rt.block_on(write).expect("set_bars");
            let market = cache.market();
            let write = market.set_tickers_with(tickers, WriteOptions::new().ttl(TTL));
            self.rt.block_on(write).expect("set_tickers");
        }
    }
}

fn cluster_vs_standalone(c: &mut Criterion) {
    let f = Fixture::start();
    let symbols = common::symbols(100);
    let tickers: Vec<Ticker> = symbols
        .iter()
        .map(|s| common::ticker(s, common::SEED))
        .collect();
    f.fill(&tickers);

    let mut g = c.benchmark_group("cluster/get_bars_100");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(100));
    for (name, cache) in [("standalone", &f.standalone), ("cluster", &f.cluster)] {
        g.bench_function(name, |b| {
            b.to_async(&f.rt).iter(|| async {
                let bars = cache.ohlcv().get_bars(black_box(SYMBOL), TF, 100).await;
                black_box(bars.expect("read").expect("cached"))
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("cluster/get_tickers_100");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(100));
    let keys: Vec<String> = symbols
        .iter()
        .map(|s| format!("iftb:v2:ticker:{{{s}}}"))
        .collect();
    g.bench_function("raw_mget_standalone", |b| {
        b.to_async(&f.rt).iter(|| async {
            let mut conn = f.raw.clone();
            let found: Vec<Option<bytes::Bytes>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .expect("MGET");
            black_box(found)
        })
    });
    for (name, cache) in [("standalone", &f.standalone), ("cluster", &f.cluster)] {
        g.bench_function(name, |b| {
            b.to_async(&f.rt).iter(|| async {
                let found = cache.market().get_tickers(black_box(&symbols)).await;
                black_box(found.expect("read"))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, cluster_vs_standalone);
criterion_main!(benches);
