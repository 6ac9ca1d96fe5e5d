//! Each OHLCV read is one command to Redis, whatever the keyspace holds: no
//! SCAN, no second round trip. Checked with the server's own command counters.

mod support;

use iftb_cache::Timeframe;
use std::collections::BTreeMap;
use support::RedisServer;

/// Runs `read`, then asserts the server saw exactly one `ZRANGE` and nothing else.
async fn assert_one_command<F: std::future::Future<Output = ()>>(
    server: &RedisServer,
    what: &str,
    read: F,
) {
    server.reset_command_counts();
    read.await;
    let seen = server.command_counts();
    let want = BTreeMap::from([("zrange".to_string(), 1u64)]);
    assert_eq!(
        seen,
        want,
        "{what} sent more than one command\n{}",
        server.log()
    );
}

#[tokio::test]
async fn each_read_is_one_command_however_large_the_keyspace() {
    let t = support::with_redis().await;
    let server = t.server.as_ref().unwrap();
    let o = t.cache.ohlcv();
    let bars = support::flat_minute_bars(500);
    o.set_bars("BTCUSDT", Timeframe::M1, &bars).await.unwrap();

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
        assert_one_command(server, &format!("get_bars {ctx}"), async {
            assert_eq!(
                o.get_bars("BTCUSDT", Timeframe::M1, 100)
                    .await
                    .unwrap()
                    .unwrap()
                    .len(),
                100
            );
        })
        .await;
        assert_one_command(server, &format!("get_range {ctx}"), async {
            let got = o
                .get_range("BTCUSDT", Timeframe::M1, 0, 99 * 60_000)
                .await
                .unwrap();
            assert_eq!(got.unwrap().len(), 100);
        })
        .await;
        assert_one_command(server, &format!("get_latest_bar {ctx}"), async {
            assert!(o
                .get_latest_bar("BTCUSDT", Timeframe::M1)
                .await
                .unwrap()
                .is_some());
        })
        .await;
    }
}

/// A batch write is one pipelined round trip of script calls, one per chunk.
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
    // Chunks of about 2,000 bars, ending on block boundaries (64 bars).
    assert_eq!(seen.get("evalsha"), Some(&5), "{seen:?}");
    // Inside the script: one ZADD per block, one per chunk for the count,
    // and no block rewritten twice.
    let blocks = 10_000u64.div_ceil(64);
    assert_eq!(seen.get("zadd"), Some(&(blocks + 5)), "{seen:?}");
    assert_eq!(seen.get("zrem"), None, "{seen:?}");
}
