//! The calls of [`OhlcvCache`]: validation, then one backend call, then the
//! shared read or write path.

use super::archived::{decode_bar, decode_newest, decode_oldest, ArchivedBars};
use crate::backend::{SeriesWindow, SeriesWrite};
use crate::codec;
use crate::error::{Error, Result};
use crate::limits::{check_bar_limit, check_series_count, MAX_BARS_PER_READ};
use crate::model::{Bar, Timeframe};
use crate::options::BarWriteOptions;
use crate::shared::Shared;
use crate::stats::Op;
use bytes::Bytes;

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

    /// As [`set_bars`](Self::set_bars), with a TTL and a retention cap.
    ///
    /// # Errors
    ///
    /// As [`set_bars`](Self::set_bars); a TTL under 1 ms or over
    /// [`MAX_TTL`](crate::MAX_TTL) is invalid input.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(cache: iftb_cache::CacheManager, bars: Vec<iftb_cache::Bar>) -> iftb_cache::Result<()> {
    /// use iftb_cache::{BarWriteOptions, Timeframe};
    /// use std::{num::NonZeroUsize, time::Duration};
    /// let opts = BarWriteOptions::new()
    ///     .ttl(Duration::from_secs(3_600))
    ///     .max_bars(NonZeroUsize::new(10_000).unwrap());
    /// cache.ohlcv().set_bars_with("BTCUSDT", Timeframe::H1, &bars, opts).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_bars_with(
        &self,
        symbol: &str,
        tf: Timeframe,
        bars: &[Bar],
        options: BarWriteOptions,
    ) -> Result<()> {
        let _call = self.shared.call(Op::SetBars);
        let key = self.shared.keys.series(symbol, tf)?;
        let ttl = options.ttl_for(&self.shared.config)?;
        let sorted = sorted_unique(bars)?;
        let times: Vec<i64> = sorted.iter().map(|b| b.timestamp).collect();
        let write = SeriesWrite {
            key: &key,
            bars: &codec::archive_bars(&sorted),
            times: &times,
            ttl,
            max_len: options.max_bars_for(&self.shared.config),
        };
        let result = self.shared.backend.series_upsert(&write).await;
        self.shared.observe_write(Op::SetBars, key.set(), result)
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
        let _call = self.shared.call(Op::GetBars);
        let key = self.shared.keys.series(symbol, tf)?;
        check_bar_limit(limit)?;
        let fetched = self.shared.backend.series_newest(&key, limit).await;
        let validated = self.shared.backend.bars_validated();
        self.finish_read(Op::GetBars, key.set(), fetched, |runs| {
            decode_newest(&runs, validated)
        })
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
        let _call = self.shared.call(Op::GetBarsArchived);
        let key = self.shared.keys.series(symbol, tf)?;
        check_bar_limit(limit)?;
        let fetched = self.shared.backend.series_newest(&key, limit).await;
        let validated = self.shared.backend.bars_validated();
        self.finish_read(Op::GetBarsArchived, key.set(), fetched, |runs| {
            ArchivedBars::new(runs, validated)
        })
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
        let _call = self.shared.call(Op::GetRange);
        let key = self.shared.keys.series(symbol, tf)?;
        if from > to {
            return Err(Error::invalid(format!(
                "range start {from} is after its end {to}"
            )));
        }
        let window = SeriesWindow {
            key: &key,
            from,
            to,
            limit: MAX_BARS_PER_READ + 1,
        };
        let fetched = self.shared.backend.series_range(&window).await;
        let validated = self.shared.backend.bars_validated();
        let bars = self.finish_read(Op::GetRange, key.set(), fetched, |runs| {
            decode_oldest(&runs, validated)
        })?;
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
        let _call = self.shared.call(Op::GetLatestBar);
        let key = self.shared.keys.series(symbol, tf)?;
        let fetched = self.shared.backend.series_latest(&key).await;
        let validated = self.shared.backend.bars_validated();
        self.shared
            .finish_read(Op::GetLatestBar, key.set(), fetched, |bar| {
                decode_bar(&bar, validated)
            })
    }

    /// The newest bar of each series, in order, in one round trip: for
    /// strategies that scan a universe of symbols.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad symbol
    /// or more than [`MAX_BARS_PER_READ`] series; otherwise as [`get_bars`](Self::get_bars).
    pub async fn get_latest_bars(&self, series: &[(&str, Timeframe)]) -> Result<Vec<Option<Bar>>> {
        let _call = self.shared.call(Op::GetLatestBars);
        check_series_count(series.len())?;
        let keys = series
            .iter()
            .map(|(s, tf)| self.shared.keys.series(s, *tf))
            .collect::<Result<Vec<_>>>()?;
        let fetched = self.shared.backend.series_latest_many(&keys).await;
        let validated = self.shared.backend.bars_validated();
        self.shared
            .finish_read_many(Op::GetLatestBars, &keys, fetched, |bar| {
                decode_bar(&bar, validated)
            })
    }

    /// Drops the series; true when it was cached.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad symbol;
    /// connection, timeout or server errors.
    pub async fn invalidate(&self, symbol: &str, tf: Timeframe) -> Result<bool> {
        let _call = self.shared.call(Op::Invalidate);
        let key = self.shared.keys.series(symbol, tf)?;
        let result = self.shared.backend.series_delete(&key).await;
        self.shared.observe_write(Op::Invalidate, key.set(), result)
    }

    /// The shared read path for reads of many records: none found is a miss.
    fn finish_read<T>(
        &self,
        op: Op,
        key: &str,
        fetched: Result<Vec<Bytes>>,
        decode: impl FnOnce(Vec<Bytes>) -> Result<T>,
    ) -> Result<Option<T>> {
        let found = fetched.map(|records| (!records.is_empty()).then_some(records));
        self.shared.finish_read(op, key, found, decode)
    }
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
