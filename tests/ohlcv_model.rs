//! Random sequences of OHLCV operations, checked step by step against the
//! reference model of a series the fuzz target uses too, on both backends.

mod support;

use iftb_cache::{Bar, BarWriteOptions, CacheManager, Timeframe};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::collections::HashMap;
use std::num::NonZeroUsize;
use support::series::Series;
use support::RedisServer;

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
    /// A burst of updates of the in-progress candle: the newest bar rewritten
    /// with each close in turn (or, with `advance`, a new candle `gap` ms
    /// later); then, as a feed catching up after a reconnect, one batch of
    /// the candle and the ones since (`since`: their gaps), with a recent
    /// bar revised in it (`revise`: the how-manieth newest).
    Tick {
        series: usize,
        closes: Vec<u32>,
        advance: Option<i64>,
        since: Vec<i64>,
        revise: Option<usize>,
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

/// The span of time the batches start in: batches overlap, fill gaps and
/// backfill before what is stored.
const SPAN: i64 = 3_000 * STEP;

fn bar(ts: i64, o: u32, c: u32, v: u32) -> Bar {
    let (open, close) = (o as f64, c as f64);
    Bar::new(
        ts,
        open,
        open.max(close) + 1.0,
        open.min(close) - 0.5,
        close,
        v as f64,
    )
}

/// The time from one bar to the next: mostly one candle, but also finer than
/// the timeframe (a feed's own clock), a millisecond, or a gap of any length
/// (a weekend, a halted market, an illiquid symbol).
fn gap_strategy() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => Just(STEP),
        2 => 1..STEP,
        1 => 1i64..3,
        1 => STEP..STEP * 10_000,
    ]
}

/// A batch of bars of real shapes: from a few (the live feed) to a few
/// thousand (a backfill spanning many runs), in time order or reversed.
fn batch_strategy() -> impl Strategy<Value = Vec<Bar>> {
    let len = prop_oneof![8 => 0usize..30, 1 => 30usize..300, 1 => 1_500usize..2_600];
    (0..SPAN, len, any::<bool>(), any::<u32>()).prop_flat_map(|(start, len, reversed, seed)| {
        prop::collection::vec(gap_strategy(), len).prop_map(move |gaps| {
            let mut ts = start;
            let mut bars: Vec<Bar> = gaps
                .iter()
                .enumerate()
                .map(|(i, gap)| {
                    ts += gap;
                    let x = seed.wrapping_add(i as u32 * 7_919);
                    bar(ts, x % 1_000 + 1, (x / 7) % 1_000 + 1, x % 100)
                })
                .collect();
            if reversed {
                bars.reverse();
            }
            bars
        })
    })
}

/// No cap, a small one, or one that trims the oldest run mid-way.
fn cap_strategy() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![2 => Just(None), 1 => (1usize..15).prop_map(Some), 1 => (40usize..400).prop_map(Some)]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let series = 0..SYMBOLS.len() * TIMEFRAMES.len();
    let advance = prop::option::of(gap_strategy());
    prop_oneof![
        3 => (series.clone(), batch_strategy(), cap_strategy())
            .prop_map(|(series, bars, cap)| Op::Set { series, bars, cap }),
        2 => (
            series.clone(),
            prop::collection::vec(1u32..1_000, 1..8),
            advance,
            prop::collection::vec(gap_strategy(), 0..4),
            prop::option::of(1usize..90),
            cap_strategy(),
        )
            .prop_map(|(series, closes, advance, since, revise, cap)| Op::Tick {
                series,
                closes,
                advance,
                since,
                revise,
                cap,
            }),
        2 => (series.clone(), prop_oneof![1usize..150, 150usize..5_000])
            .prop_map(|(series, limit)| Op::GetBars { series, limit }),
        2 => (series.clone(), 0..SPAN * 2, 0..SPAN * 2)
            .prop_map(|(series, a, b)| Op::GetRange { series, from: a.min(b), to: a.max(b) }),
        1 => series.clone().prop_map(|series| Op::Latest { series }),
        1 => Just(Op::LatestMany),
        1 => series.prop_map(|series| Op::Invalidate { series }),
    ]
}

fn options(cap: Option<usize>) -> BarWriteOptions {
    let opts = BarWriteOptions::new();
    match cap {
        Some(c) => opts.max_bars(NonZeroUsize::new(c).unwrap()),
        None => opts,
    }
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

/// On Redis, the layout of the series just written.
fn check_layout(server: Option<&RedisServer>, series: usize) -> Result<(), TestCaseError> {
    let Some(server) = server else {
        return Ok(());
    };
    let (sym, tf) = name(series);
    support::layout::check(server, sym, tf.as_str()).map_err(TestCaseError::fail)
}

async fn check(
    cache: &CacheManager,
    server: Option<&RedisServer>,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
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
                o.set_bars_with(sym, tf, &bars, options(cap)).await.unwrap();
                model.set(series, &bars, cap);
                check_layout(server, series)?;
            }
            Op::Tick {
                series,
                closes,
                advance,
                since,
                revise,
                cap,
            } => {
                let (sym, tf) = name(series);
                let newest = model.latest(series).map_or(0, |b| b.timestamp);
                let ts = newest + advance.unwrap_or(0);
                for (i, close) in closes.iter().enumerate() {
                    let tick = [bar(ts, 500, *close, i as u32)];
                    o.set_bars_with(sym, tf, &tick, options(cap)).await.unwrap();
                    model.set(series, &tick, cap);
                }
                let mut at = ts;
                let mut catch_up = vec![bar(ts, 500, 7, 7)];
                let stored = model.0.get(&series);
                let revised = revise.and_then(|k| stored?.0.keys().rev().nth(k).copied());
                if let Some(old) = revised {
                    catch_up.push(bar(old, 300, 3, 3));
                }
                for gap in since {
                    at += gap;
                    catch_up.push(bar(at, 400, 9, 9));
                }
                o.set_bars_with(sym, tf, &catch_up, options(cap))
                    .await
                    .unwrap();
                model.set(series, &catch_up, cap);
                check_layout(server, series)?;
            }
            Op::GetBars { series, limit } => {
                let (sym, tf) = name(series);
                let got = o.get_bars(sym, tf, limit).await.unwrap();
                prop_assert_eq!(got, model.newest(series, limit), "step {}", step);
                let view = o.get_bars_archived(sym, tf, limit).await.unwrap();
                let got = view.map(|v| v.to_vec());
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

fn run(t: &support::TestCache, rt: &tokio::runtime::Runtime, cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let ops = prop::collection::vec(op_strategy(), 1..40);
    let server = t.server.as_ref();
    let result = runner.run(&ops, |ops| rt.block_on(check(&t.cache, server, ops)));
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
    run(&t, &rt, 256);
}

#[test]
fn redis_matches_the_model() {
    let rt = runtime();
    let t = rt.block_on(support::with_redis());
    run(&t, &rt, 64);
}
