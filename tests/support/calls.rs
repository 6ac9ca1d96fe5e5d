//! The one list of every public call that reaches the backend, each with
//! its name and what it is. The fault and fail-open suites run all of it;
//! the bad-input suite checks it has a case for each call that takes input.
//! A new public call is added here, and every suite notices.

use super::{btc_ticker, minute_bars, sample_fear_greed, HASH};
use iftb_cache::{BarWriteOptions, CacheManager, ComputeOptions, Result, Timeframe, WriteOptions};
use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// The symbol and timeframe the calls use.
pub const SYM: &str = "BTCUSDT";
pub const TF: Timeframe = Timeframe::M1;

/// What a call is, for what fail-open mode does with it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Read,
    Write,
    /// A read, then on a miss a computation and a write (`get_or_compute`).
    Compute,
    /// Health, clearing and reporting: never fail open.
    Admin,
}

/// What a call returned, reduced to what the fault tests check.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Hit,
    Miss,
    Done,
}

fn done<T>(_: T) -> Outcome {
    Outcome::Done
}

fn found<T>(value: Option<T>) -> Outcome {
    if value.is_some() {
        Outcome::Hit
    } else {
        Outcome::Miss
    }
}

fn any_found<T>(values: Vec<Option<T>>) -> Outcome {
    found(values.into_iter().flatten().next())
}

pub type CallFuture = Pin<Box<dyn Future<Output = Result<Outcome>> + Send>>;
pub type CallFn = fn(CacheManager) -> CallFuture;

/// One public call: `module.method`, what it is, and a way to make it with
/// good input.
#[derive(Clone, Copy)]
pub struct Call {
    pub name: &'static str,
    pub op: Op,
    pub run: CallFn,
}

/// The TTL of the `*_with` calls.
const TTL: Duration = Duration::from_secs(60);

/// Every public call that reaches the backend (all but `health_check`, which
/// answers a bool and is timed on its own), each with what it is.
pub fn every_call() -> Vec<Call> {
    use Op::*;
    let calls: [(&'static str, Op, CallFn); 43] = [
        ("ohlcv.set_bars", Write, |c| {
            Box::pin(async move {
                let bars = minute_bars(3, 1.0);
                c.ohlcv().set_bars(SYM, TF, &bars).await.map(done)
            })
        }),
        ("ohlcv.set_bars_with", Write, |c| {
            Box::pin(async move {
                let o = c.ohlcv();
                o.set_bars_with(
                    SYM,
                    TF,
                    &minute_bars(3, 1.0),
                    BarWriteOptions::new().ttl(TTL),
                )
                .await
                .map(done)
            })
        }),
        ("ohlcv.set_bars_with", Write, |c| {
            Box::pin(async move {
                let opts = BarWriteOptions::new().max_bars(NonZeroUsize::new(2).unwrap());
                let o = c.ohlcv();
                o.set_bars_with(SYM, TF, &minute_bars(3, 1.0), opts)
                    .await
                    .map(done)
            })
        }),
        ("ohlcv.invalidate", Write, |c| {
            Box::pin(async move { c.ohlcv().invalidate("ETHUSDT", TF).await.map(done) })
        }),
        ("ohlcv.get_bars", Read, |c| {
            Box::pin(async move { c.ohlcv().get_bars(SYM, TF, 10).await.map(found) })
        }),
        ("ohlcv.get_bars_archived", Read, |c| {
            Box::pin(async move { c.ohlcv().get_bars_archived(SYM, TF, 10).await.map(found) })
        }),
        ("ohlcv.get_range", Read, |c| {
            Box::pin(async move { c.ohlcv().get_range(SYM, TF, 0, i64::MAX).await.map(found) })
        }),
        ("ohlcv.get_latest_bar", Read, |c| {
            Box::pin(async move { c.ohlcv().get_latest_bar(SYM, TF).await.map(found) })
        }),
        ("ohlcv.get_latest_bars", Read, |c| {
            Box::pin(async move {
                let series = [(SYM, TF), ("ETHUSDT", TF)];
                c.ohlcv().get_latest_bars(&series).await.map(any_found)
            })
        }),
        ("client.set", Write, |c| {
            Box::pin(async move { c.client().set("k", "v", None).await.map(done) })
        }),
        ("client.set_bytes", Write, |c| {
            Box::pin(async move {
                let value = bytes::Bytes::from_static(b"\x00\x01");
                c.client().set_bytes("b", value, None).await.map(done)
            })
        }),
        ("client.set_json", Write, |c| {
            Box::pin(async move {
                let doc = serde_json::json!({"a": 1});
                c.client().set_json("j", &doc, None).await.map(done)
            })
        }),
        ("client.delete", Write, |c| {
            Box::pin(async move { c.client().delete("gone").await.map(done) })
        }),
        ("client.get", Read, |c| {
            Box::pin(async move { c.client().get("k").await.map(found) })
        }),
        ("client.get_bytes", Read, |c| {
            Box::pin(async move { c.client().get_bytes("b").await.map(found) })
        }),
        ("client.get_json", Read, |c| {
            Box::pin(async move {
                let v: Option<serde_json::Value> = c.client().get_json("j").await?;
                Ok(found(v))
            })
        }),
        ("client.mget", Read, |c| {
            Box::pin(async move { c.client().mget(&["k", "b"]).await.map(any_found) })
        }),
        ("client.exists", Read, |c| {
            Box::pin(async move {
                let hit = c.client().exists("k").await?;
                Ok(if hit { Outcome::Hit } else { Outcome::Miss })
            })
        }),
        ("market.set_ticker", Write, |c| {
            Box::pin(async move { c.market().set_ticker(SYM, &btc_ticker()).await.map(done) })
        }),
        ("market.set_ticker_with", Write, |c| {
            Box::pin(async move {
                let m = c.market();
                m.set_ticker_with(SYM, &btc_ticker(), WriteOptions::new().ttl(TTL))
                    .await
                    .map(done)
            })
        }),
        ("market.set_tickers", Write, |c| {
            Box::pin(async move { c.market().set_tickers(&[btc_ticker()]).await.map(done) })
        }),
        ("market.set_tickers_with", Write, |c| {
            Box::pin(async move {
                let m = c.market();
                m.set_tickers_with(&[btc_ticker()], WriteOptions::new().ttl(TTL))
                    .await
                    .map(done)
            })
        }),
        ("market.set_funding_rate", Write, |c| {
            Box::pin(async move { c.market().set_funding_rate(SYM, 0.0001).await.map(done) })
        }),
        ("market.set_funding_rate_with", Write, |c| {
            Box::pin(async move {
                let m = c.market();
                m.set_funding_rate_with(SYM, 0.0001, WriteOptions::new().ttl(TTL))
                    .await
                    .map(done)
            })
        }),
        ("market.set_funding_rates", Write, |c| {
            Box::pin(async move {
                let rates = [(SYM, 0.0001), ("ETHUSDT", -0.0002)];
                c.market().set_funding_rates(&rates).await.map(done)
            })
        }),
        ("market.set_funding_rates_with", Write, |c| {
            Box::pin(async move {
                let rates = [(SYM, 0.0001), ("ETHUSDT", -0.0002)];
                let m = c.market();
                m.set_funding_rates_with(&rates, WriteOptions::new().ttl(TTL))
                    .await
                    .map(done)
            })
        }),
        ("market.set_fear_greed", Write, |c| {
            Box::pin(async move {
                let reading = sample_fear_greed();
                c.market().set_fear_greed(&reading).await.map(done)
            })
        }),
        ("market.set_fear_greed_with", Write, |c| {
            Box::pin(async move {
                let reading = sample_fear_greed();
                let m = c.market();
                m.set_fear_greed_with(&reading, WriteOptions::new().ttl(TTL))
                    .await
                    .map(done)
            })
        }),
        ("market.get_ticker", Read, |c| {
            Box::pin(async move { c.market().get_ticker(SYM).await.map(found) })
        }),
        ("market.get_tickers", Read, |c| {
            Box::pin(async move {
                c.market()
                    .get_tickers(&[SYM, "ETHUSDT"])
                    .await
                    .map(any_found)
            })
        }),
        ("market.get_funding_rate", Read, |c| {
            Box::pin(async move { c.market().get_funding_rate(SYM).await.map(found) })
        }),
        ("market.get_funding_rates", Read, |c| {
            Box::pin(async move { c.market().get_funding_rates(&[SYM]).await.map(any_found) })
        }),
        ("market.get_fear_greed", Read, |c| {
            Box::pin(async move { c.market().get_fear_greed().await.map(found) })
        }),
        ("llm.set_analysis", Write, |c| {
            Box::pin(async move {
                let doc = serde_json::json!({"sentiment": "bullish"});
                c.llm()
                    .set_analysis("sentiment", HASH, &doc)
                    .await
                    .map(done)
            })
        }),
        ("llm.set_analysis_with", Write, |c| {
            Box::pin(async move {
                let doc = serde_json::json!({"sentiment": "bullish"});
                let llm = c.llm();
                llm.set_analysis_with("summary", HASH, &doc, WriteOptions::new().ttl(TTL))
                    .await
                    .map(done)
            })
        }),
        ("llm.get_analysis", Read, |c| {
            Box::pin(async move {
                let llm = c.llm();
                let got = llm
                    .get_analysis::<serde_json::Value>("sentiment", HASH)
                    .await;
                got.map(found)
            })
        }),
        ("llm.get_or_compute", Compute, |c| {
            Box::pin(async move {
                let ask = || async { Ok::<_, std::io::Error>("bullish".to_string()) };
                let llm = c.llm();
                llm.get_or_compute("sentiment", "faults", ask)
                    .await
                    .map(done)
            })
        }),
        ("llm.get_or_compute_with", Compute, |c| {
            Box::pin(async move {
                // Another input than `get_or_compute`'s: a flight of its own.
                let ask = || async { Ok::<_, std::io::Error>("bearish".to_string()) };
                let opts = ComputeOptions::new().ttl(TTL);
                let llm = c.llm();
                llm.get_or_compute_with("sentiment", "faults, with options", opts, ask)
                    .await
                    .map(done)
            })
        }),
        ("manager.clear_all", Admin, |c| {
            Box::pin(async move { c.clear_all().await.map(done) })
        }),
        ("manager.flush_db", Admin, |c| {
            Box::pin(async move { c.flush_db().await.map(done) })
        }),
        ("manager.memory_report", Admin, |c| {
            Box::pin(async move { c.memory_report().await.map(done) })
        }),
        ("manager.memory_report_within", Admin, |c| {
            Box::pin(async move { c.memory_report_within(TTL).await.map(done) })
        }),
        // A diagnostic: it never fails open, as the calls above.
        ("manager.inspect", Admin, |c| {
            Box::pin(async move {
                let key = format!("{}:v2:ohlcv:{{{SYM}:{TF}}}", c.config().namespace());
                c.inspect(&key).await.map(done)
            })
        }),
    ];
    calls
        .into_iter()
        .map(|(name, op, run)| Call { name, op, run })
        .collect()
}

/// One call's name, kind, result and duration.
pub struct Ran {
    pub name: &'static str,
    pub op: Op,
    pub result: Result<Outcome>,
    pub took: Duration,
}

/// Runs every call at once, each in its own task, and times each.
pub async fn run_every_call(cache: &CacheManager) -> Vec<Ran> {
    run_calls(cache, every_call()).await
}

/// Runs `calls` (some of [`every_call`]) at once, each in its own task, and
/// times each.
pub async fn run_calls(cache: &CacheManager, calls: Vec<Call>) -> Vec<Ran> {
    let tasks: Vec<_> = calls
        .into_iter()
        .map(|Call { name, op, run }| {
            let fut = run(cache.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let result = fut.await;
                Ran {
                    name,
                    op,
                    result,
                    took: started.elapsed(),
                }
            })
        })
        .collect();
    let mut ran = Vec::new();
    for task in tasks {
        ran.push(task.await.expect("a call panicked"));
    }
    ran
}

/// Writes what the reads of `every_call` find.
pub async fn seed(cache: &CacheManager) {
    for call in every_call() {
        if call.op == Op::Write {
            (call.run)(cache.clone())
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", call.name));
        }
    }
    cache
        .ohlcv()
        .set_bars(SYM, TF, &minute_bars(3, 1.0))
        .await
        .unwrap();
}
