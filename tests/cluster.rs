//! Redis Cluster: the calls that span slots, the calls that reach every
//! primary, and a manager riding through failovers and resharding with no
//! wrong read. (The behaviour suite runs on a cluster too: `on_cluster::*`
//! in `ohlcv.rs`, `market.rs`, `llm.rs`, `contract.rs` and `bad_input.rs`.)

mod support;

use iftb_cache::{CacheManager, Timeframe};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::{
    assert_every_call_works, bar_at, ticker, wait_until, Load, NodeLine, RedisCluster,
    NODE_TIMEOUT_MS,
};

const TF: Timeframe = Timeframe::M1;

fn symbols(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("S{i}USDT")).collect()
}

async fn connect(cluster: &RedisCluster) -> CacheManager {
    connect_with(cluster, cluster.config(|b| b)).await
}

#[tokio::test]
async fn calls_spanning_slots_reach_every_primary_and_keep_the_callers_order() {
    let cluster = RedisCluster::start(3, 0);
    let cache = connect(&cluster).await;
    let syms = symbols(100);
    let tickers: Vec<_> = syms
        .iter()
        .enumerate()
        .map(|(i, s)| ticker(s, 100.0 + i as f64))
        .collect();
    cache.market().set_tickers(&tickers).await.unwrap();
    let holders: BTreeSet<usize> = syms
        .iter()
        .map(|s| cluster.primary_of_key(&format!("iftb:v2:ticker:{{{s}}}")))
        .collect();
    assert_eq!(
        holders.len(),
        3,
        "100 tickers should land on all 3 primaries"
    );

    // Reversed, with misses between: answers come back in the caller's order.
    let mut asked: Vec<String> = syms.iter().rev().cloned().collect();
    asked.insert(7, "NOPEUSDT".into());
    asked.push("ALSONOUSDT".into());
    let found = cache.market().get_tickers(&asked).await.unwrap();
    for (symbol, got) in asked.iter().zip(&found) {
        match syms.iter().position(|s| s == symbol) {
            Some(i) => assert_eq!(got.as_ref(), Some(&tickers[i]), "{symbol}"),
            None => assert_eq!(got, &None, "{symbol}"),
        }
    }

    // One pipeline per node, from the slot map asked for once: a batch
    // that met a moved slot would have been resent and the map asked again.
    cluster.nodes.iter().for_each(|n| n.reset_command_counts());
    for _ in 0..10 {
        cache.market().get_tickers(&asked).await.unwrap();
    }
    let asked_again: u64 = cluster
        .nodes
        .iter()
        .map(|n| {
            n.command_counts()
                .get("cluster|slots")
                .copied()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(asked_again, 0, "the slot map was asked for again");

    let rates: Vec<(&str, f64)> = syms
        .iter()
        .map(|s| (s.as_str(), s.len() as f64 * 1e-4))
        .collect();
    cache.market().set_funding_rates(&rates).await.unwrap();
    let got = cache.market().get_funding_rates(&syms).await.unwrap();
    assert_eq!(got, rates.iter().map(|r| Some(r.1)).collect::<Vec<_>>());

    for (i, s) in syms.iter().enumerate().take(30) {
        let bar = bar_at(i as i64 * 60_000, i as f64 + 1.0);
        cache.ohlcv().set_bars(s, TF, &[bar]).await.unwrap();
    }
    let series: Vec<(&str, Timeframe)> = syms.iter().rev().map(|s| (s.as_str(), TF)).collect();
    let latest = cache.ohlcv().get_latest_bars(&series).await.unwrap();
    for (k, bar) in latest.iter().enumerate() {
        let i = syms.len() - 1 - k;
        let expected = (i < 30).then(|| bar_at(i as i64 * 60_000, i as f64 + 1.0));
        assert_eq!(*bar, expected, "series {}", syms[i]);
    }

    let keys: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
    for k in &keys {
        cache.client().set(k, k, None).await.unwrap();
    }
    let refs: Vec<&str> = keys.iter().map(String::as_str).rev().collect();
    let values = cache.client().mget(&refs).await.unwrap();
    for (k, v) in refs.iter().zip(values) {
        assert_eq!(v.as_deref(), Some(k.as_bytes()));
    }
}

#[tokio::test]
async fn clear_all_and_flush_db_reach_every_primary() {
    let cluster = RedisCluster::start(3, 0);
    let cache = connect(&cluster).await;
    let syms = symbols(60);
    let tickers: Vec<_> = syms.iter().map(|s| ticker(s, 1.0)).collect();
    cache.market().set_tickers(&tickers).await.unwrap();
    for s in &syms[..10] {
        cache
            .ohlcv()
            .set_bars(s, TF, &[bar_at(0, 1.0)])
            .await
            .unwrap();
    }
    // Another program's key on each primary, by hash tag.
    let foreign: Vec<String> = (0..30).map(|i| format!("other:{{{i}}}")).collect();
    for key in &foreign {
        let node = &cluster.nodes[cluster.primary_of_key(key)];
        node.raw_set(key, b"theirs");
    }
    assert_eq!(cache.clear_all().await.unwrap(), 60 + 10 * 2);
    assert_eq!(
        cluster.key_count(),
        30,
        "clear_all left only the other program's keys"
    );
    assert_eq!(cache.market().get_ticker(&syms[3]).await.unwrap(), None);
    cache.market().set_tickers(&tickers).await.unwrap();
    cache.flush_db().await.unwrap();
    assert_eq!(cluster.key_count(), 0, "flush_db emptied every primary");
}

#[tokio::test]
async fn health_check_is_false_while_a_slot_is_uncovered() {
    let cluster = RedisCluster::start(3, 0);
    let cache = connect(&cluster).await;
    assert!(cache.health_check().await);
    let node = &cluster.nodes[cluster.primary_of_slot(0)];
    let slots = |cmd: &str| {
        redis::cmd("CLUSTER")
            .arg(cmd)
            .arg(0)
            .exec(&mut node.raw())
            .unwrap();
    };
    slots("DELSLOTS");
    let deadline = Instant::now() + Duration::from_secs(10);
    while cache.health_check().await {
        assert!(
            Instant::now() < deadline,
            "health stayed true with slot 0 uncovered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    slots("ADDSLOTS");
    cluster.wait_settled();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cache.health_check().await {
        assert!(
            Instant::now() < deadline,
            "health stayed false with every slot served"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long the cluster took to serve every slot again after node `dead`'s
/// death at `since`.
fn wait_failed_over(cluster: &RedisCluster, dead: u16, since: Instant) -> Duration {
    let served = || {
        let topology = cluster.topology();
        let promoted = topology
            .iter()
            .filter(|n| n.primary && !n.failed && n.port != dead);
        promoted.map(NodeLine::slot_count).sum::<usize>() == 16_384
    };
    wait_until(
        "a failover",
        Duration::from_secs(30),
        || cluster.logs(),
        served,
    );
    since.elapsed()
}

/// Ten primaries killed with SIGKILL in a row, under a mixed load of one
/// manager. Each time: no wrong read, only `Connection`/`Timeout` failures,
/// none for longer than the failover plus 1 s; afterwards every call works,
/// writes included (the promoted replica gets the series script), and the
/// killed node comes back as a replica. Prints the figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_primaries_killed_in_a_row_are_ridden_through() {
    let mut cluster = RedisCluster::start(3, 1);
    // A call to the dead primary waits out its response timeout: the outage
    // is the failover plus up to one timeout (and redis-rs's slot refresh).
    let config = cluster.config(|b| b.response_timeout(Duration::from_millis(500)));
    let cache = connect_with(&cluster, config).await;
    let deadline = cache.config().call_deadline();
    let mut outages = Vec::new();
    for round in 0..10 {
        let load = Load::start(&cache, 12);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let victim = cluster.primary_of_key("iftb:v2:ohlcv:{SYM0USDT:1m}");
        let dead = cluster.nodes[victim].port();
        let killed = Instant::now();
        cluster.nodes[victim].kill();
        let failover = tokio::task::block_in_place(|| wait_failed_over(&cluster, dead, killed));
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let report = load.stop().await;
        report.assert_sound(deadline);
        let outage = report.longest_outage();
        println!(
            "failover {round}: cluster {failover:?}; {}",
            report.summary()
        );
        assert!(
            outage <= failover + Duration::from_secs(1),
            "round {round}: calls failed for {outage:?}, the failover took {failover:?}"
        );
        outages.push((failover, outage, report.calls.len(), report.failed()));
        after_failover_every_call_works(&cache).await;
        cluster.nodes[victim].restart();
        tokio::task::block_in_place(|| cluster.wait_settled());
    }
    let worst = outages.iter().map(|o| o.1).max().unwrap();
    let calls: usize = outages.iter().map(|o| o.2).sum();
    let failed: usize = outages.iter().map(|o| o.3).sum();
    println!(
        "10 failovers (node timeout {NODE_TIMEOUT_MS} ms): longest outage {worst:?}, \
         {calls} calls, {failed} failed, 0 wrong reads"
    );
}

async fn after_failover_every_call_works(cache: &CacheManager) {
    assert_every_call_works(cache).await;
    cache.clear_all().await.unwrap();
}

/// Slots migrated with their keys (`redis-cli --cluster reshard`) while a
/// manager reads and writes them: no wrong read, and only brief
/// unavailability (a script or transaction that meets a slot half moved).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_migrated_mid_load_are_ridden_through() {
    let cluster = RedisCluster::start(3, 0);
    let cache = connect(&cluster).await;
    let load = Load::start(&cache, 12);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let from = cluster.primary_of_key("iftb:v2:ohlcv:{SYM0USDT:1m}");
    let to = (from + 1) % 3;
    // Every slot of the node: the series' slot among them, wherever it is.
    let port = cluster.nodes[from].port();
    let line = cluster
        .topology()
        .into_iter()
        .find(|n| n.port == port)
        .unwrap();
    let slots = line.slot_count();
    tokio::task::block_in_place(|| {
        cluster.reshard(from, to, slots);
        cluster.wait_settled();
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = load.stop().await;
    println!("reshard of {slots} slots: {}", report.summary());
    report.assert_sound(cache.config().call_deadline());
    assert!(
        report.longest_outage() <= Duration::from_secs(1),
        "{}",
        report.summary()
    );
    assert_eq!(
        cluster.primary_of_key("iftb:v2:ohlcv:{SYM0USDT:1m}"),
        to,
        "the series' slot moved"
    );
    after_failover_every_call_works(&cache).await;
}

/// A cluster that requires a password and has an ACL user: the data nodes'
/// credentials work as on one server, and a wrong one is refused at once.
#[tokio::test]
async fn a_cluster_with_a_password_and_an_acl_user() {
    let user = ["--user", "bot", "on", ">bot-secret", "~*", "&*", "+@all"];
    let cluster = RedisCluster::start_with(3, 0, &user, Some("admin-secret"));
    for (user, password) in [(None, "admin-secret"), (Some("bot"), "bot-secret")] {
        let config = cluster.config(|b| b.redis_node_auth(user, password));
        assert!(!format!("{config:?}").contains("secret"), "{config:?}");
        let cache = connect_with(&cluster, config).await;
        let t = ticker("BTCUSDT", 1.0);
        cache.market().set_ticker("BTCUSDT", &t).await.unwrap();
        assert_eq!(cache.market().get_ticker("BTCUSDT").await.unwrap(), Some(t));
        assert!(cache.health_check().await);
        assert_eq!(cache.clear_all().await.unwrap(), 1);
    }
    let wrong = cluster.config(|b| b.redis_node_auth(Some("bot"), "wrong"));
    let start = Instant::now();
    let err = CacheManager::connect(wrong).await.unwrap_err();
    assert_eq!(err.kind(), iftb_cache::ErrorKind::Authentication, "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "refused after {:?}",
        start.elapsed()
    );
    assert!(!err.to_string().contains("wrong"), "{err}");
}

async fn connect_with(cluster: &RedisCluster, config: iftb_cache::CacheConfig) -> CacheManager {
    CacheManager::connect(config)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", cluster.logs()))
}
