//! The values this cache stores, and the validation every write goes through.

mod bar;
mod fear_greed;
mod symbol;
mod ticker;
mod timeframe;

pub use bar::{ArchivedBar, Bar};
pub use fear_greed::{ArchivedFearGreed, FearGreed, FearGreedClass};
pub use symbol::{validate_symbol, MAX_SYMBOL_LEN};
pub use ticker::{ArchivedTicker, Ticker};
pub use timeframe::Timeframe;

use crate::error::{Error, Result};

/// Largest timestamp a bar may carry: Redis scores are doubles, exact up to 2^53.
pub const MAX_TIMESTAMP_MS: i64 = 1 << 53;

/// Rejects NaN and infinities, which would poison every indicator downstream.
fn check_finite(what: &str, field: &str, v: f64) -> Result<()> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(Error::invalid(format!("{what}.{field} is not finite: {v}")))
    }
}

/// Timestamps are unix milliseconds in `0..=2^53`.
fn check_timestamp(what: &str, ts: i64) -> Result<()> {
    if (0..=MAX_TIMESTAMP_MS).contains(&ts) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{what}.timestamp {ts} is outside 0..=2^53 unix ms"
        )))
    }
}
