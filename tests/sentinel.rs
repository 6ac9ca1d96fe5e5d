//! Redis Sentinel: one manager follows the primary through a failover
//! Sentinel is asked for (`SENTINEL FAILOVER`) and through a killed
//! primary, with no wrong read and no restart.

mod support;

use iftb_cache::{CacheManager, KeyType, Timeframe};
use std::time::{Duration, Instant};
use support::{assert_every_call_works, bar_at, ticker, Load, Report, SentinelSet};

const TF: Timeframe = Timeframe::M1;

async fn connect(set: &SentinelSet) -> CacheManager {
    let cache = CacheManager::connect(set.config(|b| b))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", set.logs()));
    assert_eq!(cache.backend_name(), "redis-sentinel");
    cache
}

/// Every call works, and its writes land on the primary the Sentinels name.
async fn writes_reach(cache: &CacheManager, set: &SentinelSet) {
    assert_every_call_works(cache).await;
    let primary = &set.nodes[set.primary()];
    assert!(
        !primary.raw_get("iftb:v2:ticker:{SYM0USDT}").is_empty(),
        "{}",
        set.logs()
    );
}

#[tokio::test]
async fn every_call_class_works_through_sentinel() {
    let set = SentinelSet::start();
    let cache = connect(&set).await;
    writes_reach(&cache, &set).await;
    let tickers: Vec<_> = (0..20)
        .map(|i| ticker(&format!("S{i}USDT"), i as f64 + 1.0))
        .collect();
    cache.market().set_tickers(&tickers).await.unwrap();
    let symbols: Vec<&str> = tickers.iter().map(|t| t.symbol.as_str()).collect();
    let found = cache.market().get_tickers(&symbols).await.unwrap();
    assert_eq!(found, tickers.into_iter().map(Some).collect::<Vec<_>>());
    // The report reads the primary the Sentinels name.
    let report = cache.memory_report().await.unwrap();
    assert_eq!(report.backend, "redis-sentinel");
    assert!(report.complete, "{report:?}");
    assert_eq!(report.get(KeyType::Ticker).keys, 21, "{report:?}");
    assert_eq!(report.get(KeyType::Series).keys, 1);
    assert_eq!(report.total().keys, 22);
    // 20 tickers, SYM0USDT's ticker and its series' two keys.
    assert_eq!(cache.clear_all().await.unwrap(), 23);
}

/// Waits out a failover from node `old` started at `since`; returns how long it took.
fn failover_time(set: &SentinelSet, old: usize, since: Instant) -> Duration {
    set.wait_failed_over_from(old);
    since.elapsed()
}

/// Runs `fault` under a mixed load and waits out the failover it causes:
/// no wrong read, failures only `Connection`/`Timeout` and no longer than
/// the failover plus 1 s, then every call works on the new primary.
async fn ride_through(what: &str, fault: impl FnOnce(&mut SentinelSet, usize)) -> Report {
    let mut set = SentinelSet::start();
    let cache = connect(&set).await;
    let load = Load::start(&cache, 8);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let old = set.primary();
    let start = Instant::now();
    fault(&mut set, old);
    let took = tokio::task::block_in_place(|| failover_time(&set, old, start));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let report = load.stop().await;
    println!("{what}: failover {took:?}; {}", report.summary());
    report.assert_sound(cache.config().call_deadline());
    assert!(
        report.longest_outage() <= took + Duration::from_secs(1),
        "{}",
        report.summary()
    );
    tokio::task::block_in_place(|| set.wait_settled());
    writes_reach(&cache, &set).await;
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_sentinel_is_asked_for_is_followed() {
    ride_through("SENTINEL FAILOVER", |set, _| set.failover()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_followed_to_the_promoted_replica() {
    let report = ride_through("primary killed", |set, old| set.nodes[old].kill()).await;
    assert!(report.failed() > 0, "the load never met the dead primary");
}

/// What Redis itself may lose: a write the primary acknowledged but never
/// sent to its replica (here the replica is frozen and its link cut while
/// the write lands) is gone once that replica is promoted. It reads as the value before it, or as a
/// miss where there was none: never as garbage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lost_in_a_failover_reads_as_the_value_before_it_or_a_miss() {
    let mut set = SentinelSet::start();
    let cache = connect(&set).await;
    let market = cache.market();
    let before = ticker("BTCUSDT", 100.0);
    market.set_ticker("BTCUSDT", &before).await.unwrap();
    let old = set.primary();
    let replica = 1 - old;
    let synced: u64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5_000)
        .query(&mut set.nodes[old].raw())
        .unwrap();
    assert_eq!(synced, 1, "the first write reached the replica");

    // Frozen, then cut off: what the primary sends now never reaches it (a
    // frozen replica alone would still read its socket's buffer on thaw).
    set.nodes[replica].freeze();
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .exec(&mut set.nodes[old].raw())
        .unwrap();
    market
        .set_ticker("BTCUSDT", &ticker("BTCUSDT", 200.0))
        .await
        .unwrap();
    market
        .set_ticker("ETHUSDT", &ticker("ETHUSDT", 3.0))
        .await
        .unwrap();
    let bars = [bar_at(0, 1.0), bar_at(60_000, 2.0)];
    cache.ohlcv().set_bars("BTCUSDT", TF, &bars).await.unwrap();
    set.nodes[old].kill();
    set.nodes[replica].thaw();
    let start = Instant::now();
    tokio::task::block_in_place(|| failover_time(&set, old, start));

    let deadline = Instant::now() + Duration::from_secs(10);
    let read = loop {
        match market.get_ticker("BTCUSDT").await {
            Ok(found) => break found,
            Err(e) if e.is_unavailable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("{e}\n{}", set.logs()),
        }
    };
    assert_eq!(
        read,
        Some(before),
        "the lost write reads as the value before it"
    );
    assert_eq!(market.get_ticker("ETHUSDT").await.unwrap(), None);
    assert_eq!(
        cache.ohlcv().get_bars("BTCUSDT", TF, 10).await.unwrap(),
        None
    );
    assert_eq!(
        cache.ohlcv().get_latest_bar("BTCUSDT", TF).await.unwrap(),
        None
    );
    writes_reach(&cache, &set).await;
}
