//! The reference model of `cache_ops`, the input reader and what a step returns.

use super::bar_bits;
use super::series::Series;
use iftb_cache::{Bar, ErrorKind, FearGreed, Ticker, Timeframe};
use std::collections::HashMap;

/// Reads fuzz input as a stream of small choices; past its end, zeros.
pub(crate) struct Input<'a> {
    pub(crate) data: &'a [u8],
}

impl Input<'_> {
    pub(crate) fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    pub(crate) fn pick(&mut self, n: usize) -> usize {
        self.byte() as usize % n
    }

    pub(crate) fn u64(&mut self) -> u64 {
        (0..8).fold(0, |acc, _| acc << 8 | u64::from(self.byte()))
    }

    /// Mostly ordinary prices, sometimes edge cases, sometimes any bits.
    pub(crate) fn price(&mut self) -> f64 {
        pub(crate) const SPECIAL: [f64; 12] = [
            1.0,
            2.0,
            0.5,
            100.0,
            -3.0,
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            f64::MIN_POSITIVE,
        ];
        match self.pick(16) {
            i if i < SPECIAL.len() => SPECIAL[i],
            12 => f64::from_bits(self.u64()),
            i => i as f64 * 1.5,
        }
    }

    pub(crate) fn timestamp(&mut self) -> i64 {
        match self.pick(20) {
            16 => -60_000,
            17 => iftb_cache::MAX_TIMESTAMP_MS + 1,
            18 => iftb_cache::MAX_TIMESTAMP_MS,
            i => i as i64 * 60_000,
        }
    }
}

pub(crate) const SYMBOLS: [&str; 5] = ["BTCUSDT", "ETHUSDT", "SOL-PERP", "bad:sym", ""];
pub(crate) const TIMEFRAMES: [Timeframe; 2] = [Timeframe::M1, Timeframe::H1];
pub(crate) const KEYS: [&str; 4] = ["a", "b", "c", ""];
pub(crate) const DEFAULT_BAR_TTL_MS: u64 = 300_000;

pub(crate) fn valid_symbol(s: &str) -> bool {
    !s.is_empty() && !s.contains(':')
}

/// The write-side rules for a bar, written out again on their own.
pub(crate) fn valid_bar(b: &Bar) -> bool {
    let prices = [b.open, b.high, b.low, b.close, b.volume];
    (0..=iftb_cache::MAX_TIMESTAMP_MS).contains(&b.timestamp)
        && prices.iter().all(|p| p.is_finite())
        && b.low <= b.high
        && b.volume >= 0.0
}

/// The reference: plain maps and a millisecond clock.
#[derive(Default)]
pub(crate) struct Model {
    pub(crate) now: u64,
    pub(crate) series: HashMap<(usize, usize), (Series, u64)>,
    pub(crate) kv: HashMap<usize, (Vec<u8>, Option<u64>)>,
    pub(crate) tickers: HashMap<usize, (Ticker, u64)>,
    pub(crate) rates: HashMap<usize, (f64, u64)>,
    pub(crate) fear_greed: Option<(FearGreed, u64)>,
    pub(crate) analyses: HashMap<(usize, usize), (String, u64)>,
    pub(crate) hits: u64,
    pub(crate) misses: u64,
}

/// The value at a key with an expiry, if it is still live at `now`.
pub(crate) fn live<V>(entry: Option<&(V, u64)>, now: u64) -> Option<&V> {
    entry.filter(|(_, expires)| *expires > now).map(|(v, _)| v)
}

impl Model {
    pub(crate) fn live_series(&self, key: (usize, usize)) -> Option<&Series> {
        self.series
            .get(&key)
            .filter(|(_, expires)| *expires > self.now)
            .map(|(s, _)| s)
    }

    pub(crate) fn live_value(&self, key: usize) -> Option<&Vec<u8>> {
        self.kv
            .get(&key)
            .filter(|(_, e)| e.is_none_or(|e| e > self.now))
            .map(|(v, _)| v)
    }

    pub(crate) fn read(&mut self, hit: bool) {
        if hit {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
    }

    /// Bars of a read, or `None` for none, counted as a hit or a miss.
    pub(crate) fn bars_read(&mut self, bars: Vec<Bar>) -> Option<Vec<[u64; 6]>> {
        self.read(!bars.is_empty());
        (!bars.is_empty()).then(|| bars.iter().map(bar_bits).collect())
    }

    pub(crate) fn live_keys(&self) -> u64 {
        let now = self.now;
        let series = self
            .series
            .keys()
            .filter(|k| self.live_series(**k).is_some());
        let values = self.kv.keys().filter(|k| self.live_value(**k).is_some());
        let tickers = self.tickers.values().filter(|(_, e)| *e > now);
        let rates = self.rates.values().filter(|(_, e)| *e > now);
        let fear_greed = self.fear_greed.iter().filter(|(_, e)| *e > now);
        let analyses = self.analyses.values().filter(|(_, e)| *e > now);
        (series.count()
            + values.count()
            + tickers.count()
            + rates.count()
            + fear_greed.count()
            + analyses.count()) as u64
    }
}

/// What one call returned, in a form both sides produce.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    Invalid,
    Done,
    Flag(bool),
    Count(u64),
    Bars(Option<Vec<[u64; 6]>>),
    Many(Vec<Option<[u64; 6]>>),
    Value(Option<Vec<u8>>),
    Values(Vec<Option<Vec<u8>>>),
    Pair(Box<Outcome>, Box<Outcome>),
    Tickers(Vec<Option<(String, [u64; 8])>>),
    Rates(Vec<Option<u64>>),
    FearGreed(Option<FearGreed>),
    Analysis(Option<String>),
}

pub(crate) fn outcome<T>(result: iftb_cache::Result<T>, ok: impl FnOnce(T) -> Outcome) -> Outcome {
    match result {
        Ok(v) => ok(v),
        Err(e) if e.kind() == ErrorKind::InvalidInput => Outcome::Invalid,
        Err(e) => panic!("the embedded backend failed: {e}"),
    }
}

pub(crate) fn bars_outcome(bars: Option<Vec<Bar>>) -> Outcome {
    Outcome::Bars(bars.map(|b| b.iter().map(bar_bits).collect()))
}
