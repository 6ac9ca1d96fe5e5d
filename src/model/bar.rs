//! One OHLCV candle.

use super::{check_finite, check_timestamp, MAX_TIMESTAMP_MS};
use crate::error::{Error, Result};

/// One OHLCV candle; `timestamp` is its open time in unix milliseconds.
///
/// # Examples
///
/// ```
/// use iftb_cache::Bar;
/// let bar = Bar::new(1_705_478_400_000, 45_000.0, 45_500.0, 44_800.0, 45_200.0, 1_234.56);
/// assert!(bar.validate().is_ok());
/// ```
#[derive(
    serde::Serialize, serde::Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// Open time, unix milliseconds.
    pub timestamp: i64,
    /// First traded price.
    pub open: f64,
    /// Highest traded price.
    pub high: f64,
    /// Lowest traded price.
    pub low: f64,
    /// Last traded price.
    pub close: f64,
    /// Traded base volume.
    pub volume: f64,
}

impl Bar {
    /// A bar from its fields, in the order exchanges send them.
    pub fn new(timestamp: i64, open: f64, high: f64, low: f64, close: f64, volume: f64) -> Self {
        Self {
            timestamp,
            open,
            high,
            low,
            close,
            volume,
        }
    }

    /// Checks what every write checks: a timestamp in range, finite prices,
    /// `low <= high` and a non-negative volume.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the bad field.
    pub fn validate(&self) -> Result<()> {
        // One branch for the bar that passes, which is every bar a read
        // checks: the checks one by one only to name what failed.
        let prices = [self.open, self.high, self.low, self.close, self.volume];
        let ok = (0..=MAX_TIMESTAMP_MS).contains(&self.timestamp)
            & prices.iter().all(|v| v.is_finite())
            & (self.low <= self.high)
            & (self.volume >= 0.0);
        if ok {
            Ok(())
        } else {
            self.explain()
        }
    }

    #[cold]
    fn explain(&self) -> Result<()> {
        check_timestamp("bar", self.timestamp)?;
        let values = [self.open, self.high, self.low, self.close, self.volume];
        let names = ["open", "high", "low", "close", "volume"];
        check_finite("bar", names.into_iter().zip(values))?;
        if self.low > self.high {
            return Err(Error::invalid(format!(
                "bar at {}: low {} is above high {}",
                self.timestamp, self.low, self.high
            )));
        }
        Err(Error::invalid(format!(
            "bar at {}: negative volume {}",
            self.timestamp, self.volume
        )))
    }
}

impl ArchivedBar {
    /// Copies the archived record out into a native [`Bar`].
    pub fn to_bar(&self) -> Bar {
        Bar {
            timestamp: self.timestamp.to_native(),
            open: self.open.to_native(),
            high: self.high.to_native(),
            low: self.low.to_native(),
            close: self.close.to_native(),
            volume: self.volume.to_native(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Bar {
        Bar::new(1_000, 1.0, 2.0, 0.5, 1.5, 10.0)
    }

    #[test]
    fn rejects_each_bad_field() {
        assert!(good().validate().is_ok());
        let cases = [
            Bar {
                open: f64::NAN,
                ..good()
            },
            Bar {
                close: f64::INFINITY,
                ..good()
            },
            Bar { low: 3.0, ..good() },
            Bar {
                volume: -1.0,
                ..good()
            },
            Bar {
                timestamp: -1,
                ..good()
            },
            Bar {
                timestamp: i64::MAX,
                ..good()
            },
        ];
        for bar in cases {
            assert!(bar.validate().unwrap_err().is_invalid_input(), "{bar:?}");
        }
    }
}
