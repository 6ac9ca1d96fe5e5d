//! Real faults against real `redis-server` processes: killed (SIGKILL),
//! frozen (SIGSTOP), restarted on the same port, evicting under `maxmemory`,
//! and hammered by 64 tasks at once. Every call stays bounded by the
//! configured timeouts, and no read ever returns a bar that was not written
//! for its timestamp.

mod support;

use iftb_cache::{
    Bar, BarWriteOptions, CacheConfig, CacheManager, CacheStats, Error, Result, Timeframe,
};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{bar_at, btc_ticker, minute_bars, sample_fear_greed, RedisServer, HASH};

const SYM: &str = "BTCUSDT";
const TF: Timeframe = Timeframe::M1;
/// The response timeout of these tests: short, so that faults are quick to see.
const RESPONSE: Duration = Duration::from_millis(300);
/// What a call may take past the response timeout: the backend's own 250 ms
/// margin, plus slack for a loaded 2-core CI machine.
const SLACK: Duration = Duration::from_millis(500);

fn config(server: &RedisServer, fail_open: bool) -> CacheConfig {
    CacheConfig::builder()
        .redis_url(&server.url())
        .response_timeout(RESPONSE)
        .connect_timeout(RESPONSE)
        .fail_open(fail_open)
        .build()
        .expect("config")
}

async fn connect(server: &RedisServer, fail_open: bool) -> CacheManager {
    CacheManager::connect(config(server, fail_open))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", server.log()))
}

/// What a call is, for what fail-open mode does with it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Read,
    Write,
    /// A read, then on a miss a computation and a write (`get_or_compute`).
    Compute,
    /// Health and clearing: never fail open.
    Admin,
}

/// What a call returned, reduced to what the fault tests check.
#[derive(Debug, PartialEq)]
enum Outcome {
    Hit,
    Miss,
    Done,
}

fn done<T>(_: T) -> Outcome {
    Outcome::Done
}

fn found<T>(value: Option<T>) -> Outcome {
    if value.is_some() {
        Outcome::Hit
    } else {
        Outcome::Miss
    }
}

fn any_found<T>(values: Vec<Option<T>>) -> Outcome {
    found(values.into_iter().flatten().next())
}

type CallFuture = Pin<Box<dyn Future<Output = Result<Outcome>> + Send>>;
type CallFn = fn(CacheManager) -> CallFuture;

/// Every public call that reaches the backend, each with what it is.
fn every_call() -> Vec<(&'static str, Op, CallFn)> {
    use Op::*;
    vec![
        ("ohlcv.set_bars", Write, |c| {
            Box::pin(async move {
                c.ohlcv()
                    .set_bars(SYM, TF, &minute_bars(3, 1.0))
                    .await
                    .map(done)
            })
        }),
        ("ohlcv.set_bars_with_ttl", Write, |c| {
            Box::pin(async move {
                let ttl = Duration::from_secs(60);
                let o = c.ohlcv();
                o.set_bars_with_ttl(SYM, TF, &minute_bars(3, 1.0), ttl)
                    .await
                    .map(done)
            })
        }),
        ("ohlcv.set_bars_with", Write, |c| {
            Box::pin(async move {
                let opts = BarWriteOptions::new().max_bars(NonZeroUsize::new(2).unwrap());
                let o = c.ohlcv();
                o.set_bars_with(SYM, TF, &minute_bars(3, 1.0), opts)
                    .await
                    .map(done)
            })
        }),
        ("ohlcv.invalidate", Write, |c| {
            Box::pin(async move { c.ohlcv().invalidate("ETHUSDT", TF).await.map(done) })
        }),
        ("ohlcv.get_bars", Read, |c| {
            Box::pin(async move { c.ohlcv().get_bars(SYM, TF, 10).await.map(found) })
        }),
        ("ohlcv.get_bars_archived", Read, |c| {
            Box::pin(async move { c.ohlcv().get_bars_archived(SYM, TF, 10).await.map(found) })
        }),
        ("ohlcv.get_range", Read, |c| {
            Box::pin(async move { c.ohlcv().get_range(SYM, TF, 0, i64::MAX).await.map(found) })
        }),
        ("ohlcv.get_latest_bar", Read, |c| {
            Box::pin(async move { c.ohlcv().get_latest_bar(SYM, TF).await.map(found) })
        }),
        ("ohlcv.get_latest_bars", Read, |c| {
            Box::pin(async move {
                let series = [(SYM, TF), ("ETHUSDT", TF)];
                c.ohlcv().get_latest_bars(&series).await.map(any_found)
            })
        }),
        ("client.set", Write, |c| {
            Box::pin(async move { c.client().set("k", "v", None).await.map(done) })
        }),
        ("client.set_bytes", Write, |c| {
            Box::pin(async move {
                let value = bytes::Bytes::from_static(b"\x00\x01");
                c.client().set_bytes("b", value, None).await.map(done)
            })
        }),
        ("client.set_json", Write, |c| {
            Box::pin(async move {
                let doc = serde_json::json!({"a": 1});
                c.client().set_json("j", &doc, None).await.map(done)
            })
        }),
        ("client.delete", Write, |c| {
            Box::pin(async move { c.client().delete("gone").await.map(done) })
        }),
        ("client.get", Read, |c| {
            Box::pin(async move { c.client().get("k").await.map(found) })
        }),
        ("client.get_bytes", Read, |c| {
            Box::pin(async move { c.client().get_bytes("b").await.map(found) })
        }),
        ("client.get_json", Read, |c| {
            Box::pin(async move {
                let v: Option<serde_json::Value> = c.client().get_json("j").await?;
                Ok(found(v))
            })
        }),
        ("client.mget", Read, |c| {
            Box::pin(async move { c.client().mget(&["k", "b"]).await.map(any_found) })
        }),
        ("client.exists", Read, |c| {
            Box::pin(async move {
                let hit = c.client().exists("k").await?;
                Ok(if hit { Outcome::Hit } else { Outcome::Miss })
            })
        }),
        ("market.set_ticker", Write, |c| {
            Box::pin(async move { c.market().set_ticker(SYM, &btc_ticker()).await.map(done) })
        }),
        ("market.set_tickers", Write, |c| {
            Box::pin(async move { c.market().set_tickers(&[btc_ticker()]).await.map(done) })
        }),
        ("market.set_funding_rate", Write, |c| {
            Box::pin(async move { c.market().set_funding_rate(SYM, 0.0001).await.map(done) })
        }),
        ("market.set_funding_rates", Write, |c| {
            Box::pin(async move {
                let rates = [(SYM, 0.0001), ("ETHUSDT", -0.0002)];
                c.market().set_funding_rates(&rates).await.map(done)
            })
        }),
        ("market.set_fear_greed", Write, |c| {
            Box::pin(async move {
                c.market()
                    .set_fear_greed(&sample_fear_greed())
                    .await
                    .map(done)
            })
        }),
        ("market.get_ticker", Read, |c| {
            Box::pin(async move { c.market().get_ticker(SYM).await.map(found) })
        }),
        ("market.get_tickers", Read, |c| {
            Box::pin(async move {
                c.market()
                    .get_tickers(&[SYM, "ETHUSDT"])
                    .await
                    .map(any_found)
            })
        }),
        ("market.get_funding_rate", Read, |c| {
            Box::pin(async move { c.market().get_funding_rate(SYM).await.map(found) })
        }),
        ("market.get_funding_rates", Read, |c| {
            Box::pin(async move { c.market().get_funding_rates(&[SYM]).await.map(any_found) })
        }),
        ("market.get_fear_greed", Read, |c| {
            Box::pin(async move { c.market().get_fear_greed().await.map(found) })
        }),
        ("llm.set_analysis", Write, |c| {
            Box::pin(async move {
                let doc = serde_json::json!({"sentiment": "bullish"});
                c.llm()
                    .set_analysis("sentiment", HASH, &doc)
                    .await
                    .map(done)
            })
        }),
        ("llm.get_analysis", Read, |c| {
            Box::pin(async move {
                let llm = c.llm();
                let got = llm
                    .get_analysis::<serde_json::Value>("sentiment", HASH)
                    .await;
                got.map(found)
            })
        }),
        ("llm.get_or_compute", Compute, |c| {
            Box::pin(async move {
                let ask = || async { Ok::<_, std::io::Error>("bullish".to_string()) };
                let llm = c.llm();
                llm.get_or_compute("sentiment", "faults", ask)
                    .await
                    .map(done)
            })
        }),
        ("manager.clear_all", Admin, |c| {
            Box::pin(async move { c.clear_all().await.map(done) })
        }),
        ("manager.flush_db", Admin, |c| {
            Box::pin(async move { c.flush_db().await.map(done) })
        }),
    ]
}

/// One call's name, kind, result and duration.
struct Ran {
    name: &'static str,
    op: Op,
    result: Result<Outcome>,
    took: Duration,
}

/// Runs every call at once, each in its own task, and times each.
async fn run_every_call(cache: &CacheManager) -> Vec<Ran> {
    let tasks: Vec<_> = every_call()
        .into_iter()
        .map(|(name, op, call)| {
            let fut = call(cache.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let result = fut.await;
                Ran {
                    name,
                    op,
                    result,
                    took: started.elapsed(),
                }
            })
        })
        .collect();
    let mut ran = Vec::new();
    for task in tasks {
        ran.push(task.await.expect("a call panicked"));
    }
    ran
}

/// Writes what the reads of `every_call` find.
async fn seed(cache: &CacheManager) {
    for (name, op, call) in every_call() {
        if op == Op::Write {
            call(cache.clone())
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    cache
        .ohlcv()
        .set_bars(SYM, TF, &minute_bars(3, 1.0))
        .await
        .unwrap();
}

fn assert_bounded(ran: &Ran, server: &RedisServer) {
    assert!(
        ran.took <= RESPONSE + SLACK,
        "{} took {:?}, over {RESPONSE:?} + {SLACK:?}\n{}",
        ran.name,
        ran.took,
        server.log()
    );
}

fn assert_unavailable(ran: &Ran, server: &RedisServer) {
    match &ran.result {
        Err(e) if e.is_unavailable() => {}
        other => panic!(
            "{}: expected a connection or timeout error, got {other:?}\n{}",
            ran.name,
            server.log()
        ),
    }
    assert_bounded(ran, server);
}

async fn timed_health(cache: &CacheManager) -> (bool, Duration) {
    let started = Instant::now();
    (cache.health_check().await, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_fails_fast_with_a_connection_error_when_redis_is_killed() {
    let mut server = RedisServer::start();
    let cache = connect(&server, false).await;
    seed(&cache).await;
    server.kill();
    // The first round meets the dropped connection, the second the manager's
    // refused reconnections: both are connection errors within the bound.
    for _round in 0..2 {
        for ran in run_every_call(&cache).await {
            assert_unavailable(&ran, &server);
        }
        let (healthy, took) = timed_health(&cache).await;
        assert!(
            !healthy && took <= RESPONSE + SLACK,
            "health {healthy} in {took:?}"
        );
    }
    let stats = cache.stats();
    assert!(stats.errors >= 2 * every_call().len() as u64, "{stats:?}");
    assert_eq!(stats.fail_open_misses + stats.fail_open_dropped_writes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_times_out_when_redis_is_frozen_and_serves_again_after() {
    let server = RedisServer::start();
    let cache = connect(&server, false).await;
    seed(&cache).await;
    server.freeze();
    let ran = run_every_call(&cache).await;
    let (healthy, took) = timed_health(&cache).await;
    server.thaw();
    for ran in &ran {
        assert_unavailable(ran, &server);
    }
    assert!(
        !healthy && took <= RESPONSE + SLACK,
        "health {healthy} in {took:?}"
    );
    // Thawed, the same connection answers again; what was written is intact
    // (the frozen calls' late writes land too: they are the same values).
    assert!(cache.health_check().await, "{}", server.log());
    let newest = cache.ohlcv().get_bars(SYM, TF, 10).await.unwrap();
    let newest = newest.unwrap_or_default();
    assert!(
        newest.iter().all(|b| minute_bars(3, 1.0).contains(b)),
        "{newest:?}"
    );
}

/// Polls `health_check` until it answers, and returns how long that took.
async fn time_to_healthy(cache: &CacheManager, within: Duration) -> Duration {
    let started = Instant::now();
    while !cache.health_check().await {
        assert!(started.elapsed() < within, "not serving after {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_manager_serves_again_after_redis_restarts() {
    let mut server = RedisServer::start();
    let cache = connect(&server, false).await;
    seed(&cache).await;

    // Down for a while with calls failing, then back: the very first call
    // after the restart is served, on a connection the manager made itself.
    server.kill();
    assert!(cache.client().get("k").await.unwrap_err().is_unavailable());
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();
    let first = cache.client().set("k", "back", None).await;
    assert!(first.is_ok(), "{first:?}\n{}", server.log());
    assert_eq!(
        cache.client().get("k").await.unwrap().as_deref(),
        Some("back")
    );

    // Killed and restarted with no call at all in between: serving again
    // within a few seconds, without the user doing anything.
    server.kill();
    server.restart();
    let took = time_to_healthy(&cache, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(3), "{took:?}");
    for ran in run_every_call(&cache).await {
        if ran.op != Op::Admin {
            assert!(ran.result.is_ok(), "{}: {:?}", ran.name, ran.result);
        }
    }
}

/// The series as Redis holds it now, straight from the sorted set: blocks of
/// 52-byte bar records scored by their start (the `#count` member is below 0).
fn stored_series(server: &RedisServer, symbol: &str) -> Vec<Bar> {
    let key = format!("iftb:ohlcv:{{{symbol}:{TF}}}");
    let blocks: Vec<Vec<u8>> = redis::cmd("ZRANGE")
        .arg(&key)
        .arg(0)
        .arg("+inf")
        .arg("BYSCORE")
        .query(&mut server.raw())
        .unwrap_or_else(|e| panic!("ZRANGE {key}: {e}\n{}", server.log()));
    blocks
        .iter()
        .flat_map(|b| b.chunks(iftb_cache::codec::BAR_LEN))
        .map(|r| iftb_cache::codec::decode::<Bar>(r).expect("a stored record decodes"))
        .collect()
}

/// Bars per script call in `backend/redis.rs`: about 2,000, ending on a block
/// boundary (64 bars), so 2,048 for these aligned 1-minute bars. A batch is
/// applied in chunks of this many bars, each whole.
const CHUNK_BARS: usize = 2_048;

/// Checks that each chunk of a batch `new` over a series that held `old` is
/// either all old or all new, and that every bar is one of the two.
fn assert_chunk_whole(stored: &[Bar], old: &[Bar], new: &[Bar]) -> usize {
    assert_eq!(stored.len(), old.len(), "a bar went missing or appeared");
    let mut chunks_applied = 0;
    for (i, chunk) in stored.chunks(CHUNK_BARS).enumerate() {
        let range = i * CHUNK_BARS..i * CHUNK_BARS + chunk.len();
        let is_new = chunk == &new[range.clone()];
        assert!(
            is_new || chunk == &old[range],
            "chunk {i} is neither all old nor all new"
        );
        chunks_applied += usize::from(is_new);
    }
    chunks_applied
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_cut_by_a_crash_is_applied_chunk_whole_or_reported_failed() {
    // The append-only file, fsynced before each reply, shows after a restart
    // what Redis had applied when it was killed.
    let args = ["--appendonly", "yes", "--appendfsync", "always"];
    let mut server = RedisServer::start_with(&args);
    let n = 10 * 2_000;
    let (old, new) = (minute_bars(n, 100.0), minute_bars(n, 5_000.0));
    let mut outcomes = Vec::new();
    for trial in 0..6u64 {
        let symbol = format!("CUT{trial}");
        let cache = CacheManager::connect(
            CacheConfig::builder()
                .redis_url(&server.url())
                .response_timeout(Duration::from_secs(3))
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
        cache.ohlcv().set_bars(&symbol, TF, &old).await.unwrap();
        let writer = {
            let (cache, symbol, new) = (cache.clone(), symbol.clone(), new.clone());
            tokio::spawn(async move { cache.ohlcv().set_bars(&symbol, TF, &new).await })
        };
        // From "before the batch is sent" to "after it is answered".
        tokio::time::sleep(Duration::from_millis(trial * 12)).await;
        server.kill();
        let result = tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .expect("the cut write returned")
            .expect("no panic");
        server.restart();
        server.wait_loaded();
        let stored = stored_series(&server, &symbol);
        let applied = assert_chunk_whole(&stored, &old, &new);
        match &result {
            Ok(()) => assert_eq!(applied, 10, "reported written, not all chunks landed"),
            Err(e) => assert!(e.is_unavailable(), "{e}"),
        }
        // Through the cache too: every bar read is one written for its time.
        let read = cache.ohlcv().get_range(&symbol, TF, 0, i64::MAX).await;
        let read = read.unwrap().unwrap();
        assert_chunk_whole(&read, &old, &new);
        outcomes.push((result.is_ok(), applied));
    }
    eprintln!("(reported ok, chunks applied) per trial: {outcomes:?}");
    assert!(
        outcomes.iter().any(|(ok, _)| !ok),
        "no write was cut: {outcomes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_cut_by_a_freeze_times_out_and_lands_chunk_whole() {
    let server = RedisServer::start();
    let cache = connect(&server, false).await;
    let n = 10 * 2_000;
    let (old, new) = (minute_bars(n, 100.0), minute_bars(n, 5_000.0));
    cache.ohlcv().set_bars(SYM, TF, &old).await.unwrap();
    let writer = {
        let (cache, new) = (cache.clone(), new.clone());
        tokio::spawn(async move { cache.ohlcv().set_bars(SYM, TF, &new).await })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    server.freeze();
    // While frozen, a reader sees a timeout, never a torn series.
    let read = cache.ohlcv().get_range(SYM, TF, 0, i64::MAX).await;
    let result = writer.await.unwrap();
    server.thaw();
    assert!(read.unwrap_err().is_unavailable());
    match &result {
        Ok(()) => {}
        Err(e) => assert!(e.is_timeout(), "{e}"),
    }
    // Redis finishes what it had received when thawed: chunk-whole, always.
    let stored = stored_series(&server, SYM);
    let applied = assert_chunk_whole(&stored, &old, &new);
    eprintln!("write {result:?}, then {applied} of 10 chunks applied");
    let read = cache.ohlcv().get_range(SYM, TF, 0, i64::MAX).await.unwrap();
    assert_chunk_whole(&read.unwrap(), &old, &new);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_loads_after_a_restart_calls_are_unavailable_or_fail_open() {
    // Loading made slow on purpose: 300 µs per key, 1.5 s for 5,000 keys,
    // with clients answered (LOADING) every kilobyte loaded.
    let args = [
        "--key-load-delay",
        "300",
        "--loading-process-events-interval-bytes",
        "1024",
    ];
    let mut server = RedisServer::start_with(&args);
    let strict = connect(&server, false).await;
    let lenient = connect(&server, true).await;
    seed(&strict).await;
    let mut raw = server.raw();
    let fill = "for i = 1, 5000 do redis.call('SET', 'filler:' .. i, 'x') end";
    redis::cmd("EVAL").arg(fill).arg(0).exec(&mut raw).unwrap();
    redis::cmd("SAVE").exec(&mut raw).unwrap();
    drop(raw);
    server.restart();

    for ran in run_every_call(&strict).await {
        assert_unavailable(&ran, &server);
    }
    let ran = run_every_call(&lenient).await;
    assert_failed_open(&ran, &server);
    let loading: String = redis::cmd("INFO")
        .arg("persistence")
        .query(&mut server.raw())
        .unwrap();
    assert!(
        loading.contains("loading:1"),
        "loading ended before the checks"
    );

    server.wait_loaded();
    let served = strict.client().get("k").await;
    assert_eq!(served.unwrap().as_deref(), Some("v"), "{}", server.log());
    assert!(lenient
        .ohlcv()
        .get_bars(SYM, TF, 3)
        .await
        .unwrap()
        .is_some());
}

/// Each symbol's bars are a pure function of (symbol, timestamp): any bar
/// read can be checked on its own.
fn expected_bar(symbol_index: usize, ts: i64) -> Bar {
    bar_at(ts, (symbol_index * 1_000_000) as f64 + ts as f64 / 60_000.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicting_under_maxmemory_returns_correct_bars_or_misses() {
    let args = ["--maxmemory", "3mb", "--maxmemory-policy", "allkeys-lru"];
    let server = RedisServer::start_with(&args);
    let cache = connect(&server, false).await;
    const SYMBOLS: usize = 60;
    let symbol = |i: usize| format!("EV{i}");
    let writers = (0..2).map(|w| {
        let cache = cache.clone();
        tokio::spawn(async move {
            let mut refused = 0;
            for round in 0..4 {
                for i in (w..SYMBOLS).step_by(2) {
                    let ts0 = round * 500 * 60_000;
                    let batch: Vec<Bar> = (0..500)
                        .map(|k| expected_bar(i, ts0 + k * 60_000))
                        .collect();
                    let ttl = Duration::from_secs(600);
                    match cache
                        .ohlcv()
                        .set_bars_with_ttl(&symbol(i), TF, &batch, ttl)
                        .await
                    {
                        Ok(()) => {}
                        // Redis may refuse a write it cannot make room for.
                        Err(e) if e.kind() == iftb_cache::ErrorKind::Server => refused += 1,
                        Err(e) => panic!("write: {e}"),
                    }
                    let kv = format!("v{i}:{round}");
                    let _ = cache.client().set(&kv, &"x".repeat(2_000), None).await;
                }
            }
            refused
        })
    });
    let writers: Vec<_> = writers.collect();
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let cache = cache.clone();
            tokio::spawn(async move {
                let (mut hits, mut misses) = (0, 0);
                for k in 0..600 {
                    let i = (k * 7 + r) % SYMBOLS;
                    let o = cache.ohlcv();
                    let read = match k % 3 {
                        0 => o.get_bars(&symbol(i), TF, 200).await,
                        1 => o.get_range(&symbol(i), TF, 0, 1_000 * 60_000).await,
                        _ => o
                            .get_latest_bar(&symbol(i), TF)
                            .await
                            .map(|b| b.map(|b| vec![b])),
                    };
                    match read.expect("a read under eviction fails only on bad data") {
                        None => misses += 1,
                        Some(bars) => {
                            hits += 1;
                            for b in bars {
                                assert_eq!(b, expected_bar(i, b.timestamp), "wrong bar");
                            }
                        }
                    }
                }
                (hits, misses)
            })
        })
        .collect();
    let mut refused = 0;
    for w in writers {
        refused += w.await.expect("writer panicked");
    }
    let (mut hits, mut misses) = (0, 0);
    for r in readers {
        let (h, m) = r.await.expect("reader panicked");
        (hits, misses) = (hits + h, misses + m);
    }
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query(&mut server.raw())
        .unwrap();
    let evicted = info
        .lines()
        .find_map(|l| l.strip_prefix("evicted_keys:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    eprintln!(
        "evicted {evicted} keys; reads: {hits} hits, {misses} misses; {refused} writes refused"
    );
    assert!(
        evicted > 0,
        "Redis evicted nothing: the test proved nothing"
    );
    assert_eq!(cache.stats().codec_errors, 0);
}

/// Every bar any task meant to write, by timestamp, registered before the
/// write is sent: a read may return any of them, and nothing else.
#[derive(Default)]
struct Written(Mutex<HashMap<i64, HashSet<[u64; 6]>>>);

fn bits(b: &Bar) -> [u64; 6] {
    [
        b.timestamp as u64,
        b.open.to_bits(),
        b.high.to_bits(),
        b.low.to_bits(),
        b.close.to_bits(),
        b.volume.to_bits(),
    ]
}

impl Written {
    fn register(&self, bars: &[Bar]) {
        let mut map = self.0.lock().unwrap();
        for b in bars {
            map.entry(b.timestamp).or_default().insert(bits(b));
        }
    }

    fn check(&self, bars: &[Bar]) {
        let map = self.0.lock().unwrap();
        for b in bars {
            let known = map.get(&b.timestamp).is_some_and(|s| s.contains(&bits(b)));
            assert!(known, "read a bar never written for its timestamp: {b:?}");
        }
    }
}

/// 64 tasks, each writing batches of bars of its own values for timestamps
/// shared by all, and reading the series back in every way.
async fn sixty_four_tasks_on_one_series(cache: CacheManager) -> CacheStats {
    const TIMESTAMPS: i64 = 40;
    let written = Arc::new(Written::default());
    let tasks: Vec<_> = (0..64u64)
        .map(|task| {
            let (cache, written) = (cache.clone(), written.clone());
            tokio::spawn(async move {
                let mut rng = task.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut next = move || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                for iteration in 0..15u64 {
                    let start = (next() % TIMESTAMPS as u64) as i64;
                    let len = 1 + (next() % 10) as i64;
                    let batch: Vec<Bar> = (start..(start + len).min(TIMESTAMPS))
                        .map(|t| {
                            let v = (task * 1_000 + iteration) as f64;
                            Bar::new(t * 60_000, v, v + 2.0, v - 2.0, v + 1.0, t as f64)
                        })
                        .collect();
                    written.register(&batch);
                    cache.ohlcv().set_bars(SYM, TF, &batch).await.unwrap();
                    let o = cache.ohlcv();
                    let newest = o.get_bars(SYM, TF, 50).await.unwrap().unwrap();
                    written.check(&newest);
                    assert!(newest.windows(2).all(|w| w[0].timestamp > w[1].timestamp));
                    let range = o.get_range(SYM, TF, 0, i64::MAX).await.unwrap().unwrap();
                    written.check(&range);
                    assert!(range.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
                    let latest = o.get_latest_bar(SYM, TF).await.unwrap().unwrap();
                    written.check(&[latest]);
                    let view = o.get_bars_archived(SYM, TF, 50).await.unwrap().unwrap();
                    written.check(&view.to_vec());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a task panicked");
    }
    cache.stats()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_tasks_on_one_series_read_only_written_bars_on_redis() {
    let server = RedisServer::start();
    let stats = sixty_four_tasks_on_one_series(connect(&server, false).await).await;
    assert_eq!(stats.errors, 0, "{stats:?}\n{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_tasks_on_one_series_read_only_written_bars_embedded() {
    let cache = CacheManager::connect(CacheConfig::embedded())
        .await
        .unwrap();
    let stats = sixty_four_tasks_on_one_series(cache).await;
    assert_eq!(stats.errors, 0, "{stats:?}");
}

/// What fail-open mode must do with each call while Redis is unavailable.
fn assert_failed_open(ran: &[Ran], server: &RedisServer) {
    for r in ran {
        match (r.op, &r.result) {
            (Op::Read, Ok(Outcome::Miss)) | (Op::Write | Op::Compute, Ok(Outcome::Done)) => {}
            (Op::Admin, Err(e)) if e.is_unavailable() => {}
            (op, result) => panic!("{} ({op:?}) in fail-open mode gave {result:?}", r.name),
        }
        if r.op == Op::Compute {
            // Its read and its write each wait out the timeout when frozen.
            let bound = 2 * (RESPONSE + Duration::from_millis(250)) + SLACK;
            assert!(r.took <= bound, "{} took {:?}", r.name, r.took);
        } else {
            assert_bounded(r, server);
        }
    }
}

fn count(ran: &[Ran], op: Op) -> u64 {
    ran.iter().filter(|r| r.op == op).count() as u64
}

/// Checks the fail-open counters grew by what `ran` should have added: one
/// miss per read, one dropped write per write, and for a computation one
/// dropped write and one or two misses (it reads again inside its flight).
/// Returns how many calls failed open, each of which emitted one event.
fn assert_fail_open_counted(ran: &[Ran], before: CacheStats, after: CacheStats) -> u64 {
    let (reads, writes) = (count(ran, Op::Read), count(ran, Op::Write));
    let computes = count(ran, Op::Compute);
    let misses = after.fail_open_misses - before.fail_open_misses;
    let least = reads + computes;
    assert!((least..=least + computes).contains(&misses), "{after:?}");
    let drops = after.fail_open_dropped_writes - before.fail_open_dropped_writes;
    assert_eq!(drops, writes + computes, "{after:?}");
    misses + drops
}

#[tokio::test(flavor = "current_thread")]
async fn fail_open_reads_miss_and_writes_drop_while_redis_is_down() {
    let events = support::capture_events();
    let mut server = RedisServer::start();
    let cache = connect(&server, true).await;
    assert!(cache.config().fail_open());
    seed(&cache).await;
    let before = cache.stats();
    server.kill();
    let ran = run_every_call(&cache).await;
    assert_failed_open(&ran, &server);
    let stats = cache.stats();
    let failed_open = assert_fail_open_counted(&ran, before, stats);
    assert!(
        stats.misses > before.misses,
        "fail-open misses count as misses"
    );
    assert_eq!(events.count("cache_fail_open") as u64, failed_open);
    assert!(events.text().contains("outcome=\"write_dropped\""));
    assert!(!cache.health_check().await);

    // Back up: the same manager writes and reads for real again.
    server.restart();
    let bars = minute_bars(3, 7.0);
    cache.ohlcv().set_bars(SYM, TF, &bars).await.unwrap();
    let newest = cache.ohlcv().get_bars(SYM, TF, 3).await.unwrap();
    assert_eq!(newest.unwrap()[0], bars[2]);
    assert_eq!(cache.stats().fail_open_misses, stats.fail_open_misses);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_reads_miss_and_writes_drop_while_redis_is_frozen() {
    let server = RedisServer::start();
    let cache = connect(&server, true).await;
    seed(&cache).await;
    server.freeze();
    let ran = run_every_call(&cache).await;
    server.thaw();
    assert_failed_open(&ran, &server);
    assert_fail_open_counted(&ran, CacheStats::default(), cache.stats());
}

#[tokio::test]
async fn fail_open_is_off_by_default_and_errors_come_back() {
    assert!(!CacheConfig::embedded().fail_open());
    let mut server = RedisServer::start();
    let cache = CacheManager::connect(
        CacheConfig::builder()
            .redis_url(&server.url())
            .response_timeout(RESPONSE)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    server.kill();
    let err: Error = cache.ohlcv().get_bars(SYM, TF, 1).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    let err = cache.client().set("k", "v", None).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    let stats = cache.stats();
    assert_eq!(
        (stats.fail_open_misses, stats.fail_open_dropped_writes),
        (0, 0)
    );
}
