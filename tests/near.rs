//! The near cache against every way it could serve a value Redis no longer
//! holds: another manager's writes, another process' writes, and the ways
//! tracking can be lost (a restart, `CLIENT KILL`, `CLIENT PAUSE`, a frozen
//! server, `FLUSHALL`, eviction, `tracking-table-max-keys`, expiry), on one
//! server and across a cluster failover. (The behaviour suite runs with a
//! near cache too: `on_near::*` in `contract`, `ohlcv`, `market`, `llm` and
//! `bad_input`.)
//!
//! The bound the reads are held to here, [`BOUND`], is loose enough for a
//! loaded CI machine; the delay itself is measured by `benches/near.rs`.

// The reader's loop awaits every read call's future in one helper: the
// type of the spawned task nests deep enough to pass rustc's default limit.
#![recursion_limit = "256"]

mod support;

use iftb_cache::{CacheManager, Timeframe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{
    assert_near_serving, bar_at, connect, ticker, wait_until, RedisCluster, RedisServer,
    SentinelSet, NEAR_BYTES,
};

/// A write another process made is never read back older than this after
/// Redis acknowledged it.
const BOUND: Duration = Duration::from_millis(100);

const SYMBOL: &str = "BTCUSDT";
const TF: Timeframe = Timeframe::M1;

async fn near_reader(server: &RedisServer) -> CacheManager {
    let cache = connect(server, |b| b.near_cache(NEAR_BYTES)).await;
    assert_near_serving(&cache).await;
    cache
}

async fn writer(server: &RedisServer) -> CacheManager {
    connect(server, |b| b).await
}

/// The versions a writer attempted and when Redis acknowledged each: the
/// model every read is checked against.
struct Versions {
    attempted: AtomicU64,
    /// `acked[v - 1]`: when version `v` was acknowledged.
    acked: Mutex<Vec<Instant>>,
    /// Acknowledgements before this do not count: a failover may lose them.
    since: Mutex<Instant>,
}

impl Default for Versions {
    fn default() -> Self {
        Self {
            attempted: AtomicU64::new(0),
            acked: Mutex::default(),
            since: Mutex::new(Instant::now()),
        }
    }
}

impl Versions {
    /// Holds reads only to versions acknowledged from now on.
    fn hold_from_now(&self) {
        *self.since.lock().unwrap() = Instant::now();
    }

    /// Writes version `v` of the ticker, the in-progress bar and a value of
    /// the client's, in that order; true when all three were acknowledged.
    async fn write(&self, cache: &CacheManager, v: u64) -> bool {
        self.attempted.store(v, Ordering::SeqCst);
        let price = v as f64;
        let ticker = cache
            .market()
            .set_ticker(SYMBOL, &ticker(SYMBOL, price))
            .await;
        let bar = cache
            .ohlcv()
            .set_bars(SYMBOL, TF, &[bar_at(0, price)])
            .await;
        let kv = cache.client().set("v", &v.to_string(), None).await;
        let ok = ticker.is_ok() && bar.is_ok() && kv.is_ok();
        if ok {
            let mut acked = self.acked.lock().unwrap();
            acked.resize(v as usize, Instant::now());
            acked[v as usize - 1] = Instant::now();
        }
        ok
    }

    /// The newest version acknowledged at least [`BOUND`] before `start`
    /// (0: none), after `since`.
    fn floor(&self, start: Instant) -> u64 {
        let since = *self.since.lock().unwrap();
        let acked = self.acked.lock().unwrap();
        let old = acked.partition_point(|&t| t + BOUND <= start);
        let floor = old as u64;
        if floor > 0 && acked[old - 1] < since {
            return 0;
        }
        floor
    }

    /// Checks one read of version `got` (0: nothing) started at `start`:
    /// a version written, and none older than the floor.
    fn check(&self, what: &str, start: Instant, got: u64) -> Result<(), String> {
        let attempted = self.attempted.load(Ordering::SeqCst);
        let floor = self.floor(start);
        if got > attempted || got < floor {
            return Err(format!(
                "{what} read version {got}: attempted {attempted}, acknowledged by then {floor}"
            ));
        }
        Ok(())
    }
}

/// One round of the reader's reads, each checked: the ticker, the latest
/// bar, the newest bars, the client's value.
async fn read_round(cache: &CacheManager, model: &Versions, report: &mut ReadReport) {
    let version = |p: f64| p as u64;
    let (market, ohlcv, client) = (cache.market(), cache.ohlcv(), cache.client());
    let ticker = market.get_ticker(SYMBOL);
    report
        .read("get_ticker", model, ticker, |t| {
            t.map_or(0, |t| version(t.last))
        })
        .await;
    let latest = ohlcv.get_latest_bar(SYMBOL, TF);
    report
        .read("get_latest_bar", model, latest, |b| {
            b.map_or(0, |b| version(b.close))
        })
        .await;
    let bars = ohlcv.get_bars(SYMBOL, TF, 5);
    report
        .read("get_bars", model, bars, |b| {
            b.map_or(0, |b| version(b[0].close))
        })
        .await;
    let kv = client.get("v");
    let parsed = |v: Option<String>| v.map_or(0, |v| v.parse().unwrap_or(u64::MAX));
    report.read("get", model, kv, parsed).await;
}

#[derive(Default)]
struct ReadReport {
    reads: u64,
    failed: u64,
    wrong: Vec<String>,
}

impl ReadReport {
    /// Awaits `read` (timed from now) and checks the version `version`
    /// finds in it. Errors of a Redis that is unavailable count as failed,
    /// others are wrong.
    async fn read<T>(
        &mut self,
        what: &str,
        model: &Versions,
        read: impl std::future::Future<Output = iftb_cache::Result<T>>,
        version: impl FnOnce(T) -> u64,
    ) {
        let start = Instant::now();
        let got = read.await;
        self.reads += 1;
        match got {
            Ok(v) => {
                if let Err(e) = model.check(what, start, version(v)) {
                    self.wrong.push(e);
                }
            }
            Err(e) if e.is_unavailable() => self.failed += 1,
            Err(e) => self.wrong.push(format!("{what}: {e}")),
        }
    }

    fn assert_none_wrong(&self, what: &str) {
        let shown: Vec<&String> = self.wrong.iter().take(10).collect();
        assert!(
            self.wrong.is_empty(),
            "{what}: {} wrong reads of {}: {shown:#?}",
            self.wrong.len(),
            self.reads
        );
    }
}

/// A reader's task reading in a loop until stopped, every read checked
/// against `model`.
struct Reading {
    model: Arc<Versions>,
    done: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<ReadReport>,
}

impl Reading {
    fn start(reader: &CacheManager) -> Self {
        let model = Arc::new(Versions::default());
        let done = Arc::new(AtomicBool::new(false));
        let (cache, m, d) = (reader.clone(), model.clone(), done.clone());
        let task = tokio::spawn(async move {
            let mut report = ReadReport::default();
            while !d.load(Ordering::SeqCst) {
                read_round(&cache, &m, &mut report).await;
                tokio::task::yield_now().await;
            }
            report
        });
        Self { model, done, task }
    }

    async fn stop(self) -> ReadReport {
        self.done.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_near_reader_reads_every_write_of_another_manager_within_the_bound() {
    let server = RedisServer::start();
    let (reader, writer) = (near_reader(&server).await, writer(&server).await);
    let reading = Reading::start(&reader);
    let model = Arc::clone(&reading.model);
    for v in 1..=2_000 {
        assert!(model.write(&writer, v).await, "write {v}");
        if v % 100 == 0 {
            // Quiet spells: reads between writes are where copies serve.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(BOUND * 2).await;
    let report = reading.stop().await;
    report.assert_none_wrong("reads beside a writer");
    assert_eq!(report.failed, 0);
    let stats = reader.stats();
    assert!(
        stats.near_hits > 1_000,
        "the near cache hardly served: {stats:?}"
    );
    assert!(
        stats.near_invalidations >= 2_000,
        "invalidations: {stats:?}"
    );
    // After the last write and the bound, every read is the last version.
    let mut last = ReadReport::default();
    read_round(&reader, &model, &mut last).await;
    last.assert_none_wrong("after the writes");
    println!("{} checked reads, {stats:?}", report.reads);
}

/// The writer of [`a_reader_in_another_process_sees_its_writes_within_the_bound`],
/// run by it as a child process: writes `NEAR_WRITER_VERSIONS` versions
/// to the server at `NEAR_WRITER_URL` and prints when each was acknowledged.
#[tokio::test]
#[ignore = "the child process of a_reader_in_another_process_sees_its_writes_within_the_bound"]
async fn near_writer_process() {
    let url = std::env::var("NEAR_WRITER_URL").expect("run by a_reader_in_another_process_..");
    let n: u64 = std::env::var("NEAR_WRITER_VERSIONS")
        .unwrap()
        .parse()
        .unwrap();
    let config = iftb_cache::CacheConfig::builder()
        .redis_url(&url)
        .build()
        .unwrap();
    let cache = CacheManager::connect(config).await.unwrap();
    let model = Versions::default();
    for v in 1..=n {
        assert!(model.write(&cache, v).await);
        println!("acked {v} {}", unix_nanos());
        if v % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_in_another_process_sees_its_writes_within_the_bound() {
    let server = RedisServer::start();
    let reader = near_reader(&server).await;
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "near_writer_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("NEAR_WRITER_URL", server.url())
        .env("NEAR_WRITER_VERSIONS", "1000")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap());
    // Each read: when it started (wall clock: the child's acks are in its
    // own process) and the version it saw.
    let mut reads: Vec<(u128, u64)> = Vec::new();
    while !waiting.is_finished() {
        let start = unix_nanos();
        let got = reader.market().get_ticker(SYMBOL).await.unwrap();
        reads.push((start, got.map_or(0, |t| t.last as u64)));
    }
    let output = waiting.await.unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the writer failed:\n{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let acked: Vec<u128> = text
        .lines()
        // The harness may print its own words before the first line.
        .filter_map(|l| l.split("acked ").nth(1))
        .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(acked.len(), 1_000, "{text}");
    let bound = BOUND.as_nanos();
    let mut wrong = Vec::new();
    for &(start, got) in &reads {
        let floor = acked.partition_point(|&t| t + bound <= start) as u64;
        if got < floor || got > 1_000 {
            wrong.push((start, got, floor));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} reads stale: {:?}",
        wrong.len(),
        reads.len(),
        &wrong[..wrong.len().min(10)]
    );
    let stats = reader.stats();
    assert!(
        stats.near_hits > 0 && stats.near_invalidations >= 1_000,
        "{stats:?}"
    );
    println!(
        "{} reads checked against another process' 1,000 writes, {stats:?}",
        reads.len()
    );
}

/// The reader's view of the ticker after `fault`, once the bound has
/// passed: what Redis holds, every read of a second of reads.
async fn assert_reads_follow_redis(reader: &CacheManager, server: &RedisServer, what: &str) {
    tokio::time::sleep(BOUND).await;
    let key = format!("iftb:v2:ticker:{{{SYMBOL}}}");
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        let held: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&key)
            .query(&mut server.raw())
            .unwrap();
        let held = held.map(|b| iftb_cache::codec::decode::<iftb_cache::Ticker>(&b).unwrap());
        match reader.market().get_ticker(SYMBOL).await {
            Ok(got) => assert_eq!(
                got, held,
                "{what}: the reader read what Redis does not hold"
            ),
            Err(e) => assert!(e.is_unavailable(), "{what}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sets the ticker to `price` from another manager.
async fn set_ticker_elsewhere(server: &RedisServer, price: f64) {
    let writer = writer(server).await;
    let ticker = ticker(SYMBOL, price);
    writer.market().set_ticker(SYMBOL, &ticker).await.unwrap();
}

/// A near reader of `server` holding a copy of the ticker at price 1,
/// written by another manager.
async fn reader_with_a_copy(server: &RedisServer) -> CacheManager {
    let reader = near_reader(server).await;
    set_ticker_elsewhere(server, 1.0).await;
    warm(&reader).await;
    reader
}

/// Reads the ticker until the near cache serves it (a hit): the first copy
/// may die at once, to the invalidation of the write just made.
async fn warm(reader: &CacheManager) {
    assert_near_serving(reader).await;
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let before = reader.stats().near_hits;
        reader.market().get_ticker(SYMBOL).await.unwrap();
        if reader.stats().near_hits > before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no copy was kept: {:?}",
            reader.stats()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_empties_the_near_cache_before_it_serves_again() {
    let mut server = RedisServer::start();
    let reader = reader_with_a_copy(&server).await;
    let flushes = reader.stats().near_flushes;
    server.restart();
    server.wait_loaded();
    // The restarted server is empty: the copy must not be read.
    assert_reads_follow_redis(&reader, &server, "after a restart").await;
    assert!(
        reader.stats().near_flushes > flushes,
        "{:?}",
        reader.stats()
    );
    assert_near_serving(&reader).await;
    set_ticker_elsewhere(&server, 2.0).await;
    assert_reads_follow_redis(&reader, &server, "after a write on the restarted server").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_kill_of_every_normal_client_hides_no_write() {
    let server = RedisServer::start();
    let reader = reader_with_a_copy(&server).await;
    let mut raw = server.raw();
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .exec(&mut raw)
        .unwrap();
    // Written while the tracking connection is gone: no push tells of it.
    let value = iftb_cache::codec::encode(&ticker(SYMBOL, 2.0));
    redis::cmd("SET")
        .arg(format!("iftb:v2:ticker:{{{SYMBOL}}}"))
        .arg(&value[..])
        .exec(&mut raw)
        .unwrap();
    assert_reads_follow_redis(&reader, &server, "after CLIENT KILL TYPE normal").await;
    assert_near_serving(&reader).await;
    warm(&reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_pause_serves_only_what_redis_still_holds() {
    let server = RedisServer::start();
    let reader = reader_with_a_copy(&server).await;
    let writer = writer(&server).await;
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1_500)
        .arg("ALL")
        .exec(&mut server.raw())
        .unwrap();
    // A write held by the pause lands when it ends.
    let pending = {
        let writer = writer.clone();
        tokio::spawn(async move {
            writer
                .market()
                .set_ticker(SYMBOL, &ticker(SYMBOL, 2.0))
                .await
        })
    };
    let paused = Instant::now();
    while paused.elapsed() < Duration::from_millis(1_200) {
        match reader.market().get_ticker(SYMBOL).await {
            Ok(got) => assert_eq!(got, Some(ticker(SYMBOL, 1.0)), "read during the pause"),
            Err(e) => assert!(e.is_unavailable(), "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = pending.await.unwrap();
    assert_reads_follow_redis(&reader, &server, "after CLIENT PAUSE").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_stops_the_near_cache_within_its_heartbeat() {
    let server = RedisServer::start();
    let reader = near_reader(&server).await;
    server.freeze();
    let frozen = Instant::now();
    while reader.stats().near_serving {
        assert!(
            frozen.elapsed() < Duration::from_secs(2),
            "still serving from a silent server"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stopped = frozen.elapsed();
    server.thaw();
    assert_near_serving(&reader).await;
    println!("a frozen server stopped the near cache after {stopped:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_drops_every_copy() {
    let server = RedisServer::start();
    let reader = reader_with_a_copy(&server).await;
    let flushes = reader.stats().near_flushes;
    redis::cmd("FLUSHALL").exec(&mut server.raw()).unwrap();
    assert_reads_follow_redis(&reader, &server, "after FLUSHALL").await;
    assert!(reader.stats().near_flushes > flushes);
    assert!(reader.stats().near_serving, "FLUSHALL keeps tracking on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_evicted_under_maxmemory_are_never_read_from_a_copy() {
    let server =
        RedisServer::start_with(&["--maxmemory", "4mb", "--maxmemory-policy", "allkeys-lru"]);
    let reader = near_reader(&server).await;
    let writer = writer(&server).await;
    let symbols: Vec<String> = (0..200).map(|i| format!("S{i}USDT")).collect();
    let tickers: Vec<_> = symbols.iter().map(|s| ticker(s, 1.0)).collect();
    writer.market().set_tickers(&tickers).await.unwrap();
    reader.market().get_tickers(&symbols).await.unwrap();
    let evicted = || {
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query(&mut server.raw())
            .unwrap();
        let line = info
            .lines()
            .find(|l| l.starts_with("evicted_keys:"))
            .unwrap();
        line["evicted_keys:".len()..].trim().parse::<u64>().unwrap()
    };
    let mut raw = server.raw();
    let filler = vec![7u8; 64 << 10];
    for i in 0.. {
        redis::cmd("SET")
            .arg(format!("other:{i}"))
            .arg(&filler[..])
            .exec(&mut raw)
            .unwrap();
        if evicted() > 300 {
            break;
        }
    }
    tokio::time::sleep(BOUND).await;
    let mut gone = 0;
    for (symbol, t) in symbols.iter().zip(&tickers) {
        let held: bool = redis::cmd("EXISTS")
            .arg(format!("iftb:v2:ticker:{{{symbol}}}"))
            .query(&mut raw)
            .unwrap();
        let got = reader.market().get_ticker(symbol).await.unwrap();
        assert_eq!(
            got.as_ref(),
            held.then_some(t),
            "{symbol}: held by Redis: {held}"
        );
        gone += u32::from(!held);
    }
    assert!(gone > 0, "no ticker was evicted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_tracking_table_hides_no_write() {
    let server = RedisServer::start_with(&["--tracking-table-max-keys", "10"]);
    let reader = near_reader(&server).await;
    let writer = writer(&server).await;
    let symbols: Vec<String> = (0..100).map(|i| format!("S{i}USDT")).collect();
    for round in 1..=3 {
        let tickers: Vec<_> = symbols.iter().map(|s| ticker(s, round as f64)).collect();
        writer.market().set_tickers(&tickers).await.unwrap();
        tokio::time::sleep(BOUND).await;
        for _ in 0..2 {
            let got = reader.market().get_tickers(&symbols).await.unwrap();
            let expected: Vec<_> = tickers.iter().cloned().map(Some).collect();
            assert_eq!(got, expected, "round {round}");
        }
    }
    assert!(reader.stats().near_hits >= 300, "{:?}", reader.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_never_outlives_its_key_ttl_in_redis() {
    let server = RedisServer::start();
    let reader = near_reader(&server).await;
    let ttl = Duration::from_millis(300);
    let options = iftb_cache::WriteOptions::new().ttl(ttl);
    let writer = writer(&server).await;
    writer
        .market()
        .set_ticker_with(SYMBOL, &ticker(SYMBOL, 1.0), options)
        .await
        .unwrap();
    let written = Instant::now();
    warm(&reader).await;
    // Redis keeps a key until its clock, in whole milliseconds, is past
    // the expiry: a read started within a millisecond of the TTL may still
    // find it there. Each read is judged by when it started.
    let expired = ttl + Duration::from_millis(1);
    while written.elapsed() < ttl + Duration::from_millis(200) {
        let start = written.elapsed();
        let got = reader.market().get_ticker(SYMBOL).await.unwrap();
        if start > expired {
            assert_eq!(got, None, "read {start:?} after a {ttl:?} TTL");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_reads_its_own_writes_at_once() {
    let server = RedisServer::start();
    let cache = near_reader(&server).await;
    for v in 1..=200u64 {
        let price = v as f64;
        cache
            .market()
            .set_ticker(SYMBOL, &ticker(SYMBOL, price))
            .await
            .unwrap();
        cache
            .ohlcv()
            .set_bars(SYMBOL, TF, &[bar_at(0, price)])
            .await
            .unwrap();
        for _ in 0..3 {
            let t = cache.market().get_ticker(SYMBOL).await.unwrap().unwrap();
            assert_eq!(t.last, price);
            let bar = cache
                .ohlcv()
                .get_latest_bar(SYMBOL, TF)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(bar.close, price);
            let bars = cache
                .ohlcv()
                .get_bars(SYMBOL, TF, 10)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(bars[0].close, price);
        }
    }
    cache.ohlcv().invalidate(SYMBOL, TF).await.unwrap();
    assert_eq!(
        cache.ohlcv().get_latest_bar(SYMBOL, TF).await.unwrap(),
        None
    );
    assert_eq!(cache.clear_all().await.unwrap(), 1);
    assert_eq!(cache.market().get_ticker(SYMBOL).await.unwrap(), None);
    assert!(cache.stats().near_hits > 300, "{:?}", cache.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_reads_across_a_cluster_failover_are_never_stale() {
    let mut cluster = RedisCluster::start(3, 1);
    let reader = CacheManager::connect(cluster.config(|b| b.near_cache(NEAR_BYTES)))
        .await
        .unwrap();
    assert_near_serving(&reader).await;
    let writer =
        CacheManager::connect(cluster.config(|b| b.response_timeout(Duration::from_millis(500))))
            .await
            .unwrap();
    let reading = Reading::start(&reader);
    let model = Arc::clone(&reading.model);
    write_for(&writer, &model, 0, Duration::from_secs(1)).await;
    let key = format!("iftb:v2:ticker:{{{SYMBOL}}}");
    let victim = cluster.primary_of_key(&key);
    let port = cluster.nodes[victim].port();
    cluster.nodes[victim].kill();
    let killed = Instant::now();
    wait_until(
        "a failover",
        Duration::from_secs(30),
        || cluster.logs(),
        || {
            let topology = cluster.topology();
            let live = topology
                .iter()
                .filter(|n| n.primary && !n.failed && n.port != port);
            live.map(|n| n.slot_count()).sum::<usize>() == 16_384
        },
    );
    let failover = killed.elapsed();
    // Writes acknowledged by the dead primary and not yet replicated may be
    // lost: reads are held to the writes from here on.
    model.hold_from_now();
    write_for(&writer, &model, 10_000, Duration::from_secs(3)).await;
    let report = reading.stop().await;
    report.assert_none_wrong("near reads across a failover");
    let stats = reader.stats();
    assert!(
        stats.near_flushes >= 1,
        "the failover flushed nothing: {stats:?}"
    );
    assert!(
        stats.near_serving,
        "the near cache never served again: {stats:?}"
    );
    println!(
        "failover {failover:?}: {} reads, {} failed, {stats:?}",
        report.reads, report.failed
    );
}

/// A strategy's loop that reads nothing but copies never yields to its
/// runtime: on a current-thread runtime, pushes read by that runtime
/// would never be read at all. Tracking runs on a thread of its own.
#[tokio::test(flavor = "current_thread")]
async fn a_loop_of_hits_on_a_current_thread_runtime_still_sees_remote_writes() {
    let server = RedisServer::start();
    let reader = reader_with_a_copy(&server).await;
    let url = server.url();
    let written = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let config = iftb_cache::CacheConfig::builder()
                .redis_url(&url)
                .build()
                .unwrap();
            let writer = CacheManager::connect(config).await.unwrap();
            std::thread::sleep(Duration::from_millis(50));
            writer
                .market()
                .set_ticker(SYMBOL, &ticker(SYMBOL, 2.0))
                .await
                .unwrap();
            Instant::now()
        })
    });
    let start = Instant::now();
    loop {
        let got = reader.market().get_ticker(SYMBOL).await.unwrap().unwrap();
        if got.last == 2.0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the remote write was never seen"
        );
    }
    let acked = written.join().unwrap();
    let seen = Instant::now();
    assert!(
        seen.saturating_duration_since(acked) < BOUND,
        "seen {:?} after the write",
        seen - acked
    );
}

/// Writes new versions for `d`, 2 ms apart, from version `from` + 1.
async fn write_for(writer: &CacheManager, model: &Versions, from: u64, d: Duration) {
    let begun = Instant::now();
    let mut v = from;
    while begun.elapsed() < d {
        v += 1;
        model.write(writer, v).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_reads_follow_a_sentinel_failover_and_are_never_stale() {
    let mut set = SentinelSet::start();
    let reader = CacheManager::connect(set.config(|b| b.near_cache(NEAR_BYTES)))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", set.logs()));
    assert_near_serving(&reader).await;
    let writer = CacheManager::connect(set.config(|b| b)).await.unwrap();
    let reading = Reading::start(&reader);
    let model = Arc::clone(&reading.model);
    write_for(&writer, &model, 0, Duration::from_secs(1)).await;
    let old = set.primary();
    set.nodes[old].kill();
    set.wait_failed_over_from(old);
    // Writes the dead primary acknowledged and did not replicate are lost:
    // reads are held to the writes from here on.
    model.hold_from_now();
    write_for(&writer, &model, 10_000, Duration::from_secs(3)).await;
    let report = reading.stop().await;
    report.assert_none_wrong("near reads across a Sentinel failover");
    wait_until(
        "tracking on the new primary",
        Duration::from_secs(2),
        || set.logs(),
        || {
            let stats = reader.stats();
            stats.near_flushes >= 1 && stats.near_serving
        },
    );
    let stats = reader.stats();
    assert!(
        stats.near_flushes >= 1,
        "tracking did not move to the new primary: {stats:?}"
    );
    assert!(stats.near_serving, "{stats:?}");
    println!(
        "{} reads, {} failed, {stats:?}",
        report.reads, report.failed
    );
}
