//! The key layout. Every key starts with `{namespace}:`, so `clear_all` can
//! find them all; each series' name sits in a hash tag so that a future Redis
//! Cluster keeps it on one slot.
//!
//! ```text
//! {ns}:ohlcv:{BTCUSDT:1h}        sorted set of 64-interval blocks of bar records,
//!                                scored by block start, plus `#count`
//!                                (backend/blocks.rs)
//! {ns}:ticker:{BTCUSDT}          ticker record
//! {ns}:funding:{BTCUSDT}         funding rate record
//! {ns}:fear_greed                Fear & Greed record
//! {ns}:llm:{sentiment}:<hash>    LLM result (JSON, maybe compressed)
//! {ns}:llm:{sentiment}:<hash>:lock  get_or_compute's cross-process lock
//! {ns}:kv:<key>                  RedisClient's own keys
//! ```

use crate::error::{Error, Result};
use crate::limits::check_key_len;
use crate::model::{validate_symbol, Timeframe};

/// Builds keys under one namespace.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    ns: String,
}

impl Keys {
    pub(crate) fn new(namespace: &str) -> Self {
        Self {
            ns: namespace.to_string(),
        }
    }

    /// The prefix every key of this namespace starts with.
    pub(crate) fn prefix(&self) -> String {
        format!("{}:", self.ns)
    }

    /// The sorted set of one series.
    pub(crate) fn series(&self, symbol: &str, tf: Timeframe) -> Result<String> {
        validate_symbol(symbol)?;
        // Built by hand: this runs on every OHLCV call, and `format!` grows
        // its string several times (a tenth of an embedded read).
        let tf = tf.as_str();
        let mut key = String::with_capacity(self.ns.len() + symbol.len() + tf.len() + 10);
        for part in [self.ns.as_str(), ":ohlcv:{", symbol, ":", tf, "}"] {
            key.push_str(part);
        }
        Ok(key)
    }

    pub(crate) fn ticker(&self, symbol: &str) -> Result<String> {
        validate_symbol(symbol)?;
        Ok(format!("{}:ticker:{{{symbol}}}", self.ns))
    }

    pub(crate) fn funding(&self, symbol: &str) -> Result<String> {
        validate_symbol(symbol)?;
        Ok(format!("{}:funding:{{{symbol}}}", self.ns))
    }

    pub(crate) fn fear_greed(&self) -> String {
        format!("{}:fear_greed", self.ns)
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
        Ok(format!("{}:llm:{{{analysis_type}}}:{input_hash}", self.ns))
    }

    /// A caller's own key for the low-level client.
    pub(crate) fn kv(&self, key: &str) -> Result<String> {
        check_key_len(key)?;
        Ok(format!("{}:kv:{key}", self.ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_KEY_LEN;

    #[test]
    fn layout_is_stable() {
        let k = Keys::new("iftb");
        assert_eq!(
            k.series("BTCUSDT", Timeframe::H1).unwrap(),
            "iftb:ohlcv:{BTCUSDT:1h}"
        );
        assert_eq!(k.ticker("ETHUSDT").unwrap(), "iftb:ticker:{ETHUSDT}");
        assert_eq!(k.funding("ETHUSDT").unwrap(), "iftb:funding:{ETHUSDT}");
        assert_eq!(k.fear_greed(), "iftb:fear_greed");
        assert_eq!(
            k.llm("sentiment", "ab12").unwrap(),
            "iftb:llm:{sentiment}:ab12"
        );
        assert_eq!(k.kv("my key").unwrap(), "iftb:kv:my key");
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
