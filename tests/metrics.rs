//! `stats()` per operation: calls, hits, misses, errors by kind and
//! latencies, on each backend, under the shapes a bot meets: batch reads,
//! a corrupt value, a frozen Redis, a cancelled call, many threads at once;
//! and, with the `metrics` feature, the same through the `metrics` facade.

mod support;

use iftb_cache::{CacheConfig, CacheManager, ErrorKind, Op, OpStats};
use std::time::Duration;
use support::{btc_ticker, connect, connect_bounded, minute_bars, RedisServer, RESPONSE, SYM, TF};

fn op(cache: &CacheManager, op: Op) -> OpStats {
    let stats = cache.stats();
    stats
        .op(op)
        .cloned()
        .unwrap_or_else(|| panic!("no {op} in {stats:?}"))
}

/// 3 hits and 2 misses of `get_latest_bar`, a batch of 4 tickers (2
/// cached), and a bad symbol: what each counts.
async fn mixed_calls(cache: &CacheManager) {
    let ohlcv = cache.ohlcv();
    ohlcv
        .set_bars(SYM, TF, &minute_bars(10, 1.0))
        .await
        .unwrap();
    for _ in 0..3 {
        assert!(ohlcv.get_latest_bar(SYM, TF).await.unwrap().is_some());
    }
    for _ in 0..2 {
        assert!(ohlcv.get_latest_bar("NONE", TF).await.unwrap().is_none());
    }
    let market = cache.market();
    market.set_ticker("AUSDT", &btc_ticker()).await.unwrap();
    market.set_ticker("BUSDT", &btc_ticker()).await.unwrap();
    let got = market
        .get_tickers(&["AUSDT", "XUSDT", "BUSDT", "YUSDT"])
        .await
        .unwrap();
    assert_eq!(got.iter().filter(|t| t.is_some()).count(), 2);
    assert!(ohlcv.get_latest_bar("BAD SYMBOL", TF).await.is_err());
}

fn assert_mixed_counted(cache: &CacheManager) {
    let latest = op(cache, Op::GetLatestBar);
    // The bad symbol is a call, but neither a read nor a failure of the cache.
    assert_eq!((latest.calls, latest.hits, latest.misses), (6, 3, 2));
    assert_eq!(latest.errors(), 0, "{latest:?}");
    assert_eq!(latest.hit_rate(), Some(0.6));
    let batch = op(cache, Op::GetTickers);
    assert_eq!((batch.calls, batch.hits, batch.misses), (1, 2, 2));
    let set = op(cache, Op::SetTicker);
    assert_eq!((set.calls, set.hits, set.misses), (2, 0, 0));
    assert_eq!(op(cache, Op::SetBars).calls, 1);
    let stats = cache.stats();
    assert!(stats.op(Op::GetFearGreed).is_none(), "never called");
    // The totals are the operations' sums.
    assert_eq!((stats.hits, stats.misses), (5, 4));
    let ops: Vec<Op> = stats.ops.iter().map(|o| o.op).collect();
    let mut sorted = ops.clone();
    sorted.sort();
    assert_eq!(ops, sorted, "in declaration order");
}

#[tokio::test]
async fn embedded_counts_each_operation_and_times_one_call_in_eight() {
    let cache = CacheManager::connect(CacheConfig::embedded())
        .await
        .unwrap();
    mixed_calls(&cache).await;
    assert_mixed_counted(&cache);
    // The first call of each operation is timed, then one in 8 at random.
    assert_eq!(op(&cache, Op::SetBars).latency.unwrap().samples, 1);
    for _ in 0..7_994 {
        cache.ohlcv().get_latest_bar(SYM, TF).await.unwrap();
    }
    let latest = op(&cache, Op::GetLatestBar);
    assert_eq!(latest.calls, 8_000);
    let l = latest.latency.expect("timed");
    assert!((850..=1_150).contains(&l.samples), "{l:?}");
    assert!(l.p50 > Duration::ZERO && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.max);
}

#[tokio::test]
async fn redis_counts_each_operation_and_times_every_round_trip() {
    let server = RedisServer::start();
    let cache = connect(&server, |b| b).await;
    mixed_calls(&cache).await;
    assert_mixed_counted(&cache);
    let latest = op(&cache, Op::GetLatestBar).latency.expect("timed");
    assert_eq!(latest.samples, 6);
    // A loopback round trip: more than a microsecond, less than a second.
    assert!(latest.p50 > Duration::from_micros(1), "{latest:?}");
    assert!(latest.max < Duration::from_secs(1), "{latest:?}");
}

#[tokio::test]
async fn a_corrupt_value_counts_a_codec_error_of_its_operation() {
    let server = RedisServer::start();
    let cache = connect(&server, |b| b).await;
    server.raw_set(&format!("iftb:v2:ticker:{{{SYM}}}"), b"not ours");
    let err = cache.market().get_ticker(SYM).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Codec);
    let get = op(&cache, Op::GetTicker);
    assert_eq!(get.errors, vec![(ErrorKind::Codec, 1)]);
    assert_eq!((get.calls, get.hits, get.misses), (1, 0, 0));
    assert_eq!(cache.stats().codec_errors, 1);
}

#[tokio::test]
async fn a_frozen_redis_counts_a_timeout_then_fast_failures_each_timed() {
    let server = RedisServer::start();
    let cache = connect_bounded(&server, false).await;
    cache
        .ohlcv()
        .set_bars(SYM, TF, &minute_bars(3, 1.0))
        .await
        .unwrap();
    server.freeze();
    for _ in 0..5 {
        assert!(cache.ohlcv().get_latest_bar(SYM, TF).await.is_err());
    }
    server.thaw();
    let latest = op(&cache, Op::GetLatestBar);
    assert_eq!(latest.errors_of(ErrorKind::Timeout), 1, "{latest:?}");
    assert_eq!(latest.errors_of(ErrorKind::CircuitOpen), 4, "{latest:?}");
    let l = latest.latency.unwrap();
    assert_eq!(l.samples, 5);
    // The slowest waited out the response timeout; the median failed fast.
    assert!(l.max >= RESPONSE, "{l:?}");
    assert!(l.p50 < RESPONSE / 10, "{l:?}");
}

#[tokio::test]
async fn a_cancelled_call_is_counted_and_timed_until_dropped() {
    let server = RedisServer::start();
    let cache = connect_bounded(&server, false).await;
    server.freeze();
    let ohlcv = cache.ohlcv();
    let read = ohlcv.get_latest_bar(SYM, TF);
    let cut = Duration::from_millis(50);
    assert!(tokio::time::timeout(cut, read).await.is_err(), "cancelled");
    server.thaw();
    let latest = op(&cache, Op::GetLatestBar);
    assert_eq!((latest.calls, latest.errors()), (1, 0));
    let l = latest.latency.expect("timed");
    assert!(l.max >= cut && l.max < RESPONSE, "{l:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_from_many_threads_at_once_all_count() {
    let cache = CacheManager::connect(CacheConfig::embedded())
        .await
        .unwrap();
    cache
        .ohlcv()
        .set_bars(SYM, TF, &minute_bars(3, 1.0))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let cache = cache.clone();
            tokio::spawn(async move {
                for i in 0..2_000 {
                    let symbol = if (i + t) % 2 == 0 { SYM } else { "NONE" };
                    cache.ohlcv().get_latest_bar(symbol, TF).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let latest = op(&cache, Op::GetLatestBar);
    assert_eq!(
        (latest.calls, latest.hits, latest.misses),
        (16_000, 8_000, 8_000)
    );
    let samples = latest.latency.unwrap().samples;
    // One in 8 at random: 2,000 expected, a binomial's spread about 45.
    assert!((1_800..=2_200).contains(&samples), "{samples}");
}

#[tokio::test]
async fn metrics_off_counts_no_calls_but_still_the_failures() {
    let server = RedisServer::start();
    let cache = connect(&server, |b| b.metrics(false)).await;
    cache
        .ohlcv()
        .set_bars(SYM, TF, &minute_bars(3, 1.0))
        .await
        .unwrap();
    cache.ohlcv().get_latest_bar(SYM, TF).await.unwrap();
    server.raw_set(&format!("iftb:v2:ticker:{{{SYM}}}"), b"not ours");
    assert!(cache.market().get_ticker(SYM).await.is_err());
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.errors), (0, 0, 1));
    assert_eq!(stats.ops.len(), 1, "{stats:?}");
    let get = &stats.ops[0];
    assert_eq!((get.op, get.calls, get.latency), (Op::GetTicker, 0, None));
    assert_eq!(get.errors, vec![(ErrorKind::Codec, 1)]);
}

#[tokio::test]
async fn every_public_call_has_an_operation_of_its_own() {
    let cache = CacheManager::connect(CacheConfig::embedded())
        .await
        .unwrap();
    // How many of each operation the list of every call makes: a `*_with`
    // (or `*_within`) variant counts as its call.
    let mut expected = std::collections::HashMap::from([("ping", 1u64)]);
    for call in support::every_call() {
        let name = call.name.split_once('.').unwrap().1;
        let name = name.strip_suffix("_within").unwrap_or(name);
        let name = name.strip_suffix("_with").unwrap_or(name);
        *expected.entry(name).or_default() += 1;
    }
    support::run_every_call(&cache).await;
    assert!(cache.health_check().await);
    let stats = cache.stats();
    // A lock's own round trips happen only when computations race or run long.
    let lock_ops = [Op::LlmLock, Op::LlmLockRenew, Op::LlmUnlock];
    for want in Op::ALL.iter().filter(|o| !lock_ops.contains(o)) {
        let calls = stats.op(*want).map_or(0, |o| o.calls);
        assert_eq!(
            Some(&calls),
            expected.get(want.as_str()),
            "{want}: {stats:?}"
        );
    }
}

#[cfg(feature = "metrics")]
mod facade {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use metrics_util::MetricKind;

    fn value_of<'a>(
        snapshot: &'a [(metrics_util::CompositeKey, DebugValue)],
        name: &str,
        op: &str,
    ) -> Option<&'a DebugValue> {
        snapshot.iter().find_map(|(key, value)| {
            let labels: Vec<_> = key.key().labels().map(|l| (l.key(), l.value())).collect();
            let matches = key.key().name() == name
                && labels.contains(&("op", op))
                && labels.contains(&("namespace", "iftb"));
            matches.then_some(value)
        })
    }

    #[test]
    fn every_counter_goes_to_the_installed_recorder() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Registered at connect, under the recorder installed then.
        let cache = metrics::with_local_recorder(&recorder, || {
            rt.block_on(CacheManager::connect(CacheConfig::embedded()))
        })
        .unwrap();
        rt.block_on(async {
            mixed_calls(&cache).await;
        });
        let snapshot: Vec<_> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(k, _, _, v)| (k, v))
            .collect();
        let counter = |name, op| match value_of(&snapshot, name, op) {
            Some(DebugValue::Counter(n)) => *n,
            other => panic!("{name} {op}: {other:?}"),
        };
        assert_eq!(counter("iftb_cache_calls_total", "get_latest_bar"), 6);
        assert_eq!(counter("iftb_cache_hits_total", "get_latest_bar"), 3);
        assert_eq!(counter("iftb_cache_misses_total", "get_tickers"), 2);
        match value_of(
            &snapshot,
            "iftb_cache_call_duration_seconds",
            "get_latest_bar",
        ) {
            // The first of the 6 calls, and each other one in 8 at random.
            Some(DebugValue::Histogram(v)) => assert!((1..=6).contains(&v.len()), "{v:?}"),
            other => panic!("duration: {other:?}"),
        }
        let kinds: Vec<_> = snapshot.iter().map(|(k, _)| k.kind()).collect();
        assert!(kinds.contains(&MetricKind::Histogram));
    }
}
