//! The contract every backend keeps: the low-level client, the manager's
//! health and clearing, and bad input rejected with nothing written.

mod support;

use iftb_cache::{ErrorKind, Timeframe};
use std::time::Duration;
use support::{flat_bar, TestCache};

on_both_backends!(
    client_set_get_delete_exists,
    client_json_round_trips,
    client_mget_keeps_order_and_misses,
    client_bad_input_writes_nothing,
    client_foreign_bytes_are_codec_errors,
    health_check_answers,
    clear_all_empties_the_namespace,
    invalid_symbol_writes_nothing,
    stats_count_hits_and_misses,
);

async fn client_set_get_delete_exists(t: &TestCache) {
    let c = t.cache.client();
    assert_eq!(c.get("k").await.unwrap(), None);
    c.set("k", "v1", None).await.unwrap();
    assert_eq!(c.get("k").await.unwrap().as_deref(), Some("v1"));
    c.set("k", "v2", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(c.get("k").await.unwrap().as_deref(), Some("v2"));
    assert!(c.exists("k").await.unwrap());
    assert!(c.delete("k").await.unwrap());
    assert!(!c.delete("k").await.unwrap());
    assert!(!c.exists("k").await.unwrap());
    let raw = bytes::Bytes::from_static(&[0, 159, 146, 150]);
    c.set_bytes("b", raw.clone(), None).await.unwrap();
    assert_eq!(c.get_bytes("b").await.unwrap(), Some(raw));
}

async fn client_json_round_trips(t: &TestCache) {
    let c = t.cache.client();
    let doc = serde_json::json!({"data": "value", "n": [1, 2, 3]});
    c.set_json("j", &doc, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let back: Option<serde_json::Value> = c.get_json("j").await.unwrap();
    assert_eq!(back, Some(doc));
    let missing: Option<serde_json::Value> = c.get_json("none").await.unwrap();
    assert_eq!(missing, None);
}

async fn client_mget_keeps_order_and_misses(t: &TestCache) {
    let c = t.cache.client();
    c.set("a", "1", None).await.unwrap();
    c.set("c", "3", None).await.unwrap();
    let got = c.mget(&["a", "b", "c"]).await.unwrap();
    let got: Vec<Option<&[u8]>> = got.iter().map(|v| v.as_deref()).collect();
    assert_eq!(got, vec![Some(&b"1"[..]), None, Some(&b"3"[..])]);
    assert!(c.mget(&[]).await.unwrap().is_empty());
}

async fn client_bad_input_writes_nothing(t: &TestCache) {
    let c = t.cache.client();
    assert_eq!(
        c.set("", "v", None).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let long = "k".repeat(iftb_cache::MAX_KEY_LEN + 1);
    assert_eq!(
        c.get(&long).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let huge = bytes::Bytes::from(vec![0u8; iftb_cache::MAX_VALUE_LEN + 1]);
    let err = c.set_bytes("huge", huge, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(!c.exists("huge").await.unwrap());
}

async fn client_foreign_bytes_are_codec_errors(t: &TestCache) {
    let c = t.cache.client();
    c.set_bytes("bin", bytes::Bytes::from_static(&[0xff, 0xfe]), None)
        .await
        .unwrap();
    assert_eq!(c.get("bin").await.unwrap_err().kind(), ErrorKind::Codec);
    c.set("text", "not json {", None).await.unwrap();
    let err = c.get_json::<serde_json::Value>("text").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Codec);
    assert!(t.cache.stats().codec_errors >= 2);
}

async fn health_check_answers(t: &TestCache) {
    assert!(t.cache.health_check().await);
}

async fn clear_all_empties_the_namespace(t: &TestCache) {
    let bars = [flat_bar(0)];
    t.cache
        .ohlcv()
        .set_bars("BTCUSDT", Timeframe::H1, &bars)
        .await
        .unwrap();
    for i in 0..2_500 {
        t.cache
            .client()
            .set(&format!("k{i}"), "v", None)
            .await
            .unwrap();
    }
    // A series is two keys in Redis (its runs and its head), one entry embedded.
    let series_keys = if t.cache.backend_name() == "embedded" {
        1
    } else {
        2
    };
    assert_eq!(t.cache.clear_all().await.unwrap(), 2_500 + series_keys);
    assert!(!t.cache.client().exists("k7").await.unwrap());
    let gone = t
        .cache
        .ohlcv()
        .get_latest_bar("BTCUSDT", Timeframe::H1)
        .await
        .unwrap();
    assert_eq!(gone, None);
}

async fn invalid_symbol_writes_nothing(t: &TestCache) {
    let bars = [flat_bar(0)];
    let o = t.cache.ohlcv();
    for bad in ["", "BTC USDT", "BTC:USDT", "{BTC}"] {
        let err = o.set_bars(bad, Timeframe::H1, &bars).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
        let err = o.get_bars(bad, Timeframe::H1, 10).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
    }
    assert_eq!(
        t.cache.clear_all().await.unwrap(),
        0,
        "a rejected call wrote a key"
    );
}

async fn stats_count_hits_and_misses(t: &TestCache) {
    let c = t.cache.client();
    c.set("hit", "v", None).await.unwrap();
    c.get("hit").await.unwrap();
    c.get("miss").await.unwrap();
    c.get("miss").await.unwrap();
    let s = t.cache.stats();
    assert_eq!((s.hits, s.misses), (1, 2));
    assert_eq!(s.hit_rate(), Some(1.0 / 3.0));
}

/// Only Redis is shared with other programs: their keys survive `clear_all`,
/// and `flush_db` is the one call that removes them.
#[tokio::test]
async fn clear_all_leaves_other_programs_keys_alone() {
    let t = support::with_redis().await;
    let server = t.server.as_ref().unwrap();
    let mut raw = server.raw();
    redis::cmd("SET")
        .arg("other:app:key")
        .arg("x")
        .exec(&mut raw)
        .unwrap();
    t.cache.client().set("mine", "y", None).await.unwrap();
    assert_eq!(t.cache.clear_all().await.unwrap(), 1);
    let other: Option<String> = redis::cmd("GET")
        .arg("other:app:key")
        .query(&mut raw)
        .unwrap();
    assert_eq!(other.as_deref(), Some("x"), "{}", server.log());
    t.cache.flush_db().await.unwrap();
    let n: u64 = redis::cmd("DBSIZE").query(&mut raw).unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn connecting_to_nothing_fails_fast_with_a_connection_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = iftb_cache::CacheConfig::builder()
        .redis_url(&format!("redis://127.0.0.1:{port}"))
        .connect_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let err = iftb_cache::CacheManager::connect(config).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn connecting_to_a_server_that_never_answers_fails_within_the_connect_deadline() {
    // Accepts the connection, never says a word: the handshake hangs.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let config = iftb_cache::CacheConfig::builder()
        .redis_url(&format!("redis://127.0.0.1:{port}"))
        .connect_timeout(Duration::from_millis(200))
        .response_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let deadline = config.connect_deadline();
    let started = std::time::Instant::now();
    let err = iftb_cache::CacheManager::connect(config).await.unwrap_err();
    let took = started.elapsed();
    assert!(err.is_unavailable(), "{err}");
    // One bound for the whole connect, not one per attempt or step.
    let slack = Duration::from_millis(300);
    assert!(
        took <= deadline + slack,
        "took {took:?}, deadline {deadline:?}"
    );
    held.abort();
}
