//! Argument parsers: each refuses what the library would, at parse time,
//! so a bad argument is a usage error (exit 2) before anything connects.

use iftb_cache::{Timeframe, MAX_BARS_PER_READ, MAX_TTL};
use std::time::Duration;

/// A symbol the library accepts.
pub fn symbol(text: &str) -> Result<String, String> {
    iftb_cache::validate_symbol(text)
        .map(str::to_string)
        .map_err(|e| message(&e))
}

pub fn timeframe(text: &str) -> Result<Timeframe, String> {
    text.parse().map_err(|e| message(&e))
}

/// A time: epoch milliseconds or ISO 8601, as in CSV files.
pub fn time(text: &str) -> Result<i64, String> {
    crate::times::parse(text)
}

/// A read's bar count, 1 to `MAX_BARS_PER_READ`.
pub fn bar_limit(text: &str) -> Result<usize, String> {
    let n: usize = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number of bars"))?;
    if n == 0 || n > MAX_BARS_PER_READ {
        return Err(format!("a read is 1 to {MAX_BARS_PER_READ} bars"));
    }
    Ok(n)
}

/// A TTL in whole seconds, 1 to `MAX_TTL`.
pub fn ttl(text: &str) -> Result<Duration, String> {
    let secs: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number of seconds"))?;
    let ttl = Duration::from_secs(secs);
    if secs == 0 || ttl > MAX_TTL {
        return Err(format!(
            "a TTL is 1 to {} seconds (100 years)",
            MAX_TTL.as_secs()
        ));
    }
    Ok(ttl)
}

/// The library's message without its kind in front: clap says it is invalid.
fn message(e: &iftb_cache::Error) -> String {
    let text = e.to_string();
    text.strip_prefix("InvalidInput: ")
        .unwrap_or(&text)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_library_refuses_is_refused_here() {
        assert_eq!(symbol("BTCUSDT").as_deref(), Ok("BTCUSDT"));
        assert!(symbol("BTC:USDT").unwrap_err().contains(':'));
        assert_eq!(timeframe("1M"), Ok(Timeframe::Mo1));
        assert!(timeframe("60m").unwrap_err().contains("1m 3m"));
        assert_eq!(bar_limit("100"), Ok(100));
        assert_eq!(bar_limit("50000"), Ok(MAX_BARS_PER_READ));
        for bad in ["0", "50001", "-1", "ten"] {
            assert!(bar_limit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ttls_are_whole_seconds_within_the_library_range() {
        assert_eq!(ttl("86400"), Ok(Duration::from_secs(86_400)));
        assert_eq!(ttl(&MAX_TTL.as_secs().to_string()), Ok(MAX_TTL));
        for bad in ["0", "-1", "1.5", "", "x"] {
            assert!(ttl(bad).is_err(), "{bad}");
        }
        assert!(ttl(&(MAX_TTL.as_secs() + 1).to_string()).is_err());
    }
}
