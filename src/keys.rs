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
pub(crate) const LOCK_SUFFIX: &str = ":lock";

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
    /// namespace need not be UTF-8 (it is [`KeyType::Other`]). Read by
    /// [`parse`](Self::parse), so both follow the builders' every rule.
    pub(crate) fn classify(&self, key: &[u8]) -> Option<KeyClass> {
        key.strip_prefix(self.prefix.as_bytes())?;
        let Ok(key) = std::str::from_utf8(key) else {
            return Some(class(KeyType::Other, false));
        };
        let head = key.ends_with(HEAD_SUFFIX);
        Some(match self.parse(key).ok()? {
            KeyOf::Series { .. } => class(KeyType::Series, head),
            KeyOf::Ticker(_) => class(KeyType::Ticker, false),
            KeyOf::Funding(_) => class(KeyType::Funding, false),
            KeyOf::FearGreed => class(KeyType::FearGreed, false),
            KeyOf::Llm(..) => class(KeyType::Llm, false),
            KeyOf::LlmLock(..) => class(KeyType::LlmLock, false),
            KeyOf::Kv(_) | KeyOf::Other => class(KeyType::Other, false),
        })
    }

    /// What a full key of this namespace names, read back from the layout
    /// above: the inverse of the builders, for tools that are handed a key
    /// (`CacheManager::inspect`). A candidate is accepted only when its
    /// builder makes the very same key again, so every rule of the builders
    /// (symbol, analysis type, hash) holds for what is parsed.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a key outside this namespace.
    pub(crate) fn parse<'k>(&self, key: &'k str) -> Result<KeyOf<'k>> {
        let Some(rest) = key.strip_prefix(self.prefix.as_str()) else {
            return Err(Error::invalid(format!(
                "{key:?} is not a key of namespace {:?} (it does not start with {:?})",
                &self.prefix[..self.prefix.len() - 1],
                self.prefix
            )));
        };
        if let Some(own) = rest.strip_prefix("kv:") {
            return Ok(match self.kv(own) {
                Ok(_) => KeyOf::Kv(own),
                Err(_) => KeyOf::Other,
            });
        }
        let Some(ours) = key
            .strip_prefix(self.ns.as_str())
            .and_then(|r| r.strip_prefix(':'))
        else {
            return Ok(KeyOf::Other);
        };
        Ok(self.parse_versioned(key, ours).unwrap_or(KeyOf::Other))
    }

    /// The keys under `{ns}:v2:`; `None` for anything the builders would not make.
    fn parse_versioned<'k>(&self, key: &'k str, rest: &'k str) -> Option<KeyOf<'k>> {
        let same = |built: Result<String>| built.is_ok_and(|b| b == key);
        if rest == "fear_greed" {
            return Some(KeyOf::FearGreed);
        }
        if let Some(tagged) = rest.strip_prefix("ohlcv:") {
            let tag = tagged.strip_suffix(HEAD_SUFFIX).unwrap_or(tagged);
            let (symbol, tf) = hash_tag(tag)?.rsplit_once(':')?;
            let timeframe: Timeframe = tf.parse().ok()?;
            let series = self.series(symbol, timeframe).ok()?;
            let found = key == series.set() || key == series.head();
            return found.then_some(KeyOf::Series { symbol, timeframe });
        }
        if let Some(tag) = rest.strip_prefix("ticker:") {
            let symbol = hash_tag(tag)?;
            return same(self.ticker(symbol)).then_some(KeyOf::Ticker(symbol));
        }
        if let Some(tag) = rest.strip_prefix("funding:") {
            let symbol = hash_tag(tag)?;
            return same(self.funding(symbol)).then_some(KeyOf::Funding(symbol));
        }
        let llm = rest.strip_prefix("llm:{")?;
        let (analysis_type, tail) = llm.split_once("}:")?;
        let (input_hash, lock) = match tail.strip_suffix(LOCK_SUFFIX) {
            Some(hash) => (hash, true),
            None => (tail, false),
        };
        let value_key = self.llm(analysis_type, input_hash).ok()?;
        let found = if lock {
            key.strip_suffix(LOCK_SUFFIX) == Some(value_key.as_str())
        } else {
            key == value_key
        };
        let names = (analysis_type, input_hash);
        found.then_some(if lock {
            KeyOf::LlmLock(names.0, names.1)
        } else {
            KeyOf::Llm(names.0, names.1)
        })
    }
}

/// What a full key names ([`Keys::parse`]), its parts borrowed from the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyOf<'k> {
    /// Either key of a series: the run set or its head.
    Series {
        symbol: &'k str,
        timeframe: Timeframe,
    },
    Ticker(&'k str),
    Funding(&'k str),
    FearGreed,
    /// An LLM result: analysis type, input hash.
    Llm(&'k str, &'k str),
    /// The lock of an LLM result being computed: analysis type, input hash.
    LlmLock(&'k str, &'k str),
    /// A key of the low-level client, as its caller named it.
    Kv(&'k str),
    /// In the namespace, but no key this build writes (another format
    /// version's, or another program's).
    Other,
}

fn class(kind: KeyType, head: bool) -> KeyClass {
    KeyClass { kind, head }
}

/// 1 to [`MAX_HASH_DIGITS`] hex digits.
fn is_hash(s: &[u8]) -> bool {
    !s.is_empty() && s.len() <= MAX_HASH_DIGITS && s.iter().all(u8::is_ascii_hexdigit)
}

/// The inside of `{..}` when `tag` is exactly one hash tag.
fn hash_tag(tag: &str) -> Option<&str> {
    tag.strip_prefix('{')?.strip_suffix('}')
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
    fn every_key_parses_back_to_what_built_it() {
        let k = Keys::new("iftb");
        let series = k.series("BTC-PERP", Timeframe::Mo1).unwrap();
        let expected = KeyOf::Series {
            symbol: "BTC-PERP",
            timeframe: Timeframe::Mo1,
        };
        assert_eq!(k.parse(series.set()).unwrap(), expected);
        assert_eq!(k.parse(series.head()).unwrap(), expected);
        let ticker = k.ticker("ETHUSDT").unwrap();
        assert_eq!(k.parse(&ticker).unwrap(), KeyOf::Ticker("ETHUSDT"));
        let funding = k.funding("ETHUSDT").unwrap();
        assert_eq!(k.parse(&funding).unwrap(), KeyOf::Funding("ETHUSDT"));
        assert_eq!(k.parse(&k.fear_greed()).unwrap(), KeyOf::FearGreed);
        let llm = k.llm("sentiment", "ab12").unwrap();
        assert_eq!(k.parse(&llm).unwrap(), KeyOf::Llm("sentiment", "ab12"));
        let lock = format!("{llm}{LOCK_SUFFIX}");
        assert_eq!(k.parse(&lock).unwrap(), KeyOf::LlmLock("sentiment", "ab12"));
        assert_eq!(
            k.parse(&k.kv("a:b {c}").unwrap()).unwrap(),
            KeyOf::Kv("a:b {c}")
        );
    }

    #[test]
    fn keys_the_builders_never_make_are_other() {
        let k = Keys::new("iftb");
        for key in [
            "iftb:v1:ohlcv:{BTCUSDT:1h}",
            "iftb:v3:ticker:{BTCUSDT}",
            "iftb:v2:ohlcv:{BTCUSDT:2m}",
            "iftb:v2:ohlcv:{BTCUSDT:1h}:tail",
            "iftb:v2:ohlcv:{BTCUSDT}",
            "iftb:v2:ohlcv:BTCUSDT:1h",
            "iftb:v2:ticker:{BTC USDT}",
            "iftb:v2:ticker:{}",
            "iftb:v2:funding:BTCUSDT",
            "iftb:v2:fear_greed:x",
            "iftb:v2:llm:{sentiment}:not-hex",
            "iftb:v2:llm:{sentiment}:ab12:lock:lock",
            "iftb:v2:llm:{sentiment}",
            "iftb:v2",
            "iftb:v2:",
            "iftb:kv:",
            "iftb:something",
        ] {
            assert_eq!(k.parse(key).unwrap(), KeyOf::Other, "{key}");
        }
    }

    #[test]
    fn keys_of_other_namespaces_are_rejected() {
        let k = Keys::new("iftb");
        for key in ["bot1:v2:fear_greed", "iftbx:v2:fear_greed", "iftb", ""] {
            assert!(k.parse(key).unwrap_err().is_invalid_input(), "{key}");
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
