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
//!
//! [`Keys::classify`] reads a key back into its [`KeyType`] (what
//! `memory_report` counts by), so that this file stays the one that knows
//! the layout.

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

/// What `get_or_compute`'s cross-process lock adds to the key of the value it guards.
const LOCK_SUFFIX: &str = ":lock";

/// The longest LLM input hash accepted, in hex digits.
const MAX_HASH_DIGITS: usize = 128;

/// What a key of the namespace holds, read from its name by the layout:
/// the rows of a [`MemoryReport`](crate::MemoryReport).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum KeyType {
    /// OHLCV series: a series' sorted set of bar runs and its head, together
    /// one series.
    Series,
    /// Ticker records.
    Ticker,
    /// Funding rate records.
    Funding,
    /// The Fear & Greed record (one key).
    FearGreed,
    /// LLM results.
    Llm,
    /// `get_or_compute`'s cross-process locks, while held.
    LlmLock,
    /// Everything else under the namespace: [`RedisClient`](crate::RedisClient)'s
    /// `{ns}:kv:` keys, keys of another format version (`{ns}:v1:..`), and
    /// keys that follow no layout of this crate.
    Other,
}

impl KeyType {
    /// Every type, in the order reports list them.
    pub const ALL: &'static [KeyType] = &[
        KeyType::Series,
        KeyType::Ticker,
        KeyType::Funding,
        KeyType::FearGreed,
        KeyType::Llm,
        KeyType::LlmLock,
        KeyType::Other,
    ];

    /// Its name in a report: `series`, `tickers`, `funding`, `fear_greed`,
    /// `llm`, `llm_locks`, `other`.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Series => "series",
            KeyType::Ticker => "tickers",
            KeyType::Funding => "funding",
            KeyType::FearGreed => "fear_greed",
            KeyType::Llm => "llm",
            KeyType::LlmLock => "llm_locks",
            KeyType::Other => "other",
        }
    }

    /// Its place in [`ALL`](Self::ALL).
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A key of the namespace, read by the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyClass {
    pub(crate) kind: KeyType,
    /// A series' head: part of the series its sorted set counts, not a
    /// series of its own.
    pub(crate) head: bool,
}

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
        if !is_hash(input_hash.as_bytes()) {
            return Err(Error::invalid(format!(
                "input hash {input_hash:?} is not 1 to 128 hex digits (use LlmCache::hash_input)"
            )));
        }
        Ok(join(&[&self.ns, ":llm:{", analysis_type, "}:", input_hash]))
    }

    /// The cross-process lock of the LLM result under `value_key` (a key
    /// [`llm`](Self::llm) built).
    pub(crate) fn llm_lock(value_key: &str) -> String {
        join(&[value_key, LOCK_SUFFIX])
    }

    /// A caller's own key for the low-level client.
    pub(crate) fn kv(&self, key: &str) -> Result<String> {
        check_key_len(key)?;
        Ok(join(&[&self.prefix, "kv:", key]))
    }

    /// What `key` holds, by the layout; `None` for a key outside this
    /// namespace. Bytes, not `str`: a key another program wrote under the
    /// namespace need not be UTF-8 (it is [`KeyType::Other`]).
    pub(crate) fn classify(&self, key: &[u8]) -> Option<KeyClass> {
        key.strip_prefix(self.prefix.as_bytes())?;
        let versioned = key
            .strip_prefix(self.ns.as_bytes())
            .and_then(|rest| rest.strip_prefix(b":"));
        Some(versioned.map_or(class(KeyType::Other, false), classify_versioned))
    }
}

/// A key after `{ns}:v2:`.
fn classify_versioned(rest: &[u8]) -> KeyClass {
    let other = class(KeyType::Other, false);
    if rest == b"fear_greed" {
        return class(KeyType::FearGreed, false);
    }
    let Some((family, tagged)) = split_once(rest, b':') else {
        return other;
    };
    let Some(after) = after_tag(tagged) else {
        return other;
    };
    match (family, after) {
        (b"ohlcv", b"") => class(KeyType::Series, false),
        (b"ohlcv", a) if a == HEAD_SUFFIX.as_bytes() => class(KeyType::Series, true),
        (b"ticker", b"") => class(KeyType::Ticker, false),
        (b"funding", b"") => class(KeyType::Funding, false),
        (b"llm", a) => classify_llm(a).unwrap_or(other),
        _ => other,
    }
}

/// What follows an LLM key's `{type}`: `:<hash>`, or `:<hash>:lock`.
fn classify_llm(after_tag: &[u8]) -> Option<KeyClass> {
    let hash = after_tag.strip_prefix(b":")?;
    match hash.strip_suffix(LOCK_SUFFIX.as_bytes()) {
        Some(locked) if is_hash(locked) => Some(class(KeyType::LlmLock, false)),
        _ if is_hash(hash) => Some(class(KeyType::Llm, false)),
        _ => None,
    }
}

fn class(kind: KeyType, head: bool) -> KeyClass {
    KeyClass { kind, head }
}

/// 1 to [`MAX_HASH_DIGITS`] hex digits.
fn is_hash(s: &[u8]) -> bool {
    !s.is_empty() && s.len() <= MAX_HASH_DIGITS && s.iter().all(u8::is_ascii_hexdigit)
}

/// What follows the hash tag `s` starts with: a non-empty `{..}` without
/// braces inside.
fn after_tag(s: &[u8]) -> Option<&[u8]> {
    let inner = s.strip_prefix(b"{")?;
    let close = inner.iter().position(|&b| b == b'}')?;
    let tag = &inner[..close];
    (!tag.is_empty() && !tag.contains(&b'{')).then(|| &inner[close + 1..])
}

fn split_once(s: &[u8], at: u8) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&b| b == at)?;
    Some((&s[..i], &s[i + 1..]))
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

    fn kind_of(k: &Keys, key: &str) -> Option<(KeyType, bool)> {
        k.classify(key.as_bytes()).map(|c| (c.kind, c.head))
    }

    #[test]
    fn every_key_built_reads_back_as_its_type() {
        let k = Keys::new("iftb");
        let series = k.series("BTCUSDT", Timeframe::H1).unwrap();
        let llm = k.llm("sentiment", "ab12").unwrap();
        let built = [
            (series.set().to_string(), KeyType::Series, false),
            (series.head().to_string(), KeyType::Series, true),
            (k.ticker("ETHUSDT").unwrap(), KeyType::Ticker, false),
            (k.funding("ETHUSDT").unwrap(), KeyType::Funding, false),
            (k.fear_greed(), KeyType::FearGreed, false),
            (Keys::llm_lock(&llm), KeyType::LlmLock, false),
            (llm, KeyType::Llm, false),
            (k.kv("my key").unwrap(), KeyType::Other, false),
            // A caller's kv key that looks like ours is still the caller's.
            (k.kv("v2:ticker:{X}").unwrap(), KeyType::Other, false),
        ];
        for (key, kind, head) in built {
            assert_eq!(kind_of(&k, &key), Some((kind, head)), "{key}");
        }
        assert_eq!(
            Keys::llm_lock("iftb:v2:llm:{sentiment}:ab12"),
            "iftb:v2:llm:{sentiment}:ab12:lock"
        );
    }

    #[test]
    fn keys_of_no_layout_are_other_and_other_namespaces_are_not_ours() {
        let k = Keys::new("iftb");
        for other in [
            "iftb:v1:ticker:{BTCUSDT}",
            "iftb:v3:fear_greed",
            "iftb:v2:ticker:BTCUSDT",
            "iftb:v2:ticker:{}",
            "iftb:v2:ticker:{BTC{USDT}",
            "iftb:v2:ticker:{BTCUSDT}:extra",
            "iftb:v2:ohlcv:{BTCUSDT:1h}:tail",
            "iftb:v2:llm:{sentiment}:not-hex",
            "iftb:v2:llm:{sentiment}:",
            "iftb:v2:llm:{sentiment}:ab12:lock:lock",
            "iftb:v2:fear_greed:x",
            "iftb:v2:nothing",
            "iftb:v2",
            "iftb:",
        ] {
            assert_eq!(kind_of(&k, other), Some((KeyType::Other, false)), "{other}");
        }
        let long = format!("iftb:v2:llm:{{t}}:{}", "a".repeat(MAX_HASH_DIGITS + 1));
        assert_eq!(kind_of(&k, &long), Some((KeyType::Other, false)));
        assert_eq!(
            k.classify(b"iftb:\xff\xfe").map(|c| c.kind),
            Some(KeyType::Other)
        );
        for foreign in ["iftb2:v2:fear_greed", "iftb", "other:v2:fear_greed", ""] {
            assert_eq!(kind_of(&k, foreign), None, "{foreign}");
        }
    }

    #[test]
    fn type_names_follow_all() {
        let names: Vec<&str> = KeyType::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(
            names,
            [
                "series",
                "tickers",
                "funding",
                "fear_greed",
                "llm",
                "llm_locks",
                "other"
            ]
        );
        for (i, t) in KeyType::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
        }
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
