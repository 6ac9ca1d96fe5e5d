//! The key layout. Every key starts with `{namespace}:`, so `clear_all` can
//! find them all; each series' keys share a hash tag so that a Redis Cluster
//! keeps them on one slot. Keys of values in this crate's format carry the
//! format version (`v2`): a process of another version running beside this
//! one (a rolling deploy) reads misses, not values it cannot decode.
//!
//! ```text
//! {ns}:v2:ohlcv:{BTCUSDT:1h}       sorted set of bar runs, scored by the open
//!                                  time of each run's first bar (backend/series.rs)
//! {ns}:v2:ohlcv:{BTCUSDT:1h}:head  the series' newest bar and bar count
//! {ns}:v2:ticker:{BTCUSDT}         ticker record
//! {ns}:v2:funding:{BTCUSDT}        funding rate record
//! {ns}:v2:fear_greed               Fear & Greed record
//! {ns}:v2:llm:{sentiment}:<hash>   LLM result (JSON, maybe compressed)
//! {ns}:v2:llm:{sentiment}:<hash>:lock  get_or_compute's cross-process lock
//! {ns}:kv:<key>                    RedisClient's own keys (the caller's bytes)
//! ```

use crate::error::{Error, Result};
use crate::limits::check_key_len;
use crate::model::{validate_symbol, Timeframe};

/// The format version segment of every key holding this crate's format;
/// `codec::FORMAT_VERSION` in the key (a codec test keeps the two equal).
pub(crate) const VERSION: &str = "v2";

/// The two keys of one series, on one hash slot, in one string: the head's
/// name is the run set's with `:head` after it (one allocation per series,
/// and a read of 100 series builds 100).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeriesKey(String);

const HEAD_SUFFIX: &str = ":head";

impl SeriesKey {
    /// The sorted set of bar runs; also the name events and errors report.
    pub(crate) fn set(&self) -> &str {
        &self.0[..self.0.len() - HEAD_SUFFIX.len()]
    }

    /// The head: newest bar and bar count, read by `GET` and `MGET`.
    pub(crate) fn head(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
impl SeriesKey {
    /// A key of the backends' unit tests.
    pub(crate) fn for_test(set: &str) -> Self {
        SeriesKey(format!("{set}{HEAD_SUFFIX}"))
    }
}

impl AsRef<str> for SeriesKey {
    fn as_ref(&self) -> &str {
        self.set()
    }
}

/// Builds keys under one namespace.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// `{namespace}:`, the prefix of every key.
    prefix: String,
    /// `{namespace}:v2:`, the prefix of every key in this crate's format.
    ns: String,
}

impl Keys {
    pub(crate) fn new(namespace: &str) -> Self {
        Self {
            prefix: format!("{namespace}:"),
            ns: format!("{namespace}:{VERSION}"),
        }
    }

    /// The prefix every key of this namespace starts with.
    pub(crate) fn prefix(&self) -> String {
        self.prefix.clone()
    }

    /// The keys of one series.
    pub(crate) fn series(&self, symbol: &str, tf: Timeframe) -> Result<SeriesKey> {
        validate_symbol(symbol)?;
        let parts = [
            &self.ns,
            ":ohlcv:{",
            symbol,
            ":",
            tf.as_str(),
            "}",
            HEAD_SUFFIX,
        ];
        Ok(SeriesKey(join(&parts)))
    }

    pub(crate) fn ticker(&self, symbol: &str) -> Result<String> {
        validate_symbol(symbol)?;
        Ok(join(&[&self.ns, ":ticker:{", symbol, "}"]))
    }

    pub(crate) fn funding(&self, symbol: &str) -> Result<String> {
        validate_symbol(symbol)?;
        Ok(join(&[&self.ns, ":funding:{", symbol, "}"]))
    }

    pub(crate) fn fear_greed(&self) -> String {
        join(&[&self.ns, ":fear_greed"])
    }

    /// An LLM result; `analysis_type` follows the symbol rules, the hash is hex.
    pub(crate) fn llm(&self, analysis_type: &str, input_hash: &str) -> Result<String> {
        validate_symbol(analysis_type)
            .map_err(|e| Error::invalid(format!("analysis type: {e}")))?;
        let hex = |c: char| c.is_ascii_hexdigit();
        if input_hash.is_empty() || input_hash.len() > 128 || !input_hash.chars().all(hex) {
            return Err(Error::invalid(format!(
                "input hash {input_hash:?} is not 1 to 128 hex digits (use LlmCache::hash_input)"
            )));
        }
        Ok(join(&[&self.ns, ":llm:{", analysis_type, "}:", input_hash]))
    }

    /// A caller's own key for the low-level client.
    pub(crate) fn kv(&self, key: &str) -> Result<String> {
        check_key_len(key)?;
        Ok(join(&[&self.prefix, "kv:", key]))
    }
}

/// The parts back to back in one allocation of the exact size: keys are
/// built on every call, and `format!` grows its string several times (a
/// tenth of an embedded read).
fn join(parts: &[&str]) -> String {
    let mut key = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    parts.iter().for_each(|p| key.push_str(p));
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_KEY_LEN;

    #[test]
    fn layout_is_stable() {
        let k = Keys::new("iftb");
        let series = k.series("BTCUSDT", Timeframe::H1).unwrap();
        assert_eq!(series.set(), "iftb:v2:ohlcv:{BTCUSDT:1h}");
        assert_eq!(series.head(), "iftb:v2:ohlcv:{BTCUSDT:1h}:head");
        assert_eq!(k.ticker("ETHUSDT").unwrap(), "iftb:v2:ticker:{ETHUSDT}");
        assert_eq!(k.funding("ETHUSDT").unwrap(), "iftb:v2:funding:{ETHUSDT}");
        assert_eq!(k.fear_greed(), "iftb:v2:fear_greed");
        assert_eq!(
            k.llm("sentiment", "ab12").unwrap(),
            "iftb:v2:llm:{sentiment}:ab12"
        );
        assert_eq!(k.kv("my key").unwrap(), "iftb:kv:my key");
        assert_eq!(k.prefix(), "iftb:");
    }

    #[test]
    fn bad_parts_are_rejected() {
        let k = Keys::new("iftb");
        assert!(k.series("BTC:USDT", Timeframe::H1).is_err());
        assert!(k.llm("sentiment", "not-hex").is_err());
        assert!(k.llm("bad type", "ab").is_err());
        assert!(k.kv("").is_err());
        assert!(k.kv(&"k".repeat(MAX_KEY_LEN + 1)).is_err());
    }
}
