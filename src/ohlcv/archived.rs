//! The records of a series read, as the backends hand them back: runs of
//! whole 52-byte records, oldest first within a run, newest run first
//! (Redis hands out a slice of each block it read; the embedded backend a
//! run per record). Every record is validated once, when the view is made.

use crate::codec::{self, access_valid_bar, BAR_LEN};
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
    /// Validates every record; after this, reading them cannot fail.
    pub(super) fn new(runs: Vec<Bytes>) -> Result<Self> {
        let mut len = 0;
        for run in &runs {
            for record in newest_first(run)? {
                access_valid_bar(record)?;
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
                return codec::access::<Bar>(&run[start..start + BAR_LEN]).ok();
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
            .flat_map(|run| run.chunks_exact(BAR_LEN).rev())
            .filter_map(|r| codec::access::<Bar>(r).ok())
    }

    /// Copies the bars out.
    pub fn to_vec(&self) -> Vec<Bar> {
        self.iter().map(ArchivedBar::to_bar).collect()
    }
}

/// Every record of runs read newest first, validated and copied out once.
pub(super) fn decode_newest(runs: Vec<Bytes>) -> Result<Vec<Bar>> {
    let mut bars = Vec::with_capacity(runs.iter().map(|r| r.len() / BAR_LEN).sum());
    for run in &runs {
        for record in newest_first(run)? {
            bars.push(access_valid_bar(record)?.to_bar());
        }
    }
    Ok(bars)
}

/// The records of a run (whole records, oldest first), newest first.
fn newest_first(run: &[u8]) -> Result<std::iter::Rev<std::slice::ChunksExact<'_, u8>>> {
    if run.is_empty() || !run.len().is_multiple_of(BAR_LEN) {
        return Err(Error::codec(format!(
            "a run of {} bytes is not whole {BAR_LEN}-byte bar records",
            run.len(),
        )));
    }
    Ok(run.chunks_exact(BAR_LEN).rev())
}
