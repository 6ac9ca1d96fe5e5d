//! Redis Sentinel: one manager follows the primary through a failover
//! Sentinel is asked for (`SENTINEL FAILOVER`) and through a killed
//! primary, with no wrong read and no restart.

mod support;

use iftb_cache::{CacheManager, Timeframe};
use std::time::{Duration, Instant};
use support::{bar_at, ticker, Load, SentinelSet};

const TF: Timeframe = Timeframe::M1;

async fn connect(set: &SentinelSet) -> CacheManager {
    let cache = CacheManager::connect(set.config(|b| b))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", set.logs()));
    assert_eq!(cache.backend_name(), "redis-sentinel");
    cache
}

/// Writes after the failover land on the new primary, and read back.
async fn writes_reach(cache: &CacheManager, set: &SentinelSet) {
    let bar = bar_at(9_000 * 60_000, 3.0);
    cache
        .ohlcv()
        .set_bars("SYM0USDT", TF, &[bar])
        .await
        .unwrap();
    assert_eq!(
        cache.ohlcv().get_latest_bar("SYM0USDT", TF).await.unwrap(),
        Some(bar)
    );
    let t = ticker("SYM0USDT", 4.0);
    cache.market().set_ticker("SYM0USDT", &t).await.unwrap();
    let primary = &set.nodes[set.primary()];
    assert!(
        !primary.raw_get("iftb:v2:ticker:{SYM0USDT}").is_empty(),
        "{}",
        set.logs()
    );
    assert!(cache.health_check().await);
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
    // 20 tickers, SYM0USDT's ticker and its series' two keys.
    assert_eq!(cache.clear_all().await.unwrap(), 23);
}

/// Waits out a failover from node `old` started at `since`; returns how long it took.
fn failover_time(set: &SentinelSet, old: usize, since: Instant) -> Duration {
    set.wait_failed_over_from(old);
    since.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_sentinel_is_asked_for_is_followed() {
    let set = SentinelSet::start();
    let cache = connect(&set).await;
    let load = Load::start(&cache, 8);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let old = set.primary();
    let start = Instant::now();
    set.failover();
    let took = tokio::task::block_in_place(|| failover_time(&set, old, start));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let report = load.stop().await;
    tokio::task::block_in_place(|| set.wait_settled());
    println!("SENTINEL FAILOVER: {took:?}; {}", report.summary());
    report.assert_sound(cache.config().call_deadline());
    assert!(
        report.longest_outage() <= took + Duration::from_secs(1),
        "{}",
        report.summary()
    );
    writes_reach(&cache, &set).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_primary_is_followed_to_the_promoted_replica() {
    let mut set = SentinelSet::start();
    let cache = connect(&set).await;
    let load = Load::start(&cache, 8);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let old = set.primary();
    let start = Instant::now();
    set.nodes[old].kill();
    let took = tokio::task::block_in_place(|| failover_time(&set, old, start));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let report = load.stop().await;
    println!("primary killed: failover {took:?}; {}", report.summary());
    report.assert_sound(cache.config().call_deadline());
    assert!(
        report.longest_outage() <= took + Duration::from_secs(1),
        "{}",
        report.summary()
    );
    assert!(report.failed() > 0, "the load never met the dead primary");
    writes_reach(&cache, &set).await;
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
