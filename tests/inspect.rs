//! `CacheManager::inspect` on every backend: each key of a value the
//! library wrote decodes to that value, a key of nothing is missing, and a
//! key outside the namespace is refused. (Foreign and corrupt values, which
//! only Redis can hold, are `tests/cli.rs`'s, through the tool.)

mod support;

use iftb_cache::{Bar, Inspection, LlmCache, Timeframe};
use support::{btc_ticker, sample_fear_greed, TestCache, T0};

on_both_backends!(
    a_series_reads_from_either_key_newest_first_and_capped,
    records_read_back_as_written,
    what_is_not_there_is_missing_and_other_namespaces_are_refused,
);

fn ns(t: &TestCache) -> String {
    t.cache.config().namespace().to_string()
}

async fn a_series_reads_from_either_key_newest_first_and_capped(t: &TestCache) {
    let bars: Vec<Bar> = (0..250)
        .map(|i| Bar::new(T0 + i * 60_000, 1.0, 2.0 + i as f64, 0.5, 1.5, 1.0))
        .collect();
    t.cache
        .ohlcv()
        .set_bars("BTCUSDT", Timeframe::M1, &bars)
        .await
        .unwrap();
    let set = format!("{}:v2:ohlcv:{{BTCUSDT:1m}}", ns(t));
    for key in [set.clone(), format!("{set}:head")] {
        let Inspection::Series {
            symbol,
            timeframe,
            total,
            bars: newest,
        } = t.cache.inspect(&key).await.unwrap()
        else {
            panic!("{key} is not a series");
        };
        assert_eq!(
            (symbol.as_str(), timeframe, total),
            ("BTCUSDT", Timeframe::M1, 250)
        );
        let expected: Vec<Bar> = bars.iter().rev().take(100).copied().collect();
        assert_eq!(newest, expected);
    }
    // The in-progress candle rewritten: the head and the runs still agree.
    let rewritten = Bar {
        close: 1.75,
        ..bars[249]
    };
    t.cache
        .ohlcv()
        .set_bars("BTCUSDT", Timeframe::M1, &[rewritten])
        .await
        .unwrap();
    match t.cache.inspect(&set).await.unwrap() {
        Inspection::Series { total, bars, .. } => assert_eq!((total, bars[0]), (250, rewritten)),
        other => panic!("{other:?}"),
    }
}

async fn records_read_back_as_written(t: &TestCache) {
    let (c, ns) = (&t.cache, ns(t));
    c.market()
        .set_ticker("BTCUSDT", &btc_ticker())
        .await
        .unwrap();
    c.market()
        .set_funding_rate("BTCUSDT", 0.0003)
        .await
        .unwrap();
    c.market()
        .set_fear_greed(&sample_fear_greed())
        .await
        .unwrap();
    let hash = LlmCache::hash_input("input");
    let result = serde_json::json!({"sentiment": "bearish"});
    c.llm()
        .set_analysis("sentiment", &hash, &result)
        .await
        .unwrap();
    c.client()
        .set_bytes("blob", vec![0xff, 0, 1].into(), None)
        .await
        .unwrap();

    let ticker = c
        .inspect(&format!("{ns}:v2:ticker:{{BTCUSDT}}"))
        .await
        .unwrap();
    let expected = Inspection::Ticker {
        symbol: "BTCUSDT".into(),
        ticker: btc_ticker(),
    };
    assert_eq!(ticker, expected);
    let funding = c
        .inspect(&format!("{ns}:v2:funding:{{BTCUSDT}}"))
        .await
        .unwrap();
    assert!(
        matches!(funding, Inspection::FundingRate { rate, .. } if rate == 0.0003),
        "{funding:?}"
    );
    let fg = c.inspect(&format!("{ns}:v2:fear_greed")).await.unwrap();
    let expected = Inspection::FearGreed {
        fear_greed: sample_fear_greed(),
    };
    assert_eq!(fg, expected);
    let analysis = c
        .inspect(&format!("{ns}:v2:llm:{{sentiment}}:{hash}"))
        .await
        .unwrap();
    let expected = Inspection::Analysis {
        analysis_type: "sentiment".into(),
        input_hash: hash,
        compressed: false,
        result,
    };
    assert_eq!(analysis, expected);
    let blob = c.inspect(&format!("{ns}:kv:blob")).await.unwrap();
    let expected = Inspection::Kv {
        client_key: "blob".into(),
        len: 3,
        text: None,
    };
    assert_eq!(blob, expected);
}

async fn what_is_not_there_is_missing_and_other_namespaces_are_refused(t: &TestCache) {
    let ns = ns(t);
    for key in [
        format!("{ns}:v2:ohlcv:{{BTCUSDT:1h}}"),
        format!("{ns}:v2:ohlcv:{{BTCUSDT:1h}}:head"),
        format!("{ns}:v2:ticker:{{BTCUSDT}}"),
        format!("{ns}:v2:fear_greed"),
        format!("{ns}:v2:llm:{{sentiment}}:ab12:lock"),
        format!("{ns}:kv:nothing"),
        format!("{ns}:v1:ticker:{{BTCUSDT}}"),
        format!("{ns}:unknown"),
    ] {
        assert_eq!(
            t.cache.inspect(&key).await.unwrap(),
            Inspection::Missing,
            "{key}"
        );
    }
    let err = t
        .cache
        .inspect("elsewhere:v2:fear_greed")
        .await
        .unwrap_err();
    assert!(err.is_invalid_input(), "{err}");
    // Not counted as the typed reads' misses are.
    assert_eq!(t.cache.stats().misses, 0);
}
