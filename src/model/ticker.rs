//! The 24-hour ticker of one symbol.

use super::{check_finite, check_timestamp, validate_symbol};
use crate::error::Result;

/// The 24-hour ticker of one symbol, as exchanges report it.
#[derive(
    serde::Serialize, serde::Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
#[derive(Debug, Clone, PartialEq)]
pub struct Ticker {
    /// The symbol, such as `BTCUSDT`.
    pub symbol: String,
    /// Best bid.
    pub bid: f64,
    /// Best ask.
    pub ask: f64,
    /// Last traded price.
    pub last: f64,
    /// Base volume over 24 hours.
    pub volume_24h: f64,
    /// Price change over 24 hours, in percent.
    pub change_24h: f64,
    /// Highest price over 24 hours.
    pub high_24h: f64,
    /// Lowest price over 24 hours.
    pub low_24h: f64,
    /// Exchange time of the ticker, unix milliseconds.
    pub timestamp: i64,
}

impl Ticker {
    /// Checks what every write checks: a valid symbol, finite numbers and a
    /// timestamp in range.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the bad field.
    pub fn validate(&self) -> Result<()> {
        validate_symbol(&self.symbol)?;
        check_timestamp("ticker", self.timestamp)?;
        let fields = [
            ("bid", self.bid),
            ("ask", self.ask),
            ("last", self.last),
            ("volume_24h", self.volume_24h),
            ("change_24h", self.change_24h),
            ("high_24h", self.high_24h),
            ("low_24h", self.low_24h),
        ];
        check_finite("ticker", fields)
    }
}
