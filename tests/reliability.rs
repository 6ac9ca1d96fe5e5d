//! The faults a bot running around the clock meets, each against the fix
//! that bounds it:
//! - a frozen or refusing Redis: the circuit breaker fails calls fast after
//!   the first unavailability, and closes within a second of Redis
//!   answering again;
//! - a `get_or_compute` leader cancelled, panicking, slower than its lease,
//!   or killed with its process: the lock never outlives it by more than a
//!   lease, and a long computation is paid once;
//! - a foreign writer's binary key in the namespace: `clear_all` deletes it;
//! - Redis out of memory with `noeviction`: writes fail with an error of
//!   their own kind, reads keep working.

mod support;

use iftb_cache::{CacheManager, ComputeOptions, ErrorKind, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{
    btc_ticker, capture_events, connect, connect_bounded, minute_bars, seed, RedisCluster,
    RedisServer, NODE_TIMEOUT_MS, RESPONSE, SLACK, SYM, TF,
};

/// What one call of a strategy's tick costs a frozen Redis at most: the
/// deadline (the response timeout plus the 250 ms margin) and CI slack.
const DEADLINE: Duration = RESPONSE.saturating_add(Duration::from_millis(250));

/// Runs `n` reads one after another, as a strategy's tick does, and
/// returns each one's result and time.
async fn tick(cache: &CacheManager, n: usize) -> Vec<(Result<bool>, Duration)> {
    let mut ran = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let read = cache.ohlcv().get_latest_bar(SYM, TF).await;
        ran.push((read.map(|b| b.is_some()), started.elapsed()));
    }
    ran
}

/// Polls a read until it succeeds; returns how long that took.
async fn time_to_serve(cache: &CacheManager, limit: Duration) -> Duration {
    let started = Instant::now();
    while cache.ohlcv().get_latest_bar(SYM, TF).await.is_err() {
        assert!(
            started.elapsed() < limit,
            "not serving after {limit:?}: {:?}",
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_costs_a_tick_one_deadline_and_serves_within_a_second_of_thawing() {
    let server = RedisServer::start();
    let cache = connect_bounded(&server, false).await;
    seed(&cache).await;
    server.freeze();
    let started = Instant::now();
    let ran = tick(&cache, 50).await;
    let took = started.elapsed();
    // The first read waits out the deadline; every one after fails at once.
    assert!(
        took <= DEADLINE + SLACK,
        "50 reads of a frozen Redis took {took:?}"
    );
    for (i, (result, _)) in ran.iter().enumerate() {
        let e = result.as_ref().expect_err("a frozen Redis answered");
        assert!(e.is_unavailable(), "read {i}: {e}");
        assert_eq!(e.is_circuit_open(), i > 0, "read {i}: {e}");
    }
    let rejected = ran[1..].iter().map(|(_, t)| *t).max().unwrap();
    println!("a frozen Redis: 50 reads in {took:?}, the slowest fast failure {rejected:?}");
    let stats = cache.stats();
    assert!(stats.breaker_open && stats.breaker_opens == 1, "{stats:?}");
    assert!(stats.breaker_rejected >= 49, "{stats:?}");
    assert!(
        !cache.health_check().await,
        "healthy while the breaker is open"
    );
    server.thaw();
    let recovered = time_to_serve(&cache, Duration::from_secs(5)).await;
    println!("served again {recovered:?} after the thaw");
    assert!(
        recovered <= Duration::from_secs(1),
        "served {recovered:?} after the thaw"
    );
    assert!(!cache.stats().breaker_open);
    assert_eq!(newest(&cache).await, Some(minute_bars(3, 1.0)));
}

/// The seeded series, oldest first.
async fn newest(cache: &CacheManager) -> Option<Vec<iftb_cache::Bar>> {
    let bars = cache.ohlcv().get_bars(SYM, TF, 3).await.unwrap();
    bars.map(|b| b.into_iter().rev().collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_breaker_each_read_of_a_frozen_redis_waits_its_deadline() {
    let server = RedisServer::start();
    let cache = support::connect_without_breaker(&server).await;
    seed(&cache).await;
    server.freeze();
    let ran = tick(&cache, 3).await;
    server.thaw();
    for (result, took) in &ran {
        let e = result.as_ref().expect_err("a frozen Redis answered");
        assert!(e.is_timeout(), "{e}");
        assert!(
            *took >= RESPONSE,
            "a read failed fast in {took:?} with the breaker off"
        );
    }
    assert_eq!(cache.stats().breaker_opens, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_refuses_connections_calls_fail_fast_and_serve_soon_after_it_is_back() {
    let mut server = RedisServer::start();
    let cache = connect_bounded(&server, false).await;
    seed(&cache).await;
    server.kill();
    let _ = tick(&cache, 1).await;
    let ran = tick(&cache, 50).await;
    for (result, took) in &ran {
        let e = result.as_ref().expect_err("a dead Redis answered");
        assert!(e.is_circuit_open(), "{e}");
        assert!(
            *took < Duration::from_millis(50),
            "a rejected read took {took:?}"
        );
    }
    // Let the probe meet refusals for a while, then bring Redis back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();
    let recovered = time_to_serve(&cache, Duration::from_secs(5)).await;
    let slowest = ran.iter().map(|(_, t)| *t).max().unwrap();
    println!(
        "refused: the slowest fast failure {slowest:?}; served {recovered:?} after the restart"
    );
    assert!(
        recovered <= Duration::from_secs(1),
        "served {recovered:?} after the restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_fail_open_mode_an_open_breaker_misses_and_drops_writes_at_once() {
    let server = RedisServer::start();
    let cache = connect_bounded(&server, true).await;
    seed(&cache).await;
    server.freeze();
    let _ = tick(&cache, 1).await;
    let started = Instant::now();
    for _ in 0..50 {
        assert_eq!(cache.market().get_ticker(SYM).await.unwrap(), None);
        cache.market().set_ticker(SYM, &btc_ticker()).await.unwrap();
    }
    let took = started.elapsed();
    server.thaw();
    assert!(took < Duration::from_millis(500), "100 calls took {took:?}");
    let stats = cache.stats();
    assert!(
        stats.fail_open_misses >= 50 && stats.fail_open_dropped_writes >= 50,
        "{stats:?}"
    );
    assert!(stats.breaker_rejected >= 100, "{stats:?}");
}

/// Each state change is an event: on a current-thread runtime the probe
/// runs on the test's thread, where the events are captured.
#[tokio::test(flavor = "current_thread")]
async fn the_breaker_reports_opening_and_closing() {
    let events = capture_events();
    let server = RedisServer::start();
    let cache = connect_bounded(&server, false).await;
    server.freeze();
    let _ = tick(&cache, 3).await;
    server.thaw();
    time_to_serve(&cache, Duration::from_secs(5)).await;
    let text = events.text();
    assert!(text.contains("circuit_breaker_opened"), "{text}");
    assert!(text.contains("circuit_breaker_closed"), "{text}");
}

/// A strategy calling from a runtime of its own, dropped after its call:
/// the probe runs on the runtime that connected, so it survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_outlives_a_callers_short_lived_runtime() {
    let server = RedisServer::start();
    let cache = connect_bounded(&server, false).await;
    seed(&cache).await;
    server.freeze();
    let caller = cache.clone();
    let failed = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime
            .block_on(caller.ohlcv().get_latest_bar(SYM, TF))
            .is_err()
    });
    assert!(failed.join().unwrap(), "a frozen Redis answered");
    assert!(cache.stats().breaker_open);
    server.thaw();
    let recovered = time_to_serve(&cache, Duration::from_secs(5)).await;
    assert!(
        recovered <= Duration::from_secs(1),
        "served {recovered:?} after the thaw"
    );
}

/// The breaker guards against the whole cluster being unreachable: one
/// dead primary (no replica to take over) leaves the others served, on a
/// cluster that serves the slots it still covers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_one_dead_primary_leaves_the_others_served() {
    let partial = ["--cluster-require-full-coverage", "no"];
    let mut cluster = RedisCluster::start_with(3, 0, &partial, None);
    let config = cluster.config(|b| b.response_timeout(RESPONSE).connect_timeout(RESPONSE));
    let cache = CacheManager::connect(config).await.unwrap();
    let node_of = |name: &str| cluster.primary_of_key(&format!("iftb:kv:{name}"));
    let victim = node_of("k0");
    let alive = (1..100)
        .map(|i| format!("k{i}"))
        .find(|name| node_of(name) != victim)
        .unwrap();
    for name in ["k0", alive.as_str()] {
        cache.client().set(name, "v", None).await.unwrap();
    }
    cluster.nodes[victim].kill();
    // Past the node timeout, when the cluster reports itself down (a slot
    // is uncovered for good), each failure on the dead primary opens the
    // breaker again: the live one's key is served within a second of each.
    let until = Instant::now() + Duration::from_millis(3 * NODE_TIMEOUT_MS);
    while Instant::now() < until {
        let dead = cache.client().get("k0").await;
        assert!(dead.unwrap_err().is_unavailable());
        let started = Instant::now();
        loop {
            match cache.client().get(&alive).await {
                Ok(found) => break assert_eq!(found.as_deref(), Some("v")),
                Err(e) => assert!(e.is_unavailable(), "{e}"),
            }
            let waited = started.elapsed();
            assert!(
                waited < Duration::from_secs(1),
                "a live primary unserved for {waited:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A computation that counts its runs and takes `takes`.
fn counted(
    runs: &Arc<AtomicUsize>,
    takes: Duration,
) -> impl FnOnce() -> std::pin::Pin<
    Box<dyn std::future::Future<Output = std::result::Result<String, std::io::Error>> + Send>,
> {
    let runs = runs.clone();
    move || {
        Box::pin(async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(takes).await;
            Ok("analysis".to_string())
        })
    }
}

const INPUT: &str = "BTC 1h";
const LEASE: Duration = Duration::from_secs(20);

/// The Redis key of the lock on [`INPUT`]'s value.
fn lock_key() -> String {
    let hash = iftb_cache::LlmCache::hash_input(INPUT);
    format!("iftb:v2:llm:{{sentiment}}:{hash}:lock")
}

/// True when `server` holds the lock on [`INPUT`]'s value.
fn lock_held(server: &RedisServer) -> bool {
    let exists: bool = redis::cmd("EXISTS")
        .arg(lock_key())
        .query(&mut server.raw())
        .unwrap();
    exists
}

/// After `after`, whether `server` (when there is one) holds the lock.
async fn lock_held_after(server: Option<&RedisServer>, after: Duration) -> bool {
    tokio::time::sleep(after).await;
    server.is_none_or(lock_held)
}

/// `get_or_compute` with a lock of [`LEASE`], timed.
async fn compute_timed(cache: &CacheManager, runs: &Arc<AtomicUsize>) -> (String, Duration) {
    let started = Instant::now();
    let opts = ComputeOptions::new().lock(LEASE);
    let f = counted(runs, Duration::from_millis(10));
    let llm = cache.llm();
    let value = llm.get_or_compute_with("sentiment", INPUT, opts, f).await;
    (value.unwrap(), started.elapsed())
}

/// Runs a leader that never finishes, cut off by a timeout once it holds
/// the lock (seen in `server`, when there is one), then a second caller
/// (on `other`, another manager as another process would be): it must not
/// wait out the 20 s lease.
async fn cancelled_leader_then(
    cache: &CacheManager,
    other: &CacheManager,
    server: Option<&RedisServer>,
) {
    let runs = Arc::new(AtomicUsize::new(0));
    let opts = ComputeOptions::new().lock(LEASE);
    let forever = counted(&runs, Duration::from_secs(3_600));
    let llm = cache.llm();
    let leader = llm.get_or_compute_with("sentiment", INPUT, opts, forever);
    let (cut, held) = tokio::join!(
        tokio::time::timeout(Duration::from_millis(300), leader),
        lock_held_after(server, Duration::from_millis(100)),
    );
    assert!(cut.is_err(), "the leader finished");
    assert!(held, "the leader computed without the lock");
    let (value, took) = compute_timed(other, &runs).await;
    assert_eq!(value, "analysis");
    assert!(
        took < Duration::from_secs(2),
        "waited {took:?} for a cancelled leader's lock"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_leader_releases_its_lock_on_redis() {
    let server = RedisServer::start();
    let a = connect(&server, |b| b).await;
    let b = connect(&server, |b| b).await;
    cancelled_leader_then(&a, &b, Some(&server)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_leader_releases_its_lock_embedded() {
    let cache = support::embedded().await.cache;
    cancelled_leader_then(&cache, &cache, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_leader_releases_its_lock() {
    let server = RedisServer::start();
    let a = connect(&server, |b| b).await;
    let b = connect(&server, |b| b).await;
    let leader = tokio::spawn(async move {
        let opts = ComputeOptions::new().lock(LEASE);
        let panics = || async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            panic!("the LLM client panicked");
            #[allow(unreachable_code)]
            Ok::<String, std::io::Error>(String::new())
        };
        a.llm()
            .get_or_compute_with("sentiment", INPUT, opts, panics)
            .await
    });
    assert!(lock_held_after(Some(&server), Duration::from_millis(100)).await);
    assert!(leader.await.unwrap_err().is_panic());
    let runs = Arc::new(AtomicUsize::new(0));
    let (value, took) = compute_timed(&b, &runs).await;
    assert_eq!(value, "analysis");
    assert!(
        took < Duration::from_secs(2),
        "waited {took:?} for a panicked leader's lock"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_computation_longer_than_its_lease_is_paid_once() {
    let server = RedisServer::start();
    let a = connect(&server, |b| b).await;
    let b = connect(&server, |b| b).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let lease = Duration::from_millis(300);
    let call = |cache: CacheManager, runs: Arc<AtomicUsize>| async move {
        let opts = ComputeOptions::new().lock(lease);
        let slow = counted(&runs, Duration::from_millis(1_500));
        let llm = cache.llm();
        llm.get_or_compute_with("sentiment", INPUT, opts, slow)
            .await
    };
    let leader = tokio::spawn(call(a, runs.clone()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiter = tokio::spawn(call(b, runs.clone()));
    assert_eq!(leader.await.unwrap().unwrap(), "analysis");
    assert_eq!(waiter.await.unwrap().unwrap(), "analysis");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "a 1.5 s call under a 300 ms lease ran twice"
    );
}

/// The child of [`a_dead_leaders_lock_ends_with_its_lease`]: takes the lock
/// and computes until it is killed.
#[tokio::test]
#[ignore = "the child process of a_dead_leaders_lock_ends_with_its_lease"]
async fn lock_holder_process() {
    let url = std::env::var("LOCK_HOLDER_URL").expect("run by a_dead_leaders_lock_..");
    let config = iftb_cache::CacheConfig::builder().redis_url(&url).build();
    let cache = CacheManager::connect(config.unwrap()).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let opts = ComputeOptions::new().lock(Duration::from_secs(1));
    let forever = counted(&runs, Duration::from_secs(3_600));
    let llm = cache.llm();
    let _ = llm
        .get_or_compute_with("sentiment", INPUT, opts, forever)
        .await;
}

/// A child process, killed however the test ends.
struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_leaders_lock_ends_with_its_lease() {
    let server = RedisServer::start();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lock_holder_process",
            "--ignored",
            "--test-threads=1",
        ])
        .env("LOCK_HOLDER_URL", server.url())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KilledOnDrop(child);
    support::wait_until(
        "the child takes the lock",
        Duration::from_secs(20),
        || server.log(),
        || lock_held(&server),
    );
    // Renewed: still held at two and a half leases.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(
        lock_held(&server),
        "the living holder's lock expired with its first lease"
    );
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert!(
        lock_held(&server),
        "the lock went with the process, not its lease"
    );
    let cache = connect(&server, |b| b).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let opts = ComputeOptions::new().lock(Duration::from_secs(1));
    let f = counted(&runs, Duration::from_millis(10));
    let value = cache
        .llm()
        .get_or_compute_with("sentiment", INPUT, opts, f)
        .await;
    let took = started.elapsed();
    assert_eq!(value.unwrap(), "analysis");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(
        took >= Duration::from_millis(300) && took <= Duration::from_millis(2_500),
        "waited {took:?} for a dead holder's 1 s lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_all_deletes_keys_that_are_not_utf8() {
    let server = RedisServer::start();
    let cache = connect(&server, |b| b).await;
    seed(&cache).await;
    let mut raw = server.raw();
    let foreign: &[u8] = b"iftb:\xff\xfe binary";
    let other: &[u8] = b"elsewhere:\xff";
    for key in [foreign, other] {
        let _: () = redis::cmd("SET").arg(key).arg("x").query(&mut raw).unwrap();
    }
    let deleted = cache.clear_all().await.unwrap();
    assert!(deleted > 1, "{deleted}");
    let left = |key: &[u8], raw: &mut redis::Connection| -> bool {
        redis::cmd("EXISTS").arg(key).query(raw).unwrap()
    };
    assert!(
        !left(foreign, &mut raw),
        "the binary key in the namespace is left"
    );
    assert!(left(other, &mut raw), "a key outside the namespace went");
    assert_eq!(cache.clear_all().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_out_of_memory_refuses_writes_with_their_own_error_and_keeps_serving_reads() {
    let server = RedisServer::start_with(&["--maxmemory-policy", "noeviction"]);
    let cache = connect(&server, |b| b).await;
    let strict = cache.clone();
    seed(&cache).await;
    // Over the limit by megabytes, not by the last write: every write is
    // refused, and none evicts anything.
    let filler = "x".repeat(10_000);
    for i in 0..300 {
        cache
            .client()
            .set(&format!("fill{i}"), &filler, None)
            .await
            .unwrap();
    }
    let mut raw = server.raw();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1mb")
        .query(&mut raw)
        .unwrap();
    let e = cache.client().set("one_more", "x", None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutOfMemory, "{e}");
    assert!(e.is_out_of_memory() && !e.is_unavailable());
    let bars = strict.ohlcv().set_bars(SYM, TF, &minute_bars(5, 2.0)).await;
    assert_eq!(bars.unwrap_err().kind(), ErrorKind::OutOfMemory);
    let ticker = strict.market().set_ticker(SYM, &btc_ticker()).await;
    assert_eq!(ticker.unwrap_err().kind(), ErrorKind::OutOfMemory);
    // Reads work, and see what was there before.
    assert_eq!(newest(&cache).await, Some(minute_bars(3, 1.0)));
    assert!(cache.market().get_ticker(SYM).await.unwrap().is_some());
    assert!(
        !cache.stats().breaker_open,
        "a full Redis opened the breaker"
    );
    // Fail-open mode drops such a write, and counts it.
    let lenient = connect(&server, |b| b.fail_open(true)).await;
    lenient
        .market()
        .set_ticker(SYM, &btc_ticker())
        .await
        .unwrap();
    assert_eq!(lenient.stats().fail_open_dropped_writes, 1);
}
