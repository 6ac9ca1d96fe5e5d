//! Candle timeframes, named as exchanges name them.

use crate::error::{Error, Result};
use std::fmt;
use std::time::Duration;

/// A candle timeframe: `1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M`.
///
/// # Examples
///
/// ```
/// use iftb_cache::Timeframe;
/// let tf: Timeframe = "4h".parse()?;
/// assert_eq!(tf, Timeframe::H4);
/// assert_eq!(tf.as_str(), "4h");
/// assert_eq!(tf.millis(), 4 * 3_600_000);
/// # Ok::<(), iftb_cache::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Timeframe {
    /// 1 minute
    M1,
    /// 3 minutes
    M3,
    /// 5 minutes
    M5,
    /// 15 minutes
    M15,
    /// 30 minutes
    M30,
    /// 1 hour
    H1,
    /// 2 hours
    H2,
    /// 4 hours
    H4,
    /// 6 hours
    H6,
    /// 8 hours
    H8,
    /// 12 hours
    H12,
    /// 1 day
    D1,
    /// 3 days
    D3,
    /// 1 week
    W1,
    /// 1 month (`"1M"`), nominally 30 days
    Mo1,
}

const MINUTE: u64 = 60_000;
const ALL: [(Timeframe, &str, u64); 15] = [
    (Timeframe::M1, "1m", MINUTE),
    (Timeframe::M3, "3m", 3 * MINUTE),
    (Timeframe::M5, "5m", 5 * MINUTE),
    (Timeframe::M15, "15m", 15 * MINUTE),
    (Timeframe::M30, "30m", 30 * MINUTE),
    (Timeframe::H1, "1h", 60 * MINUTE),
    (Timeframe::H2, "2h", 120 * MINUTE),
    (Timeframe::H4, "4h", 240 * MINUTE),
    (Timeframe::H6, "6h", 360 * MINUTE),
    (Timeframe::H8, "8h", 480 * MINUTE),
    (Timeframe::H12, "12h", 720 * MINUTE),
    (Timeframe::D1, "1d", 1_440 * MINUTE),
    (Timeframe::D3, "3d", 3 * 1_440 * MINUTE),
    (Timeframe::W1, "1w", 7 * 1_440 * MINUTE),
    (Timeframe::Mo1, "1M", 30 * 1_440 * MINUTE),
];

impl Timeframe {
    /// Every timeframe, shortest first.
    pub fn all() -> impl Iterator<Item = Timeframe> {
        ALL.iter().map(|(tf, _, _)| *tf)
    }

    fn entry(self) -> &'static (Timeframe, &'static str, u64) {
        // ALL lists every variant in declaration order.
        &ALL[self as usize]
    }

    /// The exchange name, such as `"1h"`.
    pub fn as_str(self) -> &'static str {
        self.entry().1
    }

    /// The length of one candle in milliseconds (a month counts 30 days).
    pub fn millis(self) -> u64 {
        self.entry().2
    }

    /// The length of one candle (a month counts 30 days).
    pub fn duration(self) -> Duration {
        Duration::from_millis(self.millis())
    }
}

impl std::str::FromStr for Timeframe {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ALL.iter()
            .find(|(_, name, _)| *name == s)
            .map(|(tf, _, _)| *tf)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown timeframe {s:?}; expected one of 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M"
                ))
            })
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips_and_lengths_grow() {
        let mut last = 0;
        for tf in Timeframe::all() {
            assert_eq!(tf.as_str().parse::<Timeframe>().unwrap(), tf);
            assert!(tf.millis() > last);
            last = tf.millis();
        }
        assert_eq!(Timeframe::all().count(), 15);
    }

    #[test]
    fn month_and_minute_are_distinct() {
        assert_eq!("1M".parse::<Timeframe>().unwrap(), Timeframe::Mo1);
        assert_eq!("1m".parse::<Timeframe>().unwrap(), Timeframe::M1);
        assert!("60m".parse::<Timeframe>().is_err());
        assert!("".parse::<Timeframe>().is_err());
    }
}
