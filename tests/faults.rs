//! Real faults against real `redis-server` processes: killed (SIGKILL),
//! frozen (SIGSTOP), restarted on the same port, evicting under `maxmemory`,
//! and hammered by 64 tasks at once. Every call stays bounded by the
//! configured timeouts, and no read ever returns a bar that was not written
//! for its timestamp.

mod support;

use iftb_cache::{Bar, BarWriteOptions, CacheConfig, CacheManager, CacheStats};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::series::bar_bits;
use support::{
    assert_failed_open, assert_unavailable, bar_at, connect_bounded, every_call, minute_bars,
    run_every_call, seed, ticker, time_to_healthy, Op, RedisServer, RESPONSE, SLACK, SYM, TF,
};

async fn timed_health(cache: &CacheManager) -> (bool, Duration) {
    let started = Instant::now();
    (cache.health_check().await, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_fails_fast_as_unavailable_when_redis_is_killed() {
    let mut server = RedisServer::start();
    let cache = connect_bounded(&server, false).await;
    seed(&cache).await;
    server.kill();
    // The first round meets the dropped connection (and opens the circuit
    // breaker), the second the breaker's fast failures: all unavailable
    // within the bound.
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
async fn every_call_fails_unavailable_when_redis_is_frozen_and_serves_again_after() {
    let server = RedisServer::start();
    let cache = connect_bounded(&server, false).await;
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
    // Thawed, the same connection answers again (once the circuit breaker's
    // probe does); what was written is intact (the frozen calls' late
    // writes land too: they are the same values).
    time_to_healthy(&cache, Duration::from_secs(2)).await;
    let newest = cache.ohlcv().get_bars(SYM, TF, 10).await.unwrap();
    let newest = newest.unwrap_or_default();
    assert!(
        newest.iter().all(|b| minute_bars(3, 1.0).contains(b)),
        "{newest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_manager_serves_again_after_redis_restarts() {
    let mut server = RedisServer::start();
    // The breaker off: this is the connection's own recovery (with it on,
    // calls fail fast until its probe answers: `tests/reliability.rs`).
    let cache = support::connect_without_breaker(&server).await;
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

/// The series as Redis holds it now, straight from the sorted set: runs of
/// archived bars scored by their first bar's open time.
fn stored_series(server: &RedisServer, symbol: &str) -> Vec<Bar> {
    let key = format!("iftb:v2:ohlcv:{{{symbol}:{TF}}}");
    let runs: Vec<Vec<u8>> = redis::cmd("ZRANGE")
        .arg(&key)
        .arg(0)
        .arg("+inf")
        .arg("BYSCORE")
        .query(&mut server.raw())
        .unwrap_or_else(|e| panic!("ZRANGE {key}: {e}\n{}", server.log()));
    runs.iter()
        .flat_map(|r| iftb_cache::codec::decode_bar_run(r).expect("a stored run decodes"))
        .collect()
}

/// Bars per script call in `backend/series.rs`. A batch is applied in chunks
/// of this many bars, each whole.
const CHUNK_BARS: usize = 2_000;

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
        time_to_healthy(&cache, Duration::from_secs(5)).await;
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
    let cache = connect_bounded(&server, false).await;
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
    time_to_healthy(&cache, Duration::from_secs(2)).await;
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
    let strict = connect_bounded(&server, false).await;
    let lenient = connect_bounded(&server, true).await;
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
    time_to_healthy(&strict, Duration::from_secs(2)).await;
    time_to_healthy(&lenient, Duration::from_secs(2)).await;
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
async fn evicting_under_maxmemory_returns_correct_values_or_misses() {
    let args = ["--maxmemory", "3mb", "--maxmemory-policy", "allkeys-lru"];
    let server = RedisServer::start_with(&args);
    let cache = connect_bounded(&server, false).await;
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
                        .set_bars_with(&symbol(i), TF, &batch, BarWriteOptions::new().ttl(ttl))
                        .await
                    {
                        Ok(()) => {}
                        // Redis may refuse a write it cannot make room for.
                        Err(e) if e.is_out_of_memory() => refused += 1,
                        Err(e) => panic!("write: {e}"),
                    }
                    let kv = format!("v{i}:{round}");
                    let _ = cache.client().set(&kv, &"x".repeat(2_000), None).await;
                    let t = ticker(&symbol(i), 10_000.0 + i as f64);
                    match cache.market().set_ticker(&symbol(i), &t).await {
                        Ok(()) => {}
                        Err(e) if e.is_out_of_memory() => refused += 1,
                        Err(e) => panic!("write: {e}"),
                    }
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
                    // A ticker is a function of its symbol: any hit can be checked.
                    let t = cache.market().get_ticker(&symbol(i)).await;
                    let t = t.expect("a read under eviction fails only on bad data");
                    assert!(
                        t.is_none_or(|t| t.last == 10_000.0 + i as f64),
                        "wrong ticker"
                    );
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

impl Written {
    fn register(&self, bars: &[Bar]) {
        let mut map = self.0.lock().unwrap();
        for b in bars {
            map.entry(b.timestamp).or_default().insert(bar_bits(b));
        }
    }

    fn check(&self, bars: &[Bar]) {
        let map = self.0.lock().unwrap();
        for b in bars {
            let known = map
                .get(&b.timestamp)
                .is_some_and(|s| s.contains(&bar_bits(b)));
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
    let stats = sixty_four_tasks_on_one_series(connect_bounded(&server, false).await).await;
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
