//! Bad input, one test per case, on both backends: every public call that
//! takes it answers with a typed error and writes nothing. And foreign or
//! corrupt values under our keys (the Python bot's JSON, truncated records,
//! another format version): a codec error, or a counted miss in fail-open mode.

mod support;

use iftb_cache::{
    Bar, BarWriteOptions, CacheConfig, CacheManager, DataType, ErrorKind, Result, Timeframe,
    MAX_BARS_PER_READ, MAX_KEY_LEN, MAX_SYMBOL_LEN, MAX_TIMESTAMP_MS, MAX_VALUE_LEN,
};
use std::time::Duration;
use support::{RedisServer, TestCache};

const TF: Timeframe = Timeframe::H1;

fn good() -> Bar {
    Bar::new(
        1_705_478_400_000,
        45_000.0,
        45_500.0,
        44_800.0,
        45_200.0,
        1_234.5,
    )
}

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

async fn set_bars_rejects(t: &TestCache, symbol: &str, bars: &[Bar]) {
    rejected(t, t.cache.ohlcv().set_bars(symbol, TF, bars).await).await;
}

async fn set_bars_rejects_bar(t: &TestCache, bad: Bar) {
    set_bars_rejects(t, "BTCUSDT", &[bad]).await;
}

on_both_backends!(
    set_bars_rejects_an_empty_symbol,
    set_bars_rejects_a_symbol_over_the_length_limit,
    set_bars_rejects_a_symbol_with_a_colon,
    set_bars_rejects_a_symbol_with_braces,
    set_bars_rejects_a_symbol_with_whitespace,
    set_bars_rejects_a_symbol_with_a_glob_character,
    set_bars_rejects_a_symbol_with_a_control_character,
    set_bars_rejects_a_nan_price,
    set_bars_rejects_an_infinite_price,
    set_bars_rejects_an_infinite_volume,
    set_bars_rejects_low_above_high,
    set_bars_rejects_a_negative_volume,
    set_bars_rejects_a_negative_timestamp,
    set_bars_rejects_a_timestamp_past_2_pow_53,
    set_bars_rejects_a_whole_batch_for_one_bad_bar,
    set_bars_with_ttl_rejects_a_zero_ttl,
    set_bars_with_ttl_rejects_a_ttl_under_a_millisecond,
    set_bars_with_ttl_rejects_a_ttl_too_long_to_represent,
    set_bars_with_rejects_a_zero_ttl_in_its_options,
    get_bars_rejects_a_bad_symbol,
    get_bars_rejects_a_zero_limit,
    get_bars_rejects_a_limit_over_the_maximum,
    get_bars_archived_rejects_a_zero_limit,
    get_bars_archived_rejects_a_limit_over_the_maximum,
    get_range_rejects_a_bad_symbol,
    get_range_rejects_a_start_after_its_end,
    get_range_rejects_a_window_holding_too_many_bars,
    get_latest_bar_rejects_a_bad_symbol,
    get_latest_bars_rejects_one_bad_symbol_among_good,
    get_latest_bars_rejects_too_many_series,
    invalidate_rejects_a_bad_symbol,
    client_set_rejects_an_empty_key,
    client_set_rejects_a_key_over_the_length_limit,
    client_set_rejects_a_zero_ttl,
    client_set_rejects_a_ttl_under_a_millisecond,
    client_set_rejects_a_ttl_too_long_to_represent,
    client_set_rejects_an_oversized_value,
    client_set_bytes_rejects_an_oversized_value,
    client_set_json_rejects_an_oversized_value,
    client_set_json_rejects_a_value_json_cannot_hold,
    client_get_rejects_a_bad_key,
    client_get_bytes_rejects_a_bad_key,
    client_get_json_rejects_a_bad_key,
    client_exists_rejects_a_bad_key,
    client_delete_rejects_a_bad_key,
    client_mget_rejects_one_bad_key_among_good,
);

async fn set_bars_rejects_an_empty_symbol(t: &TestCache) {
    set_bars_rejects(t, "", &[good()]).await;
}

async fn set_bars_rejects_a_symbol_over_the_length_limit(t: &TestCache) {
    set_bars_rejects(t, &"B".repeat(MAX_SYMBOL_LEN + 1), &[good()]).await;
}

async fn set_bars_rejects_a_symbol_with_a_colon(t: &TestCache) {
    set_bars_rejects(t, "BTC:USDT", &[good()]).await;
}

async fn set_bars_rejects_a_symbol_with_braces(t: &TestCache) {
    set_bars_rejects(t, "{BTCUSDT}", &[good()]).await;
}

async fn set_bars_rejects_a_symbol_with_whitespace(t: &TestCache) {
    set_bars_rejects(t, "BTC USDT", &[good()]).await;
}

async fn set_bars_rejects_a_symbol_with_a_glob_character(t: &TestCache) {
    set_bars_rejects(t, "BTC*", &[good()]).await;
}

async fn set_bars_rejects_a_symbol_with_a_control_character(t: &TestCache) {
    set_bars_rejects(t, "BTC\0USDT", &[good()]).await;
}

async fn set_bars_rejects_a_nan_price(t: &TestCache) {
    set_bars_rejects_bar(
        t,
        Bar {
            close: f64::NAN,
            ..good()
        },
    )
    .await;
}

async fn set_bars_rejects_an_infinite_price(t: &TestCache) {
    set_bars_rejects_bar(
        t,
        Bar {
            high: f64::INFINITY,
            ..good()
        },
    )
    .await;
}

async fn set_bars_rejects_an_infinite_volume(t: &TestCache) {
    set_bars_rejects_bar(
        t,
        Bar {
            volume: f64::NEG_INFINITY,
            ..good()
        },
    )
    .await;
}

async fn set_bars_rejects_low_above_high(t: &TestCache) {
    set_bars_rejects_bar(
        t,
        Bar {
            low: 46_000.0,
            ..good()
        },
    )
    .await;
}

async fn set_bars_rejects_a_negative_volume(t: &TestCache) {
    set_bars_rejects_bar(
        t,
        Bar {
            volume: -0.5,
            ..good()
        },
    )
    .await;
}

async fn set_bars_rejects_a_negative_timestamp(t: &TestCache) {
    set_bars_rejects_bar(
        t,
        Bar {
            timestamp: -60_000,
            ..good()
        },
    )
    .await;
}

async fn set_bars_rejects_a_timestamp_past_2_pow_53(t: &TestCache) {
    set_bars_rejects_bar(
        t,
        Bar {
            timestamp: MAX_TIMESTAMP_MS + 1,
            ..good()
        },
    )
    .await;
}

async fn set_bars_rejects_a_whole_batch_for_one_bad_bar(t: &TestCache) {
    let mut bars: Vec<Bar> = (0..5_000)
        .map(|i| Bar {
            timestamp: i * 60_000,
            ..good()
        })
        .collect();
    bars[4_321].open = f64::NAN;
    set_bars_rejects(t, "BTCUSDT", &bars).await;
}

async fn set_bars_with_ttl_rejects(t: &TestCache, ttl: Duration) {
    let o = t.cache.ohlcv();
    rejected(t, o.set_bars_with_ttl("BTCUSDT", TF, &[good()], ttl).await).await;
}

async fn set_bars_with_ttl_rejects_a_zero_ttl(t: &TestCache) {
    set_bars_with_ttl_rejects(t, Duration::ZERO).await;
}

async fn set_bars_with_ttl_rejects_a_ttl_under_a_millisecond(t: &TestCache) {
    set_bars_with_ttl_rejects(t, Duration::from_micros(999)).await;
}

async fn set_bars_with_ttl_rejects_a_ttl_too_long_to_represent(t: &TestCache) {
    set_bars_with_ttl_rejects(t, Duration::MAX).await;
}

async fn set_bars_with_rejects_a_zero_ttl_in_its_options(t: &TestCache) {
    let opts = BarWriteOptions::new().ttl(Duration::ZERO);
    let o = t.cache.ohlcv();
    rejected(t, o.set_bars_with("BTCUSDT", TF, &[good()], opts).await).await;
}

async fn get_bars_rejects_a_bad_symbol(t: &TestCache) {
    rejected(t, t.cache.ohlcv().get_bars("BTC:USDT", TF, 10).await).await;
}

async fn get_bars_rejects_a_zero_limit(t: &TestCache) {
    rejected(t, t.cache.ohlcv().get_bars("BTCUSDT", TF, 0).await).await;
}

async fn get_bars_rejects_a_limit_over_the_maximum(t: &TestCache) {
    let limit = MAX_BARS_PER_READ + 1;
    rejected(t, t.cache.ohlcv().get_bars("BTCUSDT", TF, limit).await).await;
}

async fn get_bars_archived_rejects_a_zero_limit(t: &TestCache) {
    let o = t.cache.ohlcv();
    rejected(t, o.get_bars_archived("BTCUSDT", TF, 0).await).await;
}

async fn get_bars_archived_rejects_a_limit_over_the_maximum(t: &TestCache) {
    let o = t.cache.ohlcv();
    let limit = MAX_BARS_PER_READ + 1;
    rejected(t, o.get_bars_archived("BTCUSDT", TF, limit).await).await;
}

async fn get_range_rejects_a_bad_symbol(t: &TestCache) {
    rejected(t, t.cache.ohlcv().get_range("", TF, 0, 1).await).await;
}

async fn get_range_rejects_a_start_after_its_end(t: &TestCache) {
    rejected(t, t.cache.ohlcv().get_range("BTCUSDT", TF, 10, 9).await).await;
}

async fn get_range_rejects_a_window_holding_too_many_bars(t: &TestCache) {
    let bars: Vec<Bar> = (0..MAX_BARS_PER_READ as i64 + 1)
        .map(|i| Bar::new(i * 60_000, 1.0, 2.0, 0.5, 1.5, 1.0))
        .collect();
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

async fn get_latest_bar_rejects_a_bad_symbol(t: &TestCache) {
    rejected(t, t.cache.ohlcv().get_latest_bar("BTC USDT", TF).await).await;
}

async fn get_latest_bars_rejects_one_bad_symbol_among_good(t: &TestCache) {
    let series = [("BTCUSDT", TF), ("ETH{USDT}", TF), ("SOLUSDT", TF)];
    rejected(t, t.cache.ohlcv().get_latest_bars(&series).await).await;
}

async fn get_latest_bars_rejects_too_many_series(t: &TestCache) {
    let series = vec![("BTCUSDT", TF); MAX_BARS_PER_READ + 1];
    rejected(t, t.cache.ohlcv().get_latest_bars(&series).await).await;
}

async fn invalidate_rejects_a_bad_symbol(t: &TestCache) {
    rejected(t, t.cache.ohlcv().invalidate("BTC\nUSDT", TF).await).await;
}

async fn client_set_rejects_an_empty_key(t: &TestCache) {
    rejected(t, t.cache.client().set("", "v", None).await).await;
}

async fn client_set_rejects_a_key_over_the_length_limit(t: &TestCache) {
    let key = "k".repeat(MAX_KEY_LEN + 1);
    rejected(t, t.cache.client().set(&key, "v", None).await).await;
}

async fn client_set_rejects_a_zero_ttl(t: &TestCache) {
    let ttl = Some(Duration::ZERO);
    rejected(t, t.cache.client().set("k", "v", ttl).await).await;
}

async fn client_set_rejects_a_ttl_under_a_millisecond(t: &TestCache) {
    let ttl = Some(Duration::from_nanos(1));
    rejected(t, t.cache.client().set("k", "v", ttl).await).await;
}

async fn client_set_rejects_a_ttl_too_long_to_represent(t: &TestCache) {
    let ttl = Some(Duration::MAX);
    rejected(t, t.cache.client().set("k", "v", ttl).await).await;
}

fn oversized() -> String {
    "x".repeat(MAX_VALUE_LEN + 1)
}

async fn client_set_rejects_an_oversized_value(t: &TestCache) {
    rejected(t, t.cache.client().set("k", &oversized(), None).await).await;
}

async fn client_set_bytes_rejects_an_oversized_value(t: &TestCache) {
    let value = bytes::Bytes::from(oversized());
    rejected(t, t.cache.client().set_bytes("k", value, None).await).await;
}

async fn client_set_json_rejects_an_oversized_value(t: &TestCache) {
    let doc = serde_json::json!({ "text": oversized() });
    rejected(t, t.cache.client().set_json("k", &doc, None).await).await;
}

async fn client_set_json_rejects_a_value_json_cannot_hold(t: &TestCache) {
    // JSON object keys are strings: a map keyed by pairs cannot be written.
    let map = std::collections::BTreeMap::from([((1, 2), "pair")]);
    rejected(t, t.cache.client().set_json("k", &map, None).await).await;
}

fn bad_key() -> String {
    "k".repeat(MAX_KEY_LEN + 1)
}

async fn client_get_rejects_a_bad_key(t: &TestCache) {
    rejected(t, t.cache.client().get("").await).await;
}

async fn client_get_bytes_rejects_a_bad_key(t: &TestCache) {
    rejected(t, t.cache.client().get_bytes(&bad_key()).await).await;
}

async fn client_get_json_rejects_a_bad_key(t: &TestCache) {
    let got = t.cache.client().get_json::<serde_json::Value>("").await;
    rejected(t, got).await;
}

async fn client_exists_rejects_a_bad_key(t: &TestCache) {
    rejected(t, t.cache.client().exists(&bad_key()).await).await;
}

async fn client_delete_rejects_a_bad_key(t: &TestCache) {
    rejected(t, t.cache.client().delete("").await).await;
}

async fn client_mget_rejects_one_bad_key_among_good(t: &TestCache) {
    let key = bad_key();
    rejected(t, t.cache.client().mget(&["a", &key, "b"]).await).await;
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
    let json = br#"{"timestamp": 1705478400000, "open": 45000.0, "high": 45500.0, "low": 44800.0, "close": 45200.0, "volume": 1234.5}"#;
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
    let record = iftb_cache::codec::encode(&good());
    plant_record(&server, good().timestamp, &record[..record.len() - 8]);
    every_series_read_is_codec_error_or_counted_miss(&server).await;
}

#[tokio::test]
async fn a_record_with_trailing_bytes_is_a_codec_error() {
    let server = RedisServer::start();
    let mut record = iftb_cache::codec::encode(&good()).to_vec();
    record.extend_from_slice(b"tail");
    plant_record(&server, good().timestamp, &record);
    every_series_read_is_codec_error_or_counted_miss(&server).await;
}

#[tokio::test]
async fn a_record_of_another_format_version_is_a_codec_error() {
    let server = RedisServer::start();
    let mut record = iftb_cache::codec::encode(&good()).to_vec();
    record[3] = iftb_cache::codec::FORMAT_VERSION + 1;
    plant_record(&server, good().timestamp, &record);
    every_series_read_is_codec_error_or_counted_miss(&server).await;
}

#[tokio::test]
async fn a_record_of_another_kind_is_a_codec_error() {
    let server = RedisServer::start();
    let record = iftb_cache::codec::encode(&0.0001f64);
    plant_record(&server, good().timestamp, &record);
    every_series_read_is_codec_error_or_counted_miss(&server).await;
}

#[tokio::test]
async fn a_bar_record_holding_impossible_prices_is_a_codec_error() {
    // A well-formed header over a payload no writer could have produced:
    // NaN prices, which every write rejects. Handing it out would poison
    // every indicator downstream.
    let server = RedisServer::start();
    let mut record = iftb_cache::codec::encode(&good()).to_vec();
    let close = iftb_cache::codec::HEADER_LEN + 8 * 4;
    record[close..close + 8].copy_from_slice(&f64::NAN.to_le_bytes());
    plant_record(&server, good().timestamp, &record);
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
