//! Symbols end up inside keys, so they are checked before any key is built.

use crate::error::{Error, Result};

/// Longest symbol accepted, in bytes.
pub const MAX_SYMBOL_LEN: usize = 64;

/// Checks a trading symbol such as `BTCUSDT` or `ETH-PERP`.
///
/// A symbol is non-empty, at most [`MAX_SYMBOL_LEN`] bytes, and holds no `:`,
/// `{`, `}`, `*`, `?`, `[`, `]`, whitespace or control characters, which would
/// break the key layout, its hash tags or a namespace SCAN pattern.
///
/// # Errors
///
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) saying what is wrong.
///
/// # Examples
///
/// ```
/// use iftb_cache::validate_symbol;
/// assert!(validate_symbol("BTCUSDT").is_ok());
/// assert!(validate_symbol("BTC:USDT").is_err());
/// ```
pub fn validate_symbol(symbol: &str) -> Result<&str> {
    // Every OHLCV and market call runs this: plain ASCII symbols, nearly all
    // of them, take one pass over the bytes.
    let plain = |b: &u8| {
        b.is_ascii_graphic() && !matches!(b, b':' | b'{' | b'}' | b'*' | b'?' | b'[' | b']')
    };
    if !symbol.is_empty() && symbol.len() <= MAX_SYMBOL_LEN && symbol.bytes().all(|b| plain(&b)) {
        return Ok(symbol);
    }
    explain(symbol)
}

/// Why a symbol that failed the fast check is bad, or `Ok` for a non-ASCII
/// one that is fine.
#[cold]
fn explain(symbol: &str) -> Result<&str> {
    if symbol.is_empty() {
        return Err(Error::invalid("symbol is empty"));
    }
    if symbol.len() > MAX_SYMBOL_LEN {
        return Err(Error::invalid(format!(
            "symbol is {} bytes long, the limit is {MAX_SYMBOL_LEN}",
            symbol.len()
        )));
    }
    if let Some(c) = symbol.chars().find(|&c| is_forbidden(c)) {
        return Err(Error::invalid(format!(
            "symbol {symbol:?} contains the forbidden character {c:?}"
        )));
    }
    Ok(symbol)
}

fn is_forbidden(c: char) -> bool {
    c.is_whitespace() || c.is_control() || matches!(c, ':' | '{' | '}' | '*' | '?' | '[' | ']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_symbols() {
        for s in [
            "BTCUSDT",
            "ETH-PERP",
            "1000PEPEUSDT",
            "BTC/USDT",
            "btc_usd.p",
        ] {
            assert_eq!(validate_symbol(s).unwrap(), s);
        }
    }

    #[test]
    fn rejects_what_breaks_keys() {
        let long = "X".repeat(MAX_SYMBOL_LEN + 1);
        for s in [
            "",
            "BTC USDT",
            "BTC:USDT",
            "{BTC}",
            "BTC*",
            "BTC\n",
            "BTC\0",
            long.as_str(),
        ] {
            assert!(validate_symbol(s).unwrap_err().is_invalid_input(), "{s:?}");
        }
    }
}
