//! The values this cache stores, and every rule of what a valid one is: the
//! checks every write applies and every read applies again.

mod bar;
mod fear_greed;
mod funding_rate;
mod symbol;
mod ticker;
mod timeframe;

pub use bar::{ArchivedBar, Bar};
pub use fear_greed::{ArchivedFearGreed, FearGreed, FearGreedClass};
pub(crate) use funding_rate::validate_funding_rate;
pub use symbol::{validate_symbol, MAX_SYMBOL_LEN};
pub use ticker::{ArchivedTicker, Ticker};
pub use timeframe::Timeframe;

use crate::error::{Error, Result};

/// Largest timestamp a bar may carry: Redis scores are doubles, exact up to 2^53.
pub const MAX_TIMESTAMP_MS: i64 = 1 << 53;

/// A stored value type with the checks every write applies: reads apply them
/// again, since a value that decodes but that no write accepts is corrupt.
pub(crate) trait Validated {
    /// The write checks, as [`Bar::validate`] and its kin.
    fn check(&self) -> Result<()>;
}

/// The record types check themselves with their public `validate`.
macro_rules! validated_by_validate {
    ($($ty:ty),*) => {$(
        impl Validated for $ty {
            fn check(&self) -> Result<()> {
                self.validate()
            }
        }
    )*};
}

validated_by_validate!(Bar, Ticker, FearGreed);

/// A bare `f64` record is a funding rate.
impl Validated for f64 {
    fn check(&self) -> Result<()> {
        validate_funding_rate(*self)
    }
}

/// Rejects NaN and infinities, which would poison every indicator downstream.
fn check_finite<'a>(what: &str, fields: impl IntoIterator<Item = (&'a str, f64)>) -> Result<()> {
    for (field, v) in fields {
        if !v.is_finite() {
            return Err(not_finite(what, field, v));
        }
    }
    Ok(())
}

/// Out of line: every read runs the checks, and almost none fails them.
#[cold]
fn not_finite(what: &str, field: &str, v: f64) -> Error {
    Error::invalid(format!("{what}.{field} is not finite: {v}"))
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
