//! The crypto Fear & Greed index.

use super::check_timestamp;
use crate::error::{Error, Result};

/// The classification published with a Fear & Greed value.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq))]
#[non_exhaustive]
pub enum FearGreedClass {
    /// "Extreme Fear"
    ExtremeFear,
    /// "Fear"
    Fear,
    /// "Neutral"
    Neutral,
    /// "Greed"
    Greed,
    /// "Extreme Greed"
    ExtremeGreed,
}

impl FearGreedClass {
    /// The name as the index publishes it, such as `"Extreme Fear"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExtremeFear => "Extreme Fear",
            Self::Fear => "Fear",
            Self::Neutral => "Neutral",
            Self::Greed => "Greed",
            Self::ExtremeGreed => "Extreme Greed",
        }
    }
}

impl std::str::FromStr for FearGreedClass {
    type Err = Error;

    /// Parses the published name, ignoring case.
    fn from_str(s: &str) -> Result<Self> {
        [
            Self::ExtremeFear,
            Self::Fear,
            Self::Neutral,
            Self::Greed,
            Self::ExtremeGreed,
        ]
        .into_iter()
        .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| Error::invalid(format!("unknown Fear & Greed classification {s:?}")))
    }
}

/// One reading of the Fear & Greed index.
#[derive(
    Debug,
    Clone,
    PartialEq,
    serde::Serialize,
    serde::Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct FearGreed {
    /// The index, 0 (extreme fear) to 100 (extreme greed).
    pub value: u8,
    /// The published classification of `value`.
    pub classification: FearGreedClass,
    /// Time of the reading, unix milliseconds.
    pub timestamp: i64,
}

impl FearGreed {
    /// Checks what every write checks: `value` in `0..=100`, a timestamp in range.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the bad field.
    pub fn validate(&self) -> Result<()> {
        if self.value > 100 {
            return Err(Error::invalid(format!(
                "fear & greed value {} is above 100",
                self.value
            )));
        }
        check_timestamp("fear_greed", self.timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_published_names() {
        assert_eq!(
            "Extreme Fear".parse::<FearGreedClass>().unwrap(),
            FearGreedClass::ExtremeFear
        );
        assert_eq!(
            "greed".parse::<FearGreedClass>().unwrap(),
            FearGreedClass::Greed
        );
        assert!("Panic".parse::<FearGreedClass>().is_err());
    }

    #[test]
    fn value_above_100_is_rejected() {
        let fg = FearGreed {
            value: 101,
            classification: FearGreedClass::ExtremeGreed,
            timestamp: 0,
        };
        assert!(fg.validate().unwrap_err().is_invalid_input());
    }
}
