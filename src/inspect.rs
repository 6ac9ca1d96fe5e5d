//! [`Inspection`]: what one key of the namespace holds, decoded for a
//! person (the `iftb-cache inspect` command), or why it cannot be.
//!
//! The key is read back into what it names by the key layout
//! (`Keys::parse`), its bytes decoded by the same validated decoders the
//! typed caches use (the codec's records, the OHLCV series read, the LLM
//! JSON), and the outcome sorted three ways: a value of ours, a *foreign*
//! value (no header of ours, another format version's, or a Redis type this
//! crate never writes there) or a *corrupt* one (our header, bytes that fail
//! validation). What it finds is not counted as a hit, a miss or a codec
//! error in [`stats`](crate::CacheManager::stats), and it never fails open:
//! a diagnostic answers what is there. A backend failure is counted and
//! reported as any call's is.

use crate::codec::{self, DecodeValid, Kind};
use crate::error::{Error, Result};
use crate::keys::KeyOf;
use crate::llm::decode_json;
use crate::model::{Bar, FearGreed, Ticker, Timeframe};
use crate::ohlcv::decode_newest;
use crate::shared::Shared;
use crate::stats::Op;
use bytes::Bytes;

/// Most bars an inspection of a series hands out, the newest.
const INSPECT_BARS: usize = 100;

/// What a key of the namespace holds, from
/// [`CacheManager::inspect`](crate::CacheManager::inspect). Serializes
/// (for `--json`) as an object whose `"type"` is the variant's name in
/// snake case, beside its fields.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> iftb_cache::Result<()> {
/// use iftb_cache::{CacheConfig, CacheManager, Inspection};
/// let cache = CacheManager::connect(CacheConfig::embedded()).await?;
/// cache.market().set_funding_rate("BTCUSDT", 0.0001).await?;
/// let found = cache.inspect("iftb:v2:funding:{BTCUSDT}").await?;
/// assert!(matches!(found, Inspection::FundingRate { rate, .. } if rate == 0.0001));
/// let json = serde_json::to_value(&found).unwrap();
/// assert_eq!(json["type"], "funding_rate");
/// assert_eq!(cache.inspect("iftb:v2:funding:{ETHUSDT}").await?, Inspection::Missing);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Inspection {
    /// No such key.
    Missing,
    /// A candle series, from either of its keys (the run set or its head).
    Series {
        /// The series' symbol.
        symbol: String,
        /// The series' timeframe, as exchanges name it (`"1h"`).
        #[serde(serialize_with = "timeframe_name")]
        timeframe: Timeframe,
        /// Bars the series holds (the count its head keeps).
        total: u64,
        /// Its newest bars, newest first: at most 100.
        bars: Vec<Bar>,
    },
    /// A ticker.
    Ticker {
        /// The symbol its key names.
        symbol: String,
        /// The ticker as stored.
        ticker: Ticker,
    },
    /// A funding rate.
    FundingRate {
        /// The symbol its key names.
        symbol: String,
        /// The rate per funding interval.
        rate: f64,
    },
    /// The Fear & Greed reading.
    FearGreed {
        /// The reading as stored.
        fear_greed: FearGreed,
    },
    /// An LLM result.
    Analysis {
        /// The analysis type its key names.
        analysis_type: String,
        /// The input hash its key names.
        input_hash: String,
        /// True when it is stored LZ4-compressed (JSON over 10 KB).
        compressed: bool,
        /// The result's JSON.
        result: serde_json::Value,
    },
    /// The cross-process lock of an LLM result being computed
    /// (`get_or_compute_with` and [`ComputeOptions::lock`](crate::ComputeOptions::lock)).
    Lock {
        /// The analysis type its key names.
        analysis_type: String,
        /// The input hash its key names.
        input_hash: String,
        /// The holder's random token.
        token: String,
    },
    /// A key of the low-level client ([`RedisClient`](crate::RedisClient)):
    /// the caller's own bytes, which have no format of ours.
    Kv {
        /// The key as the client names it, without `{namespace}:kv:`.
        client_key: String,
        /// The value's length in bytes.
        len: usize,
        /// The value, when it is UTF-8 text.
        text: Option<String>,
    },
    /// Not a value of ours: no header of ours, another format version's, a
    /// Redis type this crate never writes there, or a key it never writes.
    Foreign {
        /// What was found instead.
        reason: String,
    },
    /// Our header, but bytes that fail validation (or a series whose two
    /// keys disagree): no read hands this value out.
    Corrupt {
        /// What failed.
        reason: String,
    },
}

impl Inspection {
    fn foreign(reason: impl Into<String>) -> Self {
        Inspection::Foreign {
            reason: reason.into(),
        }
    }

    fn corrupt(reason: impl Into<String>) -> Self {
        Inspection::Corrupt {
            reason: reason.into(),
        }
    }
}

fn timeframe_name<S: serde::Serializer>(tf: &Timeframe, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tf.as_str())
}

/// What `key` holds; see [`CacheManager::inspect`](crate::CacheManager::inspect).
pub(crate) async fn inspect(shared: &Shared, key: &str) -> Result<Inspection> {
    match shared.keys.parse(key)? {
        KeyOf::Series { symbol, timeframe } => series(shared, symbol, timeframe).await,
        KeyOf::Ticker(symbol) => {
            let decoded = |ticker| Inspection::Ticker {
                symbol: symbol.to_string(),
                ticker,
            };
            record(shared, key, Ticker::decode_valid, decoded).await
        }
        KeyOf::Funding(symbol) => {
            let decoded = |rate| Inspection::FundingRate {
                symbol: symbol.to_string(),
                rate,
            };
            record(shared, key, f64::decode_valid, decoded).await
        }
        KeyOf::FearGreed => {
            let decoded = |fear_greed| Inspection::FearGreed { fear_greed };
            record(shared, key, FearGreed::decode_valid, decoded).await
        }
        KeyOf::Llm(analysis_type, input_hash) => {
            let decoded = |(compressed, result)| Inspection::Analysis {
                analysis_type: analysis_type.to_string(),
                input_hash: input_hash.to_string(),
                compressed,
                result,
            };
            record(shared, key, analysis, decoded).await
        }
        KeyOf::LlmLock(analysis_type, input_hash) => Ok(match fetch(shared, key).await? {
            Found::Bytes(token) => Inspection::Lock {
                analysis_type: analysis_type.to_string(),
                input_hash: input_hash.to_string(),
                token: String::from_utf8_lossy(&token).into_owned(),
            },
            Found::Not(other) => other,
        }),
        KeyOf::Kv(own) => Ok(match fetch(shared, key).await? {
            Found::Bytes(value) => Inspection::Kv {
                client_key: own.to_string(),
                len: value.len(),
                text: std::str::from_utf8(&value).ok().map(str::to_string),
            },
            Found::Not(other) => other,
        }),
        KeyOf::Other => other(shared, key).await,
    }
}

/// A key's bytes, or what stands in for them.
enum Found {
    Bytes(Bytes),
    /// Missing, or of another Redis type.
    Not(Inspection),
}

async fn fetch(shared: &Shared, key: &str) -> Result<Found> {
    Ok(match shared.backend.get(key).await {
        Ok(Some(bytes)) => Found::Bytes(bytes),
        Ok(None) => Found::Not(Inspection::Missing),
        Err(e) => Found::Not(finding(shared, key, e)?),
    })
}

/// A backend error that says something about the key: another Redis type
/// (foreign), or bytes the backend could not take apart (corrupt). Any
/// other error is the caller's, counted and reported as for any call.
fn finding(shared: &Shared, key: &str, e: Error) -> Result<Inspection> {
    if e.is_wrong_type() {
        Ok(Inspection::foreign(
            "holds a Redis type iftb-cache never writes at this key (Redis answered WRONGTYPE)",
        ))
    } else if e.is_codec() {
        Ok(Inspection::corrupt(e.to_string()))
    } else {
        shared.observe(Op::Inspect, key, Err(e))
    }
}

/// One record's key: fetched, told ours or foreign by its header, decoded.
async fn record<T>(
    shared: &Shared,
    key: &str,
    decode: impl FnOnce(&[u8]) -> Result<T>,
    found: impl FnOnce(T) -> Inspection,
) -> Result<Inspection> {
    Ok(match fetch(shared, key).await? {
        Found::Bytes(bytes) => ours(&bytes, decode).map_or_else(|not| not, found),
        Found::Not(other) => other,
    })
}

/// Our bytes decoded, or the inspection that says why not.
fn ours<T>(bytes: &[u8], decode: impl FnOnce(&[u8]) -> Result<T>) -> Result<T, Inspection> {
    codec::check_ours(bytes).map_err(|e| Inspection::foreign(e.to_string()))?;
    decode(bytes).map_err(|e| Inspection::corrupt(e.to_string()))
}

/// An LLM result's JSON, and whether it was stored compressed.
fn analysis(bytes: &[u8]) -> Result<(bool, serde_json::Value)> {
    let result = decode_json(bytes)?;
    let (kind, _) = codec::unframe(bytes)?;
    Ok((kind == Kind::JsonCompressed, result))
}

/// A series, read again once before it is called corrupt: its head and its
/// runs are two reads, and a live writer landing between them makes a
/// healthy series look inconsistent.
async fn series(shared: &Shared, symbol: &str, timeframe: Timeframe) -> Result<Inspection> {
    match series_once(shared, symbol, timeframe).await? {
        Inspection::Corrupt { .. } => series_once(shared, symbol, timeframe).await,
        seen => Ok(seen),
    }
}

/// Both keys of a series: the head's count and newest bar, the newest bars
/// by the OHLCV read's own decoding, and the two checked against each other.
async fn series_once(shared: &Shared, symbol: &str, timeframe: Timeframe) -> Result<Inspection> {
    let key = shared.keys.series(symbol, timeframe)?;
    let head = match shared.backend.series_head(&key).await {
        Ok(head) => head,
        Err(e) => return finding(shared, key.head(), e),
    };
    let runs = match shared.backend.series_newest(&key, INSPECT_BARS).await {
        Ok(runs) => runs,
        Err(e) => return finding(shared, key.set(), e),
    };
    let (total, newest) = match (head, runs.is_empty()) {
        (None, true) => return Ok(Inspection::Missing),
        (None, false) => {
            return Ok(Inspection::corrupt(
                "the run set has no head (Redis expired or evicted one of the two keys): \
                 no read vouches for it, and the next write starts the series over",
            ))
        }
        (Some(head), _) => match head_of(&head) {
            Ok(head) => head,
            Err(not) => return Ok(not),
        },
    };
    let validated = shared.backend.bars_validated();
    let bars = match decode_newest(&runs, validated) {
        Ok(bars) => bars,
        Err(e) => return Ok(Inspection::corrupt(format!("a run: {e}"))),
    };
    if let Some(not) = disagreement(total, newest, &bars) {
        return Ok(not);
    }
    Ok(Inspection::Series {
        symbol: symbol.to_string(),
        timeframe,
        total,
        bars,
    })
}

/// A head's bar count and newest bar, or why it is not a head of ours.
fn head_of(head: &[u8]) -> Result<(u64, Bar), Inspection> {
    let read = |head: &[u8]| -> Result<(u64, Bar)> {
        let count = codec::head_count(head)?;
        let bar = codec::access_valid_archived_bar(codec::head_bar(head)?)?;
        Ok((count, bar.to_bar()))
    };
    ours(head, read).map_err(|not| match not {
        Inspection::Corrupt { reason } => Inspection::corrupt(format!("the head: {reason}")),
        Inspection::Foreign { reason } => Inspection::foreign(format!("the head: {reason}")),
        other => other,
    })
}

/// What makes a head and the bars of its run set disagree, if anything.
fn disagreement(total: u64, newest: Bar, bars: &[Bar]) -> Option<Inspection> {
    let Some(first) = bars.first() else {
        return Some(Inspection::corrupt(format!(
            "the head says {total} bars, but the run set is gone (Redis expired or evicted \
             one of the two keys): the next write starts the series over"
        )));
    };
    if *first != newest {
        return Some(Inspection::corrupt(format!(
            "the head's newest bar (at {}) is not the run set's newest (at {})",
            newest.timestamp, first.timestamp
        )));
    }
    if (bars.len() as u64) > total {
        return Some(Inspection::corrupt(format!(
            "the head counts {total} bars, the run set holds at least {}",
            bars.len()
        )));
    }
    None
}

/// A key in the namespace that names nothing this build writes.
async fn other(shared: &Shared, key: &str) -> Result<Inspection> {
    match shared.backend.exists(key).await {
        Ok(true) => {}
        Ok(false) => return Ok(Inspection::Missing),
        Err(e) => return finding(shared, key, e),
    }
    let prefix = shared.keys.prefix();
    let rest = key.strip_prefix(prefix.as_str()).unwrap_or(key);
    let version = rest
        .strip_prefix('v')
        .and_then(|r| r.split_once(':'))
        .map(|(v, _)| v)
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
    Ok(Inspection::foreign(match version {
        Some(v) if v != &crate::keys::VERSION[1..] => format!(
            "a key of format version {v}; this build reads version {} keys",
            &crate::keys::VERSION[1..]
        ),
        _ => "not a key iftb-cache writes (another program's, or a layout this build does \
              not know)"
            .to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(ts: i64) -> Bar {
        Bar::new(ts, 1.0, 2.0, 0.5, 1.5, 3.0)
    }

    #[test]
    fn a_head_and_its_runs_must_agree() {
        let bars = [bar(120), bar(60)];
        assert_eq!(disagreement(2, bar(120), &bars), None);
        assert_eq!(disagreement(5_000, bar(120), &bars), None);
        for (total, newest, bars) in [
            (2, bar(120), &[][..]),
            (2, bar(180), &bars[..]),
            (1, bar(120), &bars[..]),
        ] {
            let found = disagreement(total, newest, bars);
            assert!(
                matches!(found, Some(Inspection::Corrupt { .. })),
                "{found:?}"
            );
        }
    }

    #[test]
    fn a_head_is_ours_or_foreign_or_corrupt() {
        let b = bar(60);
        let mut head = codec::header(Kind::SeriesHead, 56);
        head.extend_from_slice(&codec::archive_bars(&[b]));
        head.extend_from_slice(&7u64.to_le_bytes());
        assert_eq!(head_of(&head), Ok((7, b)));
        let foreign = head_of(b"hello").unwrap_err();
        assert!(
            matches!(foreign, Inspection::Foreign { ref reason } if reason.starts_with("the head"))
        );
        let mut nan = head.clone();
        nan[codec::HEADER_LEN + 8..codec::HEADER_LEN + 16].copy_from_slice(&f64::NAN.to_le_bytes());
        assert!(matches!(head_of(&nan), Err(Inspection::Corrupt { .. })));
        assert!(matches!(
            head_of(&head[..20]),
            Err(Inspection::Corrupt { .. })
        ));
    }

    #[test]
    fn inspections_serialize_with_their_type() {
        let json = serde_json::to_value(Inspection::Series {
            symbol: "BTCUSDT".into(),
            timeframe: Timeframe::H1,
            total: 1,
            bars: vec![bar(0)],
        })
        .unwrap();
        assert_eq!(json["type"], "series");
        assert_eq!(json["timeframe"], "1h");
        assert_eq!(json["bars"][0]["close"], 1.5);
        let missing = serde_json::to_value(Inspection::Missing).unwrap();
        assert_eq!(missing, serde_json::json!({"type": "missing"}));
    }
}
