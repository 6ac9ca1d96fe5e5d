//! Each OHLCV read is one round trip to Redis, whatever the keyspace holds
//! and whatever the data's shape (dense, gappy, sparse, off the candle
//! grid): no SCAN, no paging. Checked with the server's own command counters.

mod support;

use iftb_cache::{Bar, Timeframe};
use std::collections::BTreeMap;
use support::shapes::{self, Shape};
use support::RedisServer;

const N: usize = 5_000;

/// Runs `read`, then asserts the server saw exactly `want` (command, calls).
async fn assert_commands<F: std::future::Future<Output = ()>>(
    server: &RedisServer,
    what: &str,
    want: &[(&str, u64)],
    read: F,
) {
    server.reset_command_counts();
    read.await;
    let seen = server.command_counts();
    let want: BTreeMap<String, u64> = want.iter().map(|(c, n)| (c.to_string(), *n)).collect();
    assert_eq!(seen, want, "{what}\n{}", server.log());
}

/// One `ZRANGE`: the newest N bars.
const NEWEST: &[(&str, u64)] = &[("zrange", 1)];
/// One `MULTI` transaction of two `ZRANGE`s, sent and answered at once: a window.
const WINDOW: &[(&str, u64)] = &[("exec", 1), ("multi", 1), ("zrange", 2)];

fn newest(bars: &[Bar], n: usize) -> Vec<Bar> {
    bars.iter().rev().take(n).copied().collect()
}

fn window(bars: &[Bar], from: i64, to: i64) -> Option<Vec<Bar>> {
    let inside: Vec<Bar> = bars
        .iter()
        .filter(|b| (from..=to).contains(&b.timestamp))
        .copied()
        .collect();
    (!inside.is_empty()).then_some(inside)
}

async fn reads_of_one_shape(t: &support::TestCache, shape: &Shape, ctx: &str) {
    let server = t.server.as_ref().unwrap();
    let o = t.cache.ohlcv();
    let (sym, tf, bars) = ("SHAPE", shape.tf, &shape.bars);
    let what = |read: &str| format!("{read} on {} {ctx}", shape.name);
    for n in [1, 2, 43, 100, 1_000, N] {
        assert_commands(server, &what(&format!("get_bars({n})")), NEWEST, async {
            let got = o.get_bars(sym, tf, n).await.unwrap().unwrap();
            assert_eq!(got, newest(bars, n), "{}", what("get_bars"));
        })
        .await;
    }
    assert_commands(server, &what("get_bars_archived"), NEWEST, async {
        let got = o.get_bars_archived(sym, tf, 100).await.unwrap().unwrap();
        assert_eq!(got.to_vec(), newest(bars, 100));
    })
    .await;
    let (first, last) = (bars[0].timestamp, bars[N - 1].timestamp);
    let mid = bars[N / 2].timestamp;
    let windows = [
        (first, last),
        (mid - 1, mid + 1),
        (mid + 1, bars[N / 2 + 300].timestamp - 1),
        (last + 1, last + 10),
    ];
    for (from, to) in windows {
        assert_commands(
            server,
            &what(&format!("get_range({from}, {to})")),
            WINDOW,
            async {
                let got = o.get_range(sym, tf, from, to).await.unwrap();
                assert_eq!(got, window(bars, from, to), "{}", what("get_range"));
            },
        )
        .await;
    }
    assert_commands(server, &what("get_latest_bar"), &[("get", 1)], async {
        let got = o.get_latest_bar(sym, tf).await.unwrap();
        assert_eq!(got, Some(bars[N - 1]));
    })
    .await;
}

#[tokio::test]
async fn each_read_is_one_round_trip_whatever_the_shape_and_the_keyspace() {
    let t = support::with_redis().await;
    let server = t.server.as_ref().unwrap();
    let o = t.cache.ohlcv();
    let shapes = shapes::all(N);
    for filler in [0u32, 20_000] {
        if filler > 0 {
            // Unrelated keys, as a shared Redis holds: the read must not look at them.
            let mut pipe = redis::pipe();
            for i in 0..filler {
                pipe.cmd("SET").arg(format!("other:{i}")).arg("x").ignore();
            }
            pipe.exec(&mut server.raw()).unwrap();
        }
        let ctx = format!("with {filler} other keys");
        for shape in &shapes {
            o.invalidate("SHAPE", shape.tf).await.unwrap();
            o.set_bars("SHAPE", shape.tf, &shape.bars).await.unwrap();
            reads_of_one_shape(&t, shape, &ctx).await;
        }
    }
}

#[tokio::test]
async fn the_latest_bar_of_many_series_is_one_mget() {
    let t = support::with_redis().await;
    let server = t.server.as_ref().unwrap();
    let o = t.cache.ohlcv();
    let names: Vec<String> = (0..100).map(|i| format!("SYM{i}")).collect();
    let shapes = shapes::all(300);
    for (i, name) in names.iter().enumerate() {
        let shape = &shapes[i % shapes.len()];
        o.set_bars(name, shape.tf, &shape.bars).await.unwrap();
    }
    let mut series: Vec<(&str, Timeframe)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), shapes[i % shapes.len()].tf))
        .collect();
    series.push(("NEVERWRITTEN", Timeframe::M1));
    assert_commands(server, "get_latest_bars of 101", &[("mget", 1)], async {
        let got = o.get_latest_bars(&series).await.unwrap();
        for (i, bar) in got.iter().take(100).enumerate() {
            assert_eq!(*bar, shapes[i % shapes.len()].bars.last().copied());
        }
        assert_eq!(got[100], None);
    })
    .await;
}

/// A batch write is one pipelined round trip of script calls, one per chunk,
/// and each chunk writes each run once: no rewrite of the history.
#[tokio::test]
async fn a_large_write_is_one_script_call_per_chunk() {
    let t = support::with_redis().await;
    let server = t.server.as_ref().unwrap();
    let bars = support::flat_minute_bars(10_000);
    // Load the script once so the count below is not about the first call.
    let o = t.cache.ohlcv();
    o.set_bars("WARMUP", Timeframe::M1, &bars[..1])
        .await
        .unwrap();
    server.reset_command_counts();
    o.set_bars("BTCUSDT", Timeframe::M1, &bars).await.unwrap();
    let seen = server.command_counts();
    // Chunks of 2,000 bars.
    assert_eq!(seen.get("evalsha"), Some(&5), "{seen:?}");
    // One ZADD per run of 42 bars, and per chunk at most one more (the
    // open run, rewritten whole) and one for the tail; two ZREMs a chunk.
    let runs = 10_000u64.div_ceil(42);
    let zadds = *seen.get("zadd").unwrap();
    assert!((runs..=runs + 10).contains(&zadds), "{seen:?}");
    assert!(*seen.get("zrem").unwrap_or(&0) <= 2 * 5, "{seen:?}");
}

/// The in-progress candle, updated tick by tick: one script call that
/// rewrites the one-bar tail and the head, never a whole run.
#[tokio::test]
async fn an_in_progress_update_rewrites_only_the_tail_and_the_head() {
    let t = support::with_redis().await;
    let server = t.server.as_ref().unwrap();
    let o = t.cache.ohlcv();
    let mut bars = support::flat_minute_bars(1_000);
    o.set_bars("BTCUSDT", Timeframe::M1, &bars).await.unwrap();
    let last = bars.len() - 1;
    bars[last].close = 1.75;
    let want = [
        ("evalsha", 1),
        ("get", 1),
        ("pexpire", 1),
        ("set", 1),
        ("zadd", 1),
        ("zrem", 1),
    ];
    assert_commands(server, "an in-progress upsert", &want, async {
        o.set_bars("BTCUSDT", Timeframe::M1, &bars[last..])
            .await
            .unwrap();
    })
    .await;
    let got = o.get_bars("BTCUSDT", Timeframe::M1, 1_000).await.unwrap();
    assert_eq!(got.unwrap(), newest(&bars, 1_000));
}
