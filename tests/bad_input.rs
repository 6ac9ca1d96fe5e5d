//! Bad input, one test per case, on both backends: every public call that
//! takes it answers with a typed error and writes nothing. And foreign or
//! corrupt values under our keys (the Python bot's JSON, truncated records,
//! another format version): a codec error, or a counted miss in fail-open mode.

mod support;

use iftb_cache::{
    Bar, BarWriteOptions, CacheConfig, CacheManager, ComputeOptions, DataType, ErrorKind,
    FearGreed, FearGreedClass, Result, Ticker, Timeframe, MAX_BARS_PER_READ, MAX_KEY_LEN,
    MAX_SYMBOLS_PER_CALL, MAX_SYMBOL_LEN, MAX_TIMESTAMP_MS, MAX_VALUE_LEN,
};
use std::time::Duration;
use support::{btc_ticker, fear_greed, sample_bar, RedisServer, TestCache, HASH};

const TF: Timeframe = Timeframe::H1;

/// Nothing at all in the backend: not in our namespace, not elsewhere.
async fn assert_nothing_written(t: &TestCache) {
    if let Some(server) = &t.server {
        let n: u64 = redis::cmd("DBSIZE").query(&mut server.raw()).unwrap();
        assert_eq!(n, 0, "a rejected call wrote to Redis\n{}", server.log());
    }
    let n = t.cache.clear_all().await.unwrap();
    assert_eq!(n, 0, "a rejected call wrote a key");
}

/// The call failed with `InvalidInput`, wrote nothing and counted no error.
async fn rejected<T: std::fmt::Debug>(t: &TestCache, result: Result<T>) {
    let err = result.expect_err("bad input was accepted");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.is_invalid_input() && !err.is_unavailable());
    assert!(!err.to_string().is_empty());
    assert_nothing_written(t).await;
    assert_eq!(
        t.cache.stats().errors,
        0,
        "bad input is not a backend error"
    );
}

/// 5,000 good bars (more than one chunk) and one with a NaN open.
fn bars_with_one_nan() -> Vec<Bar> {
    let mut bars: Vec<Bar> = (0..5_000)
        .map(|i| Bar {
            timestamp: i * 60_000,
            ..sample_bar()
        })
        .collect();
    bars[4_321].open = f64::NAN;
    bars
}

fn oversized() -> String {
    "x".repeat(MAX_VALUE_LEN + 1)
}

fn bad_key() -> String {
    "k".repeat(MAX_KEY_LEN + 1)
}

/// One test per case, on both backends, grouped by the call they exercise:
/// `name: |t| call;` checks that the
/// call is rejected with `InvalidInput` and writes nothing; `name: |t| call,
/// then check;` runs `check` too, after the call and before the clean-up.
macro_rules! rejects {
    ($($call_name:literal {
        $($name:ident: |$t:ident| $call:expr $(, then $check:expr)?;)*
    })*) => {
        $($(
            async fn $name($t: &TestCache) {
                let result = $call.await;
                $($check.await;)?
                rejected($t, result).await;
            }
        )*)*
        on_both_backends!($($($name,)*)* get_range_rejects_a_window_holding_too_many_bars);
    };
}

/// After a rejected write of `key`, the key does not exist.
async fn no_key(t: &TestCache, key: &str) {
    let exists = t.cache.client().exists(key).await.unwrap();
    assert!(!exists, "a rejected write created {key:?}");
}

/// After a rejected write of BTCUSDT bars, the series has no bar.
async fn no_bars(t: &TestCache) {
    let latest = t.cache.ohlcv().get_latest_bar("BTCUSDT", TF).await.unwrap();
    assert_eq!(latest, None, "a rejected write stored a bar");
}

/// A TTL that rounds down to zero milliseconds.
const UNDER_A_MS: Duration = Duration::from_micros(999);

rejects! {
    "ohlcv.set_bars" {
        set_bars_rejects_an_empty_symbol: |t| t.cache.ohlcv().set_bars("", TF, &[sample_bar()]);
        set_bars_rejects_a_symbol_over_the_length_limit:
            |t| t.cache.ohlcv().set_bars(&"B".repeat(MAX_SYMBOL_LEN + 1), TF, &[sample_bar()]);
        set_bars_rejects_a_symbol_with_a_colon:
            |t| t.cache.ohlcv().set_bars("BTC:USDT", TF, &[sample_bar()]);
        set_bars_rejects_a_symbol_with_braces:
            |t| t.cache.ohlcv().set_bars("{BTCUSDT}", TF, &[sample_bar()]);
        set_bars_rejects_a_symbol_with_whitespace:
            |t| t.cache.ohlcv().set_bars("BTC USDT", TF, &[sample_bar()]);
        set_bars_rejects_a_symbol_with_a_glob_character:
            |t| t.cache.ohlcv().set_bars("BTC*", TF, &[sample_bar()]);
        set_bars_rejects_a_symbol_with_a_control_character:
            |t| t.cache.ohlcv().set_bars("BTC\0USDT", TF, &[sample_bar()]);
        set_bars_rejects_a_nan_price:
            |t| t.cache.ohlcv().set_bars("BTCUSDT", TF, &[Bar { close: f64::NAN, ..sample_bar() }]);
        set_bars_rejects_an_infinite_price: |t| t.cache.ohlcv().set_bars(
            "BTCUSDT", TF, &[Bar { high: f64::INFINITY, ..sample_bar() }]);
        set_bars_rejects_an_infinite_volume: |t| t.cache.ohlcv().set_bars(
            "BTCUSDT", TF, &[Bar { volume: f64::NEG_INFINITY, ..sample_bar() }]);
        set_bars_rejects_low_above_high:
            |t| t.cache.ohlcv().set_bars("BTCUSDT", TF, &[Bar { low: 46_000.0, ..sample_bar() }]);
        set_bars_rejects_a_negative_volume:
            |t| t.cache.ohlcv().set_bars("BTCUSDT", TF, &[Bar { volume: -0.5, ..sample_bar() }]);
        set_bars_rejects_a_negative_timestamp: |t| t.cache.ohlcv().set_bars(
            "BTCUSDT", TF, &[Bar { timestamp: -60_000, ..sample_bar() }]);
        set_bars_rejects_a_timestamp_past_2_pow_53: |t| t.cache.ohlcv().set_bars(
            "BTCUSDT", TF, &[Bar { timestamp: MAX_TIMESTAMP_MS + 1, ..sample_bar() }]);
        set_bars_rejects_a_whole_batch_for_one_bad_bar:
            |t| t.cache.ohlcv().set_bars("BTCUSDT", TF, &bars_with_one_nan());
    }
    "ohlcv.set_bars_with_ttl" {
        set_bars_with_ttl_rejects_a_zero_ttl: |t| t.cache.ohlcv().set_bars_with_ttl(
            "BTCUSDT", TF, &[sample_bar()], Duration::ZERO), then no_bars(t);
        set_bars_with_ttl_rejects_a_ttl_under_a_millisecond: |t| t.cache.ohlcv().set_bars_with_ttl(
            "BTCUSDT", TF, &[sample_bar()], UNDER_A_MS), then no_bars(t);
        set_bars_with_ttl_rejects_a_ttl_too_long_to_represent:
            |t| t.cache.ohlcv().set_bars_with_ttl("BTCUSDT", TF, &[sample_bar()], Duration::MAX);
    }
    "ohlcv.set_bars_with" {
        set_bars_with_rejects_a_zero_ttl_in_its_options: |t| t.cache.ohlcv().set_bars_with(
            "BTCUSDT", TF, &[sample_bar()], BarWriteOptions::new().ttl(Duration::ZERO));
    }
    "ohlcv.get_bars" {
        get_bars_rejects_a_bad_symbol: |t| t.cache.ohlcv().get_bars("BTC:USDT", TF, 10);
        get_bars_rejects_a_zero_limit: |t| t.cache.ohlcv().get_bars("BTCUSDT", TF, 0);
        get_bars_rejects_a_limit_over_the_maximum:
            |t| t.cache.ohlcv().get_bars("BTCUSDT", TF, MAX_BARS_PER_READ + 1);
    }
    "ohlcv.get_bars_archived" {
        get_bars_archived_rejects_a_zero_limit:
            |t| t.cache.ohlcv().get_bars_archived("BTCUSDT", TF, 0);
        get_bars_archived_rejects_a_limit_over_the_maximum:
            |t| t.cache.ohlcv().get_bars_archived("BTCUSDT", TF, MAX_BARS_PER_READ + 1);
    }
    "ohlcv.get_range" {
        get_range_rejects_a_bad_symbol: |t| t.cache.ohlcv().get_range("", TF, 0, 1);
        get_range_rejects_a_start_after_its_end:
            |t| t.cache.ohlcv().get_range("BTCUSDT", TF, 10, 9);
    }
    "ohlcv.get_latest_bar" {
        get_latest_bar_rejects_a_bad_symbol: |t| t.cache.ohlcv().get_latest_bar("BTC USDT", TF);
    }
    "ohlcv.get_latest_bars" {
        get_latest_bars_rejects_one_bad_symbol_among_good: |t| t.cache.ohlcv().get_latest_bars(
            &[("BTCUSDT", TF), ("ETH{USDT}", TF), ("SOLUSDT", TF)]);
        get_latest_bars_rejects_too_many_series:
            |t| t.cache.ohlcv().get_latest_bars(&vec![("BTCUSDT", TF); MAX_BARS_PER_READ + 1]);
    }
    "ohlcv.invalidate" {
        invalidate_rejects_a_bad_symbol: |t| t.cache.ohlcv().invalidate("BTC\nUSDT", TF);
    }
    "client.set" {
        client_set_rejects_an_empty_key: |t| t.cache.client().set("", "v", None);
        client_set_rejects_a_key_over_the_length_limit:
            |t| t.cache.client().set(&bad_key(), "v", None);
        client_set_rejects_a_zero_ttl:
            |t| t.cache.client().set("k", "v", Some(Duration::ZERO)), then no_key(t, "k");
        client_set_rejects_a_ttl_under_a_millisecond:
            |t| t.cache.client().set("k", "v", Some(Duration::from_nanos(1)));
        client_set_rejects_a_ttl_too_long_to_represent:
            |t| t.cache.client().set("k", "v", Some(Duration::MAX));
        client_set_rejects_an_oversized_value: |t| t.cache.client().set("k", &oversized(), None);
    }
    "client.set_bytes" {
        client_set_bytes_rejects_an_oversized_value:
            |t| t.cache.client().set_bytes("k", oversized().into(), None);
    }
    "client.set_json" {
        client_set_json_rejects_an_oversized_value: |t| t.cache.client().set_json(
            "k", &serde_json::json!({ "text": oversized() }), None);
        // JSON object keys are strings: a map keyed by pairs cannot be written.
        client_set_json_rejects_a_value_json_cannot_hold: |t| t.cache.client().set_json(
            "k", &std::collections::BTreeMap::from([((1, 2), "pair")]), None);
    }
    "client.get" {
        client_get_rejects_a_bad_key: |t| t.cache.client().get("");
    }
    "client.get_bytes" {
        client_get_bytes_rejects_a_bad_key: |t| t.cache.client().get_bytes(&bad_key());
    }
    "client.get_json" {
        client_get_json_rejects_a_bad_key:
            |t| t.cache.client().get_json::<serde_json::Value>("");
    }
    "client.exists" {
        client_exists_rejects_a_bad_key: |t| t.cache.client().exists(&bad_key());
    }
    "client.delete" {
        client_delete_rejects_a_bad_key: |t| t.cache.client().delete("");
    }
    "client.mget" {
        client_mget_rejects_one_bad_key_among_good:
            |t| t.cache.client().mget(&["a", &bad_key(), "b"]);
    }
    "market.set_ticker" {
        set_ticker_rejects_a_bad_symbol:
            |t| t.cache.market().set_ticker("BTC:USDT", &btc_ticker());
        set_ticker_rejects_a_bad_symbol_inside_the_ticker: |t| t.cache.market().set_ticker(
            "BTCUSDT", &Ticker { symbol: "".into(), ..btc_ticker() });
        set_ticker_rejects_a_nan_bid: |t| t.cache.market().set_ticker(
            "BTCUSDT", &Ticker { bid: f64::NAN, ..btc_ticker() });
        set_ticker_rejects_an_infinite_last_price: |t| t.cache.market().set_ticker(
            "BTCUSDT", &Ticker { last: f64::INFINITY, ..btc_ticker() });
        set_ticker_rejects_a_negative_timestamp: |t| t.cache.market().set_ticker(
            "BTCUSDT", &Ticker { timestamp: -1, ..btc_ticker() });
    }
    "market.set_ticker_with_ttl" {
        set_ticker_with_ttl_rejects_a_zero_ttl:
            |t| t.cache.market().set_ticker_with_ttl("BTCUSDT", &btc_ticker(), Duration::ZERO);
        set_ticker_with_ttl_rejects_a_ttl_under_a_millisecond:
            |t| t.cache.market().set_ticker_with_ttl("BTCUSDT", &btc_ticker(), UNDER_A_MS);
        set_ticker_with_ttl_rejects_a_ttl_too_long_to_represent:
            |t| t.cache.market().set_ticker_with_ttl("BTCUSDT", &btc_ticker(), Duration::MAX);
    }
    "market.get_ticker" {
        get_ticker_rejects_a_bad_symbol: |t| t.cache.market().get_ticker("");
    }
    "market.set_tickers" {
        set_tickers_rejects_a_whole_batch_for_one_bad_ticker: |t| t.cache.market().set_tickers(&[
            btc_ticker(),
            Ticker { symbol: "ETHUSDT".into(), ask: f64::NAN, ..btc_ticker() },
        ]);
        set_tickers_rejects_too_many_tickers:
            |t| t.cache.market().set_tickers(&vec![btc_ticker(); MAX_SYMBOLS_PER_CALL + 1]);
    }
    "market.set_tickers_with_ttl" {
        set_tickers_with_ttl_rejects_a_zero_ttl:
            |t| t.cache.market().set_tickers_with_ttl(&[btc_ticker()], Duration::ZERO);
        set_tickers_with_ttl_rejects_a_ttl_under_a_millisecond:
            |t| t.cache.market().set_tickers_with_ttl(&[btc_ticker()], UNDER_A_MS);
    }
    "market.get_tickers" {
        get_tickers_rejects_one_bad_symbol_among_good:
            |t| t.cache.market().get_tickers(&["BTCUSDT", "ETH USDT"]);
        get_tickers_rejects_too_many_symbols:
            |t| t.cache.market().get_tickers(&vec!["BTCUSDT"; MAX_SYMBOLS_PER_CALL + 1]);
    }
    "market.set_funding_rate" {
        set_funding_rate_rejects_a_nan_rate:
            |t| t.cache.market().set_funding_rate("BTCUSDT", f64::NAN);
        set_funding_rate_rejects_an_infinite_rate:
            |t| t.cache.market().set_funding_rate("BTCUSDT", f64::NEG_INFINITY);
        set_funding_rate_rejects_a_bad_symbol:
            |t| t.cache.market().set_funding_rate("BTC*", 0.0001);
    }
    "market.set_funding_rate_with_ttl" {
        set_funding_rate_with_ttl_rejects_a_zero_ttl:
            |t| t.cache.market().set_funding_rate_with_ttl("BTCUSDT", 0.0001, Duration::ZERO);
        set_funding_rate_with_ttl_rejects_a_ttl_under_a_millisecond:
            |t| t.cache.market().set_funding_rate_with_ttl("BTCUSDT", 0.0001, UNDER_A_MS);
    }
    "market.get_funding_rate" {
        get_funding_rate_rejects_a_bad_symbol: |t| t.cache.market().get_funding_rate("{BTC}");
    }
    "market.set_funding_rates" {
        set_funding_rates_rejects_a_whole_batch_for_one_bad_rate: |t| t.cache.market()
            .set_funding_rates(&[("BTCUSDT", 0.0001), ("ETHUSDT", f64::INFINITY)]);
        set_funding_rates_rejects_a_whole_batch_for_one_bad_symbol: |t| t.cache.market()
            .set_funding_rates(&[("BTCUSDT", 0.0001), ("ETH:USDT", 0.0002)]);
        set_funding_rates_rejects_too_many_rates: |t| t.cache.market().set_funding_rates(
            &vec![("BTCUSDT", 0.0001); MAX_SYMBOLS_PER_CALL + 1]);
    }
    "market.set_funding_rates_with_ttl" {
        set_funding_rates_with_ttl_rejects_a_zero_ttl: |t| t.cache.market()
            .set_funding_rates_with_ttl(&[("BTCUSDT", 0.0001)], Duration::ZERO);
        set_funding_rates_with_ttl_rejects_a_ttl_under_a_millisecond: |t| t.cache.market()
            .set_funding_rates_with_ttl(&[("BTCUSDT", 0.0001)], UNDER_A_MS);
    }
    "market.get_funding_rates" {
        get_funding_rates_rejects_one_bad_symbol_among_good:
            |t| t.cache.market().get_funding_rates(&["BTCUSDT", ""]);
    }
    "market.set_fear_greed" {
        set_fear_greed_rejects_a_value_over_100:
            |t| t.cache.market().set_fear_greed(&fear_greed(101, FearGreedClass::ExtremeGreed));
        set_fear_greed_rejects_the_largest_byte:
            |t| t.cache.market().set_fear_greed(&fear_greed(255, FearGreedClass::ExtremeGreed));
        set_fear_greed_rejects_a_value_contradicting_its_class:
            |t| t.cache.market().set_fear_greed(&fear_greed(90, FearGreedClass::ExtremeFear));
        set_fear_greed_rejects_a_negative_timestamp: |t| t.cache.market().set_fear_greed(
            &FearGreed { timestamp: -1, ..fear_greed(45, FearGreedClass::Fear) });
    }
    "market.set_fear_greed_with_ttl" {
        set_fear_greed_with_ttl_rejects_a_zero_ttl: |t| t.cache.market().set_fear_greed_with_ttl(
            &fear_greed(45, FearGreedClass::Fear), Duration::ZERO);
        set_fear_greed_with_ttl_rejects_a_ttl_under_a_millisecond: |t| t.cache.market()
            .set_fear_greed_with_ttl(&fear_greed(45, FearGreedClass::Fear), UNDER_A_MS);
    }
    "llm.set_analysis" {
        set_analysis_rejects_a_bad_analysis_type:
            |t| t.cache.llm().set_analysis("market analysis", HASH, &"result");
        set_analysis_rejects_a_hash_that_is_not_hex:
            |t| t.cache.llm().set_analysis("sentiment", "not-hex!", &"result");
        set_analysis_rejects_an_empty_hash:
            |t| t.cache.llm().set_analysis("sentiment", "", &"result");
        set_analysis_rejects_a_hash_over_128_digits:
            |t| t.cache.llm().set_analysis("sentiment", &"a".repeat(129), &"result");
        set_analysis_rejects_an_oversized_result:
            |t| t.cache.llm().set_analysis("sentiment", HASH, &oversized());
        set_analysis_rejects_a_result_json_cannot_hold: |t| t.cache.llm().set_analysis(
            "sentiment", HASH, &std::collections::BTreeMap::from([((1, 2), "pair")]));
    }
    "llm.set_analysis_with_ttl" {
        set_analysis_with_ttl_rejects_a_zero_ttl: |t| t.cache.llm().set_analysis_with_ttl(
            "sentiment", HASH, &"result", Duration::ZERO);
        set_analysis_with_ttl_rejects_a_ttl_under_a_millisecond: |t| t.cache.llm()
            .set_analysis_with_ttl("sentiment", HASH, &"result", Duration::from_micros(10));
    }
    "llm.get_analysis" {
        get_analysis_rejects_a_bad_analysis_type:
            |t| t.cache.llm().get_analysis::<serde_json::Value>("", HASH);
        get_analysis_rejects_a_bad_hash:
            |t| t.cache.llm().get_analysis::<serde_json::Value>("sentiment", "xyz");
    }
    "llm.get_or_compute" {
        get_or_compute_rejects_a_bad_analysis_type_without_computing:
            |t| t.cache.llm().get_or_compute("bad type", "input", never_called);
    }
    "llm.get_or_compute_with" {
        get_or_compute_with_rejects_a_zero_ttl_without_computing: |t| t.cache.llm()
            .get_or_compute_with(
                "sentiment", "input", ComputeOptions::new().ttl(Duration::ZERO), never_called);
        get_or_compute_with_rejects_a_zero_lease_without_computing: |t| t.cache.llm()
            .get_or_compute_with(
                "sentiment", "input", ComputeOptions::new().lock(Duration::ZERO), never_called);
    }
}

/// The computation of a rejected `get_or_compute`: it must never run.
async fn never_called() -> std::result::Result<String, std::io::Error> {
    panic!("the LLM was called for a rejected request");
}

async fn get_range_rejects_a_window_holding_too_many_bars(t: &TestCache) {
    let bars = support::flat_minute_bars(MAX_BARS_PER_READ as i64 + 1);
    let o = t.cache.ohlcv();
    o.set_bars("BTCUSDT", Timeframe::M1, &bars).await.unwrap();
    let err = o
        .get_range("BTCUSDT", Timeframe::M1, 0, i64::MAX)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    // A window of exactly the maximum is served.
    let to = (MAX_BARS_PER_READ as i64 - 1) * 60_000;
    let window = o.get_range("BTCUSDT", Timeframe::M1, 0, to).await.unwrap();
    assert_eq!(window.unwrap().len(), MAX_BARS_PER_READ);
}

// Configuration: bad values are `Config` errors at `build()`, before any
// connection is made.

fn config_error(result: Result<CacheConfig>) {
    let err = result.expect_err("a bad configuration was accepted");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}

#[test]
fn config_rejects_a_bad_namespace() {
    config_error(CacheConfig::builder().namespace("a:b").build());
}

#[test]
fn config_rejects_a_zero_ttl() {
    let b = CacheConfig::builder().ttl(DataType::Bars, Duration::ZERO);
    config_error(b.build());
}

#[test]
fn config_rejects_a_ttl_too_long_to_represent() {
    let b = CacheConfig::builder().ttl(DataType::Ticker, Duration::MAX);
    config_error(b.build());
}

#[test]
fn config_rejects_a_zero_response_timeout() {
    let b = CacheConfig::builder().response_timeout(Duration::ZERO);
    config_error(b.build());
}

#[test]
fn config_rejects_a_zero_connect_timeout() {
    let b = CacheConfig::builder().connect_timeout(Duration::ZERO);
    config_error(b.build());
}

#[test]
fn config_rejects_a_url_of_another_scheme() {
    config_error(
        CacheConfig::builder()
            .redis_url("http://127.0.0.1:6379")
            .build(),
    );
}

#[test]
fn config_rejects_a_url_that_is_not_one() {
    config_error(CacheConfig::builder().redis_url("not a url").build());
}

#[test]
fn unknown_timeframes_are_invalid_input() {
    for name in ["", "60m", "1H", "1 h", "1y"] {
        let err = name.parse::<Timeframe>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name:?}");
    }
}

// Foreign and corrupt values under our keys, written straight into Redis as
// another program (or a bit flip) would: a codec error, or a counted miss in
// fail-open mode. Never a panic, never a wrong bar.

const SERIES_KEY: &str = "iftb:ohlcv:{BTCUSDT:1h}";

async fn cache_on(server: &RedisServer, fail_open: bool) -> CacheManager {
    let config = CacheConfig::builder()
        .redis_url(&server.url())
        .fail_open(fail_open)
        .build()
        .unwrap();
    CacheManager::connect(config).await.unwrap()
}

/// Stores `member` in the series as its only bar, at score `ts`.
fn plant_record(server: &RedisServer, ts: i64, member: &[u8]) {
    redis::cmd("ZADD")
        .arg(SERIES_KEY)
        .arg(ts)
        .arg(member)
        .exec(&mut server.raw())
        .unwrap();
}

/// Every read of the series fails with a codec error when fail-open is off,
/// and is a counted miss when it is on.
async fn every_series_read_is_codec_error_or_counted_miss(server: &RedisServer) {
    let strict = cache_on(server, false).await;
    let o = strict.ohlcv();
    let reads: Vec<Result<Option<Vec<Bar>>>> = vec![
        o.get_bars("BTCUSDT", TF, 10).await,
        o.get_bars_archived("BTCUSDT", TF, 10)
            .await
            .map(|v| v.map(|v| v.to_vec())),
        o.get_range("BTCUSDT", TF, 0, i64::MAX).await,
        o.get_latest_bar("BTCUSDT", TF)
            .await
            .map(|b| b.map(|b| vec![b])),
        o.get_latest_bars(&[("BTCUSDT", TF)])
            .await
            .map(|v| v[0].map(|b| vec![b])),
    ];
    for read in reads {
        let err = read.expect_err("a foreign value was read as bars");
        assert_eq!(err.kind(), ErrorKind::Codec, "{err}");
    }
    let stats = strict.stats();
    assert_eq!((stats.codec_errors, stats.hits), (5, 0), "{stats:?}");

    let lenient = cache_on(server, true).await;
    let o = lenient.ohlcv();
    assert_eq!(o.get_bars("BTCUSDT", TF, 10).await.unwrap(), None);
    assert!(o
        .get_bars_archived("BTCUSDT", TF, 10)
        .await
        .unwrap()
        .is_none());
    assert_eq!(o.get_range("BTCUSDT", TF, 0, i64::MAX).await.unwrap(), None);
    assert_eq!(o.get_latest_bar("BTCUSDT", TF).await.unwrap(), None);
    let many = o.get_latest_bars(&[("BTCUSDT", TF)]).await.unwrap();
    assert_eq!(many, vec![None]);
    let stats = lenient.stats();
    assert_eq!(stats.fail_open_misses, 5, "{stats:?}");
    assert_eq!((stats.misses, stats.hits, stats.codec_errors), (5, 0, 5));
}

#[tokio::test]
async fn the_python_bots_json_bar_in_a_series_is_a_codec_error() {
    let server = RedisServer::start();
    let json = br#"{"timestamp": 1705478400000, "open": 45000.0, "high": 45500.0,
        "low": 44800.0, "close": 45200.0, "volume": 1234.5}"#;
    plant_record(&server, 1_705_478_400_000, json);
    every_series_read_is_codec_error_or_counted_miss(&server).await;
}

#[tokio::test]
async fn the_python_bots_json_string_at_a_series_key_is_a_codec_error() {
    // The original stored each bar as a JSON string; one at our series key
    // is a value of another type (WRONGTYPE), foreign all the same.
    let server = RedisServer::start();
    let json = r#"{"timestamp": 1705478400000, "close": 45200.0}"#;
    redis::cmd("SET")
        .arg(SERIES_KEY)
        .arg(json)
        .exec(&mut server.raw())
        .unwrap();
    every_series_read_is_codec_error_or_counted_miss(&server).await;
}

#[tokio::test]
async fn a_truncated_record_is_a_codec_error() {
    let server = RedisServer::start();
    let record = iftb_cache::codec::encode(&sample_bar());
    plant_record(&server, sample_bar().timestamp, &record[..record.len() - 8]);
    every_series_read_is_codec_error_or_counted_miss(&server).await;
}

#[tokio::test]
async fn a_record_with_trailing_bytes_is_a_codec_error() {
    let server = RedisServer::start();
    let mut record = iftb_cache::codec::encode(&sample_bar()).to_vec();
    record.extend_from_slice(b"tail");
    plant_record(&server, sample_bar().timestamp, &record);
    every_series_read_is_codec_error_or_counted_miss(&server).await;
}

#[tokio::test]
async fn a_record_of_another_format_version_is_a_codec_error() {
    let server = RedisServer::start();
    let mut record = iftb_cache::codec::encode(&sample_bar()).to_vec();
    record[3] = iftb_cache::codec::FORMAT_VERSION + 1;
    plant_record(&server, sample_bar().timestamp, &record);
    every_series_read_is_codec_error_or_counted_miss(&server).await;
}

#[tokio::test]
async fn a_record_of_another_kind_is_a_codec_error() {
    let server = RedisServer::start();
    let record = iftb_cache::codec::encode(&0.0001f64);
    plant_record(&server, sample_bar().timestamp, &record);
    every_series_read_is_codec_error_or_counted_miss(&server).await;
}

#[tokio::test]
async fn a_bar_record_holding_impossible_prices_is_a_codec_error() {
    // A well-formed header over a payload no writer could have produced:
    // NaN prices, which every write rejects. Handing it out would poison
    // every indicator downstream.
    let server = RedisServer::start();
    let mut record = iftb_cache::codec::encode(&sample_bar()).to_vec();
    let close = iftb_cache::codec::HEADER_LEN + 8 * 4;
    record[close..close + 8].copy_from_slice(&f64::NAN.to_le_bytes());
    plant_record(&server, sample_bar().timestamp, &record);
    every_series_read_is_codec_error_or_counted_miss(&server).await;
}

#[tokio::test]
async fn garbage_bytes_are_a_codec_error() {
    let server = RedisServer::start();
    plant_record(&server, 0, &[0xFF; 52]);
    every_series_read_is_codec_error_or_counted_miss(&server).await;
}

#[tokio::test]
async fn a_client_value_that_is_not_utf8_is_a_codec_error_or_a_counted_miss() {
    let server = RedisServer::start();
    redis::cmd("SET")
        .arg("iftb:kv:k")
        .arg(&[0xC3u8, 0x28][..])
        .exec(&mut server.raw())
        .unwrap();
    let strict = cache_on(&server, false).await;
    let err = strict.client().get("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Codec, "{err}");
    let lenient = cache_on(&server, true).await;
    assert_eq!(lenient.client().get("k").await.unwrap(), None);
    let bytes = lenient.client().get_bytes("k").await.unwrap();
    assert_eq!(
        bytes.as_deref(),
        Some(&[0xC3u8, 0x28][..]),
        "raw bytes are served"
    );
    let stats = lenient.stats();
    assert_eq!(
        (stats.fail_open_misses, stats.misses, stats.hits),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn a_client_value_that_is_not_the_expected_json_is_a_codec_error_or_a_counted_miss() {
    let server = RedisServer::start();
    redis::cmd("SET")
        .arg("iftb:kv:j")
        .arg(r#"{"close": "not a number"}"#)
        .exec(&mut server.raw())
        .unwrap();
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Expected {
        close: f64,
    }
    let strict = cache_on(&server, false).await;
    let err = strict.client().get_json::<Expected>("j").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Codec, "{err}");
    let lenient = cache_on(&server, true).await;
    let got = lenient.client().get_json::<Expected>("j").await.unwrap();
    assert!(got.is_none());
    assert_eq!(lenient.stats().fail_open_misses, 1);
}

/// One read of the market data or LLM caches, reduced to "found a value".
#[derive(Debug, Clone, Copy)]
enum Read {
    Ticker,
    Tickers,
    FundingRate,
    FundingRates,
    FearGreed,
    Analysis,
}

async fn read(cache: &CacheManager, what: Read) -> Result<bool> {
    let m = cache.market();
    Ok(match what {
        Read::Ticker => m.get_ticker("BTCUSDT").await?.is_some(),
        Read::Tickers => m.get_tickers(&["BTCUSDT"]).await?[0].is_some(),
        Read::FundingRate => m.get_funding_rate("BTCUSDT").await?.is_some(),
        Read::FundingRates => m.get_funding_rates(&["BTCUSDT"]).await?[0].is_some(),
        Read::FearGreed => m.get_fear_greed().await?.is_some(),
        Read::Analysis => {
            let llm = cache.llm();
            let got = llm
                .get_analysis::<serde_json::Value>("sentiment", HASH)
                .await;
            got?.is_some()
        }
    })
}

/// Stores `value` at `key` as another program would.
fn plant(server: &RedisServer, key: &str, value: &[u8]) {
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .exec(&mut server.raw())
        .unwrap();
}

/// Each read is a codec error when fail-open is off, a counted miss when on.
async fn codec_error_or_counted_miss(server: &RedisServer, reads: &[Read]) {
    let strict = cache_on(server, false).await;
    for &what in reads {
        let err = read(&strict, what)
            .await
            .expect_err("a foreign value was read");
        assert_eq!(err.kind(), ErrorKind::Codec, "{what:?}: {err}");
    }
    assert_eq!(strict.stats().codec_errors, reads.len() as u64);
    let lenient = cache_on(server, true).await;
    for &what in reads {
        assert!(
            !read(&lenient, what).await.unwrap(),
            "{what:?} found a value"
        );
    }
    let stats = lenient.stats();
    let n = reads.len() as u64;
    assert_eq!(
        (stats.fail_open_misses, stats.misses, stats.hits),
        (n, n, 0)
    );
}

const TICKER_KEY: &str = "iftb:ticker:{BTCUSDT}";
const FUNDING_KEY: &str = "iftb:funding:{BTCUSDT}";
const FEAR_GREED_KEY: &str = "iftb:fear_greed";

fn llm_key() -> String {
    format!("iftb:llm:{{sentiment}}:{HASH}")
}

#[tokio::test]
async fn the_python_bots_json_ticker_is_a_codec_error() {
    let server = RedisServer::start();
    let json = br#"{"symbol": "BTCUSDT", "bid": 45100.0, "ask": 45110.0, "last": 45105.0}"#;
    plant(&server, TICKER_KEY, json);
    codec_error_or_counted_miss(&server, &[Read::Ticker, Read::Tickers]).await;
}

#[tokio::test]
async fn a_truncated_ticker_is_a_codec_error() {
    let server = RedisServer::start();
    let record = iftb_cache::codec::encode(&btc_ticker());
    plant(&server, TICKER_KEY, &record[..record.len() / 2]);
    codec_error_or_counted_miss(&server, &[Read::Ticker, Read::Tickers]).await;
}

#[tokio::test]
async fn a_funding_rate_at_a_ticker_key_is_a_codec_error() {
    let server = RedisServer::start();
    plant(&server, TICKER_KEY, &iftb_cache::codec::encode(&0.0001f64));
    codec_error_or_counted_miss(&server, &[Read::Ticker, Read::Tickers]).await;
}

#[tokio::test]
async fn a_hash_at_a_ticker_key_is_a_codec_error() {
    let server = RedisServer::start();
    redis::cmd("HSET")
        .arg(TICKER_KEY)
        .arg("bid")
        .arg("45100")
        .exec(&mut server.raw())
        .unwrap();
    // MGET answers nil for a key of another type: only the single read sees it.
    codec_error_or_counted_miss(&server, &[Read::Ticker]).await;
}

#[tokio::test]
async fn a_ticker_record_holding_a_nan_price_is_a_codec_error() {
    let server = RedisServer::start();
    let bad = Ticker {
        bid: f64::NAN,
        ..btc_ticker()
    };
    plant(&server, TICKER_KEY, &iftb_cache::codec::encode(&bad));
    codec_error_or_counted_miss(&server, &[Read::Ticker, Read::Tickers]).await;
}

#[tokio::test]
async fn the_python_bots_funding_rate_text_is_a_codec_error() {
    let server = RedisServer::start();
    plant(&server, FUNDING_KEY, b"0.0001");
    codec_error_or_counted_miss(&server, &[Read::FundingRate, Read::FundingRates]).await;
}

#[tokio::test]
async fn a_funding_rate_record_holding_nan_is_a_codec_error() {
    let server = RedisServer::start();
    plant(&server, FUNDING_KEY, &iftb_cache::codec::encode(&f64::NAN));
    codec_error_or_counted_miss(&server, &[Read::FundingRate, Read::FundingRates]).await;
}

#[tokio::test]
async fn a_fear_greed_record_of_another_format_version_is_a_codec_error() {
    let server = RedisServer::start();
    let mut record = iftb_cache::codec::encode(&fear_greed(45, FearGreedClass::Fear)).to_vec();
    record[3] = iftb_cache::codec::FORMAT_VERSION + 1;
    plant(&server, FEAR_GREED_KEY, &record);
    codec_error_or_counted_miss(&server, &[Read::FearGreed]).await;
}

#[tokio::test]
async fn a_fear_greed_record_holding_a_value_over_100_is_a_codec_error() {
    let server = RedisServer::start();
    let record = iftb_cache::codec::encode(&fear_greed(200, FearGreedClass::ExtremeGreed));
    plant(&server, FEAR_GREED_KEY, &record);
    codec_error_or_counted_miss(&server, &[Read::FearGreed]).await;
}

#[tokio::test]
async fn the_python_bots_json_analysis_is_a_codec_error() {
    // The original stored LLM results as bare JSON, with no header.
    let server = RedisServer::start();
    plant(
        &server,
        &llm_key(),
        br#"{"sentiment": "bullish", "confidence": 0.8}"#,
    );
    codec_error_or_counted_miss(&server, &[Read::Analysis]).await;
}

#[tokio::test]
async fn a_compressed_analysis_claiming_a_huge_length_is_a_codec_error() {
    let server = RedisServer::start();
    let mut value = b"IF\x06\x01".to_vec(); // Kind::JsonCompressed, version 1
    value.extend_from_slice(&u32::MAX.to_le_bytes());
    value.extend_from_slice(&[0x10, b'{', b'}']);
    plant(&server, &llm_key(), &value);
    codec_error_or_counted_miss(&server, &[Read::Analysis]).await;
}

#[tokio::test]
async fn a_truncated_compressed_analysis_is_a_codec_error() {
    let server = RedisServer::start();
    let big = serde_json::json!({ "text": "bullish ".repeat(4_000) });
    let cache = cache_on(&server, false).await;
    cache
        .llm()
        .set_analysis("sentiment", HASH, &big)
        .await
        .unwrap();
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(llm_key())
        .query(&mut server.raw())
        .unwrap();
    assert_eq!(stored[2], 6, "stored compressed");
    plant(&server, &llm_key(), &stored[..stored.len() - 20]);
    codec_error_or_counted_miss(&server, &[Read::Analysis]).await;
}

#[tokio::test]
async fn get_or_compute_recomputes_over_a_foreign_value() {
    let server = RedisServer::start();
    let cache = cache_on(&server, false).await;
    let input = "BTC market analysis";
    let key = format!(
        "iftb:llm:{{sentiment}}:{}",
        iftb_cache::LlmCache::hash_input(input)
    );
    plant(&server, &key, b"not even json");
    let fresh = || async { Ok::<_, std::io::Error>("bullish".to_string()) };
    let got: String = cache
        .llm()
        .get_or_compute("sentiment", input, fresh)
        .await
        .unwrap();
    assert_eq!(got, "bullish");
    assert_eq!(
        cache.stats().codec_errors,
        1,
        "the foreign value was reported"
    );
    let again: Option<String> = cache
        .llm()
        .get_analysis("sentiment", &iftb_cache::LlmCache::hash_input(input))
        .await
        .unwrap();
    assert_eq!(again.as_deref(), Some("bullish"), "and replaced");
}
