//! Random sequences of OHLCV operations, checked step by step against the
//! reference model of a series the fuzz target uses too, on both backends.

mod support;

use iftb_cache::{Bar, BarWriteOptions, CacheManager, Timeframe};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::collections::HashMap;
use std::num::NonZeroUsize;
use support::series::Series;

const SYMBOLS: [&str; 2] = ["BTCUSDT", "ETHUSDT"];
const TIMEFRAMES: [Timeframe; 2] = [Timeframe::M1, Timeframe::H1];
const STEP: i64 = 60_000;

#[derive(Debug, Clone)]
enum Op {
    Set {
        series: usize,
        bars: Vec<Bar>,
        cap: Option<usize>,
    },
    GetBars {
        series: usize,
        limit: usize,
    },
    GetRange {
        series: usize,
        from: i64,
        to: i64,
    },
    Latest {
        series: usize,
    },
    LatestMany,
    Invalidate {
        series: usize,
    },
}

fn bar_strategy() -> impl Strategy<Value = Bar> {
    (0i64..200, 1u32..1_000, 1u32..1_000, 0u32..100).prop_map(|(slot, o, c, v)| {
        let (open, close) = (o as f64, c as f64);
        Bar::new(
            slot * STEP,
            open,
            open.max(close) + 1.0,
            open.min(close) - 0.5,
            close,
            v as f64,
        )
    })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let series = 0..SYMBOLS.len() * TIMEFRAMES.len();
    prop_oneof![
        3 => (series.clone(), prop::collection::vec(bar_strategy(), 0..25), prop::option::of(1usize..15))
            .prop_map(|(series, bars, cap)| Op::Set { series, bars, cap }),
        2 => (series.clone(), 1usize..150).prop_map(|(series, limit)| Op::GetBars { series, limit }),
        2 => (series.clone(), 0i64..210, 0i64..210)
            .prop_map(|(series, a, b)| Op::GetRange { series, from: a.min(b) * STEP, to: a.max(b) * STEP }),
        1 => series.clone().prop_map(|series| Op::Latest { series }),
        1 => Just(Op::LatestMany),
        1 => series.prop_map(|series| Op::Invalidate { series }),
    ]
}

fn name(series: usize) -> (&'static str, Timeframe) {
    (SYMBOLS[series % 2], TIMEFRAMES[series / 2])
}

/// The reference: each series the shared model of one series.
#[derive(Default)]
struct Model(HashMap<usize, Series>);

impl Model {
    fn set(&mut self, series: usize, bars: &[Bar], cap: Option<usize>) {
        if bars.is_empty() {
            return;
        }
        self.0.entry(series).or_default().upsert(bars, cap);
    }

    fn newest(&self, series: usize, limit: usize) -> Option<Vec<Bar>> {
        let bars = self.0.get(&series)?.newest(limit);
        (!bars.is_empty()).then_some(bars)
    }

    fn range(&self, series: usize, from: i64, to: i64) -> Option<Vec<Bar>> {
        let bars = self.0.get(&series)?.range(from, to);
        (!bars.is_empty()).then_some(bars)
    }

    fn latest(&self, series: usize) -> Option<Bar> {
        self.0.get(&series)?.latest()
    }
}

async fn check(cache: &CacheManager, ops: Vec<Op>) -> Result<(), TestCaseError> {
    cache
        .clear_all()
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let o = cache.ohlcv();
    let mut model = Model::default();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Set { series, bars, cap } => {
                let (sym, tf) = name(series);
                let mut opts = BarWriteOptions::new();
                if let Some(c) = cap {
                    opts = opts.max_bars(NonZeroUsize::new(c).unwrap());
                }
                o.set_bars_with(sym, tf, &bars, opts).await.unwrap();
                model.set(series, &bars, cap);
            }
            Op::GetBars { series, limit } => {
                let (sym, tf) = name(series);
                let got = o.get_bars(sym, tf, limit).await.unwrap();
                prop_assert_eq!(got, model.newest(series, limit), "step {}", step);
            }
            Op::GetRange { series, from, to } => {
                let (sym, tf) = name(series);
                let got = o.get_range(sym, tf, from, to).await.unwrap();
                prop_assert_eq!(got, model.range(series, from, to), "step {}", step);
            }
            Op::Latest { series } => {
                let (sym, tf) = name(series);
                let got = o.get_latest_bar(sym, tf).await.unwrap();
                prop_assert_eq!(got, model.latest(series), "step {}", step);
            }
            Op::LatestMany => {
                let all: Vec<(&str, Timeframe)> = (0..4).map(name).collect();
                let got = o.get_latest_bars(&all).await.unwrap();
                let want: Vec<Option<Bar>> = (0..4).map(|s| model.latest(s)).collect();
                prop_assert_eq!(got, want, "step {}", step);
            }
            Op::Invalidate { series } => {
                let (sym, tf) = name(series);
                let existed = o.invalidate(sym, tf).await.unwrap();
                let had = model.0.remove(&series).is_some_and(|s| !s.0.is_empty());
                prop_assert_eq!(existed, had, "step {}", step);
            }
        }
    }
    Ok(())
}

fn run(cache: &CacheManager, rt: &tokio::runtime::Runtime, cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let ops = prop::collection::vec(op_strategy(), 1..40);
    let result = runner.run(&ops, |ops| rt.block_on(check(cache, ops)));
    if let Err(e) = result {
        panic!("{e}");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn embedded_matches_the_model() {
    let rt = runtime();
    let t = rt.block_on(support::embedded());
    run(&t.cache, &rt, 256);
}

#[test]
fn redis_matches_the_model() {
    let rt = runtime();
    let t = rt.block_on(support::with_redis());
    run(&t.cache, &rt, 96);
}
