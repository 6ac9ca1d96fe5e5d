//! The bars of a series read, as the backends hand them back: runs of whole
//! archived bars, oldest first within a run, newest run first (a slice of
//! each Redis member or embedded chunk read). Bars from Redis are validated
//! once, when the view is made, and so is their order: strictly newest first
//! across the whole read, or it is corrupt. Bars from the embedded engine
//! were validated when it stored them (`Backend::bars_validated`).

use crate::codec::{
    access_archived_bar, access_valid_archived_bar, check_runs, run_newest_first as newest_first,
    validated_bar, Order, ARCHIVED_BAR_LEN as BAR_LEN,
};
use crate::error::Result;
use crate::model::{ArchivedBar, Bar};
use bytes::Bytes;
use std::sync::OnceLock;

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
    /// How many bars come before each run, built by the first `get`: a
    /// binary search then, not a walk over the runs.
    before: OnceLock<Vec<usize>>,
    len: usize,
}

impl ArchivedBars {
    /// Validates every bar and their order, unless `validated` says the
    /// backend did as it stored them; after this, reading them cannot fail.
    pub(super) fn new(runs: Vec<Bytes>, validated: bool) -> Result<Self> {
        if !validated {
            check_runs(&runs, true)?;
        }
        let counts = runs
            .iter()
            .map(|run| newest_first(run).map(|bars| bars.len()));
        let len = counts.sum::<Result<usize>>()?;
        Ok(Self {
            runs,
            before: OnceLock::new(),
            len,
        })
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
    pub fn get(&self, i: usize) -> Option<&ArchivedBar> {
        if i >= self.len {
            return None;
        }
        let before = self.before.get_or_init(|| {
            let counts = self.runs.iter().map(|r| r.len() / BAR_LEN);
            counts
                .scan(0, |n, c| Some(std::mem::replace(n, *n + c)))
                .collect()
        });
        let k = before.partition_point(|&b| b <= i) - 1;
        let run = &self.runs[k];
        let start = run.len() - (i - before[k] + 1) * BAR_LEN;
        access_archived_bar(&run[start..start + BAR_LEN]).ok()
    }

    /// The bars, newest first.
    pub fn iter(&self) -> impl Iterator<Item = &ArchivedBar> + '_ {
        // Validated in `new`: `access` succeeds on every bar, and the
        // filter never drops one (a cheap length check, no unsafe).
        self.runs
            .iter()
            .flat_map(|run| run.chunks_exact(BAR_LEN).rev())
            .filter_map(|bar| access_archived_bar(bar).ok())
    }

    /// Copies the bars out.
    pub fn to_vec(&self) -> Vec<Bar> {
        self.iter().map(ArchivedBar::to_bar).collect()
    }
}

/// Every bar of runs read newest first, copied out once; validated and in
/// strictly decreasing time, unless `validated`.
pub(crate) fn decode_newest(runs: &[Bytes], validated: bool) -> Result<Vec<Bar>> {
    let mut bars = Vec::with_capacity(runs.iter().map(|r| r.len() / BAR_LEN).sum());
    let mut order = Order::newest_first();
    for run in runs {
        for bar in newest_first(run)? {
            bars.push(read_bar(bar, &mut order, validated)?);
        }
    }
    Ok(bars)
}

/// Bars of a window, runs oldest first, copied out once; validated and in
/// strictly increasing time, unless `validated`.
pub(super) fn decode_oldest(runs: &[Bytes], validated: bool) -> Result<Vec<Bar>> {
    let mut bars = Vec::with_capacity(runs.iter().map(|r| r.len() / BAR_LEN).sum());
    let mut order = Order::oldest_first();
    for run in runs {
        for bar in newest_first(run)?.rev() {
            bars.push(read_bar(bar, &mut order, validated)?);
        }
    }
    Ok(bars)
}

/// One archived bar copied out: checked and in order, unless `validated`.
#[inline]
fn read_bar(bar: &[u8], order: &mut Order, validated: bool) -> Result<Bar> {
    let bar = decode_bar(bar, validated)?;
    if !validated {
        order.check(bar.timestamp)?;
    }
    Ok(bar)
}

/// One archived bar copied out, checked as a bar unless `validated`.
#[inline]
pub(super) fn decode_bar(bar: &[u8], validated: bool) -> Result<Bar> {
    if validated {
        return validated_bar(bar);
    }
    access_valid_archived_bar(bar).map(ArchivedBar::to_bar)
}
