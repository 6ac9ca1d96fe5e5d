//! What a bar costs in Redis memory, by `MEMORY USAGE .. SAMPLES 0` (every
//! member counted) over both keys of a series: at most 56 bytes a bar on the
//! shapes real data has, 64 on a series of 100 bars. Deterministic for one
//! Redis build and allocator (jemalloc, as the Redis packages ship it).

mod support;

use support::shapes::{self, Shape};
use support::RedisServer;

fn memory_usage(server: &RedisServer, key: &str) -> u64 {
    redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query(&mut server.raw())
        .unwrap_or_else(|e| panic!("MEMORY USAGE {key}: {e}"))
}

/// Redis bytes per bar of `shape` stored whole, both keys of the series.
async fn bytes_per_bar(t: &support::TestCache, symbol: &str, shape: &Shape) -> f64 {
    let server = t.server.as_ref().unwrap();
    let o = t.cache.ohlcv();
    o.set_bars(symbol, shape.tf, &shape.bars).await.unwrap();
    let set = format!("iftb:v2:ohlcv:{{{symbol}:{}}}", shape.tf);
    let total = memory_usage(server, &set) + memory_usage(server, &format!("{set}:head"));
    total as f64 / shape.bars.len() as f64
}

#[tokio::test]
async fn a_bar_costs_at_most_56_bytes_of_redis_memory_whatever_the_shape() {
    let t = support::with_redis().await;
    let allocator: String = redis::cmd("INFO")
        .arg("memory")
        .query(&mut t.server.as_ref().unwrap().raw())
        .unwrap();
    assert!(
        allocator.contains("mem_allocator:jemalloc"),
        "these figures are jemalloc's"
    );
    let cases = [
        (shapes::weekend_hourly(5_000), 56.0),
        (shapes::daily_stock(2_000), 56.0),
        (shapes::sparse(5_000, 10), 56.0),
        (shapes::off_grid(5_000), 56.0),
        (shapes::dense(100), 64.0),
    ];
    for (i, (shape, bound)) in cases.into_iter().enumerate() {
        let per_bar = bytes_per_bar(&t, &format!("MEM{i}"), &shape).await;
        println!("{} × {}: {per_bar:.1} B/bar", shape.name, shape.bars.len());
        assert!(
            per_bar <= bound,
            "{}: {per_bar:.1} B/bar, over {bound}",
            shape.name
        );
    }
}
