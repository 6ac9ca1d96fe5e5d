//! `CacheManager::memory_report`: per data type, exactly the keys written,
//! their bytes (on Redis, what `MEMORY USAGE` read raw says) and their TTLs,
//! on the embedded backend, one Redis server and a cluster; nothing of
//! another namespace; the time bound on a big keyspace; a frozen server
//! failing the report within its deadline; expired entries not counted.

mod support;

use iftb_cache::{
    BarWriteOptions, CacheConfig, CacheManager, ComputeOptions, KeyType, MemoryReport, Timeframe,
    WriteOptions,
};
use std::time::{Duration, Instant};
use support::{
    bar_at, connect, connect_bounded, ticker, RedisCluster, RedisServer, RESPONSE, SLACK,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const TF: Timeframe = Timeframe::M1;

// A TTL per type, far enough apart that a key counted as the wrong type
// moves its type's mean out of range.
const TICKER_TTL: Duration = Duration::from_secs(20);
const LEASE: Duration = Duration::from_secs(60);
const FUNDING_TTL: Duration = Duration::from_secs(120);
const FEAR_GREED_TTL: Duration = Duration::from_secs(240);
const LLM_TTL: Duration = Duration::from_secs(420);
const SERIES_TTL: Duration = Duration::from_secs(600);
const KV_TTL: Duration = Duration::from_secs(900);

/// Bars of each series written: the series' bytes must follow them.
const SERIES_BARS: [usize; 3] = [10, 100, 2_000];
const TICKERS: usize = 24;
const FUNDING: usize = 4;
const LLM: usize = 6;
const KV_WITH_TTL: usize = 7;
const KV_FOREVER: usize = 2;

/// The bytes of one archived bar: no series can take less a bar.
const BAR_BYTES: u64 = 48;

fn series_symbol(i: usize) -> String {
    format!("S{i}USDT")
}

fn ticker_symbol(i: usize) -> String {
    format!("T{i}USDT")
}

fn funding_symbol(i: usize) -> String {
    format!("F{i}USDT")
}

fn llm_hash(i: usize) -> String {
    iftb_cache::LlmCache::hash_input(&format!("input {i}"))
}

/// A `get_or_compute` holding its cross-process lock until released.
struct HeldLock {
    release: oneshot::Sender<()>,
    task: JoinHandle<iftb_cache::Result<String>>,
}

impl HeldLock {
    async fn release(self) {
        self.release.send(()).unwrap();
        assert_eq!(self.task.await.unwrap().unwrap(), "computed");
    }
}

/// Writes the known numbers of every type with their TTLs, and starts a
/// computation that holds its lock.
async fn fill(cache: &CacheManager) -> HeldLock {
    for (i, &n) in SERIES_BARS.iter().enumerate() {
        let bars: Vec<_> = (0..n as i64).map(|t| bar_at(t * 60_000, 10.0)).collect();
        let opts = BarWriteOptions::new().ttl(SERIES_TTL);
        let o = cache.ohlcv();
        o.set_bars_with(&series_symbol(i), TF, &bars, opts)
            .await
            .unwrap();
    }
    let tickers: Vec<_> = (0..TICKERS)
        .map(|i| ticker(&ticker_symbol(i), 100.0 + i as f64))
        .collect();
    let m = cache.market();
    let opts = |ttl| WriteOptions::new().ttl(ttl);
    m.set_tickers_with(&tickers, opts(TICKER_TTL))
        .await
        .unwrap();
    let rates: Vec<_> = (0..FUNDING).map(|i| (funding_symbol(i), 1e-4)).collect();
    m.set_funding_rates_with(&rates, opts(FUNDING_TTL))
        .await
        .unwrap();
    m.set_fear_greed_with(&support::sample_fear_greed(), opts(FEAR_GREED_TTL))
        .await
        .unwrap();
    for i in 0..LLM {
        let doc = serde_json::json!({"sentiment": "bullish", "i": i});
        let llm = cache.llm();
        llm.set_analysis_with("sentiment", &llm_hash(i), &doc, opts(LLM_TTL))
            .await
            .unwrap();
    }
    for i in 0..KV_WITH_TTL {
        let c = cache.client();
        c.set(&format!("k{i}"), "value", Some(KV_TTL))
            .await
            .unwrap();
    }
    for i in 0..KV_FOREVER {
        let c = cache.client();
        c.set(&format!("setting{i}"), "on", None).await.unwrap();
    }
    hold_lock(cache).await
}

async fn hold_lock(cache: &CacheManager) -> HeldLock {
    let (release, released) = oneshot::channel::<()>();
    let holder = cache.clone();
    let task = tokio::spawn(async move {
        let opts = ComputeOptions::new().ttl(LLM_TTL).lock(LEASE);
        let compute = || async move {
            released.await.ok();
            Ok::<_, std::io::Error>("computed".to_string())
        };
        let llm = holder.llm();
        llm.get_or_compute_with("sentiment", "held", opts, compute)
            .await
    });
    let started = Instant::now();
    while report(cache).await.get(KeyType::LlmLock).keys == 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "no lock taken");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    HeldLock { release, task }
}

async fn report(cache: &CacheManager) -> MemoryReport {
    let report = cache.memory_report().await.unwrap();
    assert!(report.complete, "{report:?}");
    report
}

/// The mean TTL of `t` is at most `ttl`, and at most `slack` under it.
fn assert_ttl(report: &MemoryReport, t: KeyType, ttl: Duration, slack: Duration) {
    let avg = report.get(t).avg_ttl;
    let avg = avg.unwrap_or_else(|| panic!("{t:?} has no TTL: {report:?}"));
    assert!(
        avg <= ttl && avg + slack >= ttl,
        "{t:?}: mean TTL {avg:?}, set {ttl:?}"
    );
}

/// What [`fill`] wrote, type by type; `other` keys beside the kv keys, of
/// which `other_forever` have no TTL.
fn assert_filled(report: &MemoryReport, other: u64, other_forever: u64) {
    let expected = [
        (KeyType::Series, SERIES_BARS.len() as u64),
        (KeyType::Ticker, TICKERS as u64),
        (KeyType::Funding, FUNDING as u64),
        (KeyType::FearGreed, 1),
        (KeyType::Llm, LLM as u64),
        (KeyType::LlmLock, 1),
        (KeyType::Other, (KV_WITH_TTL + KV_FOREVER) as u64 + other),
    ];
    for (t, keys) in expected {
        let usage = report.get(t);
        assert_eq!(usage.keys, keys, "{t:?}: {report:?}");
        assert_eq!(usage.measured, keys, "{t:?}");
        assert!(usage.bytes >= 10 * keys, "{t:?}: {usage:?}");
        // Our records are small: none takes 10 KB but a series.
        if t != KeyType::Series {
            assert!(usage.bytes < 10_000 * keys, "{t:?}: {usage:?}");
        }
    }
    let other_no_ttl = KV_FOREVER as u64 + other_forever;
    for t in KeyType::ALL.iter().filter(|&&t| t != KeyType::Other) {
        assert_eq!(report.get(*t).no_ttl, 0, "{t:?} has keys without TTL");
    }
    assert_eq!(report.get(KeyType::Other).no_ttl, other_no_ttl);
    let bars: usize = SERIES_BARS.iter().sum();
    assert!(report.get(KeyType::Series).bytes >= bars as u64 * BAR_BYTES);
    let slack = Duration::from_secs(10);
    assert_ttl(report, KeyType::Ticker, TICKER_TTL, slack);
    // A held lock is renewed every third of its lease.
    assert_ttl(report, KeyType::LlmLock, LEASE, LEASE / 3 + slack);
    assert_ttl(report, KeyType::Funding, FUNDING_TTL, slack);
    assert_ttl(report, KeyType::FearGreed, FEAR_GREED_TTL, slack);
    assert_ttl(report, KeyType::Llm, LLM_TTL, slack);
    assert_ttl(report, KeyType::Series, SERIES_TTL, slack);
    assert_ttl(report, KeyType::Other, KV_TTL, slack);
    let total = report.total();
    let sum = |f: fn(&iftb_cache::TypeUsage) -> u64| report.types().map(|(_, u)| f(u)).sum::<u64>();
    assert_eq!(total.keys, sum(|u| u.keys));
    assert_eq!(total.bytes, sum(|u| u.bytes));
    assert!(total.bytes < report.used_memory, "{report:?}");
    assert!(report.elapsed < Duration::from_secs(2), "{report:?}");
}

/// The series' bytes grow with its bars; nothing else changes.
async fn assert_series_bytes_follow_bars(cache: &CacheManager) {
    let before = report(cache).await;
    let more: Vec<_> = (0..3_000)
        .map(|t| bar_at((10_000 + t) * 60_000, 10.0))
        .collect();
    let opts = BarWriteOptions::new().ttl(SERIES_TTL);
    let o = cache.ohlcv();
    o.set_bars_with(&series_symbol(0), TF, &more, opts)
        .await
        .unwrap();
    let after = report(cache).await;
    let (was, now) = (before.get(KeyType::Series), after.get(KeyType::Series));
    assert_eq!(now.keys, was.keys);
    assert!(
        now.bytes >= was.bytes + 3_000 * BAR_BYTES,
        "{} bytes, then {} after 3,000 more bars",
        was.bytes,
        now.bytes
    );
    assert_eq!(
        after.get(KeyType::Ticker).bytes,
        before.get(KeyType::Ticker).bytes
    );
}

/// Once the lock is released, its result is an LLM result like the others.
async fn assert_released_lock_leaves_its_result(cache: &CacheManager, held: HeldLock) {
    held.release().await;
    let r = report(cache).await;
    assert_eq!(r.get(KeyType::LlmLock).keys, 0, "{r:?}");
    assert_eq!(r.get(KeyType::Llm).keys, LLM as u64 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_reports_each_type_from_its_own_bookkeeping() {
    let t = support::embedded().await;
    let held = fill(&t.cache).await;
    let r = report(&t.cache).await;
    assert_eq!(r.backend, "embedded");
    assert_filled(&r, 0, 0);
    let capacity = t.cache.config().embedded_capacity().get() as u64;
    assert_eq!(r.max_memory, Some(capacity));
    assert!(r.used_memory <= capacity);
    // Its JSON, as a CLI prints it.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["backend"], "embedded");
    assert_eq!(json["types"]["tickers"]["keys"], TICKERS as u64);
    assert_eq!(json["types"]["other"]["no_ttl"], KV_FOREVER as u64);
    assert!(json["types"]["series"]["avg_ttl_ms"].as_u64().unwrap() <= 600_000);
    assert!(json["elapsed_ms"].as_f64().unwrap() >= 0.0);
    assert_series_bytes_follow_bars(&t.cache).await;
    assert_released_lock_leaves_its_result(&t.cache, held).await;
}

#[tokio::test(start_paused = true)]
async fn embedded_entries_expired_but_not_evicted_are_not_counted() {
    let cache = CacheManager::connect(CacheConfig::embedded())
        .await
        .unwrap();
    let m = cache.market();
    let short = WriteOptions::new().ttl(Duration::from_secs(1));
    for i in 0..3 {
        let t = ticker(&ticker_symbol(i), 1.0);
        m.set_ticker_with(&ticker_symbol(i), &t, short)
            .await
            .unwrap();
    }
    let opts = BarWriteOptions::new().ttl(Duration::from_secs(5));
    let bars = [bar_at(0, 1.0)];
    cache
        .ohlcv()
        .set_bars_with("SUSDT", TF, &bars, opts)
        .await
        .unwrap();
    cache
        .client()
        .set("stays", "v", Some(KV_TTL))
        .await
        .unwrap();
    let before = report(&cache).await;
    assert_eq!(before.get(KeyType::Ticker).keys, 3);
    tokio::time::advance(Duration::from_secs(2)).await;
    let r = report(&cache).await;
    assert_eq!(r.get(KeyType::Ticker).keys, 0, "{r:?}");
    assert_eq!(r.get(KeyType::Ticker).avg_ttl, None);
    assert_eq!(r.get(KeyType::Series).keys, 1);
    assert_eq!(r.get(KeyType::Other).keys, 1);
    // Still held, so still charged: the engine evicts them when it needs room.
    assert_eq!(r.used_memory, before.used_memory);
    tokio::time::advance(Duration::from_secs(4)).await;
    let r = report(&cache).await;
    assert_eq!(r.get(KeyType::Series).keys, 0);
    assert_eq!(r.total().keys, 1);
    assert_ttl(
        &r,
        KeyType::Other,
        KV_TTL - Duration::from_secs(6),
        Duration::ZERO,
    );
}

fn memory_usage(conn: &mut redis::Connection, key: &str) -> u64 {
    redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .query(conn)
        .unwrap_or_else(|e| panic!("MEMORY USAGE {key}: {e}"))
}

fn used_memory(conn: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("memory").query(conn).unwrap();
    let line = info.lines().find_map(|l| l.strip_prefix("used_memory:"));
    line.unwrap().trim().parse().unwrap()
}

/// Each type's bytes are what `MEMORY USAGE` says of its keys, read raw.
fn assert_bytes_are_memory_usage(report: &MemoryReport, conn: &mut redis::Connection) {
    let mut usage = |keys: Vec<String>| keys.iter().map(|k| memory_usage(conn, k)).sum::<u64>();
    let series = (0..SERIES_BARS.len()).flat_map(|i| {
        let set = format!("iftb:v2:ohlcv:{{{}:{TF}}}", series_symbol(i));
        [format!("{set}:head"), set]
    });
    let expected = [
        (KeyType::Series, usage(series.collect())),
        (
            KeyType::Ticker,
            usage(
                (0..TICKERS)
                    .map(|i| format!("iftb:v2:ticker:{{{}}}", ticker_symbol(i)))
                    .collect(),
            ),
        ),
        (
            KeyType::Funding,
            usage(
                (0..FUNDING)
                    .map(|i| format!("iftb:v2:funding:{{{}}}", funding_symbol(i)))
                    .collect(),
            ),
        ),
        (KeyType::FearGreed, usage(vec!["iftb:v2:fear_greed".into()])),
        (
            KeyType::Llm,
            usage(
                (0..LLM)
                    .map(|i| format!("iftb:v2:llm:{{sentiment}}:{}", llm_hash(i)))
                    .collect(),
            ),
        ),
    ];
    for (t, bytes) in expected {
        assert_eq!(report.get(t).bytes, bytes, "{t:?}: {report:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_reports_each_type_as_memory_usage_and_pttl_say() {
    let server = RedisServer::start_with(&["--maxmemory", "64mb"]);
    let cache = connect(&server, |b| b).await;
    let held = fill(&cache).await;
    // Another namespace's keys and keys outside any: not ours. A key of
    // another format version under our namespace: "other", no TTL.
    let bot2 = connect(&server, |b| b.namespace("bot2")).await;
    bot2.market()
        .set_ticker("T0USDT", &ticker("T0USDT", 1.0))
        .await
        .unwrap();
    bot2.client().set("k0", "v", None).await.unwrap();
    server.raw_set("iftb:v1:ticker:{T0USDT}", b"old format");
    server.raw_set("iftbx:v2:fear_greed", b"x");
    server.raw_set("unrelated", b"x");

    let r = report(&cache).await;
    assert_eq!(r.backend, "redis");
    assert_filled(&r, 1, 1);
    assert_eq!(r.max_memory, Some(64 << 20));
    let mut raw = server.raw();
    let used = used_memory(&mut raw);
    assert!(
        r.used_memory > used / 2 && r.used_memory < used * 2,
        "{} against INFO's {used}",
        r.used_memory
    );
    assert_bytes_are_memory_usage(&r, &mut raw);

    let theirs = report(&bot2).await;
    assert_eq!(theirs.get(KeyType::Ticker).keys, 1);
    assert_eq!(theirs.get(KeyType::Other).keys, 1);
    assert_eq!(theirs.total().keys, 2);

    assert_series_bytes_follow_bars(&cache).await;
    assert_released_lock_leaves_its_result(&cache, held).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_is_reported_over_every_primary() {
    let cluster = RedisCluster::start_with(3, 0, &["--maxmemory", "32mb"], None);
    let cache = CacheManager::connect(cluster.config(|b| b))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", cluster.logs()));
    let held = fill(&cache).await;
    let holders: std::collections::BTreeSet<usize> = (0..TICKERS)
        .map(|i| cluster.primary_of_key(&format!("iftb:v2:ticker:{{{}}}", ticker_symbol(i))))
        .collect();
    assert_eq!(holders.len(), 3, "the tickers should span every primary");

    let r = report(&cache).await;
    assert_eq!(r.backend, "redis-cluster");
    assert_filled(&r, 0, 0);
    assert_eq!(r.max_memory, Some(3 * (32 << 20)));
    let used: u64 = cluster
        .nodes
        .iter()
        .map(|n| used_memory(&mut n.raw()))
        .sum();
    assert!(
        r.used_memory > used / 2 && r.used_memory < used * 2,
        "{} against the primaries' {used}",
        r.used_memory
    );
    // Each primary measured its own keys.
    let mut bytes = 0;
    for i in 0..TICKERS {
        let key = format!("iftb:v2:ticker:{{{}}}", ticker_symbol(i));
        let node = &cluster.nodes[cluster.primary_of_key(&key)];
        bytes += memory_usage(&mut node.raw(), &key);
    }
    assert_eq!(r.get(KeyType::Ticker).bytes, bytes);
    assert_released_lock_leaves_its_result(&cache, held).await;
}

/// `n` keys of `RedisClient`'s, without TTL, written raw in a few pipelines.
fn load_kv_keys(server: &RedisServer, n: usize) {
    let mut raw = server.raw();
    for start in (0..n).step_by(10_000) {
        let mut pipe = redis::pipe();
        for i in start..(start + 10_000).min(n) {
            pipe.cmd("SET")
                .arg(format!("iftb:kv:k{i}"))
                .arg("v")
                .ignore();
        }
        pipe.exec(&mut raw).unwrap();
    }
}

const MANY: usize = 200_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_stops_at_its_limit_and_says_it_is_incomplete() {
    let server = RedisServer::start();
    let cache = connect_bounded(&server, false).await;
    load_kv_keys(&server, MANY);
    let deadline = cache.config().call_deadline();

    let limit = Duration::from_millis(1);
    let started = Instant::now();
    let cut = cache.memory_report_within(limit).await.unwrap();
    let took = started.elapsed();
    assert!(!cut.complete, "{cut:?}");
    assert!(cut.get(KeyType::Other).keys < MANY as u64, "{cut:?}");
    assert!(took <= limit + deadline + SLACK, "took {took:?}");
    assert!(cut.elapsed <= took);

    let started = Instant::now();
    let whole = cache
        .memory_report_within(Duration::from_secs(60))
        .await
        .unwrap();
    let took = started.elapsed();
    println!("{MANY} keys reported in {took:?}");
    assert!(whole.complete, "{whole:?}");
    let other = whole.get(KeyType::Other);
    assert_eq!((other.keys, other.no_ttl), (MANY as u64, MANY as u64));
    assert_eq!(other.avg_ttl, None);
    assert_eq!(whole.max_memory, None, "a server without maxmemory");
    assert_eq!(whole.total().keys, MANY as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_report_stops_at_its_limit_too() {
    let t = support::embedded().await;
    for i in 0..MANY {
        t.cache
            .client()
            .set(&format!("k{i}"), "v", None)
            .await
            .unwrap();
    }
    let cut = t
        .cache
        .memory_report_within(Duration::from_millis(1))
        .await
        .unwrap();
    assert!(!cut.complete, "{cut:?}");
    assert!(cut.get(KeyType::Other).keys < MANY as u64);
    let whole = report(&t.cache).await;
    assert_eq!(whole.get(KeyType::Other).keys, MANY as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_fails_the_report_within_a_call_deadline() {
    let server = RedisServer::start();
    let cache = connect_bounded(&server, false).await;
    cache.client().set("k", "v", None).await.unwrap();
    server.freeze();
    let started = Instant::now();
    let failed = cache.memory_report().await;
    let took = started.elapsed();
    server.thaw();
    let err = failed.expect_err("a frozen server answered");
    assert!(err.is_unavailable(), "{err}");
    assert!(took <= RESPONSE + SLACK, "took {took:?}");
    assert!(cache.stats().errors >= 1, "the failure was not counted");
    support::time_to_healthy(&cache, Duration::from_secs(5)).await;
    assert_eq!(report(&cache).await.get(KeyType::Other).keys, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_frozen_mid_report_fails_it_within_a_call_deadline() {
    let server = RedisServer::start();
    let cache = connect_bounded(&server, false).await;
    load_kv_keys(&server, MANY);
    let reporter = cache.clone();
    let running = tokio::spawn(async move {
        let started = Instant::now();
        let result = reporter.memory_report_within(Duration::from_secs(60)).await;
        (result, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.freeze();
    let frozen = Instant::now();
    let (result, took) = running.await.unwrap();
    let after_freeze = frozen.elapsed();
    server.thaw();
    assert!(
        took > Duration::from_millis(100),
        "done before the freeze: {result:?}"
    );
    let err = result.expect_err("a frozen server answered");
    assert!(err.is_unavailable(), "{err}");
    let deadline = cache.config().call_deadline();
    assert!(
        after_freeze <= deadline + SLACK,
        "{after_freeze:?} after the freeze"
    );
}

#[tokio::test]
async fn limits_of_zero_or_over_ten_minutes_are_rejected() {
    let t = support::embedded().await;
    for bad in [
        Duration::ZERO,
        iftb_cache::MAX_REPORT_LIMIT + Duration::from_secs(1),
    ] {
        let err = t.cache.memory_report_within(bad).await.unwrap_err();
        assert!(err.is_invalid_input(), "{bad:?}: {err}");
    }
    let r = t
        .cache
        .memory_report_within(iftb_cache::MAX_REPORT_LIMIT)
        .await;
    assert!(r.unwrap().complete);
    assert_eq!(t.cache.stats().errors, 0);
}
