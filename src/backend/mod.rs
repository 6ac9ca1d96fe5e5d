//! The storage vocabulary the typed caches speak, and its two backends.
//!
//! Key/value: get, mget, set (with TTL), delete, exists. Series: upsert bars,
//! newest N, time range, latest of many; series reads hand out archived bars
//! (`codec::ARCHIVED_BAR_LEN` bytes each, header checked), not yet validated
//! when they come from Redis ([`Backend::bars_validated`]). Housekeeping:
//! ping, clear a prefix, flush, and walk a prefix's keys with what each
//! takes ([`Backend::scan_usage`], for `memory_report`).
//! Redis-specific tricks (pipelines, scripts, transactions) stay in `redis.rs`
//! (with `series.rs`, the series layout); `embedded/` keeps the same
//! semantics in-process.

mod breaker;
mod cluster;
mod connection;
mod embedded;
mod near;
mod redis;
mod sentinel;
mod series;
mod tracking;

pub(crate) use self::breaker::BreakerStats;
pub(crate) use self::embedded::EmbeddedBackend;
pub(crate) use self::near::NearStats;
pub(crate) use self::redis::RedisBackend;

use crate::codec::ARCHIVED_BAR_LEN;
use crate::error::Result;
use crate::keys::SeriesKey;
use bytes::Bytes;
use std::num::NonZeroUsize;
use std::time::Duration;

/// One archived bar, copied out of the backend.
pub(crate) type BarRecord = [u8; ARCHIVED_BAR_LEN];

/// One batch of bars for a series, sorted by time, one per time.
pub(crate) struct SeriesWrite<'a> {
    pub key: &'a SeriesKey,
    /// The archived bars, back to back.
    pub bars: &'a Bytes,
    /// Their open times, in the same order.
    pub times: &'a [i64],
    pub ttl: Duration,
    pub max_len: Option<NonZeroUsize>,
}

/// A window of one series: the bars with `from <= ts <= to`, oldest first,
/// at most `limit`.
pub(crate) struct SeriesWindow<'a> {
    pub key: &'a SeriesKey,
    pub from: i64,
    pub to: i64,
    pub limit: usize,
}

/// One key a usage scan saw, live when it was seen.
pub(crate) struct KeyUsage<'a> {
    pub key: &'a [u8],
    /// The memory it takes: Redis' `MEMORY USAGE`, or what the embedded
    /// engine charges for it.
    pub bytes: u64,
    /// The time it has left; `None` when it never expires.
    pub ttl: Option<Duration>,
}

/// What a usage scan found of the backend as a whole.
pub(crate) struct UsageTotals {
    /// Memory in use: Redis' `used_memory` (summed over a cluster's
    /// primaries), or every byte the embedded engine charges.
    pub used: u64,
    /// The memory limit (Redis' `maxmemory`, the embedded capacity); `None`
    /// when there is none.
    pub max: Option<u64>,
    /// True when the scan saw every key of the prefix before its time ran out.
    pub complete: bool,
}

/// The configured backend. An enum rather than a trait object: two variants,
/// static dispatch, no boxed futures on the hot path.
pub(crate) enum Backend {
    Embedded(EmbeddedBackend),
    Redis(RedisBackend),
}

/// Calls the same method on whichever backend is configured.
macro_rules! dispatch {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        match $self {
            Backend::Embedded(b) => b.$method($($arg),*),
            Backend::Redis(b) => b.$method($($arg),*).await,
        }
    };
}

impl Backend {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Backend::Embedded(_) => "embedded",
            Backend::Redis(b) => b.name(),
        }
    }

    /// True when the bars a series read hands out were validated as they
    /// were stored, so need no check on the way out: the embedded engine
    /// keeps only bars this process encoded from validated `Bar`s. Bars
    /// read from Redis may be anyone's bytes, and are checked one by one.
    /// So are the bars of a Redis backend with a near cache: it validates
    /// them before it keeps them, and hands out only bars it validated.
    pub(crate) fn bars_validated(&self) -> bool {
        match self {
            Backend::Embedded(_) => true,
            Backend::Redis(b) => b.has_near_cache(),
        }
    }

    /// What the circuit breaker did; the embedded backend has none.
    pub(crate) fn breaker_stats(&self) -> BreakerStats {
        match self {
            Backend::Embedded(_) => BreakerStats::default(),
            Backend::Redis(b) => b.breaker_stats(),
        }
    }

    /// What the near cache did, when there is one.
    pub(crate) fn near_stats(&self) -> Option<NearStats> {
        match self {
            Backend::Embedded(_) => None,
            Backend::Redis(b) => b.near_stats(),
        }
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        dispatch!(self.get(key))
    }

    /// One value per key, in order, in one round trip.
    pub(crate) async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        dispatch!(self.mget(keys))
    }

    /// Sets `key`; `ttl` of `None` keeps it until deleted or evicted.
    pub(crate) async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        dispatch!(self.set(key, value, ttl))
    }

    /// Sets every pair with one TTL, in one round trip.
    pub(crate) async fn set_many(&self, items: &[(String, Bytes)], ttl: Duration) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        dispatch!(self.set_many(items, ttl))
    }

    /// Deletes the keys; returns how many existed.
    pub(crate) async fn delete(&self, keys: &[String]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        dispatch!(self.delete(keys))
    }

    pub(crate) async fn exists(&self, key: &str) -> Result<bool> {
        dispatch!(self.exists(key))
    }

    /// Sets `key` only if it holds no live value (a lock's acquire, `SET NX PX`);
    /// true when this call set it.
    pub(crate) async fn set_nx(&self, key: &str, value: Bytes, ttl: Duration) -> Result<bool> {
        dispatch!(self.set_nx(key, value, ttl))
    }

    /// Deletes `key` only if it still holds `value` (a lock's release: never
    /// another holder's lock taken after ours expired); true when deleted.
    pub(crate) async fn delete_if_equals(&self, key: &str, value: &[u8]) -> Result<bool> {
        dispatch!(self.delete_if_equals(key, value))
    }

    /// Moves the expiry of `key` to `ttl` from now only if it still holds
    /// `value` (a held lock's renewal); true when renewed.
    pub(crate) async fn renew_if_equals(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool> {
        dispatch!(self.renew_if_equals(key, value, ttl))
    }

    /// Inserts or replaces bars by timestamp; each batch is applied whole.
    pub(crate) async fn series_upsert(&self, write: &SeriesWrite<'_>) -> Result<()> {
        if write.times.is_empty() {
            return Ok(());
        }
        dispatch!(self.series_upsert(write))
    }

    /// The newest `n` bars, as runs: each run holds whole bars oldest first,
    /// and the runs come newest first (a slice of each Redis member or
    /// embedded chunk read). One atomic read.
    pub(crate) async fn series_newest(&self, key: &SeriesKey, n: usize) -> Result<Vec<Bytes>> {
        dispatch!(self.series_newest(key, n))
    }

    /// The newest bar, if any.
    pub(crate) async fn series_latest(&self, key: &SeriesKey) -> Result<Option<BarRecord>> {
        dispatch!(self.series_latest(key))
    }

    /// The bars of a window, as runs oldest first (each oldest first). One
    /// atomic read.
    pub(crate) async fn series_range(&self, window: &SeriesWindow<'_>) -> Result<Vec<Bytes>> {
        dispatch!(self.series_range(window))
    }

    /// The series' head value, as Redis stores it (`codec::Kind::SeriesHead`:
    /// the newest bar and the bar count), not checked: for `inspect`, which
    /// tells a foreign head from a corrupt one. The embedded backend keeps no
    /// head key and makes the same value from its series.
    pub(crate) async fn series_head(&self, key: &SeriesKey) -> Result<Option<Bytes>> {
        dispatch!(self.series_head(key))
    }

    /// Drops a series; true when it was cached.
    pub(crate) async fn series_delete(&self, key: &SeriesKey) -> Result<bool> {
        dispatch!(self.series_delete(key))
    }

    /// The newest bar of each series, in order, in one round trip.
    pub(crate) async fn series_latest_many(
        &self,
        keys: &[SeriesKey],
    ) -> Result<Vec<Option<BarRecord>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        dispatch!(self.series_latest_many(keys))
    }

    /// Answers when the backend is reachable.
    pub(crate) async fn ping(&self) -> Result<()> {
        dispatch!(self.ping())
    }

    /// Deletes every key starting with `prefix`; returns how many.
    pub(crate) async fn clear_prefix(&self, prefix: &str) -> Result<u64> {
        dispatch!(self.clear_prefix(prefix))
    }

    /// Calls `each` with every live key starting with `prefix`, with what it
    /// takes and the time it has left, and reports the backend's memory.
    /// Starts no step of the walk at or past `until` (a step: a batch of
    /// keys on Redis, each within the call deadline; a lock shard on the
    /// embedded backend); a walk cut short that way is not `complete`. A key
    /// may be seen twice if Redis resizes its table meanwhile (`SCAN`'s own
    /// guarantee).
    pub(crate) async fn scan_usage(
        &self,
        prefix: &str,
        until: std::time::Instant,
        each: &mut (impl FnMut(KeyUsage<'_>) + Send),
    ) -> Result<UsageTotals> {
        // Not `dispatch!`: the embedded walk awaits too, to yield between shards.
        match self {
            Backend::Embedded(b) => b.scan_usage(prefix, until, each).await,
            Backend::Redis(b) => b.scan_usage(prefix, until, each).await,
        }
    }

    /// Deletes everything in the database, other programs' keys included.
    pub(crate) async fn flush_db(&self) -> Result<()> {
        dispatch!(self.flush_db())
    }
}
