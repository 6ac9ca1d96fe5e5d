//! The embedded in-process backend: the same semantics as Redis (TTL, ordering,
//! upsert by timestamp), memory bounded by a capacity in bytes.
//!
//! Keys are spread over lock shards by xxh3. Expiry is lazy: an expired entry
//! reads as missing and is dropped by the next write that needs its room. When
//! a shard is over its share of the capacity it evicts the entries closest to
//! expiry first (Redis' `volatile-ttl`), down to 90% of its share.

use super::{SeriesWindow, SeriesWrite};
use crate::codec::ARCHIVED_BAR_LEN;
use crate::error::{Error, Result};
use crate::keys::SeriesKey;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;
use tokio::time::Instant;
use xxhash_rust::xxh3::{xxh3_64, Xxh3DefaultBuilder};

/// Bookkeeping bytes charged per entry and per bar, on top of their bytes.
const ENTRY_OVERHEAD: usize = 64;
const BAR_OVERHEAD: usize = 24;
const MAX_SHARDS: usize = 16;
const MIN_SHARD_BYTES: usize = 1 << 20;

enum Stored {
    Value(Bytes),
    Series(BTreeMap<i64, Bytes>),
}

struct Entry {
    stored: Stored,
    expires_at: Option<Instant>,
    size: usize,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }
}

#[derive(Default)]
struct Shard {
    map: HashMap<String, Entry, Xxh3DefaultBuilder>,
    used: usize,
}

pub(crate) struct EmbeddedBackend {
    shards: Box<[RwLock<Shard>]>,
    shard_capacity: usize,
}

impl EmbeddedBackend {
    /// A backend holding about `capacity` bytes of keys and values.
    pub(crate) fn new(capacity: usize) -> Self {
        let n = (capacity / MIN_SHARD_BYTES).clamp(1, MAX_SHARDS);
        Self {
            shards: (0..n).map(|_| RwLock::default()).collect(),
            shard_capacity: capacity / n,
        }
    }

    fn shard(&self, key: &str) -> &RwLock<Shard> {
        &self.shards[xxh3_64(key.as_bytes()) as usize % self.shards.len()]
    }

    // A panic never happens while a lock is held, but if one did, the map is
    // still consistent: keep serving rather than poison every later call.
    fn read(&self, key: &str) -> RwLockReadGuard<'_, Shard> {
        self.shard(key).read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, key: &str) -> RwLockWriteGuard<'_, Shard> {
        self.shard(key).write().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the live entry of `key`, if any.
    fn with_live<T>(&self, key: &str, f: impl FnOnce(&Entry) -> T) -> Option<T> {
        let shard = self.read(key);
        shard.map.get(key).filter(|e| e.live(Instant::now())).map(f)
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.with_live(key, |e| match &e.stored {
            Stored::Value(v) => Ok(v.clone()),
            Stored::Series(_) => Err(wrong_type(key)),
        })
        .transpose()
    }

    pub(crate) fn mget(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        // MGET answers nil for a key of another type; so does this.
        Ok(keys.iter().map(|k| self.get(k).ok().flatten()).collect())
    }

    pub(crate) fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let size = ENTRY_OVERHEAD + key.len() + value.len();
        self.check_fits(key, size)?;
        let expires_at = ttl.map(|t| Instant::now() + t);
        let entry = Entry {
            stored: Stored::Value(value),
            expires_at,
            size,
        };
        let mut shard = self.write(key);
        shard.insert(key, entry);
        shard.evict_if_over(self.shard_capacity, key);
        Ok(())
    }

    pub(crate) fn set_many(&self, items: &[(String, Bytes)], ttl: Duration) -> Result<()> {
        for (key, value) in items {
            let size = ENTRY_OVERHEAD + key.len() + value.len();
            self.check_fits(key, size)?;
        }
        for (key, value) in items {
            self.set(key, value.clone(), Some(ttl))?;
        }
        Ok(())
    }

    pub(crate) fn delete(&self, keys: &[String]) -> Result<u64> {
        let now = Instant::now();
        let mut n = 0;
        for key in keys {
            if let Some(e) = self.write(key).remove(key) {
                n += u64::from(e.live(now));
            }
        }
        Ok(n)
    }

    pub(crate) fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.with_live(key, |_| ()).is_some())
    }

    pub(crate) fn set_nx(&self, key: &str, value: Bytes, ttl: Duration) -> Result<bool> {
        let size = ENTRY_OVERHEAD + key.len() + value.len();
        self.check_fits(key, size)?;
        let now = Instant::now();
        // Check and insert under one write lock, as `SET NX` is one command.
        let mut shard = self.write(key);
        if shard.map.get(key).is_some_and(|e| e.live(now)) {
            return Ok(false);
        }
        let entry = Entry {
            stored: Stored::Value(value),
            expires_at: Some(now + ttl),
            size,
        };
        shard.insert(key, entry);
        shard.evict_if_over(self.shard_capacity, key);
        Ok(true)
    }

    pub(crate) fn delete_if_equals(&self, key: &str, value: &[u8]) -> Result<bool> {
        let now = Instant::now();
        let mut shard = self.write(key);
        let holds = |e: &Entry| e.live(now) && matches!(&e.stored, Stored::Value(v) if v == value);
        if !shard.map.get(key).is_some_and(holds) {
            return Ok(false);
        }
        shard.remove(key);
        Ok(true)
    }

    pub(crate) fn series_upsert(&self, w: &SeriesWrite<'_>) -> Result<()> {
        let now = Instant::now();
        let key = w.key.set();
        let mut shard = self.write(key);
        let (mut series, old_size, old_expiry) = match shard.remove(key) {
            Some(e) if e.live(now) => match e.stored {
                Stored::Series(s) => (s, e.size, e.expires_at),
                stored => {
                    shard.insert(key, Entry { stored, ..e });
                    return Err(wrong_type(key));
                }
            },
            _ => (BTreeMap::new(), ENTRY_OVERHEAD + key.len(), None),
        };
        let undo = apply(&mut series, w);
        let size = old_size + undo.added - undo.removed;
        if size > self.shard_capacity {
            // Nothing is written: put the series back as it was.
            undo.revert(&mut series);
            if !series.is_empty() {
                shard.insert(key, series_entry(series, old_expiry, old_size));
            }
            return Err(too_big(key, size, self.shard_capacity));
        }
        shard.insert(key, series_entry(series, Some(now + w.ttl), size));
        shard.evict_if_over(self.shard_capacity, key);
        Ok(())
    }

    pub(crate) fn series_newest(&self, key: &SeriesKey, n: usize) -> Result<Vec<Bytes>> {
        self.with_series(key.set(), |s| s.values().rev().take(n).cloned().collect())
    }

    pub(crate) fn series_latest(&self, key: &SeriesKey) -> Result<Option<Bytes>> {
        self.with_series(key.set(), |s| s.values().next_back().cloned())
    }

    pub(crate) fn series_range(&self, w: &SeriesWindow<'_>) -> Result<Vec<Bytes>> {
        if w.from > w.to {
            return Ok(Vec::new());
        }
        self.with_series(w.key.set(), |s| {
            let bars = s.range(w.from..=w.to).take(w.limit);
            bars.map(|(_, v)| v.clone()).collect()
        })
    }

    /// One entry: the head is the map's last bar, not a key of its own.
    pub(crate) fn series_delete(&self, key: &SeriesKey) -> Result<bool> {
        Ok(self.delete(&[key.set().to_string()])? > 0)
    }

    pub(crate) fn series_latest_many(&self, keys: &[SeriesKey]) -> Result<Vec<Option<Bytes>>> {
        keys.iter().map(|k| self.series_latest(k)).collect()
    }

    /// Runs `f` on the live series at `key`; a missing series reads as empty.
    fn with_series<T: Default>(
        &self,
        key: &str,
        f: impl FnOnce(&BTreeMap<i64, Bytes>) -> T,
    ) -> Result<T> {
        self.with_live(key, |e| match &e.stored {
            Stored::Series(s) => Ok(f(s)),
            Stored::Value(_) => Err(wrong_type(key)),
        })
        .unwrap_or_else(|| Ok(T::default()))
    }

    pub(crate) fn ping(&self) -> Result<()> {
        Ok(())
    }

    /// Counts only live entries, as Redis does: its SCAN never returns an
    /// expired key. Expired ones go too.
    pub(crate) fn clear_prefix(&self, prefix: &str) -> Result<u64> {
        let now = Instant::now();
        let mut n = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.write().unwrap_or_else(|e| e.into_inner());
            let doomed: Vec<String> = shard
                .map
                .keys()
                .filter(|k| k.starts_with(prefix))
                .cloned()
                .collect();
            for key in doomed {
                if shard.remove(&key).is_some_and(|e| e.live(now)) {
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    pub(crate) fn flush_db(&self) -> Result<()> {
        for shard in self.shards.iter() {
            *shard.write().unwrap_or_else(|e| e.into_inner()) = Shard::default();
        }
        Ok(())
    }

    fn check_fits(&self, key: &str, size: usize) -> Result<()> {
        if size > self.shard_capacity {
            return Err(too_big(key, size, self.shard_capacity));
        }
        Ok(())
    }
}

impl Shard {
    fn insert(&mut self, key: &str, entry: Entry) {
        self.used += entry.size;
        if let Some(old) = self.map.insert(key.to_string(), entry) {
            self.used -= old.size;
        }
    }

    fn remove(&mut self, key: &str) -> Option<Entry> {
        let e = self.map.remove(key)?;
        self.used -= e.size;
        Some(e)
    }

    /// Drops expired entries, then those closest to expiry, until the shard is
    /// at 90% of `capacity`. `keep` (the key just written) is never evicted.
    fn evict_if_over(&mut self, capacity: usize, keep: &str) {
        if self.used <= capacity {
            return;
        }
        let now = Instant::now();
        let mut order: Vec<(Option<Instant>, String)> = self
            .map
            .iter()
            .filter(|(k, _)| k.as_str() != keep)
            .map(|(k, e)| {
                (
                    e.expires_at.filter(|_| e.live(now)).or(Some(now)),
                    k.clone(),
                )
            })
            .collect();
        // Expired entries carry `now`, so they sort first; `None` (no TTL) last.
        order.sort_by_key(|(t, _)| t.map_or((1, now), |t| (0, t)));
        let target = capacity / 10 * 9;
        for (_, key) in order {
            if self.used <= target {
                break;
            }
            self.remove(&key);
        }
    }
}

/// What one upsert changed in a series, to size it and to take it back.
struct Undo {
    replaced: Vec<(i64, Option<Bytes>)>,
    trimmed: Vec<(i64, Bytes)>,
    added: usize,
    removed: usize,
}

fn record_size(record: &Bytes) -> usize {
    record.len() + BAR_OVERHEAD
}

/// Inserts the batch, trims to `max_len`, and returns how to undo it.
fn apply(series: &mut BTreeMap<i64, Bytes>, w: &SeriesWrite<'_>) -> Undo {
    let mut undo = Undo {
        replaced: Vec::with_capacity(w.times.len()),
        trimmed: Vec::new(),
        added: 0,
        removed: 0,
    };
    let bars = w.bars.chunks_exact(ARCHIVED_BAR_LEN);
    for (ts, bar) in w.times.iter().zip(bars) {
        let record = w.bars.slice_ref(bar);
        undo.added += record_size(&record);
        let old = series.insert(*ts, record);
        undo.removed += old.as_ref().map_or(0, record_size);
        undo.replaced.push((*ts, old));
    }
    if let Some(max) = w.max_len {
        while series.len() > max.get() {
            let Some((ts, record)) = series.pop_first() else {
                break;
            };
            undo.removed += record_size(&record);
            undo.trimmed.push((ts, record));
        }
    }
    undo
}

impl Undo {
    fn revert(self, series: &mut BTreeMap<i64, Bytes>) {
        series.extend(self.trimmed);
        for (ts, old) in self.replaced.into_iter().rev() {
            match old {
                Some(record) => series.insert(ts, record),
                None => series.remove(&ts),
            };
        }
    }
}

fn series_entry(series: BTreeMap<i64, Bytes>, expires_at: Option<Instant>, size: usize) -> Entry {
    Entry {
        stored: Stored::Series(series),
        expires_at,
        size,
    }
}

/// As Redis' `WRONGTYPE`, which the Redis backend reports as a codec error.
fn wrong_type(key: &str) -> Error {
    Error::new(
        crate::error::ErrorKind::Codec,
        format!("WRONGTYPE: {key} holds another kind of value"),
    )
}

fn too_big(key: &str, size: usize, capacity: usize) -> Error {
    Error::invalid(format!(
        "{key} would take {size} bytes, more than the embedded backend's {capacity} bytes per shard \
         (raise CacheConfigBuilder::embedded_capacity)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> SeriesKey {
        SeriesKey::for_test(name)
    }

    /// A batch of `times.len()` bars of `ARCHIVED_BAR_LEN` bytes of `fill`.
    fn batch(times: std::ops::Range<i64>, fill: u8) -> (Vec<i64>, Bytes) {
        let times: Vec<i64> = times.collect();
        let bars = Bytes::from(vec![fill; times.len() * ARCHIVED_BAR_LEN]);
        (times, bars)
    }

    fn write<'a>(key: &'a SeriesKey, batch: &'a (Vec<i64>, Bytes), ttl: u64) -> SeriesWrite<'a> {
        SeriesWrite {
            key,
            bars: &batch.1,
            times: &batch.0,
            ttl: Duration::from_secs(ttl),
            max_len: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn values_expire_with_paused_time() {
        let m = EmbeddedBackend::new(1 << 20);
        m.set("k", Bytes::from_static(b"v"), Some(Duration::from_secs(10)))
            .unwrap();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(m.get("k").unwrap().as_deref(), Some(&b"v"[..]));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(m.get("k").unwrap(), None);
        assert!(!m.exists("k").unwrap());
    }

    #[test]
    fn eviction_keeps_the_shard_within_capacity() {
        let m = EmbeddedBackend::new(10_000);
        for i in 0..1_000 {
            let ttl = Duration::from_secs(100 + i);
            m.set(&format!("k{i}"), Bytes::from(vec![0u8; 100]), Some(ttl))
                .unwrap();
        }
        let used: usize = m.shards.iter().map(|s| s.read().unwrap().used).sum();
        assert!(used <= 10_000, "used {used}");
        // The longest-lived and the newest entries survive.
        assert!(m.exists("k999").unwrap());
        assert!(!m.exists("k0").unwrap());
    }

    #[test]
    fn a_series_too_big_for_capacity_is_rejected_and_kept_as_it_was() {
        let m = EmbeddedBackend::new(2_000);
        let s = key("s");
        m.series_upsert(&write(&s, &batch(1..2, 1), 60)).unwrap();
        let err = m
            .series_upsert(&write(&s, &batch(2..100, 2), 60))
            .unwrap_err();
        assert!(err.is_invalid_input());
        assert_eq!(m.series_newest(&s, 10).unwrap().len(), 1);
    }

    #[test]
    fn series_and_values_do_not_mix() {
        let m = EmbeddedBackend::new(1 << 20);
        m.set("v", Bytes::from_static(b"x"), None).unwrap();
        assert!(m
            .series_upsert(&write(&key("v"), &batch(1..2, 1), 60))
            .is_err());
        assert_eq!(m.get("v").unwrap().as_deref(), Some(&b"x"[..]));
        assert_eq!(m.mget(&["v".into(), "none".into()]).unwrap().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn lock_primitives_match_set_nx_px_and_compare_and_delete() {
        let m = EmbeddedBackend::new(1 << 20);
        let lease = Duration::from_secs(10);
        assert!(m.set_nx("l", Bytes::from_static(b"a"), lease).unwrap());
        assert!(!m.set_nx("l", Bytes::from_static(b"b"), lease).unwrap());
        assert!(!m.delete_if_equals("l", b"b").unwrap(), "not b's lock");
        assert!(m.exists("l").unwrap());
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(!m.delete_if_equals("l", b"a").unwrap(), "a's lock expired");
        assert!(m.set_nx("l", Bytes::from_static(b"b"), lease).unwrap());
        assert!(!m.delete_if_equals("l", b"a").unwrap(), "b's lock stays");
        assert!(m.delete_if_equals("l", b"b").unwrap());
        assert!(!m.exists("l").unwrap());
    }
}
