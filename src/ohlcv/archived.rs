//! The bars of a series read, as the backends hand them back: runs of whole
//! archived bars, oldest first within a run, newest run first (Redis hands
//! out a slice of each member it read; the embedded backend a run per bar).
//! Every bar is validated once, when the view is made, and so is the order:
//! strictly newest first across the whole read, or it is corrupt.

use crate::codec::{access_archived_bar, access_valid_archived_bar, ARCHIVED_BAR_LEN as BAR_LEN};
use crate::error::{Error, Result};
use crate::model::{ArchivedBar, Bar};
use bytes::Bytes;

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
    /// Validates every bar and their order; after this, reading them cannot fail.
    pub(super) fn new(runs: Vec<Bytes>) -> Result<Self> {
        let mut len = 0;
        let mut order = Order::newest_first();
        for run in &runs {
            for bar in newest_first(run)? {
                order.check(access_valid_archived_bar(bar)?.timestamp.to_native())?;
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
            let n = run.len() / BAR_LEN;
            if i < n {
                let start = (n - 1 - i) * BAR_LEN;
                return access_archived_bar(&run[start..start + BAR_LEN]).ok();
            }
            i -= n;
        }
        None
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

/// Every bar of runs read newest first, validated and copied out once.
pub(super) fn decode_newest(runs: Vec<Bytes>) -> Result<Vec<Bar>> {
    let mut bars = Vec::with_capacity(runs.iter().map(|r| r.len() / BAR_LEN).sum());
    let mut order = Order::newest_first();
    for run in &runs {
        for bar in newest_first(run)? {
            let bar = access_valid_archived_bar(bar)?.to_bar();
            order.check(bar.timestamp)?;
            bars.push(bar);
        }
    }
    Ok(bars)
}

/// Bars of a window, one per element, oldest first: validated, in strictly
/// increasing time, copied out once.
pub(super) fn decode_oldest(bars: Vec<Bytes>) -> Result<Vec<Bar>> {
    let mut order = Order::oldest_first();
    bars.iter()
        .map(|bar| {
            let bar = access_valid_archived_bar(bar)?.to_bar();
            order.check(bar.timestamp)?;
            Ok(bar)
        })
        .collect()
}

/// The order a read must come in; a read out of it is corrupt, never handed
/// out (a duplicate or a bar out of place would mislead every indicator).
struct Order {
    newest_first: bool,
    last: Option<i64>,
}

impl Order {
    fn newest_first() -> Self {
        Order {
            newest_first: true,
            last: None,
        }
    }

    fn oldest_first() -> Self {
        Order {
            newest_first: false,
            last: None,
        }
    }

    fn check(&mut self, ts: i64) -> Result<()> {
        let in_order = |prev: i64| (ts < prev) == self.newest_first && ts != prev;
        if !self.last.is_none_or(in_order) {
            return Err(out_of_order(ts));
        }
        self.last = Some(ts);
        Ok(())
    }
}

#[cold]
fn out_of_order(ts: i64) -> Error {
    Error::codec(format!("series read is out of order at bar {ts}"))
}

/// The bars of a run (whole bars, oldest first), newest first.
fn newest_first(run: &[u8]) -> Result<std::iter::Rev<std::slice::ChunksExact<'_, u8>>> {
    if run.is_empty() || !run.len().is_multiple_of(BAR_LEN) {
        return Err(Error::codec(format!(
            "a run of {} bytes is not whole {BAR_LEN}-byte bars",
            run.len(),
        )));
    }
    Ok(run.chunks_exact(BAR_LEN).rev())
}
