//! Market data behaviour, the same on both backends: tickers, funding rates
//! and Fear & Greed; batch reads in order; validation before any write; TTLs.

mod support;

use iftb_cache::{
    CacheConfig, CacheManager, DataType, ErrorKind, FearGreed, FearGreedClass, Ticker,
    WriteOptions, MAX_SYMBOLS_PER_CALL,
};
use std::time::Duration;
use support::{fear_greed, ticker, TestCache};

on_both_backends!(
    ticker_round_trips_and_a_miss_is_none,
    ticker_overwrite_keeps_the_latest,
    batch_tickers_come_back_in_order_with_misses,
    batch_tickers_last_duplicate_wins,
    funding_rates_one_and_many,
    fear_greed_round_trips,
    bad_ticker_or_symbol_writes_nothing,
    bad_batch_entry_writes_none_of_the_batch,
    bad_rates_and_readings_write_nothing,
    oversized_batches_are_invalid_input,
    empty_batches_are_no_ops,
);

async fn ticker_round_trips_and_a_miss_is_none(t: &TestCache) {
    let m = t.cache.market();
    assert_eq!(m.get_ticker("BTCUSDT").await.unwrap(), None);
    let btc = ticker("BTCUSDT", 45_105.0);
    m.set_ticker("BTCUSDT", &btc).await.unwrap();
    assert_eq!(m.get_ticker("BTCUSDT").await.unwrap(), Some(btc));
    assert_eq!(m.get_ticker("ETHUSDT").await.unwrap(), None);
    let s = t.cache.stats();
    assert_eq!((s.hits, s.misses), (1, 2));
}

async fn ticker_overwrite_keeps_the_latest(t: &TestCache) {
    let m = t.cache.market();
    m.set_ticker("BTCUSDT", &ticker("BTCUSDT", 1.0))
        .await
        .unwrap();
    // The key is the symbol given; the ticker keeps the exchange's spelling.
    let spelled = ticker("BTC/USDT", 2.0);
    m.set_ticker("BTCUSDT", &spelled).await.unwrap();
    assert_eq!(m.get_ticker("BTCUSDT").await.unwrap(), Some(spelled));
}

async fn batch_tickers_come_back_in_order_with_misses(t: &TestCache) {
    let m = t.cache.market();
    let all: Vec<Ticker> = (0..50)
        .map(|i| ticker(&format!("SYM{i}USDT"), 100.0 + i as f64))
        .collect();
    m.set_tickers(&all).await.unwrap();
    let asked = ["SYM7USDT", "NOPE", "SYM0USDT", "SYM49USDT", "SYM7USDT"];
    let got = m.get_tickers(&asked).await.unwrap();
    let want = vec![
        Some(all[7].clone()),
        None,
        Some(all[0].clone()),
        Some(all[49].clone()),
        Some(all[7].clone()),
    ];
    assert_eq!(got, want);
    let owned: Vec<String> = vec!["SYM1USDT".into()];
    assert_eq!(
        m.get_tickers(&owned).await.unwrap(),
        vec![Some(all[1].clone())]
    );
}

async fn batch_tickers_last_duplicate_wins(t: &TestCache) {
    let m = t.cache.market();
    let batch = [ticker("BTCUSDT", 1.0), ticker("BTCUSDT", 2.0)];
    m.set_tickers(&batch).await.unwrap();
    assert_eq!(
        m.get_ticker("BTCUSDT").await.unwrap(),
        Some(batch[1].clone())
    );
}

async fn funding_rates_one_and_many(t: &TestCache) {
    let m = t.cache.market();
    assert_eq!(m.get_funding_rate("BTCUSDT").await.unwrap(), None);
    m.set_funding_rate("BTCUSDT", 0.0001).await.unwrap();
    assert_eq!(m.get_funding_rate("BTCUSDT").await.unwrap(), Some(0.0001));
    let rates = [
        ("ETHUSDT", -0.000_25),
        ("SOLUSDT", 0.0),
        ("BTCUSDT", 0.0003),
    ];
    m.set_funding_rates(&rates).await.unwrap();
    let got = m
        .get_funding_rates(&["SOLUSDT", "XRPUSDT", "BTCUSDT", "ETHUSDT"])
        .await
        .unwrap();
    assert_eq!(got, vec![Some(0.0), None, Some(0.0003), Some(-0.000_25)]);
    // Funding rates and tickers of one symbol are separate keys.
    assert_eq!(m.get_ticker("BTCUSDT").await.unwrap(), None);
}

async fn fear_greed_round_trips(t: &TestCache) {
    let m = t.cache.market();
    assert_eq!(m.get_fear_greed().await.unwrap(), None);
    let fg = fear_greed(45, FearGreedClass::Fear);
    m.set_fear_greed(&fg).await.unwrap();
    assert_eq!(m.get_fear_greed().await.unwrap(), Some(fg));
    let next = fear_greed(82, FearGreedClass::ExtremeGreed);
    m.set_fear_greed(&next).await.unwrap();
    assert_eq!(m.get_fear_greed().await.unwrap(), Some(next));
}

/// Asserts `err` is invalid input, then that the namespace holds no key.
async fn assert_rejected(t: &TestCache, err: iftb_cache::Error, what: &str) {
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{what}: {err}");
    assert_eq!(t.cache.clear_all().await.unwrap(), 0, "{what} wrote a key");
}

async fn bad_ticker_or_symbol_writes_nothing(t: &TestCache) {
    let m = t.cache.market();
    let ok = ticker("BTCUSDT", 1.0);
    for bad in ["", "BTC USDT", "BTC:USDT", "{BTC}", "BTC*"] {
        let err = m.set_ticker(bad, &ok).await.unwrap_err();
        assert_rejected(t, err, bad).await;
        let err = m.get_ticker(bad).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
    let nan = Ticker {
        ask: f64::NAN,
        ..ok.clone()
    };
    let err = m.set_ticker("BTCUSDT", &nan).await.unwrap_err();
    assert!(err.to_string().contains("ask"), "{err}");
    assert_rejected(t, err, "NaN ask").await;
    let bad_ts = Ticker {
        timestamp: -1,
        ..ok.clone()
    };
    let err = m.set_ticker("BTCUSDT", &bad_ts).await.unwrap_err();
    assert_rejected(t, err, "negative timestamp").await;
    let err = m.get_tickers(&["BTCUSDT", "bad symbol"]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

async fn bad_batch_entry_writes_none_of_the_batch(t: &TestCache) {
    let m = t.cache.market();
    let bad = Ticker {
        volume_24h: f64::INFINITY,
        ..ticker("ETHUSDT", 2.0)
    };
    let batch = [ticker("BTCUSDT", 1.0), bad, ticker("SOLUSDT", 3.0)];
    let err = m.set_tickers(&batch).await.unwrap_err();
    assert!(err.to_string().contains("tickers[1]"), "{err}");
    assert_rejected(t, err, "ticker batch").await;
    let rates = [("BTCUSDT", 0.0001), ("ETH USDT", 0.0002)];
    let err = m.set_funding_rates(&rates).await.unwrap_err();
    assert!(err.to_string().contains("rates[1]"), "{err}");
    assert_rejected(t, err, "rate batch").await;
    let rates = [("BTCUSDT", 0.0001), ("ETHUSDT", f64::NAN)];
    let err = m.set_funding_rates(&rates).await.unwrap_err();
    assert_rejected(t, err, "NaN in a rate batch").await;
}

async fn bad_rates_and_readings_write_nothing(t: &TestCache) {
    let m = t.cache.market();
    for rate in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = m.set_funding_rate("BTCUSDT", rate).await.unwrap_err();
        assert_rejected(t, err, "non-finite rate").await;
    }
    let readings = [
        fear_greed(101, FearGreedClass::ExtremeGreed),
        fear_greed(255, FearGreedClass::ExtremeGreed),
        fear_greed(90, FearGreedClass::ExtremeFear),
        fear_greed(10, FearGreedClass::Greed),
        FearGreed {
            timestamp: -5,
            ..fear_greed(50, FearGreedClass::Neutral)
        },
    ];
    for fg in readings {
        let err = m.set_fear_greed(&fg).await.unwrap_err();
        assert_rejected(t, err, &format!("{fg:?}")).await;
    }
}

async fn oversized_batches_are_invalid_input(t: &TestCache) {
    let m = t.cache.market();
    let symbols = vec!["BTCUSDT"; MAX_SYMBOLS_PER_CALL + 1];
    let err = m.get_tickers(&symbols).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = m.get_funding_rates(&symbols).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let rates: Vec<(&str, f64)> = symbols.iter().map(|s| (*s, 0.0)).collect();
    let err = m.set_funding_rates(&rates).await.unwrap_err();
    assert_rejected(t, err, "oversized rate batch").await;
}

async fn empty_batches_are_no_ops(t: &TestCache) {
    let m = t.cache.market();
    m.set_tickers(&[]).await.unwrap();
    m.set_funding_rates::<&str>(&[]).await.unwrap();
    let none: [&str; 0] = [];
    assert!(m.get_tickers(&none).await.unwrap().is_empty());
    assert!(m.get_funding_rates(&none).await.unwrap().is_empty());
}

/// Default TTLs from the config's table, on the embedded backend with tokio's
/// paused clock: ticker 10 s, funding 60 s, Fear & Greed 300 s.
#[tokio::test(start_paused = true)]
async fn embedded_defaults_expire_on_the_ttl_table() {
    let t = support::embedded().await;
    let m = t.cache.market();
    m.set_ticker("BTCUSDT", &ticker("BTCUSDT", 1.0))
        .await
        .unwrap();
    m.set_tickers(&[ticker("ETHUSDT", 2.0)]).await.unwrap();
    m.set_funding_rate("BTCUSDT", 0.0001).await.unwrap();
    m.set_funding_rates(&[("ETHUSDT", 0.0002)]).await.unwrap();
    m.set_fear_greed(&fear_greed(50, FearGreedClass::Neutral))
        .await
        .unwrap();
    let cache = &t.cache;
    let alive = |secs: u64| async move {
        tokio::time::advance(Duration::from_secs(secs)).await;
        let m = cache.market();
        let tickers = m.get_tickers(&["BTCUSDT", "ETHUSDT"]).await.unwrap();
        let rates = m.get_funding_rates(&["BTCUSDT", "ETHUSDT"]).await.unwrap();
        let fg = m.get_fear_greed().await.unwrap();
        (
            tickers.iter().filter(|t| t.is_some()).count(),
            rates.iter().filter(|r| r.is_some()).count(),
            fg.is_some(),
        )
    };
    assert_eq!(alive(9).await, (2, 2, true));
    assert_eq!(alive(2).await, (0, 2, true), "11 s: tickers expired");
    assert_eq!(alive(48).await, (0, 2, true), "59 s");
    assert_eq!(alive(2).await, (0, 0, true), "61 s: funding expired");
    assert_eq!(alive(238).await, (0, 0, true), "299 s");
    assert_eq!(alive(2).await, (0, 0, false), "301 s: fear & greed expired");
}

/// The config's TTL table overrides the defaults, and `*_with` overrides both.
#[tokio::test(start_paused = true)]
async fn embedded_ttl_overrides() {
    let config = CacheConfig::builder()
        .ttl(DataType::Ticker, Duration::from_secs(2))
        .build()
        .unwrap();
    let cache = CacheManager::connect(config).await.unwrap();
    let m = cache.market();
    m.set_ticker("BTCUSDT", &ticker("BTCUSDT", 1.0))
        .await
        .unwrap();
    m.set_ticker_with(
        "ETHUSDT",
        &ticker("ETHUSDT", 1.0),
        WriteOptions::new().ttl(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    tokio::time::advance(Duration::from_millis(2_001)).await;
    let got = m.get_tickers(&["BTCUSDT", "ETHUSDT"]).await.unwrap();
    assert!(got[0].is_none() && got[1].is_some(), "{got:?}");
}

/// On Redis: the defaults as Redis reports them (PTTL), and a short real TTL.
#[tokio::test]
async fn redis_ttls_default_and_short() {
    let t = support::with_redis().await;
    let server = t.server.as_ref().unwrap();
    let m = t.cache.market();
    m.set_tickers(&[ticker("BTCUSDT", 1.0)]).await.unwrap();
    m.set_funding_rate("BTCUSDT", 0.0001).await.unwrap();
    m.set_fear_greed(&fear_greed(50, FearGreedClass::Neutral))
        .await
        .unwrap();
    let want = [
        ("iftb:v2:ticker:{BTCUSDT}", 10_000),
        ("iftb:v2:funding:{BTCUSDT}", 60_000),
        ("iftb:v2:fear_greed", 300_000),
    ];
    for (key, ms) in want {
        let left = server.pttl(key);
        assert!(
            (ms - 1_000..=ms).contains(&left),
            "{key}: {left}\n{}",
            server.log()
        );
    }
    let short = Duration::from_millis(150);
    m.set_ticker_with(
        "ETHUSDT",
        &ticker("ETHUSDT", 2.0),
        WriteOptions::new().ttl(short),
    )
    .await
    .unwrap();
    m.set_funding_rates_with(&[("ETHUSDT", 0.1)], WriteOptions::new().ttl(short))
        .await
        .unwrap();
    assert!(m.get_ticker("ETHUSDT").await.unwrap().is_some());
    assert!(m.get_funding_rate("ETHUSDT").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(m.get_ticker("ETHUSDT").await.unwrap(), None);
    assert_eq!(m.get_funding_rate("ETHUSDT").await.unwrap(), None);
}

/// A batch read of many symbols is one MGET: no GET per symbol.
#[tokio::test]
async fn redis_batch_reads_are_one_mget() {
    let t = support::with_redis().await;
    let server = t.server.as_ref().unwrap();
    let m = t.cache.market();
    let all: Vec<Ticker> = (0..200)
        .map(|i| ticker(&format!("S{i}"), 1.0 + i as f64))
        .collect();
    m.set_tickers(&all).await.unwrap();
    let symbols: Vec<String> = (0..300).map(|i| format!("S{i}")).collect();
    server.reset_command_counts();
    let got = m.get_tickers(&symbols).await.unwrap();
    assert_eq!(got.iter().filter(|t| t.is_some()).count(), 200);
    m.get_funding_rates(&symbols).await.unwrap();
    let seen: Vec<(String, u64)> = server.command_counts().into_iter().collect();
    assert_eq!(seen, vec![("mget".to_string(), 2)], "{}", server.log());
}

/// A value another program wrote at one of our keys (here the Python
/// original's JSON) is a codec error, never a wrong ticker; in a batch read it
/// fails the call rather than reading as a miss.
#[tokio::test]
async fn redis_foreign_values_are_codec_errors() {
    let t = support::with_redis().await;
    let server = t.server.as_ref().unwrap();
    let m = t.cache.market();
    m.set_ticker("ETHUSDT", &ticker("ETHUSDT", 2.0))
        .await
        .unwrap();
    let python = r#"{"symbol": "BTCUSDT", "bid": 45100.0, "ask": 45110.0}"#;
    let mut raw = server.raw();
    redis::cmd("SET")
        .arg("iftb:v2:ticker:{BTCUSDT}")
        .arg(python)
        .exec(&mut raw)
        .unwrap();
    // A funding rate where a ticker should be: right header, wrong kind.
    let rate: Vec<u8> = redis::cmd("GET")
        .arg("iftb:v2:ticker:{ETHUSDT}")
        .query(&mut raw)
        .unwrap();
    redis::cmd("SET")
        .arg("iftb:v2:funding:{ETHUSDT}")
        .arg(rate)
        .exec(&mut raw)
        .unwrap();
    redis::cmd("SET")
        .arg("iftb:v2:fear_greed")
        .arg(&b"IF\x03\x01"[..])
        .exec(&mut raw)
        .unwrap();
    let err = m.get_ticker("BTCUSDT").await.unwrap_err();
    assert!(
        err.is_codec() && err.to_string().contains("not an iftb-cache value"),
        "{err}"
    );
    let err = m.get_tickers(&["ETHUSDT", "BTCUSDT"]).await.unwrap_err();
    assert!(err.is_codec(), "{err}");
    let err = m.get_funding_rate("ETHUSDT").await.unwrap_err();
    assert!(
        err.is_codec() && err.to_string().contains("Ticker"),
        "{err}"
    );
    assert!(m.get_fear_greed().await.unwrap_err().is_codec());
    assert_eq!(t.cache.stats().codec_errors, 4);
}
