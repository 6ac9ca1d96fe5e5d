//! The embedded in-process backend: the same semantics as Redis (TTL,
//! ordering, upsert by timestamp, caps), every byte it holds charged against
//! one capacity.
//!
//! - `store.rs`: keys to entries in lock shards, the memory charge, eviction;
//! - `policy.rs`: which entry goes first (expired ones, then S3-FIFO);
//! - `series.rs`: a series as chunks of archived bars, read without copies.
//!
//! Values are copied in, never kept as slices of the caller's buffer (a
//! slice would keep the whole batch alive, uncharged). Expiry is lazy: an
//! expired entry reads as missing, and eviction drops expired entries
//! before any live one. Bars are validated when written (they come from
//! this process' own encoder), so reads hand them out unchecked.

mod policy;
mod series;
mod store;

use self::series::{Chunk, Series, TooBig, OWNER_BYTES};
use self::store::{Entry, Store, Value};
use super::{BarRecord, KeyUsage, SeriesWindow, SeriesWrite, UsageTotals};
use crate::codec;
use crate::error::{Error, Result};
use crate::keys::SeriesKey;
use bytes::Bytes;
use std::time::Duration;
use tokio::time::Instant;

pub(crate) struct EmbeddedBackend {
    store: Store,
}

impl EmbeddedBackend {
    /// A backend holding at most about `capacity` bytes (keys, values and
    /// the engine's own bookkeeping).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            store: Store::new(capacity),
        }
    }

    /// Runs `f` on the live value of `key`; a series is `WRONGTYPE`.
    fn read_value<T>(&self, key: &str, f: impl FnOnce(&Bytes) -> T) -> Result<Option<T>> {
        self.store
            .read(key, |v| match v {
                Value::Bytes(b) => Ok(f(b)),
                Value::Series(_) => Err(wrong_type(key)),
            })
            .transpose()
    }

    /// Runs `f` on the live series of `key`; a missing one reads as empty.
    fn read_series<T: Default>(&self, key: &str, f: impl FnOnce(&Series) -> T) -> Result<T> {
        self.store
            .read(key, |v| match v {
                Value::Series(s) => Ok(f(s)),
                Value::Bytes(_) => Err(wrong_type(key)),
            })
            .unwrap_or_else(|| Ok(T::default()))
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.read_value(key, Bytes::clone)
    }

    /// Runs `f` on the live value of `key` in place, under its shard's read
    /// lock: for a caller that needs a part of it (the near cache's copies).
    #[inline]
    pub(crate) fn peek<T>(&self, key: &str, f: impl FnOnce(&Bytes) -> T) -> Option<T> {
        self.read_value(key, f).ok().flatten()
    }

    pub(crate) fn mget(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        // MGET answers nil for a key of another type; so does this.
        Ok(keys.iter().map(|k| self.get(k).ok().flatten()).collect())
    }

    pub(crate) fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.check_fits(key, &value)?;
        self.put(key, &value, ttl);
        Ok(())
    }

    pub(crate) fn set_many(&self, items: &[(String, Bytes)], ttl: Duration) -> Result<()> {
        for (key, value) in items {
            self.check_fits(key, value)?;
        }
        for (key, value) in items {
            self.put(key, value, Some(ttl));
        }
        Ok(())
    }

    /// Stores a copy of `value`, checked to fit; the value it replaces is
    /// dropped once the lock is released.
    fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) {
        let expires_at = ttl.map(|t| Instant::now() + t);
        let value = Value::Bytes(owned(value));
        let replaced = self.store.write(key, |e| {
            Ok::<_, Error>(e.replace(Entry { value, expires_at }))
        });
        drop(replaced);
    }

    pub(crate) fn delete(&self, keys: &[String]) -> Result<u64> {
        Ok(keys.iter().map(|k| u64::from(self.delete_one(k))).sum())
    }

    /// Deletes `key`; true when it was live.
    fn delete_one(&self, key: &str) -> bool {
        let removed = self.store.write(key, |e| Ok::<_, Error>(e.take()));
        removed.is_ok_and(|e| e.is_some())
    }

    pub(crate) fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.store.contains(key))
    }

    pub(crate) fn set_nx(&self, key: &str, value: Bytes, ttl: Duration) -> Result<bool> {
        self.check_fits(key, &value)?;
        let expires_at = Some(Instant::now() + ttl);
        let value = Value::Bytes(owned(&value));
        // Check and insert under one write lock, as `SET NX` is one command;
        // a refused value is dropped off the lock.
        let refused = self.store.write(key, |e| {
            if e.is_some() {
                return Ok::<_, Error>(Some(value));
            }
            *e = Some(Entry { value, expires_at });
            Ok(None)
        })?;
        Ok(refused.is_none())
    }

    pub(crate) fn delete_if_equals(&self, key: &str, value: &[u8]) -> Result<bool> {
        let removed = self.store.write(key, |e| {
            let holds = matches!(e, Some(Entry { value: Value::Bytes(v), .. }) if v == value);
            Ok::<_, Error>(if holds { e.take() } else { None })
        })?;
        Ok(removed.is_some())
    }

    /// Moves the expiry of `key` to `ttl` from now only if it still holds
    /// `value`: a held lock's renewal.
    pub(crate) fn renew_if_equals(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool> {
        self.store.write(key, |e| match e {
            Some(Entry {
                value: Value::Bytes(v),
                expires_at,
            }) if v == value => {
                *expires_at = Some(Instant::now() + ttl);
                Ok::<_, Error>(true)
            }
            _ => Ok(false),
        })
    }

    pub(crate) fn series_upsert(&self, w: &SeriesWrite<'_>) -> Result<()> {
        let key = w.key.set();
        debug_assert!(all_valid(w.bars), "series writes carry validated bars");
        let limit = self.store.entry_limit(key);
        // The in-progress candle's chunk is built before the lock is taken,
        // and the one it replaces dropped after it is released: under the
        // lock, that write is a swap.
        let mut fresh = (w.times.len() == 1).then(|| Chunk::new(w.bars));
        let mut replaced = Vec::new();
        let result = self.store.write(key, |slot| {
            let entry = slot.get_or_insert_with(|| Entry {
                value: Value::Series(Box::default()),
                expires_at: None,
            });
            let Value::Series(series) = &mut entry.value else {
                return Err(wrong_type(key));
            };
            let swapped = fresh.take().map(|f| series.swap_latest(f, w.max_len));
            let written = match swapped {
                Some(Ok(old)) => Ok(vec![old]),
                _ => series.upsert(w.bars, w.times, w.max_len, limit),
            };
            match written {
                Ok(old) => {
                    replaced = old;
                    entry.expires_at = Some(Instant::now() + w.ttl);
                    Ok(())
                }
                Err(TooBig(size)) => {
                    if series.is_empty() {
                        *slot = None;
                    }
                    Err(too_big(key, size, limit))
                }
            }
        });
        drop(replaced);
        result
    }

    pub(crate) fn series_newest(&self, key: &SeriesKey, n: usize) -> Result<Vec<Bytes>> {
        self.read_series(key.set(), |s| s.newest(n))
    }

    pub(crate) fn series_latest(&self, key: &SeriesKey) -> Result<Option<BarRecord>> {
        self.read_series(key.set(), Series::latest)
    }

    /// The head Redis would hold for this series, made from it.
    pub(crate) fn series_head(&self, key: &SeriesKey) -> Result<Option<Bytes>> {
        let head = |s: &Series| {
            let latest = s.latest()?;
            let mut head = codec::header(codec::Kind::SeriesHead, latest.len() + 8);
            head.extend_from_slice(&latest);
            head.extend_from_slice(&(s.len() as u64).to_le_bytes());
            Some(Bytes::from(head))
        };
        self.read_series(key.set(), head)
    }

    pub(crate) fn series_range(&self, w: &SeriesWindow<'_>) -> Result<Vec<Bytes>> {
        if w.from > w.to {
            return Ok(Vec::new());
        }
        self.read_series(w.key.set(), |s| s.range(w.from, w.to, w.limit))
    }

    /// One entry: the head is the series' last bar, not a key of its own.
    pub(crate) fn series_delete(&self, key: &SeriesKey) -> Result<bool> {
        Ok(self.delete_one(key.set()))
    }

    pub(crate) fn series_latest_many(&self, keys: &[SeriesKey]) -> Result<Vec<Option<BarRecord>>> {
        keys.iter().map(|k| self.series_latest(k)).collect()
    }

    pub(crate) fn ping(&self) -> Result<()> {
        Ok(())
    }

    /// Counts only live entries, as Redis does: its SCAN never returns an
    /// expired key. Expired ones go too.
    pub(crate) fn clear_prefix(&self, prefix: &str) -> Result<u64> {
        Ok(self.store.remove_where(|k| k.starts_with(prefix)))
    }

    pub(crate) fn flush_db(&self) -> Result<()> {
        self.store.remove_where(|_| true);
        Ok(())
    }

    /// The live entries under `prefix` from the engine's own bookkeeping,
    /// one lock shard at a time; an entry expired but not yet evicted is
    /// not counted (nor read). A series is one entry (its head is its last
    /// bar, not a key of its own). `used` is every byte charged against the
    /// capacity, tables and expired entries included.
    ///
    /// A shard's entries are copied out under its lock and counted after
    /// it, and the task yields between shards: a report of a big cache
    /// neither holds writers of a shard while it classifies keys nor keeps
    /// a runtime thread (a current-thread runtime: the whole bot) from its
    /// other tasks until the limit.
    pub(crate) async fn scan_usage(
        &self,
        prefix: &str,
        until: std::time::Instant,
        each: &mut impl FnMut(KeyUsage<'_>),
    ) -> Result<UsageTotals> {
        let mut complete = true;
        let mut found: Vec<(String, usize, Option<Instant>)> = Vec::new();
        for at in 0..self.store.shards() {
            if std::time::Instant::now() >= until {
                complete = false;
                break;
            }
            let now = Instant::now();
            self.store
                .for_each_live(at, now, |key, charge, expires_at| {
                    if key.starts_with(prefix) {
                        found.push((key.to_owned(), charge, expires_at));
                    }
                });
            for (key, charge, expires_at) in found.drain(..) {
                each(KeyUsage {
                    key: key.as_bytes(),
                    bytes: charge as u64,
                    ttl: expires_at.map(|t| t.saturating_duration_since(now)),
                });
            }
            tokio::task::yield_now().await;
        }
        Ok(UsageTotals {
            used: self.store.used() as u64,
            max: Some(self.store.capacity() as u64),
            complete,
        })
    }

    fn check_fits(&self, key: &str, value: &[u8]) -> Result<()> {
        let size = value.len() + OWNER_BYTES;
        let limit = self.store.entry_limit(key);
        if size > limit {
            return Err(too_big(key, size, limit));
        }
        Ok(())
    }
}

/// A copy of `value` in a buffer of its own: the caller's `Bytes` may be a
/// slice of a much bigger one.
fn owned(value: &[u8]) -> Bytes {
    Bytes::from_owner(value.to_vec())
}

fn all_valid(bars: &[u8]) -> bool {
    use crate::codec::{access_valid_archived_bar, ARCHIVED_BAR_LEN as W};
    bars.len().is_multiple_of(W)
        && bars
            .chunks_exact(W)
            .all(|b| access_valid_archived_bar(b).is_ok())
}

/// As Redis' `WRONGTYPE`, which the Redis backend reports as a codec error.
fn wrong_type(key: &str) -> Error {
    Error::new(
        crate::error::ErrorKind::Codec,
        format!("WRONGTYPE: {key} holds another kind of value"),
    )
}

fn too_big(key: &str, size: usize, limit: usize) -> Error {
    Error::invalid(format!(
        "{key} would take {size} bytes, more than the {limit} bytes the embedded backend's \
         capacity leaves one entry (raise CacheConfigBuilder::embedded_capacity)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{archive_bars, ARCHIVED_BAR_LEN};
    use crate::model::Bar;

    fn key(name: &str) -> SeriesKey {
        SeriesKey::for_test(name)
    }

    /// Bars at `times`, closing at `close`, archived back to back.
    fn batch(times: std::ops::Range<i64>, close: f64) -> (Vec<i64>, Bytes) {
        let times: Vec<i64> = times.collect();
        let bars: Vec<Bar> = times
            .iter()
            .map(|&t| Bar::new(t, close, close + 1.0, close - 1.0, close, 1.0))
            .collect();
        (times, archive_bars(&bars))
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

    fn set(m: &EmbeddedBackend, k: &str, len: usize, ttl: Option<u64>) {
        m.set(k, Bytes::from(vec![7u8; len]), ttl.map(Duration::from_secs))
            .unwrap();
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
    fn a_series_head_is_made_as_redis_keeps_it() {
        let m = EmbeddedBackend::new(1 << 20);
        let k = key("s");
        assert_eq!(m.series_head(&k).unwrap(), None);
        let b = batch(0..5, 2.0);
        m.series_upsert(&write(&k, &b, 60)).unwrap();
        let head = m.series_head(&k).unwrap().unwrap();
        assert_eq!(codec::head_count(&head).unwrap(), 5);
        let newest = &b.1[4 * ARCHIVED_BAR_LEN..];
        assert_eq!(codec::head_bar(&head).unwrap(), newest);
        set(&m, "plain", 10, None);
        assert!(m.series_head(&key("plain")).unwrap_err().is_codec());
    }

    #[test]
    fn eviction_keeps_the_store_within_capacity() {
        let m = EmbeddedBackend::new(100_000);
        for i in 0..5_000 {
            set(&m, &format!("k{i}"), 100, Some(100));
            assert!(m.store.used() <= 100_000, "used {}", m.store.used());
        }
        assert!(m.exists("k4999").unwrap(), "the entry just written stays");
        assert!(!m.exists("k0").unwrap());
    }

    #[test]
    fn entries_in_use_survive_a_scan_of_one_off_writes() {
        let m = EmbeddedBackend::new(200_000);
        let hot: Vec<String> = (0..100).map(|i| format!("hot{i}")).collect();
        for k in &hot {
            set(&m, k, 200, Some(60));
            m.get(k).unwrap();
        }
        for i in 0..20_000 {
            set(&m, &format!("scan{i}"), 200, Some(60));
            if i % 1_000 == 0 {
                hot.iter().for_each(|k| drop(m.get(k)));
            }
        }
        let alive = hot.iter().filter(|k| m.exists(k).unwrap()).count();
        assert_eq!(alive, hot.len(), "a scan evicted entries in use");
    }

    #[test]
    fn an_entry_without_ttl_outlives_entries_of_the_same_use_with_one() {
        let m = EmbeddedBackend::new(100_000);
        set(&m, "setting", 100, None);
        let mut first_gone = None;
        for i in 0..2_000 {
            set(&m, &format!("rate{i}"), 100, Some(60));
            if first_gone.is_none() && !m.exists("rate0").unwrap() {
                first_gone = Some(i);
                assert!(m.exists("setting").unwrap(), "evicted before rate0");
            }
        }
        assert!(first_gone.is_some(), "the store never evicted");
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_go_before_live_ones() {
        let m = EmbeddedBackend::new(100_000);
        for i in 0..2_000 {
            let k = format!("short{i}");
            set(&m, &k, 100, Some(1));
            // Used often: the policy alone would keep these over new entries.
            (0..3).for_each(|_| drop(m.get(&k)));
        }
        let held = (0..2_000).filter(|i| m.exists(&format!("short{i}")).unwrap());
        let held = held.count();
        tokio::time::advance(Duration::from_secs(2)).await;
        // As many entries of the same size: room for all, once the expired go.
        for i in 0..held {
            set(&m, &format!("short{i}"), 100, Some(600));
        }
        let live = (0..held).filter(|i| m.exists(&format!("short{i}")).unwrap());
        assert_eq!(live.count(), held);
    }

    #[test]
    fn one_entry_may_take_most_of_the_capacity() {
        let m = EmbeddedBackend::new(1 << 20);
        set(&m, "small", 10, None);
        set(&m, "big", 900_000, None);
        assert_eq!(m.get("big").unwrap().map(|b| b.len()), Some(900_000));
        assert!(m.store.used() <= 1 << 20);
        let err = m
            .set("huge", Bytes::from(vec![0u8; 1 << 20]), None)
            .unwrap_err();
        assert!(err.is_invalid_input(), "{err}");
        assert!(m.exists("big").unwrap(), "a refused write evicts nothing");
    }

    #[test]
    fn a_series_too_big_for_capacity_is_rejected_and_kept_as_it_was() {
        let m = EmbeddedBackend::new(20_000);
        let s = key("s");
        m.series_upsert(&write(&s, &batch(1..2, 1.0), 60)).unwrap();
        let err = m
            .series_upsert(&write(&s, &batch(2..1_000, 2.0), 60))
            .unwrap_err();
        assert!(err.is_invalid_input());
        let runs = m.series_newest(&s, 10).unwrap();
        assert_eq!(runs.iter().map(Bytes::len).sum::<usize>(), ARCHIVED_BAR_LEN);
    }

    #[test]
    fn series_and_values_do_not_mix() {
        let m = EmbeddedBackend::new(1 << 20);
        m.set("v", Bytes::from_static(b"x"), None).unwrap();
        assert!(m
            .series_upsert(&write(&key("v"), &batch(1..2, 1.0), 60))
            .is_err());
        assert_eq!(m.get("v").unwrap().as_deref(), Some(&b"x"[..]));
        assert_eq!(m.mget(&["v".into(), "none".into()]).unwrap().len(), 2);
    }

    #[test]
    fn a_value_is_copied_out_of_the_callers_buffer() {
        let m = EmbeddedBackend::new(1 << 20);
        let batch = Bytes::from(vec![1u8; 100_000]);
        m.set("k", batch.slice(0..10), None).unwrap();
        let held = m.get("k").unwrap().unwrap();
        drop(batch);
        assert_eq!(held.len(), 10);
        assert!(m.store.used() < 2_000, "charged {}", m.store.used());
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

    /// Every key `scan_usage` sees under `prefix`, with its bytes and TTL.
    async fn usage(
        m: &EmbeddedBackend,
        prefix: &str,
        until: std::time::Instant,
    ) -> (Vec<(String, u64, Option<Duration>)>, UsageTotals) {
        let mut seen = Vec::new();
        let totals = m
            .scan_usage(prefix, until, &mut |u| {
                let key = String::from_utf8(u.key.to_vec()).unwrap();
                seen.push((key, u.bytes, u.ttl));
            })
            .await
            .unwrap();
        seen.sort();
        (seen, totals)
    }

    fn later() -> std::time::Instant {
        std::time::Instant::now() + Duration::from_secs(60)
    }

    #[tokio::test(start_paused = true)]
    async fn usage_counts_live_entries_under_the_prefix_with_their_charges() {
        let m = EmbeddedBackend::new(16 << 20);
        set(&m, "a:x", 100, Some(10));
        set(&m, "a:forever", 1_000, None);
        set(&m, "a:short", 100, Some(1));
        set(&m, "b:x", 100, Some(10));
        let s = key("a:series");
        m.series_upsert(&write(&s, &batch(0..500, 1.0), 30))
            .unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        let (seen, totals) = usage(&m, "a:", later()).await;
        let names: Vec<&str> = seen.iter().map(|(k, ..)| k.as_str()).collect();
        // The expired entry is still held (nothing evicted it), not counted.
        assert_eq!(names, ["a:forever", "a:series", "a:x"]);
        let bytes = |k: &str| seen.iter().find(|s| s.0 == k).unwrap().1;
        assert!(bytes("a:forever") >= 1_000 && bytes("a:forever") < 1_200);
        assert!(bytes("a:series") >= 500 * ARCHIVED_BAR_LEN as u64);
        let ttl = |k: &str| seen.iter().find(|s| s.0 == k).unwrap().2;
        assert_eq!(ttl("a:x"), Some(Duration::from_secs(8)));
        assert_eq!(ttl("a:series"), Some(Duration::from_secs(28)));
        assert_eq!(ttl("a:forever"), None);
        assert!(totals.complete);
        assert_eq!(totals.max, Some(16 << 20));
        let counted: u64 = seen.iter().map(|s| s.1).sum();
        assert!(counted < totals.used, "{counted} of {}", totals.used);
        assert_eq!(totals.used, m.store.used() as u64);
    }

    #[tokio::test]
    async fn usage_past_its_time_walks_nothing_and_says_so() {
        let m = EmbeddedBackend::new(16 << 20);
        set(&m, "a:x", 100, None);
        let (seen, totals) = usage(&m, "a:", std::time::Instant::now()).await;
        assert!(seen.is_empty() && !totals.complete);
        let (seen, totals) = usage(&m, "a:", later()).await;
        assert_eq!(seen.len(), 1);
        assert!(totals.complete);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lock_is_renewed_only_by_its_holder() {
        let m = EmbeddedBackend::new(1 << 20);
        let lease = Duration::from_secs(10);
        assert!(m.set_nx("l", Bytes::from_static(b"a"), lease).unwrap());
        tokio::time::advance(Duration::from_secs(8)).await;
        assert!(
            !m.renew_if_equals("l", b"b", lease).unwrap(),
            "not b's lock"
        );
        assert!(m.renew_if_equals("l", b"a", lease).unwrap());
        tokio::time::advance(Duration::from_secs(8)).await;
        assert!(
            m.exists("l").unwrap(),
            "the renewal did not extend the lease"
        );
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(
            !m.renew_if_equals("l", b"a", lease).unwrap(),
            "renewed after expiry"
        );
        assert!(!m.exists("l").unwrap());
    }
}
