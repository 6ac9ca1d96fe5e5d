//! [`MemoryReport`]: what this namespace's keys take in the backend, by data
//! type ([`KeyType`]), beside the backend's memory in use and its limit.
//!
//! The backend walks the namespace's keys (`SCAN` + `MEMORY USAGE` + `PTTL`
//! on Redis, the engine's own bookkeeping on the embedded backend) within a
//! time bound; each key is read back into its type by the key layout
//! (`keys.rs`) and tallied here.

use crate::backend::{Backend, KeyUsage, UsageTotals};
use crate::error::Result;
use crate::keys::{KeyClass, KeyType, Keys};
use crate::limits::check_report_limit;
use serde::{Serialize, Serializer};
use std::time::{Duration, Instant};

/// The time bound of [`CacheManager::memory_report`](crate::CacheManager::memory_report).
pub const DEFAULT_REPORT_LIMIT: Duration = Duration::from_secs(2);

/// Rows of a report: one per [`KeyType`].
const TYPES: usize = KeyType::ALL.len();

/// What the keys of one [`KeyType`] take.
///
/// Serialized (serde) with `avg_ttl` as `avg_ttl_ms`, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TypeUsage {
    /// Keys seen. A series counts once, its sorted set and its head together
    /// (a head whose set is gone adds its bytes, not a series). `SCAN` may
    /// return a key twice while Redis resizes its table, so on a keyspace
    /// that shrinks during the report this may count a few keys twice.
    pub keys: u64,
    /// Bytes they take: on Redis, `MEMORY USAGE` (the key, its value and
    /// Redis' overhead for them; a big sorted set's members estimated from
    /// a sample of 5, Redis' default, which fits runs of one size)
    /// summed over the keys measured, a series' two keys both; on the
    /// embedded backend, what the engine charges for each entry (key, value,
    /// allocation headers; its tables are in
    /// [`MemoryReport::used_memory`] only).
    pub bytes: u64,
    /// Keys whose size was read. Every key counted is measured (a key gone
    /// before it was measured is not counted at all), so this equals `keys`;
    /// `bytes` is exact for what was seen, not an extrapolation.
    pub measured: u64,
    /// The mean time left of the keys that expire; `None` when none does.
    #[serde(rename = "avg_ttl_ms", serialize_with = "optional_millis")]
    pub avg_ttl: Option<Duration>,
    /// Keys that never expire: in a cache, worth a look. Every key the
    /// typed caches write has a TTL; only `RedisClient`'s keys (and other
    /// writers') may have none.
    pub no_ttl: u64,
}

/// What this namespace's keys take, by [`KeyType`], and the backend's
/// memory: from [`CacheManager::memory_report`](crate::CacheManager::memory_report).
///
/// Serialized (serde) as one JSON object: the fields below (`elapsed` as
/// `elapsed_ms`), `types` (a map from each type's
/// [`name`](KeyType::name) to its [`TypeUsage`], in [`KeyType::ALL`]'s
/// order) and `total`.
///
/// ```
/// use iftb_cache::{CacheConfig, CacheManager, KeyType};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> iftb_cache::Result<()> {
/// let cache = CacheManager::connect(CacheConfig::embedded()).await?;
/// cache.market().set_funding_rate("BTCUSDT", 0.0001).await?;
/// let report = cache.memory_report().await?;
/// assert!(report.complete);
/// assert_eq!(report.get(KeyType::Funding).keys, 1);
/// for (name, usage) in report.types() {
///     println!("{name:>10} {:>8} keys {:>12} B", usage.keys, usage.bytes);
/// }
/// println!("{}", serde_json::to_string(&report).unwrap());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Serialize)]
#[non_exhaustive]
pub struct MemoryReport {
    /// The backend, as [`CacheManager::backend_name`](crate::CacheManager::backend_name) names it.
    pub backend: &'static str,
    /// Memory the backend uses, for everything it holds (other namespaces'
    /// keys included): Redis' `INFO memory` `used_memory`, summed over a
    /// cluster's primaries; the bytes the embedded engine charges against
    /// its capacity (its tables and entries expired but not yet evicted
    /// included).
    pub used_memory: u64,
    /// The limit `used_memory` is held under: Redis' `maxmemory` (summed over
    /// a cluster's primaries), `None` when it is 0 (unlimited; on a
    /// cluster, on any primary); the embedded backend's capacity.
    pub max_memory: Option<u64>,
    /// True when every key of the namespace was seen before the time bound
    /// ran out; false when the report stopped early, and counts only the
    /// keys seen by then.
    pub complete: bool,
    /// How long the report took.
    #[serde(rename = "elapsed_ms", serialize_with = "millis")]
    pub elapsed: Duration,
    #[serde(serialize_with = "by_name")]
    types: [TypeUsage; TYPES],
    total: TypeUsage,
}

impl MemoryReport {
    /// What the keys of type `t` take.
    pub fn get(&self, t: KeyType) -> &TypeUsage {
        &self.types[t.index()]
    }

    /// Each type's [`name`](KeyType::name) and usage, in [`KeyType::ALL`]'s
    /// order (empty types included): the rows of a table.
    pub fn types(&self) -> impl Iterator<Item = (&'static str, &TypeUsage)> + '_ {
        KeyType::ALL.iter().map(|&t| (t.name(), self.get(t)))
    }

    /// Every key of the namespace together: counts and bytes summed, the
    /// mean TTL over every key that has one.
    pub fn total(&self) -> &TypeUsage {
        &self.total
    }
}

/// The types by name, as the JSON has them.
impl std::fmt::Debug for MemoryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        struct ByName<'a>(&'a MemoryReport);
        impl std::fmt::Debug for ByName<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_map().entries(self.0.types()).finish()
            }
        }
        f.debug_struct("MemoryReport")
            .field("backend", &self.backend)
            .field("used_memory", &self.used_memory)
            .field("max_memory", &self.max_memory)
            .field("complete", &self.complete)
            .field("elapsed", &self.elapsed)
            .field("types", &ByName(self))
            .field("total", &self.total)
            .finish()
    }
}

/// Walks the namespace's keys on `backend` within `limit`, and reports.
pub(crate) async fn report(
    backend: &Backend,
    keys: &Keys,
    limit: Duration,
) -> Result<MemoryReport> {
    check_report_limit(limit)?;
    let started = Instant::now();
    let mut tally = Tally::new(keys);
    let totals = backend
        .scan_usage(&keys.prefix(), started + limit, &mut |u| tally.add(u))
        .await?;
    Ok(tally.finish(backend.name(), totals, started.elapsed()))
}

/// The sums a report is made of, per type and for the whole namespace.
struct Tally<'a> {
    keys: &'a Keys,
    types: [Sums; TYPES],
    total: Sums,
}

/// One row's sums as keys are seen.
#[derive(Default, Clone, Copy)]
struct Sums {
    keys: u64,
    bytes: u64,
    /// Nanoseconds left, over the keys that expire.
    ttl_nanos: u128,
    with_ttl: u64,
    no_ttl: u64,
}

impl<'a> Tally<'a> {
    fn new(keys: &'a Keys) -> Self {
        Self {
            keys,
            types: [Sums::default(); TYPES],
            total: Sums::default(),
        }
    }

    /// One key and what it takes; one outside the namespace is ignored
    /// (the backends only hand out the namespace's).
    fn add(&mut self, usage: KeyUsage<'_>) {
        self.add_measured(usage.key, usage.bytes, usage.ttl);
    }

    fn add_measured(&mut self, key: &[u8], bytes: u64, ttl: Option<Duration>) {
        let Some(class) = self.keys.classify(key) else {
            return;
        };
        self.types[class.kind.index()].add(class, bytes, ttl);
        self.total.add(class, bytes, ttl);
    }

    fn finish(self, backend: &'static str, totals: UsageTotals, elapsed: Duration) -> MemoryReport {
        MemoryReport {
            backend,
            used_memory: totals.used,
            max_memory: totals.max,
            complete: totals.complete,
            elapsed,
            types: self.types.map(Sums::usage),
            total: self.total.usage(),
        }
    }
}

impl Sums {
    /// A series' head adds its bytes only: its set counts the series, and
    /// carries the TTL both keys share.
    fn add(&mut self, class: KeyClass, bytes: u64, ttl: Option<Duration>) {
        self.bytes = self.bytes.saturating_add(bytes);
        if class.head {
            return;
        }
        self.keys += 1;
        match ttl {
            Some(t) => {
                self.ttl_nanos += t.as_nanos();
                self.with_ttl += 1;
            }
            None => self.no_ttl += 1,
        }
    }

    fn usage(self) -> TypeUsage {
        let avg = (self.with_ttl > 0).then(|| self.ttl_nanos / u128::from(self.with_ttl));
        TypeUsage {
            keys: self.keys,
            bytes: self.bytes,
            // Every key seen is measured: one gone before its measure is not seen.
            measured: self.keys,
            avg_ttl: avg.map(|n| Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))),
            no_ttl: self.no_ttl,
        }
    }
}

fn millis<S: Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1_000.0)
}

fn optional_millis<S: Serializer>(
    d: &Option<Duration>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
        None => s.serialize_none(),
    }
}

fn by_name<S: Serializer>(
    types: &[TypeUsage; TYPES],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_map(KeyType::ALL.iter().map(|t| (t.name(), &types[t.index()])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals() -> UsageTotals {
        UsageTotals {
            used: 1_000,
            max: None,
            complete: true,
        }
    }

    #[test]
    fn a_series_counts_once_with_both_keys_bytes_and_its_sets_ttl() {
        let keys = Keys::new("iftb");
        let mut tally = Tally::new(&keys);
        let set = b"iftb:v2:ohlcv:{BTCUSDT:1h}";
        let head = b"iftb:v2:ohlcv:{BTCUSDT:1h}:head";
        tally.add_measured(set, 2_000, Some(Duration::from_secs(300)));
        tally.add_measured(head, 100, Some(Duration::from_secs(300)));
        tally.add_measured(b"iftb:kv:setting", 50, None);
        tally.add_measured(b"other:kv:setting", 50, None);
        let report = tally.finish("embedded", totals(), Duration::ZERO);
        let series = report.get(KeyType::Series);
        assert_eq!((series.keys, series.bytes, series.measured), (1, 2_100, 1));
        assert_eq!(series.avg_ttl, Some(Duration::from_secs(300)));
        assert_eq!(series.no_ttl, 0);
        let other = report.get(KeyType::Other);
        assert_eq!((other.keys, other.bytes, other.no_ttl), (1, 50, 1));
        assert_eq!(other.avg_ttl, None);
        let total = report.total();
        assert_eq!((total.keys, total.bytes, total.no_ttl), (2, 2_150, 1));
        assert_eq!(total.avg_ttl, Some(Duration::from_secs(300)));
    }

    #[test]
    fn the_average_ttl_is_over_the_keys_that_expire() {
        let keys = Keys::new("iftb");
        let mut tally = Tally::new(&keys);
        for (symbol, secs) in [("A", 10), ("B", 20), ("C", 60)] {
            let key = format!("iftb:v2:ticker:{{{symbol}}}");
            tally.add_measured(key.as_bytes(), 64, Some(Duration::from_secs(secs)));
        }
        tally.add_measured(b"iftb:v2:ticker:{D}", 64, None);
        let report = tally.finish("redis", totals(), Duration::ZERO);
        let tickers = report.get(KeyType::Ticker);
        assert_eq!(tickers.avg_ttl, Some(Duration::from_secs(30)));
        assert_eq!((tickers.keys, tickers.no_ttl, tickers.bytes), (4, 1, 256));
    }

    #[test]
    fn it_serializes_as_one_object_with_types_by_name() {
        let keys = Keys::new("iftb");
        let mut tally = Tally::new(&keys);
        tally.add_measured(
            b"iftb:v2:llm:{t}:ab",
            10,
            Some(Duration::from_millis(1_500)),
        );
        let report = tally.finish("redis", totals(), Duration::from_micros(2_500));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["backend"], "redis");
        assert_eq!(json["used_memory"], 1_000);
        assert_eq!(json["max_memory"], serde_json::Value::Null);
        assert_eq!(json["elapsed_ms"], 2.5);
        assert_eq!(json["types"]["llm"]["keys"], 1);
        assert_eq!(json["types"]["llm"]["avg_ttl_ms"], 1_500);
        assert_eq!(
            json["types"]["series"]["avg_ttl_ms"],
            serde_json::Value::Null
        );
        let names: Vec<&String> = json["types"].as_object().unwrap().keys().collect();
        assert_eq!(names.len(), KeyType::ALL.len());
        assert_eq!(json["total"]["bytes"], 10);
        let debug = format!("{report:?}");
        assert!(debug.contains("\"llm\": TypeUsage { keys: 1"), "{debug}");
    }
}
