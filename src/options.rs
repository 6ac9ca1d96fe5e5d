//! Per-call options: one type per call family, passed to the `*_with`
//! variant of a call (`set_ticker_with`, `set_bars_with`,
//! `get_or_compute_with`...). Every field left unset takes the config's
//! default, so a new knob is a new method here, never a new parameter.

use crate::config::{CacheConfig, DataType};
use crate::error::Result;
use crate::limits::check_ttl;
use std::num::NonZeroUsize;
use std::time::Duration;

/// A builder method setting one optional field.
macro_rules! setter {
    ($(#[$doc:meta])* $name:ident => $field:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, $field: $ty) -> Self {
            self.$field = Some($field);
            self
        }
    };
}

/// The TTL setter every options type has, with its own first line.
macro_rules! ttl_setter {
    ($doc:literal) => {
        setter! {
            #[doc = $doc]
            ///
            /// One millisecond to [`MAX_TTL`](crate::MAX_TTL); anything else is
            /// rejected as invalid input by the call, before anything is written.
            ttl => ttl: Duration
        }
    };
}

/// The TTL a call writes with: its own, else the config's default for `data`.
fn resolve_ttl(ttl: Option<Duration>, config: &CacheConfig, data: DataType) -> Result<Duration> {
    let ttl = ttl.unwrap_or_else(|| config.ttl(data));
    check_ttl(ttl)?;
    Ok(ttl)
}

/// Options of one market data or LLM write (`set_ticker_with`,
/// `set_tickers_with`, `set_funding_rate_with`, `set_funding_rates_with`,
/// `set_fear_greed_with`, `set_analysis_with`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> iftb_cache::Result<()> {
/// use iftb_cache::{CacheConfig, CacheManager, WriteOptions};
/// use std::time::Duration;
/// let cache = CacheManager::connect(CacheConfig::embedded()).await?;
/// let eight_hours = WriteOptions::new().ttl(Duration::from_secs(8 * 3_600));
/// cache.market().set_funding_rate_with("BTCUSDT", 0.0001, eight_hours).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct WriteOptions {
    ttl: Option<Duration>,
}

impl WriteOptions {
    /// The config's defaults: the TTL of the data type written.
    pub fn new() -> Self {
        Self::default()
    }

    ttl_setter!("The value expires `ttl` after this write.");

    pub(crate) fn ttl_for(&self, config: &CacheConfig, data: DataType) -> Result<Duration> {
        resolve_ttl(self.ttl, config, data)
    }
}

/// Options of one OHLCV write ([`set_bars_with`](crate::OhlcvCache::set_bars_with)):
/// TTL and retention cap of the series.
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

    ttl_setter!("The series expires `ttl` after this write.");

    setter! {
        /// After this write, keep only the newest `max_bars` bars of the series.
        max_bars => max_bars: NonZeroUsize
    }

    pub(crate) fn ttl_for(&self, config: &CacheConfig) -> Result<Duration> {
        resolve_ttl(self.ttl, config, DataType::Bars)
    }

    pub(crate) fn max_bars_for(&self, config: &CacheConfig) -> Option<NonZeroUsize> {
        self.max_bars.or(config.max_bars_per_series())
    }
}

/// Options of [`LlmCache::get_or_compute_with`](crate::LlmCache::get_or_compute_with).
///
/// # Examples
///
/// ```
/// use iftb_cache::ComputeOptions;
/// use std::time::Duration;
/// let opts = ComputeOptions::new()
///     .ttl(Duration::from_secs(3_600))
///     .lock(Duration::from_secs(30)); // how long a dead holder blocks others
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct ComputeOptions {
    ttl: Option<Duration>,
    lease: Option<Duration>,
}

impl ComputeOptions {
    /// The config's LLM TTL, no cross-process lock.
    pub fn new() -> Self {
        Self::default()
    }

    ttl_setter!("The result expires `ttl` after it is stored.");

    setter! {
        /// Takes a lock in the backend (a random 128-bit token, `SET NX PX`)
        /// while computing, so that other processes wait for this one's
        /// result instead of paying for the same call. The lease (at least
        /// 1 ms) is renewed every third of it while the computation runs, so
        /// a call longer than the lease is still paid once. The lock is
        /// released on every way out: a result, an error, a panic, or the
        /// call being cancelled (dropped by a `timeout` or `select!`). A
        /// holder whose process dies stops renewing it: the others wait at
        /// most one lease, then one of them computes. While the holder lives,
        /// the others wait as long as its closure runs. Choose a lease of at
        /// least three call deadlines, so that one slow renewal cannot let
        /// it lapse.
        lock => lease: Duration
    }

    pub(crate) fn ttl_for(&self, config: &CacheConfig) -> Result<Duration> {
        resolve_ttl(self.ttl, config, DataType::Llm)
    }

    /// The lease, checked as a TTL, when a lock was asked for.
    pub(crate) fn checked_lease(&self) -> Result<Option<Duration>> {
        self.lease.map(|l| check_ttl(l).map(|()| l)).transpose()
    }
}
