//! `OhlcvCache`: candle series, one sorted set per symbol and timeframe, scored
//! by open time. Writes are pipelined batches applied chunk-whole; every read
//! is one round trip, whatever the size of the keyspace.

use crate::backend::SeriesWrite;
use crate::client::check_ttl;
use crate::codec;
use crate::config::DataType;
use crate::error::{Error, Result};
use crate::manager::Shared;
use crate::model::{ArchivedBar, Bar, Timeframe};
use bytes::Bytes;
use std::num::NonZeroUsize;
use std::time::Duration;

/// Most bars (or series) one read may return: bounds the size of one reply.
pub const MAX_BARS_PER_READ: usize = 50_000;

/// Options of one write: TTL and retention cap of the series.
///
/// # Examples
///
/// ```
/// use iftb_cache::BarWriteOptions;
/// use std::{num::NonZeroUsize, time::Duration};
/// let opts = BarWriteOptions::new()
///     .ttl(Duration::from_secs(3_600))
///     .max_bars(NonZeroUsize::new(10_000).unwrap());
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct BarWriteOptions {
    ttl: Option<Duration>,
    max_bars: Option<NonZeroUsize>,
}

impl BarWriteOptions {
    /// The config's defaults: bar TTL, and its bars-per-series cap if any.
    pub fn new() -> Self {
        Self::default()
    }

    /// The series expires `ttl` after this write (at least 1 ms).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// After this write, keep only the newest `max` bars of the series.
    pub fn max_bars(mut self, max: NonZeroUsize) -> Self {
        self.max_bars = Some(max);
        self
    }
}

/// Bars straight over the reply's bytes, validated once, for callers that only
/// scan them: no `Vec<Bar>` is built.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> iftb_cache::Result<()> {
/// use iftb_cache::{Bar, CacheConfig, CacheManager, Timeframe};
/// let cache = CacheManager::connect(CacheConfig::embedded()).await?;
/// let bars: Vec<Bar> = (0..3).map(|i| Bar::new(i * 60_000, 1.0, 2.0, 0.5, 1.0 + i as f64, 5.0)).collect();
/// cache.ohlcv().set_bars("BTCUSDT", Timeframe::M1, &bars).await?;
/// let view = cache.ohlcv().get_bars_archived("BTCUSDT", Timeframe::M1, 3).await?.unwrap();
/// let sum: f64 = view.iter().map(|b| b.close.to_native()).sum();
/// assert_eq!(sum, 6.0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ArchivedBars {
    /// Runs of records, oldest first within a run, newest run first.
    runs: Vec<Bytes>,
    len: usize,
}

impl ArchivedBars {
    /// Validates every record; after this, reading them cannot fail.
    fn new(runs: Vec<Bytes>) -> Result<Self> {
        let mut len = 0;
        for run in &runs {
            for record in newest_first(run)? {
                checked_bar(record)?;
                len += 1;
            }
        }
        Ok(Self { runs, len })
    }

    /// Number of bars.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no bars.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `i`-th bar, newest first.
    pub fn get(&self, mut i: usize) -> Option<&ArchivedBar> {
        for run in &self.runs {
            let n = run.len() / codec::BAR_LEN;
            if i < n {
                let start = (n - 1 - i) * codec::BAR_LEN;
                return codec::access::<Bar>(&run[start..start + codec::BAR_LEN]).ok();
            }
            i -= n;
        }
        None
    }

    /// The bars, newest first.
    pub fn iter(&self) -> impl Iterator<Item = &ArchivedBar> + '_ {
        // Validated in `new`: `access` succeeds on every record, and the
        // filter never drops one (a cheap header and length check, no unsafe).
        self.runs
            .iter()
            .flat_map(|run| run.chunks_exact(codec::BAR_LEN).rev())
            .filter_map(|r| codec::access::<Bar>(r).ok())
    }

    /// Copies the bars out.
    pub fn to_vec(&self) -> Vec<Bar> {
        self.iter().map(ArchivedBar::to_bar).collect()
    }
}

/// The records of a run (whole records, oldest first), newest first.
fn newest_first(run: &[u8]) -> Result<std::iter::Rev<std::slice::ChunksExact<'_, u8>>> {
    if run.is_empty() || !run.len().is_multiple_of(codec::BAR_LEN) {
        return Err(Error::codec(format!(
            "a run of {} bytes is not whole {}-byte bar records",
            run.len(),
            codec::BAR_LEN
        )));
    }
    Ok(run.chunks_exact(codec::BAR_LEN).rev())
}

/// The OHLCV cache, from [`CacheManager::ohlcv`](crate::CacheManager::ohlcv).
#[derive(Clone, Copy)]
pub struct OhlcvCache<'a> {
    shared: &'a Shared,
}

impl<'a> OhlcvCache<'a> {
    pub(crate) fn new(shared: &'a Shared) -> Self {
        Self { shared }
    }

    /// Caches `bars` with the default bar TTL. A bar whose open time is already
    /// cached replaces it (the in-progress candle); bars may come in any order.
    /// The series expires one TTL after its last write.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad symbol
    /// or bar, and nothing is written; connection, timeout or server errors
    /// otherwise, after which some chunks (each applied whole) may have landed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(cache: iftb_cache::CacheManager, bars: Vec<iftb_cache::Bar>) -> iftb_cache::Result<()> {
    /// cache.ohlcv().set_bars("BTCUSDT", iftb_cache::Timeframe::H1, &bars).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_bars(&self, symbol: &str, tf: Timeframe, bars: &[Bar]) -> Result<()> {
        self.set_bars_with(symbol, tf, bars, BarWriteOptions::new())
            .await
    }

    /// As [`set_bars`](Self::set_bars), with its own TTL.
    ///
    /// # Errors
    ///
    /// As [`set_bars`](Self::set_bars); a TTL under 1 ms is invalid input.
    pub async fn set_bars_with_ttl(
        &self,
        symbol: &str,
        tf: Timeframe,
        bars: &[Bar],
        ttl: Duration,
    ) -> Result<()> {
        self.set_bars_with(symbol, tf, bars, BarWriteOptions::new().ttl(ttl))
            .await
    }

    /// As [`set_bars`](Self::set_bars), with a TTL and a retention cap.
    ///
    /// # Errors
    ///
    /// As [`set_bars_with_ttl`](Self::set_bars_with_ttl).
    pub async fn set_bars_with(
        &self,
        symbol: &str,
        tf: Timeframe,
        bars: &[Bar],
        options: BarWriteOptions,
    ) -> Result<()> {
        let key = self.shared.keys.series(symbol, tf)?;
        let ttl = options
            .ttl
            .unwrap_or_else(|| self.shared.config.ttl(DataType::Bars));
        check_ttl(ttl)?;
        let sorted = sorted_unique(bars)?;
        let records = codec::encode_bars(&sorted);
        let items: Vec<(i64, Bytes)> = sorted.iter().map(|b| b.timestamp).zip(records).collect();
        let write = SeriesWrite {
            key: &key,
            items: &items,
            ttl,
            max_len: options
                .max_bars
                .or(self.shared.config.max_bars_per_series()),
            interval_ms: interval_ms(tf),
        };
        let result = self.shared.backend.series_upsert(&write).await;
        self.shared.observe_write("set_bars", &key, result)
    }

    /// The newest `limit` bars, newest first; `None` when nothing is cached.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad symbol
    /// or a limit of 0 or over [`MAX_BARS_PER_READ`];
    /// [`ErrorKind::Codec`](crate::ErrorKind::Codec) for a corrupt stored bar;
    /// connection, timeout or server errors.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(cache: iftb_cache::CacheManager) -> iftb_cache::Result<()> {
    /// if let Some(bars) = cache.ohlcv().get_bars("BTCUSDT", iftb_cache::Timeframe::H1, 100).await? {
    ///     println!("newest close {}", bars[0].close);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get_bars(
        &self,
        symbol: &str,
        tf: Timeframe,
        limit: usize,
    ) -> Result<Option<Vec<Bar>>> {
        let key = self.shared.keys.series(symbol, tf)?;
        check_limit(limit)?;
        let result = self.shared.backend.series_newest(&key, limit).await;
        self.finish_read("get_bars", &key, result, decode_newest)
    }

    /// As [`get_bars`](Self::get_bars), handing out the archived bars over the
    /// reply's bytes.
    ///
    /// # Errors
    ///
    /// As [`get_bars`](Self::get_bars).
    pub async fn get_bars_archived(
        &self,
        symbol: &str,
        tf: Timeframe,
        limit: usize,
    ) -> Result<Option<ArchivedBars>> {
        let key = self.shared.keys.series(symbol, tf)?;
        check_limit(limit)?;
        let result = self.shared.backend.series_newest(&key, limit).await;
        self.finish_read("get_bars", &key, result, ArchivedBars::new)
    }

    /// Bars with `from <= open time <= to` (unix ms), oldest first; `None` when
    /// the window holds none.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad symbol,
    /// `from > to`, or a window holding more than [`MAX_BARS_PER_READ`] bars
    /// (narrow it); otherwise as [`get_bars`](Self::get_bars).
    pub async fn get_range(
        &self,
        symbol: &str,
        tf: Timeframe,
        from: i64,
        to: i64,
    ) -> Result<Option<Vec<Bar>>> {
        let key = self.shared.keys.series(symbol, tf)?;
        if from > to {
            return Err(Error::invalid(format!(
                "range start {from} is after its end {to}"
            )));
        }
        let result = self
            .shared
            .backend
            .series_range(&key, (from, to), MAX_BARS_PER_READ + 1, interval_ms(tf))
            .await;
        let bars = self.finish_read("get_range", &key, result, decode_bars)?;
        if bars.as_ref().is_some_and(|v| v.len() > MAX_BARS_PER_READ) {
            return Err(Error::invalid(format!(
                "{from}..={to} holds more than {MAX_BARS_PER_READ} bars; read a narrower window"
            )));
        }
        Ok(bars)
    }

    /// The newest bar; `None` when nothing is cached.
    ///
    /// # Errors
    ///
    /// As [`get_bars`](Self::get_bars).
    pub async fn get_latest_bar(&self, symbol: &str, tf: Timeframe) -> Result<Option<Bar>> {
        let key = self.shared.keys.series(symbol, tf)?;
        let result = self.shared.backend.series_latest(&key).await;
        let record = self
            .shared
            .observe_read("get_latest_bar", &key, result, || None)?;
        self.latest_bar("get_latest_bar", &key, record)
    }

    /// The newest bar of each series, in order, in one round trip: for
    /// strategies that scan a universe of symbols.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad symbol
    /// or more than [`MAX_BARS_PER_READ`] series; otherwise as [`get_bars`](Self::get_bars).
    pub async fn get_latest_bars(&self, series: &[(&str, Timeframe)]) -> Result<Vec<Option<Bar>>> {
        if series.len() > MAX_BARS_PER_READ {
            return Err(Error::invalid(format!(
                "{} series in one read; the limit is {MAX_BARS_PER_READ}",
                series.len()
            )));
        }
        let keys = series
            .iter()
            .map(|(s, tf)| self.shared.keys.series(s, *tf))
            .collect::<Result<Vec<_>>>()?;
        let result = self.shared.backend.series_latest_many(&keys).await;
        let misses = || vec![None; keys.len()];
        let records = self
            .shared
            .observe_read("get_latest_bars", "", result, misses)?;
        keys.iter()
            .zip(records)
            .map(|(key, record)| self.latest_bar("get_latest_bars", key, record))
            .collect()
    }

    /// Drops the series; true when it was cached.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad symbol;
    /// connection, timeout or server errors.
    pub async fn invalidate(&self, symbol: &str, tf: Timeframe) -> Result<bool> {
        let key = self.shared.keys.series(symbol, tf)?;
        let result = self.shared.backend.delete(std::slice::from_ref(&key)).await;
        Ok(self.shared.observe_write("invalidate", &key, result)? > 0)
    }

    /// Decodes a series' newest record and counts it as a hit or a miss.
    fn latest_bar(&self, op: &str, key: &str, record: Option<Bytes>) -> Result<Option<Bar>> {
        let bar = record
            .map(|r| checked_bar(&r).map(ArchivedBar::to_bar))
            .transpose();
        let bar = self.shared.observe_read(op, key, bar, || None)?;
        self.shared.record_read(key, bar.is_some());
        Ok(bar)
    }

    /// Decodes the records of a read (validating each) and counts it as a
    /// hit or a miss.
    fn finish_read<T>(
        &self,
        op: &str,
        key: &str,
        result: Result<Vec<Bytes>>,
        decode: impl FnOnce(Vec<Bytes>) -> Result<T>,
    ) -> Result<Option<T>> {
        let records = self.shared.observe_read(op, key, result, Vec::new)?;
        let decoded = match records.is_empty() {
            true => Ok(None),
            false => decode(records).map(Some),
        };
        let decoded = self.shared.observe_read(op, key, decoded, || None)?;
        self.shared.record_read(key, decoded.is_some());
        Ok(decoded)
    }
}

/// A stored bar, validated as a record and as a bar: a well-formed record
/// holding what no write accepts (NaN prices, `low > high`...) is corrupt,
/// and handing it out would poison every indicator downstream.
fn checked_bar(record: &[u8]) -> Result<&ArchivedBar> {
    let bar = codec::access::<Bar>(record)?;
    bar.to_bar()
        .validate()
        .map_err(|e| Error::codec(format!("stored bar is corrupt: {e}")))?;
    Ok(bar)
}

/// The candle interval in ms, for the Redis block layout.
fn interval_ms(tf: Timeframe) -> i64 {
    i64::try_from(tf.millis()).unwrap_or(i64::MAX)
}

/// Every record of runs read newest first, validated and copied out once.
fn decode_newest(runs: Vec<Bytes>) -> Result<Vec<Bar>> {
    let mut bars = Vec::with_capacity(runs.iter().map(|r| r.len() / codec::BAR_LEN).sum());
    for run in &runs {
        for record in newest_first(run)? {
            bars.push(checked_bar(record)?.to_bar());
        }
    }
    Ok(bars)
}

/// Every record, validated and copied out once.
fn decode_bars(records: Vec<Bytes>) -> Result<Vec<Bar>> {
    records
        .iter()
        .map(|r| checked_bar(r).map(ArchivedBar::to_bar))
        .collect()
}

fn check_limit(limit: usize) -> Result<()> {
    if limit == 0 || limit > MAX_BARS_PER_READ {
        return Err(Error::invalid(format!(
            "limit {limit} is outside 1..={MAX_BARS_PER_READ}"
        )));
    }
    Ok(())
}

/// Validates every bar, sorts by open time and keeps the last bar given for
/// each open time, as Redis would after writing them one by one.
fn sorted_unique(bars: &[Bar]) -> Result<Vec<Bar>> {
    for (i, bar) in bars.iter().enumerate() {
        bar.validate()
            .map_err(|e| Error::invalid(format!("bars[{i}]: {e}")))?;
    }
    let mut sorted = bars.to_vec();
    // A stable sort keeps equal timestamps in input order: the last one wins.
    sorted.sort_by_key(|b| b.timestamp);
    let mut out: Vec<Bar> = Vec::with_capacity(sorted.len());
    for bar in sorted {
        match out.last_mut() {
            Some(last) if last.timestamp == bar.timestamp => *last = bar,
            _ => out.push(bar),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_keep_the_last_bar_given() {
        let a = Bar::new(60, 1.0, 2.0, 0.5, 1.0, 1.0);
        let b = Bar::new(0, 1.0, 2.0, 0.5, 1.0, 1.0);
        let a2 = Bar { close: 1.5, ..a };
        let out = sorted_unique(&[a, b, a2]).unwrap();
        assert_eq!(out, vec![b, a2]);
    }

    #[test]
    fn a_bad_bar_names_its_index() {
        let ok = Bar::new(0, 1.0, 2.0, 0.5, 1.0, 1.0);
        let bad = Bar {
            high: f64::NAN,
            ..ok
        };
        let err = sorted_unique(&[ok, bad]).unwrap_err();
        assert!(err.to_string().contains("bars[1]"), "{err}");
    }
}
