//! The crypto Fear & Greed index.

use super::check_timestamp;
use crate::error::{Error, Result};

/// The classification published with a Fear & Greed value.
#[derive(
    serde::Serialize, serde::Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    serde::Serialize, serde::Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
#[derive(Debug, Clone, PartialEq)]
pub struct FearGreed {
    /// The index, 0 (extreme fear) to 100 (extreme greed).
    pub value: u8,
    /// The published classification of `value`.
    pub classification: FearGreedClass,
    /// Time of the reading, unix milliseconds.
    pub timestamp: i64,
}

impl FearGreed {
    /// Checks what every write checks: `value` in `0..=100`, a timestamp in
    /// range, and a classification that does not contradict the value.
    ///
    /// Publishers draw the class boundaries differently (alternative.me, CMC and
    /// CNN disagree by up to 10 points), so each class accepts the union of the
    /// published bands: Extreme Fear 0..=25, Fear 20..=49, Neutral 40..=60,
    /// Greed 50..=80, Extreme Greed 75..=100. "Extreme Fear" at 90 is rejected;
    /// "Fear" at 48 is not.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the problem.
    ///
    /// # Examples
    ///
    /// ```
    /// use iftb_cache::{FearGreed, FearGreedClass};
    /// let fg = |value, classification| FearGreed { value, classification, timestamp: 0 };
    /// assert!(fg(48, FearGreedClass::Fear).validate().is_ok());
    /// assert!(fg(90, FearGreedClass::ExtremeFear).validate().is_err());
    /// assert!(fg(101, FearGreedClass::ExtremeGreed).validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        if self.value > 100 {
            return Err(Error::invalid(format!(
                "fear & greed value {} is above 100",
                self.value
            )));
        }
        check_timestamp("fear_greed", self.timestamp)?;
        let band = self.classification.band();
        if !band.contains(&self.value) {
            return Err(Error::invalid(format!(
                "fear & greed value {} contradicts its classification {:?} ({}..={})",
                self.value,
                self.classification.as_str(),
                band.start(),
                band.end()
            )));
        }
        Ok(())
    }
}

impl FearGreedClass {
    /// The values this class may be published with: the union of the
    /// publishers' bands.
    fn band(self) -> std::ops::RangeInclusive<u8> {
        match self {
            Self::ExtremeFear => 0..=25,
            Self::Fear => 20..=49,
            Self::Neutral => 40..=60,
            Self::Greed => 50..=80,
            Self::ExtremeGreed => 75..=100,
        }
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

    fn fg(value: u8, classification: FearGreedClass) -> FearGreed {
        FearGreed {
            value,
            classification,
            timestamp: 0,
        }
    }

    #[test]
    fn every_value_has_an_accepted_class_and_bands_reject_contradictions() {
        use FearGreedClass::*;
        let classes = [ExtremeFear, Fear, Neutral, Greed, ExtremeGreed];
        for v in 0..=100 {
            let ok = classes.iter().filter(|&&c| fg(v, c).validate().is_ok());
            assert!(ok.count() >= 1, "value {v} fits no class");
        }
        for (v, c) in [
            (90, ExtremeFear),
            (10, Greed),
            (70, Fear),
            (5, Neutral),
            (30, ExtremeGreed),
        ] {
            let err = fg(v, c).validate().unwrap_err();
            assert!(
                err.is_invalid_input() && err.to_string().contains("contradicts"),
                "{err}"
            );
        }
    }

    #[test]
    fn alternative_me_boundaries_are_accepted() {
        use FearGreedClass::*;
        for (v, c) in [
            (24, ExtremeFear),
            (25, Fear),
            (46, Fear),
            (47, Neutral),
            (54, Neutral),
            (55, Greed),
            (75, Greed),
            (76, ExtremeGreed),
            (100, ExtremeGreed),
        ] {
            assert!(fg(v, c).validate().is_ok(), "{v} {c:?}");
        }
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
