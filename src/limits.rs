//! The limits every call applies before anything is sent or written, and the
//! checks that enforce them. Each bounds the size of one command or reply, or
//! keeps a value inside what Redis and the clocks can represent.

use crate::error::{Error, Result};
use std::time::Duration;

/// Longest TTL accepted: 100 years. Longer ones overflow the clocks that
/// expire entries (Redis answers an error after part of a write has landed,
/// the embedded backend's `Instant` panics); pass `None` for no expiry.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Largest value accepted by the setters: Redis' own limit is 512 MB.
pub const MAX_VALUE_LEN: usize = 64 << 20;

/// Longest key accepted from a caller of [`RedisClient`](crate::RedisClient).
pub const MAX_KEY_LEN: usize = 1024;

/// Most bars (or series) one read may return: bounds the size of one reply.
pub const MAX_BARS_PER_READ: usize = 50_000;

/// Most symbols one batch call may name: bounds the size of one command and reply.
pub const MAX_SYMBOLS_PER_CALL: usize = 10_000;

/// Longest connect or response timeout accepted: an hour. Longer ones are
/// almost surely a unit mistake, and `Duration::MAX` would overflow the
/// deadlines built from them.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3_600);

/// Longest time bound accepted by
/// [`CacheManager::memory_report_within`](crate::CacheManager::memory_report_within):
/// ten minutes. The report is a diagnostic that keeps Redis busy while it
/// runs; a longer bound is almost surely a unit mistake.
pub const MAX_REPORT_LIMIT: Duration = Duration::from_secs(600);

/// The margin a call may take past the response timeout: the connection's
/// own timeout fires first, this outer bound only catches what it cannot.
pub(crate) const DEADLINE_MARGIN: Duration = Duration::from_millis(250);

/// True for a timeout in `1 ms..=MAX_TIMEOUT`.
pub(crate) fn timeout_in_range(timeout: Duration) -> bool {
    timeout.as_millis() > 0 && timeout <= MAX_TIMEOUT
}

/// True for a TTL in `1 ms..=MAX_TTL`: Redis rejects zero, and a zero TTL is
/// almost always a bug in the caller.
pub(crate) fn ttl_in_range(ttl: Duration) -> bool {
    ttl.as_millis() > 0 && ttl <= MAX_TTL
}

/// A call's TTL: at least one millisecond, at most [`MAX_TTL`].
pub(crate) fn check_ttl(ttl: Duration) -> Result<()> {
    if !ttl_in_range(ttl) {
        return Err(Error::invalid(format!(
            "TTL {ttl:?} is outside 1 ms..=100 years; pass None for no expiry"
        )));
    }
    Ok(())
}

/// A value of at most [`MAX_VALUE_LEN`] bytes; `what` names it in the error.
pub(crate) fn check_value_len(what: &str, len: usize) -> Result<()> {
    if len > MAX_VALUE_LEN {
        return Err(Error::invalid(format!(
            "{what} of {len} bytes is over the {MAX_VALUE_LEN}-byte limit"
        )));
    }
    Ok(())
}

/// A caller's key of 1 to [`MAX_KEY_LEN`] bytes.
pub(crate) fn check_key_len(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(Error::invalid(format!(
            "key must be 1 to {MAX_KEY_LEN} bytes, got {}",
            key.len()
        )));
    }
    Ok(())
}

/// A read's bar limit in `1..=MAX_BARS_PER_READ`.
pub(crate) fn check_bar_limit(limit: usize) -> Result<()> {
    if limit == 0 || limit > MAX_BARS_PER_READ {
        return Err(Error::invalid(format!(
            "limit {limit} is outside 1..={MAX_BARS_PER_READ}"
        )));
    }
    Ok(())
}

/// At most [`MAX_BARS_PER_READ`] series in one read.
pub(crate) fn check_series_count(n: usize) -> Result<()> {
    if n > MAX_BARS_PER_READ {
        return Err(Error::invalid(format!(
            "{n} series in one read; the limit is {MAX_BARS_PER_READ}"
        )));
    }
    Ok(())
}

/// At most [`MAX_SYMBOLS_PER_CALL`] symbols in one batch call.
pub(crate) fn check_batch(n: usize) -> Result<()> {
    if n > MAX_SYMBOLS_PER_CALL {
        return Err(Error::invalid(format!(
            "{n} symbols in one call; the limit is {MAX_SYMBOLS_PER_CALL}"
        )));
    }
    Ok(())
}

/// A memory report's time bound in `1 ms..=MAX_REPORT_LIMIT`.
pub(crate) fn check_report_limit(limit: Duration) -> Result<()> {
    if limit.as_millis() == 0 || limit > MAX_REPORT_LIMIT {
        return Err(Error::invalid(format!(
            "memory report limit {limit:?} is outside 1 ms..=10 min"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_outside_one_ms_to_a_century_are_rejected() {
        for bad in [
            Duration::ZERO,
            Duration::from_micros(999),
            MAX_TTL + Duration::from_secs(1),
        ] {
            assert!(check_ttl(bad).unwrap_err().is_invalid_input(), "{bad:?}");
        }
        assert!(check_ttl(Duration::from_millis(1)).is_ok());
        assert!(check_ttl(MAX_TTL).is_ok());
    }

    #[test]
    fn sizes_are_bounded_at_their_limits() {
        assert!(check_batch(MAX_SYMBOLS_PER_CALL).is_ok());
        assert!(check_batch(MAX_SYMBOLS_PER_CALL + 1).is_err());
        assert!(check_bar_limit(0).is_err() && check_bar_limit(MAX_BARS_PER_READ + 1).is_err());
        assert!(check_bar_limit(MAX_BARS_PER_READ).is_ok());
        assert!(check_key_len("").is_err() && check_key_len(&"k".repeat(MAX_KEY_LEN + 1)).is_err());
        assert!(check_value_len("value", MAX_VALUE_LEN).is_ok());
        assert!(check_value_len("value", MAX_VALUE_LEN + 1).is_err());
    }

    #[test]
    fn report_limits_outside_one_ms_to_ten_minutes_are_rejected() {
        for bad in [
            Duration::ZERO,
            Duration::from_micros(999),
            MAX_REPORT_LIMIT + Duration::from_millis(1),
        ] {
            let err = check_report_limit(bad).unwrap_err();
            assert!(err.is_invalid_input(), "{bad:?}");
        }
        assert!(check_report_limit(Duration::from_millis(1)).is_ok());
        assert!(check_report_limit(MAX_REPORT_LIMIT).is_ok());
    }
}
