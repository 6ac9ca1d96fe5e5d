//! The near cache: copies of Redis reads in process memory, in an embedded
//! engine of their own (bounded, the same eviction), served while Redis
//! vouches for them.
//!
//! Redis tells of every change to the namespace's keys (`tracking.rs`). A
//! copy is valid while two counters have not moved since the read it came
//! from was sent:
//!
//! - the *generation* of its Redis key: one of [`GEN_SLOTS`] counters,
//!   picked by the key's hash, bumped by every invalidation Redis sends for
//!   a key hashing there and by every write of this process to one;
//! - the *state*: an epoch bumped by every flush (`FLUSHALL`, a lost
//!   tracking connection, a failover), its low bit set while every node
//!   that serves the keys is tracked.
//!
//! Both are read before the fetch is sent (the copy's stamp) and again at
//! every hit: an invalidation that reaches this process while the read is
//! in flight, or between the reply and the copy being kept, leaves the copy
//! dead. So it does not matter in which order Redis' reply and its
//! invalidation arrive, and nothing has to find copies to delete them: a
//! dead copy reads as a miss, and is overwritten by the next fetch or
//! evicted by the engine.
//!
//! A copy also dies with its key's TTL in Redis (`PTTL`, fetched with the
//! value in the same round trip and counted from when the read was sent).
//! A missing key is kept as a missing copy: Redis tells of its creation as
//! of any change. Bars are validated before they are kept, so that hits
//! hand them out as the embedded engine does, unchecked.
//!
//! A copy is stored as `state (u64 LE) | generation (u64 LE) | tag | body`.

use super::embedded::EmbeddedBackend;
use super::series;
use super::BarRecord;
use crate::codec::{self, ARCHIVED_BAR_LEN};
use crate::error::{Error, Result};
use crate::flight::Flights;
use bytes::{BufMut, Bytes, BytesMut};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed};
use std::time::Duration;
use tokio::time::Instant;
use xxhash_rust::xxh3::xxh3_64;

/// Generation counters, 512 KiB: keys share one by their hash, and an
/// invalidation of one then drops the other's copies too (a miss, never a
/// stale read). Broadcast tracking tells of every write in the namespace,
/// so the slots of keys this process reads take the pushes of all others
/// too: the more slots, the fewer such misses.
const GEN_SLOTS: usize = 1 << 16;

/// The low bit of the state: every node that serves the keys is tracked.
const SERVING: u64 = 1;

const HEADER: usize = 17;

/// A copy's tag: a value or head found, or a key that held nothing.
const FOUND: u8 = 1;
const ABSENT: u8 = 0;
/// A copy of the newest bars: the series holds no more than these.
const WHOLE: u8 = 2;
/// ... or it may hold more.
const PART: u8 = 3;

/// The counters a read was sent under.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Stamp {
    state: u64,
    gen: u64,
}

/// What a copy holds.
#[derive(Clone)]
struct Held {
    tag: u8,
    body: Bytes,
}

impl Held {
    fn value(self) -> Option<Bytes> {
        (self.tag == FOUND).then_some(self.body)
    }
}

/// A fetch from Redis: the copy to keep, whether the key existed, and the
/// key's `PTTL` as Redis answered it.
struct Fetched {
    copy: Held,
    found: bool,
    pttl: i64,
}

/// What the near cache did, for [`CacheStats`](crate::CacheStats).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct NearStats {
    pub hits: u64,
    pub misses: u64,
    pub invalidations: u64,
    pub flushes: u64,
    pub serving: bool,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    flushes: AtomicU64,
}

pub(crate) struct Near {
    copies: EmbeddedBackend,
    gens: Box<[AtomicU64]>,
    state: AtomicU64,
    /// One-key fetches in flight, by what they read and the stamp they were
    /// sent under: a caller that comes after an invalidation waits for no
    /// read sent before it.
    flights: Flights<(String, Stamp), Held>,
    counters: Counters,
}

impl Near {
    /// A near cache of `capacity` bytes, not serving until tracking is on.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            copies: EmbeddedBackend::new(capacity),
            gens: (0..GEN_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            state: AtomicU64::new(0),
            flights: Flights::default(),
            counters: Counters::default(),
        }
    }

    pub(crate) fn stats(&self) -> NearStats {
        let c = &self.counters;
        NearStats {
            hits: c.hits.load(Relaxed),
            misses: c.misses.load(Relaxed),
            invalidations: c.invalidations.load(Relaxed),
            flushes: c.flushes.load(Relaxed),
            serving: self.serving(),
        }
    }

    // Tracking's side: what Redis said.

    /// Redis (or a write of this process) changed `key`: its copies die.
    pub(crate) fn invalidate(&self, key: &[u8]) {
        self.gen_of(key).fetch_add(1, AcqRel);
        self.counters.invalidations.fetch_add(1, Relaxed);
    }

    /// Every copy dies (`FLUSHALL`, `FLUSHDB`, a `clear_all`); tracking stays on.
    pub(crate) fn flush(&self, reason: &'static str) {
        let was = self.state.fetch_add(2, AcqRel);
        if was & SERVING != 0 {
            self.counters.flushes.fetch_add(1, Relaxed);
            tracing::info!(reason, "near_cache_flushed");
        }
    }

    /// A node may have changes Redis could not tell of (its tracking
    /// connection was lost, it was not tracked yet): every copy dies, and
    /// none is served or kept until [`resume`](Self::resume). Always moves
    /// the state, so that a `resume` that saw the state before this fails.
    pub(crate) fn lost(&self, reason: &str) {
        let was = self
            .state
            .fetch_update(AcqRel, Acquire, |s| Some(next_epoch(s)))
            .unwrap_or_else(|s| s);
        if was & SERVING != 0 {
            self.counters.flushes.fetch_add(1, Relaxed);
            tracing::warn!(reason, "near_cache_flushed");
        }
    }

    /// The state now, for [`resume`](Self::resume).
    pub(crate) fn state(&self) -> u64 {
        self.state.load(Acquire)
    }

    /// Serves again, if the state is still `seen` (no loss since the caller
    /// checked that every node is tracked); true when it does.
    pub(crate) fn resume(&self, seen: u64) -> bool {
        let next = next_epoch(seen) | SERVING;
        let resumed = seen & SERVING == 0
            && self
                .state
                .compare_exchange(seen, next, AcqRel, Acquire)
                .is_ok();
        if resumed {
            tracing::info!("near_cache_serving");
        }
        resumed
    }

    pub(crate) fn serving(&self) -> bool {
        self.state() & SERVING != 0
    }

    // The reads.

    /// `GET key` through the near cache; `fetch` sends `GET` and `PTTL`.
    pub(crate) async fn value<Fut>(
        &self,
        key: &str,
        fetch: impl FnOnce() -> Fut,
    ) -> Result<Option<Bytes>>
    where
        Fut: Future<Output = Result<(Option<Bytes>, i64)>>,
    {
        if let Some(hit) = self.lookup(key, key) {
            self.hit();
            return Ok(hit.value());
        }
        self.miss();
        let fetch = || async {
            let (value, pttl) = fetch().await?;
            Ok(found_or_absent(value, pttl))
        };
        let copy = self.fetch_one(key, key, || key.to_string(), fetch).await?;
        Ok(copy.value())
    }

    /// A series' newest bar (its head at `head`), validated; `fetch` sends
    /// `GET` and `PTTL` of the head.
    pub(crate) async fn latest<Fut>(
        &self,
        head: &str,
        fetch: impl FnOnce() -> Fut,
    ) -> Result<Option<BarRecord>>
    where
        Fut: Future<Output = Result<(Option<BarRecord>, i64)>>,
    {
        let hit = self.lookup_with(head, head, |tag, held| {
            (tag == FOUND).then(|| record(&held[HEADER..]))
        });
        if let Some(hit) = hit {
            self.hit();
            return Ok(hit);
        }
        self.miss();
        let fetch = || async {
            let (bar, pttl) = fetch().await?;
            Ok(found_or_absent(valid_bar(bar)?, pttl))
        };
        let copy = self
            .fetch_one(head, head, || head.to_string(), fetch)
            .await?;
        Ok(copy.value().map(|b| record(&b)))
    }

    /// Values of many keys, the copies that are valid and one fetch of the
    /// others: `fetch` is given the indices of the keys to send `MGET` and
    /// `PTTL`s for, and answers one pair per index. `check` runs on each
    /// value fetched before it is kept (a head's bar is validated).
    pub(crate) async fn values<K, Fut>(
        &self,
        keys: &[K],
        fetch: impl FnOnce(Vec<usize>) -> Fut,
        check: impl Fn(Option<Bytes>) -> Result<Option<Bytes>>,
    ) -> Result<Vec<Option<Bytes>>>
    where
        K: AsRef<str>,
        Fut: Future<Output = Result<Vec<(Option<Bytes>, i64)>>>,
    {
        let mut out = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let key = key.as_ref();
            match self.lookup(key, key) {
                Some(hit) => out.push(hit.value()),
                None => {
                    out.push(None);
                    missing.push(i);
                }
            }
        }
        let hits = (keys.len() - missing.len()) as u64;
        self.counters.hits.fetch_add(hits, Relaxed);
        if missing.is_empty() {
            return Ok(out);
        }
        self.counters
            .misses
            .fetch_add(missing.len() as u64, Relaxed);
        let stamps: Vec<Option<Stamp>> = missing
            .iter()
            .map(|&i| self.stamp(keys[i].as_ref()))
            .collect();
        let sent = Instant::now();
        let fetched = fetch(missing.clone()).await?;
        if fetched.len() != missing.len() {
            return Err(Error::new(
                crate::error::ErrorKind::Server,
                "a batch read answered a wrong count",
            ));
        }
        for ((i, stamp), (value, pttl)) in missing.into_iter().zip(stamps).zip(fetched) {
            let fetched = found_or_absent(check(value)?, pttl);
            let key = keys[i].as_ref();
            if let Some(stamp) = stamp {
                self.keep(key, key, stamp, &fetched, sent);
            }
            out[i] = fetched.copy.value();
        }
        Ok(out)
    }

    /// The newest bar of each series (heads at `heads`), validated, as
    /// [`values`](Self::values) reads them.
    pub(crate) async fn latest_many<Fut>(
        &self,
        heads: &[&str],
        fetch: impl FnOnce(Vec<usize>) -> Fut,
    ) -> Result<Vec<Option<BarRecord>>>
    where
        Fut: Future<Output = Result<Vec<(Option<Bytes>, i64)>>>,
    {
        let check = |head: Option<Bytes>| {
            let bar = head.map(|h| series::head_bar(h.to_vec())).transpose()?;
            valid_bar(bar)
        };
        let bodies = self.values(heads, fetch, check).await?;
        Ok(bodies.into_iter().map(|b| b.map(|b| record(&b))).collect())
    }

    /// The newest `n` bars of the series at `set`, as one validated run
    /// (or none); `fetch` sends the series read and the set's `PTTL`. A
    /// copy of the newest bars serves any read of as many or fewer, and any
    /// read at all when it holds the whole series.
    pub(crate) async fn newest<Fut>(
        &self,
        set: &str,
        n: usize,
        fetch: impl FnOnce() -> Fut,
    ) -> Result<Vec<Bytes>>
    where
        Fut: Future<Output = Result<(Vec<Bytes>, i64)>>,
    {
        let hit = self.lookup_with(set, set, |tag, held| newest_of(tag, held, HEADER, n));
        if let Some(hit) = hit.flatten() {
            self.hit();
            return Ok(hit);
        }
        self.miss();
        let fetch = || async {
            let (runs, pttl) = fetch().await?;
            let whole = |body: &Bytes| body.len() < n * ARCHIVED_BAR_LEN;
            bars_fetched(
                &runs,
                pttl,
                true,
                |body| if whole(body) { WHOLE } else { PART },
            )
        };
        let copy = self
            .fetch_one(set, set, || format!("{set}\0newest {n}"), fetch)
            .await?;
        Ok(newest_of(copy.tag, &copy.body, 0, n).unwrap_or_default())
    }

    /// The bars of a window of the series at `set`, as one validated run
    /// (or none); `fetch` sends the window read and the set's `PTTL`.
    pub(crate) async fn range<Fut>(
        &self,
        set: &str,
        window: (i64, i64, usize),
        fetch: impl FnOnce() -> Fut,
    ) -> Result<Vec<Bytes>>
    where
        Fut: Future<Output = Result<(Vec<Bytes>, i64)>>,
    {
        let (from, to, limit) = window;
        let local = format!("{set}\0range {from} {to} {limit}");
        if let Some(hit) = self.lookup(&local, set) {
            self.hit();
            return Ok(runs_of(hit.body));
        }
        self.miss();
        let fetch = || async {
            let (runs, pttl) = fetch().await?;
            bars_fetched(&runs, pttl, false, |_| FOUND)
        };
        let copy = self.fetch_one(&local, set, || local.clone(), fetch).await?;
        Ok(runs_of(copy.body))
    }

    // The machinery.

    fn hit(&self) {
        self.counters.hits.fetch_add(1, Relaxed);
    }

    fn miss(&self) {
        self.counters.misses.fetch_add(1, Relaxed);
    }

    fn gen_of(&self, key: &[u8]) -> &AtomicU64 {
        &self.gens[xxh3_64(key) as usize & (GEN_SLOTS - 1)]
    }

    /// The stamp a read of `guard` sent now carries; `None` while not serving.
    fn stamp(&self, guard: &str) -> Option<Stamp> {
        let state = self.state.load(Acquire);
        (state & SERVING != 0).then(|| Stamp {
            state,
            gen: self.gen_of(guard.as_bytes()).load(Acquire),
        })
    }

    /// The copy kept as `local`, if still valid: neither the state nor the
    /// generation of `guard` (the Redis key it was read from) has moved.
    #[inline]
    fn lookup(&self, local: &str, guard: &str) -> Option<Held> {
        self.lookup_with(local, guard, |tag, held| Held {
            tag,
            body: held.slice(HEADER..),
        })
    }

    /// As [`lookup`](Self::lookup), `f` given the copy's tag and the whole
    /// stored value (its body from [`HEADER`] on) in place: no clone of it.
    #[inline]
    fn lookup_with<T>(
        &self,
        local: &str,
        guard: &str,
        f: impl FnOnce(u8, &Bytes) -> T,
    ) -> Option<T> {
        let state = self.state.load(Acquire);
        let gen = self.gen_of(guard.as_bytes()).load(Acquire);
        self.copies
            .peek(local, |held| {
                let (stamp, rest) = held.split_first_chunk::<16>()?;
                let valid = stamp[..8] == state.to_le_bytes() && stamp[8..] == gen.to_le_bytes();
                let tag = *rest.first()?;
                valid.then(|| f(tag, held))
            })
            .flatten()
    }

    /// Fetches a copy for `local`, once for every caller that asks under
    /// the same stamp (`flight` names what is read), and keeps it. While
    /// not serving, each caller fetches on its own and nothing is kept.
    async fn fetch_one<Fut>(
        &self,
        local: &str,
        guard: &str,
        flight: impl FnOnce() -> String,
        fetch: impl FnOnce() -> Fut,
    ) -> Result<Held>
    where
        Fut: Future<Output = Result<Fetched>>,
    {
        let Some(stamp) = self.stamp(guard) else {
            return fetch().await.map(|f| f.copy);
        };
        let flight = self.flights.join((flight(), stamp));
        let lead = || async {
            let sent = Instant::now();
            let fetched = fetch().await?;
            self.keep(local, guard, stamp, &fetched, sent);
            Ok(fetched.copy)
        };
        flight.cell().get_or_init(lead).await.clone()
    }

    /// Keeps a fetched copy as `local`, until its key's TTL in Redis ends
    /// (counted from `sent`), unless the stamp it was sent under has moved.
    fn keep(&self, local: &str, guard: &str, stamp: Stamp, fetched: &Fetched, sent: Instant) {
        let ttl = match fetched.pttl {
            // No TTL; or no key, and nothing was found (a missing copy).
            -1 => None,
            -2 if !fetched.found => None,
            // Whole milliseconds from the server's clock, also in whole
            // milliseconds: up to one more than is left. Counted from
            // before the read was sent, less that one.
            ms if ms > 1 => {
                let left = Duration::from_millis(ms as u64 - 1).checked_sub(sent.elapsed());
                match left {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return,
                }
            }
            // Expiring now, or gone between the read and the PTTL.
            _ => return,
        };
        if self.stamp(guard) != Some(stamp) {
            return;
        }
        let copy = &fetched.copy;
        let mut held = BytesMut::with_capacity(HEADER + copy.body.len());
        held.put_u64_le(stamp.state);
        held.put_u64_le(stamp.gen);
        held.put_u8(copy.tag);
        held.put_slice(&copy.body);
        // A copy too big for the near cache is not kept; the read stands.
        let _ = self.copies.set(local, held.freeze(), ttl);
    }
}

/// The state of the next epoch, not serving.
fn next_epoch(state: u64) -> u64 {
    ((state >> 1) + 1) << 1
}

fn found_or_absent(value: Option<Bytes>, pttl: i64) -> Fetched {
    let found = value.is_some();
    let copy = match value {
        Some(body) => Held { tag: FOUND, body },
        None => Held {
            tag: ABSENT,
            body: Bytes::new(),
        },
    };
    Fetched { copy, found, pttl }
}

/// A fetched bar, checked as a bar: hits hand it out unchecked.
fn valid_bar(bar: Option<BarRecord>) -> Result<Option<Bytes>> {
    bar.map(|b| codec::access_valid_archived_bar(&b).map(|_| Bytes::copy_from_slice(&b)))
        .transpose()
}

fn record(body: &[u8]) -> BarRecord {
    let mut bar = [0u8; ARCHIVED_BAR_LEN];
    bar.copy_from_slice(&body[..ARCHIVED_BAR_LEN]);
    bar
}

/// A series read fetched: its runs checked as bars in their order (newest
/// runs first when `newest_first`, a window's oldest first), then joined
/// into one run, oldest first, tagged by `tag`.
fn bars_fetched(
    runs: &[Bytes],
    pttl: i64,
    newest_first: bool,
    tag: impl FnOnce(&Bytes) -> u8,
) -> Result<Fetched> {
    codec::check_runs(runs, newest_first)?;
    let body = if newest_first {
        join(runs.iter().rev())
    } else {
        join(runs.iter())
    };
    let copy = Held {
        tag: tag(&body),
        body,
    };
    let found = !copy.body.is_empty();
    Ok(Fetched { copy, found, pttl })
}

/// Runs (each oldest first) back to back, in the order given.
fn join<'a>(runs: impl Iterator<Item = &'a Bytes>) -> Bytes {
    let runs: Vec<&Bytes> = runs.collect();
    let mut body = BytesMut::with_capacity(runs.iter().map(|r| r.len()).sum());
    runs.into_iter().for_each(|r| body.put_slice(r));
    body.freeze()
}

fn runs_of(body: Bytes) -> Vec<Bytes> {
    if body.is_empty() {
        Vec::new()
    } else {
        vec![body]
    }
}

/// The newest `n` bars of a copy of the newest bars (its body from `from`
/// on in `held`), if it holds them.
fn newest_of(tag: u8, held: &Bytes, from: usize, n: usize) -> Option<Vec<Bytes>> {
    let count = (held.len() - from) / ARCHIVED_BAR_LEN;
    if count >= n {
        return Some(vec![held.slice(held.len() - n * ARCHIVED_BAR_LEN..)]);
    }
    (tag == WHOLE).then(|| runs_of(held.slice(from..)))
}
