//! What the series script does to the two Redis keys of a series, seen from
//! Redis: a write rewrites only the runs it touches, a chunk that meets a
//! corrupt run writes nothing, a series Redis lost half of starts over, the
//! cap skips what is not ours, and a lost script is loaded again.

mod support;

use iftb_cache::{Bar, BarWriteOptions, ErrorKind, Timeframe};
use std::num::NonZeroUsize;
use support::{flat_bar, RedisServer};

const SYM: &str = "BTCUSDT";
const TF: Timeframe = Timeframe::M1;
const SET: &str = "iftb:v2:ohlcv:{BTCUSDT:1m}";
const HEAD: &str = "iftb:v2:ohlcv:{BTCUSDT:1m}:head";
const MINUTE: i64 = 60_000;

fn minutes(range: std::ops::Range<i64>) -> Vec<Bar> {
    range.map(|i| flat_bar(i * MINUTE)).collect()
}

/// Every member of the run set, oldest first.
fn members(server: &RedisServer) -> Vec<Vec<u8>> {
    redis::cmd("ZRANGE")
        .arg(SET)
        .arg(0)
        .arg(-1)
        .query(&mut server.raw())
        .unwrap()
}

/// A member another program put in the run set, at `score`.
fn plant(server: &RedisServer, score: i64, member: &[u8]) {
    redis::cmd("ZADD")
        .arg(SET)
        .arg(score)
        .arg(member)
        .exec(&mut server.raw())
        .unwrap();
}

fn layout_ok(server: &RedisServer) {
    support::layout::check(server, SYM, TF.as_str()).unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn a_sparse_batch_across_the_history_rewrites_only_the_runs_it_touches() {
    let t = support::with_redis().await;
    let server = t.server.as_ref().unwrap();
    let o = t.cache.ohlcv();
    let n = 100_000;
    o.set_bars(SYM, TF, &minutes(0..n)).await.unwrap();
    // The oldest bar, one in the middle and the newest, each with a new close.
    let revised: Vec<Bar> = [0, n / 2, n - 1]
        .iter()
        .map(|&i| Bar {
            close: 1.25,
            ..flat_bar(i * MINUTE)
        })
        .collect();
    server.reset_command_counts();
    o.set_bars(SYM, TF, &revised).await.unwrap();
    let seen = server.command_counts();
    // Three runs rewritten in place (one ZREM and one ZADD each), not the
    // 2,380 runs between them.
    assert_eq!(seen.get("zadd"), Some(&3), "{seen:?}");
    assert_eq!(seen.get("zrem"), Some(&3), "{seen:?}");
    layout_ok(server);
    let all = o.get_range(SYM, TF, 0, i64::MAX).await;
    assert!(all.is_err(), "100,000 bars are over the read cap");
    for bar in &revised {
        let got = o
            .get_range(SYM, TF, bar.timestamp, bar.timestamp)
            .await
            .unwrap();
        assert_eq!(got, Some(vec![*bar]));
    }
    let newest = o.get_bars(SYM, TF, 50_000).await.unwrap().unwrap();
    assert_eq!((newest[0], newest.len()), (revised[2], 50_000));

    // Gaps filled deep in the history: the runs they fall in grow (split
    // past 83 bars), nothing above them moves.
    let gaps: Vec<Bar> = (0..40)
        .map(|i| flat_bar(1_000 * MINUTE + i * MINUTE + 7))
        .collect();
    server.reset_command_counts();
    o.set_bars(SYM, TF, &gaps).await.unwrap();
    let seen = server.command_counts();
    assert!(*seen.get("zadd").unwrap() <= 4, "{seen:?}");
    layout_ok(server);
    let got = o.get_bars(SYM, TF, 50_000).await.unwrap().unwrap();
    assert_eq!(got.len(), 50_000);
    assert_eq!(
        o.get_range(SYM, TF, 1_000 * MINUTE, 1_040 * MINUTE)
            .await
            .unwrap()
            .unwrap()
            .len(),
        81
    );
}

#[tokio::test]
async fn a_chunk_that_meets_a_corrupt_run_writes_nothing() {
    let t = support::with_redis().await;
    let server = t.server.as_ref().unwrap();
    let o = t.cache.ohlcv();
    o.set_bars(SYM, TF, &minutes(0..500)).await.unwrap();
    // A foreign member among the runs, scored where the write will look.
    plant(server, 200 * MINUTE + 1, b"IF\x07\x02not whole bars");
    let (set_before, head_before) = (members(server), server.raw_get(HEAD));
    let write = [
        flat_bar(10 * MINUTE),
        Bar {
            close: 1.25,
            ..flat_bar(201 * MINUTE)
        },
    ];
    let err = o.set_bars(SYM, TF, &write).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Codec, "{err}");
    assert_eq!(members(server), set_before, "a run was written");
    assert_eq!(server.raw_get(HEAD), head_before, "the head was written");
}

#[tokio::test]
async fn a_series_redis_lost_half_of_starts_over_at_the_next_write() {
    let t = support::with_redis().await;
    let server = t.server.as_ref().unwrap();
    let o = t.cache.ohlcv();
    for lost in [HEAD, SET] {
        o.set_bars(SYM, TF, &minutes(0..300)).await.unwrap();
        redis::cmd("DEL").arg(lost).exec(&mut server.raw()).unwrap();
        // A bar among the stored ones, and one after them.
        let write = [flat_bar(100 * MINUTE), flat_bar(400 * MINUTE)];
        o.set_bars(SYM, TF, &write).await.unwrap();
        layout_ok(server);
        let all = o.get_bars(SYM, TF, 1_000).await.unwrap().unwrap();
        let times: Vec<i64> = all.iter().map(|b| b.timestamp).collect();
        assert_eq!(
            times,
            vec![400 * MINUTE, 100 * MINUTE],
            "after losing {lost}"
        );
        let latest = o.get_latest_bar(SYM, TF).await.unwrap();
        assert_eq!(latest.map(|b| b.timestamp), Some(400 * MINUTE));
        o.invalidate(SYM, TF).await.unwrap();
    }
}

#[tokio::test]
async fn the_cap_skips_a_foreign_member_and_counts_only_bars() {
    let t = support::with_redis().await;
    let server = t.server.as_ref().unwrap();
    let o = t.cache.ohlcv();
    o.set_bars(SYM, TF, &minutes(1..11)).await.unwrap();
    plant(server, 0, b"IF\x07\x02garbage!!");
    let cap = BarWriteOptions::new().max_bars(NonZeroUsize::new(5).unwrap());
    o.set_bars_with(SYM, TF, &[flat_bar(11 * MINUTE)], cap)
        .await
        .unwrap();
    layout_ok(server);
    let all = o.get_bars(SYM, TF, 100).await.unwrap().unwrap();
    let times: Vec<i64> = all.iter().map(|b| b.timestamp / MINUTE).collect();
    assert_eq!(times, vec![11, 10, 9, 8, 7]);
}

#[tokio::test]
async fn a_write_after_redis_lost_its_scripts_loads_the_script_again() {
    let t = support::with_redis().await;
    let server = t.server.as_ref().unwrap();
    let o = t.cache.ohlcv();
    o.set_bars(SYM, TF, &minutes(0..10)).await.unwrap();
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .exec(&mut server.raw())
        .unwrap();
    server.reset_command_counts();
    o.set_bars(SYM, TF, &minutes(10..20)).await.unwrap();
    // The EVALSHA met NOSCRIPT; the resend as EVAL ran and loaded the script.
    let seen = server.command_counts();
    assert_eq!(seen.get("evalsha"), Some(&1), "{seen:?}");
    assert_eq!(seen.get("eval"), Some(&1), "{seen:?}");
    server.reset_command_counts();
    o.set_bars(SYM, TF, &minutes(20..30)).await.unwrap();
    let seen = server.command_counts();
    assert_eq!(
        seen.get("evalsha"),
        Some(&1),
        "the script stayed loaded: {seen:?}"
    );
    assert_eq!(seen.get("eval"), None, "{seen:?}");
    let all = o.get_bars(SYM, TF, 100).await.unwrap().unwrap();
    assert_eq!(all.len(), 30);
}
