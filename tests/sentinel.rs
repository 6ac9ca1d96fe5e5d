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
