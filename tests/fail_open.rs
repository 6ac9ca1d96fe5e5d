//! Fail-open mode, the one place it is tested: a cache that cannot serve a
//! value answers a counted miss (reads) or drops the write, instead of an
//! error. Two causes: Redis unavailable (killed or frozen), and a foreign or
//! corrupt value under one of our keys (the Python bot's JSON, truncated
//! records, another format version), which without fail-open is a codec
//! error. Never a panic, never a wrong value.

mod support;

use iftb_cache::codec::Kind;
use iftb_cache::{
    Bar, CacheConfig, CacheManager, CacheStats, ComputeOptions, Error, ErrorKind, FearGreedClass,
    LlmCache, Result, Ticker, Timeframe,
};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{
    assert_failed_open, btc_ticker, connect_bounded, fear_greed, minute_bars, run_every_call,
    sample_bar, seed, Op, Ran, RedisServer, HASH, RESPONSE, SYM,
};

/// The timeframe of the planted series: `SERIES_KEY` is its key. The tests
/// that run the shared call list use its series, `support::TF`.
const TF: Timeframe = Timeframe::H1;

/// A computation that counts its calls and answers `answer`.
fn counted(
    calls: &Arc<AtomicUsize>,
    answer: Value,
) -> impl FnOnce() -> std::future::Ready<std::result::Result<Value, std::io::Error>> {
    let calls = calls.clone();
    move || {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(answer))
    }
}

// Redis unavailable.

fn count(ran: &[Ran], op: Op) -> u64 {
    ran.iter().filter(|r| r.op == op).count() as u64
}

/// Checks the fail-open counters grew by what `ran` should have added: one
/// miss per read, one dropped write per write, and for a computation one
/// dropped write and one or two misses (it reads again inside its flight).
/// Returns how many calls failed open, each of which emitted one event.
fn assert_fail_open_counted(ran: &[Ran], before: &CacheStats, after: &CacheStats) -> u64 {
    let (reads, writes) = (count(ran, Op::Read), count(ran, Op::Write));
    let computes = count(ran, Op::Compute);
    let misses = after.fail_open_misses - before.fail_open_misses;
    let least = reads + computes;
    assert!((least..=least + computes).contains(&misses), "{after:?}");
    let drops = after.fail_open_dropped_writes - before.fail_open_dropped_writes;
    assert_eq!(drops, writes + computes, "{after:?}");
    misses + drops
}

#[tokio::test(flavor = "current_thread")]
async fn fail_open_reads_miss_and_writes_drop_while_redis_is_down() {
    let events = support::capture_events();
    let mut server = RedisServer::start();
    let cache = connect_bounded(&server, true).await;
    assert!(cache.config().fail_open());
    seed(&cache).await;
    let before = cache.stats();
    server.kill();
    let ran = run_every_call(&cache).await;
    assert_failed_open(&ran, &server);
    let stats = cache.stats();
    let failed_open = assert_fail_open_counted(&ran, &before, &stats);
    assert!(
        stats.misses > before.misses,
        "fail-open misses count as misses"
    );
    assert_eq!(events.count("cache_fail_open") as u64, failed_open);
    assert!(events.text().contains("outcome=\"write_dropped\""));
    assert!(!cache.health_check().await);

    // Back up: the same manager writes and reads for real again, once the
    // circuit breaker's probe has seen it answer.
    server.restart();
    support::time_to_healthy(&cache, Duration::from_secs(2)).await;
    let bars = minute_bars(3, 7.0);
    cache
        .ohlcv()
        .set_bars(SYM, support::TF, &bars)
        .await
        .unwrap();
    let newest = cache.ohlcv().get_bars(SYM, support::TF, 3).await.unwrap();
    assert_eq!(newest.unwrap()[0], bars[2]);
    assert_eq!(cache.stats().fail_open_misses, stats.fail_open_misses);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_reads_miss_and_writes_drop_while_redis_is_frozen() {
    let server = RedisServer::start();
    let cache = connect_bounded(&server, true).await;
    seed(&cache).await;
    server.freeze();
    let ran = run_every_call(&cache).await;
    server.thaw();
    assert_failed_open(&ran, &server);
    assert_fail_open_counted(&ran, &CacheStats::default(), &cache.stats());
}

#[tokio::test]
async fn fail_open_is_off_by_default_and_errors_come_back() {
    assert!(!CacheConfig::embedded().fail_open());
    let mut server = RedisServer::start();
    let cache = CacheManager::connect(
        CacheConfig::builder()
            .redis_url(&server.url())
            .response_timeout(RESPONSE)
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    server.kill();
    let err: Error = cache
        .ohlcv()
        .get_bars(SYM, support::TF, 1)
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    let err = cache.client().set("k", "v", None).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    let stats = cache.stats();
    assert_eq!(
        (stats.fail_open_misses, stats.fail_open_dropped_writes),
        (0, 0)
    );
}

/// With Redis gone: fail-open mode turns market-data reads into misses and
/// drops writes; without it, every call is an unavailable error.
#[tokio::test]
async fn market_data_with_redis_down_fails_open_or_fast() {
    let mut server = RedisServer::start();
    let open = connect_bounded(&server, true).await;
    let strict = connect_bounded(&server, false).await;
    open.market()
        .set_funding_rate("BTCUSDT", 0.1)
        .await
        .unwrap();
    server.kill();
    let m = open.market();
    assert_eq!(m.get_ticker("BTCUSDT").await.unwrap(), None);
    assert_eq!(
        m.get_funding_rates(&["BTCUSDT", "ETHUSDT"]).await.unwrap(),
        vec![None, None]
    );
    m.set_tickers(&[support::ticker("BTCUSDT", 1.0)])
        .await
        .unwrap();
    m.set_fear_greed(&fear_greed(50, FearGreedClass::Neutral))
        .await
        .unwrap();
    let s = open.stats();
    assert_eq!(
        (s.fail_open_misses, s.fail_open_dropped_writes),
        (2, 2),
        "{s:?}"
    );
    let m = strict.market();
    assert!(m.get_ticker("BTCUSDT").await.unwrap_err().is_unavailable());
    assert!(m
        .get_tickers(&["BTCUSDT"])
        .await
        .unwrap_err()
        .is_unavailable());
    let err = m.set_funding_rate("BTCUSDT", 0.1).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
}

/// With Redis gone: in fail-open mode `get_or_compute` still answers with
/// `f`'s result (the read is a miss, the store is dropped); without it, the
/// first read fails and `f` is not called.
#[tokio::test]
async fn get_or_compute_with_redis_down_fails_open_or_fast() {
    let mut server = RedisServer::start();
    let open = connect_bounded(&server, true).await;
    let strict = connect_bounded(&server, false).await;
    server.kill();
    let calls = Arc::new(AtomicUsize::new(0));
    let opts = ComputeOptions::new().lock(Duration::from_secs(5));
    let f = counted(&calls, json!("computed"));
    let got: Value = open
        .llm()
        .get_or_compute_with("sentiment", "in", opts, f)
        .await
        .unwrap();
    assert_eq!((got, calls.load(Ordering::SeqCst)), (json!("computed"), 1));
    let s = open.stats();
    assert_eq!(
        (s.fail_open_misses, s.fail_open_dropped_writes),
        (2, 2),
        "the first read and the flight's re-read; the store and the unlock"
    );
    let f = counted(&calls, json!("computed"));
    let err = strict
        .llm()
        .get_or_compute::<Value, _, _, _>("sentiment", "in", f)
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "f ran although the cache could not be read"
    );
    let h = LlmCache::hash_input("in");
    assert!(open
        .llm()
        .get_analysis::<Value>("sentiment", &h)
        .await
        .unwrap()
        .is_none());
    open.llm()
        .set_analysis("sentiment", &h, &json!(1))
        .await
        .unwrap();
}

// Foreign and corrupt values under our keys, written straight into Redis as
// another program (or a bit flip) would: a codec error, or a counted miss in
// fail-open mode. Never a panic, never a wrong bar.

const SERIES_KEY: &str = "iftb:v2:ohlcv:{BTCUSDT:1h}";
const HEAD_KEY: &str = "iftb:v2:ohlcv:{BTCUSDT:1h}:head";

async fn cache_on(server: &RedisServer, fail_open: bool) -> CacheManager {
    support::connect(server, |b| b.fail_open(fail_open)).await
}

/// Stores `record` as the series' only bar, at score `ts`: in the run set
/// and in the head. A bar record (a header of kind `Bar`, whatever follows)
/// goes in framed as a run and as a head, its flaw kept; anything else as is.
fn plant_record(server: &RedisServer, ts: i64, record: &[u8]) {
    let is_bar = record.len() >= 4 && record[..3] == [b'I', b'F', Kind::Bar as u8];
    let (mut run, mut head) = (record.to_vec(), record.to_vec());
    if is_bar {
        run[2] = Kind::BarRun as u8;
        head[2] = Kind::SeriesHead as u8;
        head.extend_from_slice(&1u64.to_le_bytes());
    }
    redis::cmd("ZADD")
        .arg(SERIES_KEY)
        .arg(ts)
        .arg(run)
        .exec(&mut server.raw())
        .unwrap();
    server.raw_set(HEAD_KEY, &head);
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
    server.raw_set(SERIES_KEY, json.as_bytes());
    server.raw_set(HEAD_KEY, json.as_bytes());
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
    server.raw_set("iftb:kv:k", &[0xC3u8, 0x28][..]);
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
    server.raw_set("iftb:kv:j", r#"{"close": "not a number"}"#.as_bytes());
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

const TICKER_KEY: &str = "iftb:v2:ticker:{BTCUSDT}";
const FUNDING_KEY: &str = "iftb:v2:funding:{BTCUSDT}";
const FEAR_GREED_KEY: &str = "iftb:v2:fear_greed";

fn llm_key() -> String {
    format!("iftb:v2:llm:{{sentiment}}:{HASH}")
}

#[tokio::test]
async fn the_python_bots_json_ticker_is_a_codec_error() {
    let server = RedisServer::start();
    let json = br#"{"symbol": "BTCUSDT", "bid": 45100.0, "ask": 45110.0, "last": 45105.0}"#;
    server.raw_set(TICKER_KEY, json);
    codec_error_or_counted_miss(&server, &[Read::Ticker, Read::Tickers]).await;
}

#[tokio::test]
async fn a_truncated_ticker_is_a_codec_error() {
    let server = RedisServer::start();
    let record = iftb_cache::codec::encode(&btc_ticker());
    server.raw_set(TICKER_KEY, &record[..record.len() / 2]);
    codec_error_or_counted_miss(&server, &[Read::Ticker, Read::Tickers]).await;
}

#[tokio::test]
async fn a_funding_rate_at_a_ticker_key_is_a_codec_error() {
    let server = RedisServer::start();
    server.raw_set(TICKER_KEY, &iftb_cache::codec::encode(&0.0001f64));
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
    server.raw_set(TICKER_KEY, &iftb_cache::codec::encode(&bad));
    codec_error_or_counted_miss(&server, &[Read::Ticker, Read::Tickers]).await;
}

#[tokio::test]
async fn the_python_bots_funding_rate_text_is_a_codec_error() {
    let server = RedisServer::start();
    server.raw_set(FUNDING_KEY, b"0.0001");
    codec_error_or_counted_miss(&server, &[Read::FundingRate, Read::FundingRates]).await;
}

#[tokio::test]
async fn a_funding_rate_record_holding_nan_is_a_codec_error() {
    let server = RedisServer::start();
    server.raw_set(FUNDING_KEY, &iftb_cache::codec::encode(&f64::NAN));
    codec_error_or_counted_miss(&server, &[Read::FundingRate, Read::FundingRates]).await;
}

#[tokio::test]
async fn a_fear_greed_record_of_another_format_version_is_a_codec_error() {
    let server = RedisServer::start();
    let mut record = iftb_cache::codec::encode(&fear_greed(45, FearGreedClass::Fear)).to_vec();
    record[3] = iftb_cache::codec::FORMAT_VERSION + 1;
    server.raw_set(FEAR_GREED_KEY, &record);
    codec_error_or_counted_miss(&server, &[Read::FearGreed]).await;
}

#[tokio::test]
async fn a_fear_greed_record_holding_a_value_over_100_is_a_codec_error() {
    let server = RedisServer::start();
    let record = iftb_cache::codec::encode(&fear_greed(200, FearGreedClass::ExtremeGreed));
    server.raw_set(FEAR_GREED_KEY, &record);
    codec_error_or_counted_miss(&server, &[Read::FearGreed]).await;
}

#[tokio::test]
async fn the_python_bots_json_analysis_is_a_codec_error() {
    // The original stored LLM results as bare JSON, with no header.
    let server = RedisServer::start();
    server.raw_set(
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
    server.raw_set(&llm_key(), &value);
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
    server.raw_set(&llm_key(), &stored[..stored.len() - 20]);
    codec_error_or_counted_miss(&server, &[Read::Analysis]).await;
}

#[tokio::test]
async fn get_or_compute_recomputes_over_a_foreign_value() {
    let server = RedisServer::start();
    let cache = cache_on(&server, false).await;
    let input = "BTC market analysis";
    let key = format!(
        "iftb:v2:llm:{{sentiment}}:{}",
        iftb_cache::LlmCache::hash_input(input)
    );
    server.raw_set(&key, b"not even json");
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
