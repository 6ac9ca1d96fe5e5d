//! A mixed read/write load for the failover and resharding tests: a writer
//! and two readers on one manager, every read checked against what was
//! written, every call timed.
//!
//! Each write carries a version. A ticker of version `v` is
//! `ticker(sym, 1000 + v)` stamped `T0 + v`; a bar of version `v` sits at
//! minute `v / 2` and closes at `v` (two writes per candle: in progress, then
//! final). A read is *wrong* when it returns anything else: a value never
//! written, another symbol's, a version not yet attempted, bars out of order.
//! A write Redis lost in a failover may read as an older version or a miss;
//! that is what Redis itself may lose, and not wrong.

use super::{bar_at, ticker, T0};
use iftb_cache::{Bar, CacheManager, ErrorKind, Ticker, Timeframe};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TF: Timeframe = Timeframe::M1;
const MINUTE: i64 = 60_000;

/// One call: when it ran and how it ended.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    pub start: Instant,
    pub end: Instant,
    /// `None` for a success.
    pub error: Option<ErrorKind>,
}

/// A failure other than unavailability, with what it said.
#[derive(Debug)]
pub struct Odd {
    pub kind: ErrorKind,
    pub message: String,
}

struct Model {
    symbols: Vec<String>,
    /// Per symbol, the highest version a write was attempted with.
    attempted: Vec<AtomicI64>,
    wrong: Mutex<Vec<String>>,
    odd: Mutex<Vec<Odd>>,
    stop: AtomicBool,
}

pub struct Load {
    model: Arc<Model>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Call>>>,
}

/// What a load saw, from start to stop.
pub struct Report {
    pub calls: Vec<Call>,
    pub wrong: Vec<String>,
    /// Failures other than `Connection` and `Timeout`.
    pub odd: Vec<Odd>,
}

impl Load {
    /// Starts the load on `symbols` symbols (spread over the slots).
    pub fn start(cache: &CacheManager, symbols: usize) -> Self {
        let model = Arc::new(Model {
            symbols: (0..symbols).map(|i| format!("SYM{i}USDT")).collect(),
            attempted: (0..symbols).map(|_| AtomicI64::new(-1)).collect(),
            wrong: Mutex::new(Vec::new()),
            odd: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let mut tasks = vec![tokio::spawn(write(cache.clone(), Arc::clone(&model)))];
        for reader in 0..2 {
            tasks.push(tokio::spawn(read(
                cache.clone(),
                Arc::clone(&model),
                reader,
            )));
        }
        Self { model, tasks }
    }

    pub async fn stop(self) -> Report {
        self.model.stop.store(true, Ordering::Release);
        let mut calls = Vec::new();
        for task in self.tasks {
            calls.extend(task.await.expect("a load task panicked"));
        }
        let wrong = std::mem::take(&mut *self.model.wrong.lock().unwrap());
        let odd = std::mem::take(&mut *self.model.odd.lock().unwrap());
        Report { calls, wrong, odd }
    }
}

impl Report {
    pub fn failed(&self) -> usize {
        self.calls.iter().filter(|c| c.error.is_some()).count()
    }

    /// The longest stretch of failed calls with no success between them,
    /// from the first one's start to the last one's end.
    pub fn longest_outage(&self) -> Duration {
        let mut calls = self.calls.clone();
        calls.sort_by_key(|c| c.end);
        let mut longest = Duration::ZERO;
        let mut open: Option<(Instant, Instant)> = None;
        for call in calls {
            match (call.error, open) {
                (Some(_), None) => open = Some((call.start, call.end)),
                (Some(_), Some((start, _))) => open = Some((start.min(call.start), call.end)),
                (None, Some((start, end))) => {
                    longest = longest.max(end - start);
                    open = None;
                }
                (None, None) => {}
            }
        }
        if let Some((start, end)) = open {
            longest = longest.max(end - start);
        }
        longest
    }

    pub fn slowest_call(&self) -> Duration {
        self.calls
            .iter()
            .map(|c| c.end - c.start)
            .max()
            .unwrap_or_default()
    }

    /// No wrong read; every failure a `Connection` or `Timeout`; every call
    /// within `deadline` (and a scheduling margin).
    pub fn assert_sound(&self, deadline: Duration) {
        assert!(
            self.wrong.is_empty(),
            "wrong reads: {:#?}",
            &self.wrong[..self.wrong.len().min(10)]
        );
        let odd = &self.odd[..self.odd.len().min(10)];
        assert!(
            odd.is_empty(),
            "{} failures other than unavailability: {odd:#?}",
            self.odd.len()
        );
        let slowest = self.slowest_call();
        assert!(
            slowest <= deadline + Duration::from_millis(250),
            "a call took {slowest:?}"
        );
    }

    pub fn summary(&self) -> String {
        format!(
            "{} calls, {} failed, longest outage {:?}, slowest call {:?}, {} wrong reads",
            self.calls.len(),
            self.failed(),
            self.longest_outage(),
            self.slowest_call(),
            self.wrong.len()
        )
    }
}

/// After a fault is over: a series write and read, a ticker write and read,
/// and the health check, each working on `cache`.
pub async fn assert_every_call_works(cache: &CacheManager) {
    let bar = bar_at(100_000 * MINUTE, 7.0);
    cache
        .ohlcv()
        .set_bars("SYM0USDT", TF, &[bar])
        .await
        .unwrap();
    let latest = cache.ohlcv().get_latest_bar("SYM0USDT", TF).await.unwrap();
    assert_eq!(latest, Some(bar));
    let t = ticker("SYM0USDT", 5.0);
    cache.market().set_ticker("SYM0USDT", &t).await.unwrap();
    assert_eq!(
        cache.market().get_ticker("SYM0USDT").await.unwrap(),
        Some(t)
    );
    assert!(cache.health_check().await, "health check after the fault");
}

/// The ticker of version `v`.
fn ticker_of(symbol: &str, v: i64) -> Ticker {
    Ticker {
        timestamp: T0 + v,
        ..ticker(symbol, 1_000.0 + v as f64)
    }
}

/// The bar of version `v`.
fn bar_of(v: i64) -> Bar {
    bar_at(v / 2 * MINUTE, v as f64)
}

/// Times one call into `calls`; returns its value when it succeeded.
async fn timed<T>(
    model: &Model,
    calls: &mut Vec<Call>,
    call: impl std::future::Future<Output = iftb_cache::Result<T>>,
) -> Option<T> {
    let start = Instant::now();
    let result = call.await;
    let end = Instant::now();
    let error = result.as_ref().err().map(|e| e.kind());
    if let Err(e) = &result {
        if !e.is_unavailable() {
            let odd = Odd {
                kind: e.kind(),
                message: format!("{e}"),
            };
            model.odd.lock().unwrap().push(odd);
        }
    }
    calls.push(Call { start, end, error });
    result.ok()
}

async fn write(cache: CacheManager, model: Arc<Model>) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut v = 0;
    while !model.stop.load(Ordering::Acquire) {
        for (i, symbol) in model.symbols.iter().enumerate() {
            model.attempted[i].store(v, Ordering::Release);
            timed(
                &model,
                &mut calls,
                cache.market().set_ticker(symbol, &ticker_of(symbol, v)),
            )
            .await;
            timed(
                &model,
                &mut calls,
                cache.ohlcv().set_bars(symbol, TF, &[bar_of(v)]),
            )
            .await;
        }
        let batch: Vec<Ticker> = model.symbols.iter().map(|s| ticker_of(s, v)).collect();
        timed(&model, &mut calls, cache.market().set_tickers(&batch)).await;
        v += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    calls
}

async fn read(cache: CacheManager, model: Arc<Model>, reader: usize) -> Vec<Call> {
    let mut calls = Vec::new();
    let series: Vec<(&str, Timeframe)> = model.symbols.iter().map(|s| (s.as_str(), TF)).collect();
    let mut round = reader;
    while !model.stop.load(Ordering::Acquire) {
        let i = round % model.symbols.len();
        let symbol = &model.symbols[i];
        // Bounds are read after each read: a version it returned was attempted
        // before the write was sent, so before the read returned.
        let bounds = || -> Vec<i64> {
            model
                .attempted
                .iter()
                .map(|a| a.load(Ordering::Acquire))
                .collect()
        };
        let check = |what: &str, problem: Option<String>| {
            if let Some(p) = problem {
                model.wrong.lock().unwrap().push(format!("{what}: {p}"));
            }
        };
        if let Some(found) = timed(
            &model,
            &mut calls,
            cache.market().get_tickers(&model.symbols),
        )
        .await
        {
            let bounds = bounds();
            for (j, t) in found.iter().enumerate() {
                check(
                    "get_tickers",
                    t.as_ref()
                        .and_then(|t| ticker_problem(t, &model.symbols[j], bounds[j])),
                );
            }
        }
        if let Some(Some(bars)) =
            timed(&model, &mut calls, cache.ohlcv().get_bars(symbol, TF, 50)).await
        {
            check("get_bars", bars_problem(&bars, bounds()[i]));
        }
        if let Some(latest) =
            timed(&model, &mut calls, cache.ohlcv().get_latest_bars(&series)).await
        {
            let bounds = bounds();
            for (j, bar) in latest.iter().enumerate() {
                check(
                    "get_latest_bars",
                    bar.and_then(|b| bars_problem(&[b], bounds[j])),
                );
            }
        }
        round += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    calls
}

fn ticker_problem(t: &Ticker, symbol: &str, bound: i64) -> Option<String> {
    let v = t.timestamp - T0;
    let expected = ticker_of(symbol, v);
    if *t != expected || v < 0 || v > bound {
        return Some(format!(
            "{t:?} read for {symbol}, versions 0..={bound} written"
        ));
    }
    None
}

fn bars_problem(bars: &[Bar], bound: i64) -> Option<String> {
    let ordered = bars.windows(2).all(|w| w[0].timestamp > w[1].timestamp);
    if !ordered {
        return Some(format!("bars out of order: {bars:?}"));
    }
    bars.iter().find_map(|b| {
        let v = b.close as i64;
        let ok = b.close.fract() == 0.0 && v >= 0 && v <= bound && *b == bar_of(v);
        (!ok).then(|| format!("{b:?}, versions 0..={bound} written"))
    })
}
