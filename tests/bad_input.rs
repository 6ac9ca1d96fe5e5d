//! Bad input, one test per case, on both backends: every public call that
//! takes it answers with a typed error and writes nothing; and bad
//! configuration, refused at `build()`. (Foreign values under our keys are
//! `fail_open.rs`'s.)

mod support;

use iftb_cache::{
    Bar, BarWriteOptions, CacheConfig, ComputeOptions, DataType, ErrorKind, FearGreed,
    FearGreedClass, Result, Ticker, Timeframe, WriteOptions, MAX_BARS_PER_READ, MAX_KEY_LEN,
    MAX_REPORT_LIMIT, MAX_SYMBOLS_PER_CALL, MAX_SYMBOL_LEN, MAX_TIMESTAMP_MS, MAX_VALUE_LEN,
};
use std::time::Duration;
use support::{btc_ticker, fear_greed, sample_bar, TestCache, HASH};

const TF: Timeframe = Timeframe::H1;

/// Nothing at all in the backend: not in our namespace, not elsewhere.
async fn assert_nothing_written(t: &TestCache) {
    if let Some(server) = &t.server {
        let n: u64 = redis::cmd("DBSIZE").query(&mut server.raw()).unwrap();
        assert_eq!(n, 0, "a rejected call wrote to Redis\n{}", server.log());
    }
    if let Some(cluster) = &t.cluster {
        assert_eq!(
            cluster.key_count(),
            0,
            "a rejected call wrote to the cluster"
        );
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
/// The groups are named as in `support::every_call`, and listed in `CASES`.
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
        /// Each call of `support::every_call` with bad-input cases, and its cases.
        const CASES: &[(&str, &[&str])] = &[$(($call_name, &[$(stringify!($name)),*])),*];
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
    "ohlcv.set_bars_with" {
        set_bars_with_rejects_a_zero_ttl: |t| t.cache.ohlcv().set_bars_with(
            "BTCUSDT", TF, &[sample_bar()], BarWriteOptions::new().ttl(Duration::ZERO)), then no_bars(t);
        set_bars_with_rejects_a_ttl_under_a_millisecond: |t| t.cache.ohlcv().set_bars_with(
            "BTCUSDT", TF, &[sample_bar()], BarWriteOptions::new().ttl(UNDER_A_MS)), then no_bars(t);
        set_bars_with_rejects_a_ttl_too_long_to_represent:
            |t| t.cache.ohlcv().set_bars_with("BTCUSDT", TF, &[sample_bar()], BarWriteOptions::new().ttl(Duration::MAX));
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
    "market.set_ticker_with" {
        set_ticker_with_rejects_a_zero_ttl:
            |t| t.cache.market().set_ticker_with("BTCUSDT", &btc_ticker(), WriteOptions::new().ttl(Duration::ZERO));
        set_ticker_with_rejects_a_ttl_under_a_millisecond:
            |t| t.cache.market().set_ticker_with("BTCUSDT", &btc_ticker(), WriteOptions::new().ttl(UNDER_A_MS));
        set_ticker_with_rejects_a_ttl_too_long_to_represent:
            |t| t.cache.market().set_ticker_with("BTCUSDT", &btc_ticker(), WriteOptions::new().ttl(Duration::MAX));
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
    "market.set_tickers_with" {
        set_tickers_with_rejects_a_zero_ttl:
            |t| t.cache.market().set_tickers_with(&[btc_ticker()], WriteOptions::new().ttl(Duration::ZERO));
        set_tickers_with_rejects_a_ttl_under_a_millisecond:
            |t| t.cache.market().set_tickers_with(&[btc_ticker()], WriteOptions::new().ttl(UNDER_A_MS));
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
    "market.set_funding_rate_with" {
        set_funding_rate_with_rejects_a_zero_ttl:
            |t| t.cache.market().set_funding_rate_with("BTCUSDT", 0.0001, WriteOptions::new().ttl(Duration::ZERO));
        set_funding_rate_with_rejects_a_ttl_under_a_millisecond:
            |t| t.cache.market().set_funding_rate_with("BTCUSDT", 0.0001, WriteOptions::new().ttl(UNDER_A_MS));
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
    "market.set_funding_rates_with" {
        set_funding_rates_with_rejects_a_zero_ttl: |t| t.cache.market()
            .set_funding_rates_with(&[("BTCUSDT", 0.0001)], WriteOptions::new().ttl(Duration::ZERO));
        set_funding_rates_with_rejects_a_ttl_under_a_millisecond: |t| t.cache.market()
            .set_funding_rates_with(&[("BTCUSDT", 0.0001)], WriteOptions::new().ttl(UNDER_A_MS));
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
    "market.set_fear_greed_with" {
        set_fear_greed_with_rejects_a_zero_ttl: |t| t.cache.market().set_fear_greed_with(
            &fear_greed(45, FearGreedClass::Fear), WriteOptions::new().ttl(Duration::ZERO));
        set_fear_greed_with_rejects_a_ttl_under_a_millisecond: |t| t.cache.market()
            .set_fear_greed_with(&fear_greed(45, FearGreedClass::Fear), WriteOptions::new().ttl(UNDER_A_MS));
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
    "llm.set_analysis_with" {
        set_analysis_with_rejects_a_zero_ttl: |t| t.cache.llm().set_analysis_with(
            "sentiment", HASH, &"result", WriteOptions::new().ttl(Duration::ZERO));
        set_analysis_with_rejects_a_ttl_under_a_millisecond: |t| t.cache.llm()
            .set_analysis_with("sentiment", HASH, &"result", WriteOptions::new().ttl(Duration::from_micros(10)));
    }
    "llm.get_analysis" {
        get_analysis_rejects_a_bad_analysis_type:
            |t| t.cache.llm().get_analysis::<serde_json::Value>("", HASH);
        get_analysis_rejects_a_bad_hash:
            |t| t.cache.llm().get_analysis::<serde_json::Value>("sentiment", "xyz");
    }
    "manager.inspect" {
        inspect_rejects_a_key_of_another_namespace:
            |t| t.cache.inspect("other:v2:ohlcv:{BTCUSDT:1h}");
        inspect_rejects_a_key_that_only_starts_like_the_namespace: |t| {
            let ns = t.cache.config().namespace().to_string();
            async move { t.cache.inspect(&format!("{ns}x:v2:fear_greed")).await }
        };
        inspect_rejects_an_empty_key: |t| t.cache.inspect("");
    }
    "llm.get_or_compute" {
        get_or_compute_rejects_a_bad_analysis_type_without_computing:
            |t| t.cache.llm().get_or_compute("bad type", "input", never_called);
    }
    "manager.memory_report_within" {
        memory_report_within_rejects_a_zero_limit:
            |t| t.cache.memory_report_within(Duration::ZERO);
        memory_report_within_rejects_a_limit_under_a_millisecond:
            |t| t.cache.memory_report_within(UNDER_A_MS);
        memory_report_within_rejects_a_limit_over_ten_minutes:
            |t| t.cache.memory_report_within(MAX_REPORT_LIMIT + Duration::from_millis(1));
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

/// The calls of `support::every_call` that take no input to reject.
const TAKE_NO_INPUT: [&str; 4] = [
    "market.get_fear_greed",
    "manager.clear_all",
    "manager.flush_db",
    "manager.memory_report",
];

/// A call added to the shared list without a bad-input case fails here; so
/// does a group named after no call of the list.
#[test]
fn every_public_call_has_a_bad_input_case() {
    let calls: Vec<&str> = support::every_call().iter().map(|c| c.name).collect();
    for name in &calls {
        let cases = CASES.iter().find(|(call, _)| call == name);
        assert!(
            cases.is_some_and(|(_, cases)| !cases.is_empty()) || TAKE_NO_INPUT.contains(name),
            "{name} has no bad-input case"
        );
        assert!(
            !(cases.is_some() && TAKE_NO_INPUT.contains(name)),
            "{name} has cases but is listed as taking no input"
        );
    }
    let named = CASES.iter().map(|(call, _)| call).chain(&TAKE_NO_INPUT);
    for call in named {
        assert!(calls.contains(call), "{call} is not in support::every_call");
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
fn config_rejects_timeouts_no_deadline_can_be_built_from() {
    // Duration::MAX once passed build() and panicked at connect, adding the
    // deadline's margin; an hour and a second is a unit mistake.
    for absurd in [
        Duration::MAX,
        iftb_cache::MAX_TIMEOUT + Duration::from_secs(1),
    ] {
        config_error(CacheConfig::builder().connect_timeout(absurd).build());
        config_error(CacheConfig::builder().response_timeout(absurd).build());
    }
    let longest = CacheConfig::builder()
        .connect_timeout(iftb_cache::MAX_TIMEOUT)
        .response_timeout(iftb_cache::MAX_TIMEOUT)
        .build()
        .unwrap();
    let margin = Duration::from_millis(250);
    assert_eq!(longest.call_deadline(), iftb_cache::MAX_TIMEOUT + margin);
    assert_eq!(
        longest.connect_deadline(),
        4 * iftb_cache::MAX_TIMEOUT + margin
    );
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
