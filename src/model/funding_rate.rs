//! Funding rates: a fraction per funding interval, stored as a bare `f64`.

use crate::error::{Error, Result};

/// Checks what every write of a funding rate checks: the rate is finite.
pub(crate) fn validate_funding_rate(rate: f64) -> Result<()> {
    if !rate.is_finite() {
        return Err(Error::invalid(format!(
            "funding rate is not finite: {rate}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_rates_are_rejected() {
        for r in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(validate_funding_rate(r).unwrap_err().is_invalid_input());
        }
        assert!(validate_funding_rate(-0.0075).is_ok());
    }
}
