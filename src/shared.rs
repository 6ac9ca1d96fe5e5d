//! What every typed cache of one manager shares, and the one read path and
//! one write path they all take: the backend's answer, fail-open handling,
//! decoding (with the write checks run again), hit/miss counting, events.
//!
//! Fail-open rules, written once here: with
//! [`fail_open`](crate::CacheConfigBuilder::fail_open) on, a read that meets
//! an unavailable backend or a value it cannot decode answers a miss, and a
//! write the unavailable (or full: `OOM`) backend did not take is dropped;
//! each is counted and reported by a `cache_fail_open` warning. Bad input is
//! never absorbed.

use crate::backend::Backend;
use crate::config::CacheConfig;
use crate::error::{Error, Result};
use crate::flight::Flights;
use crate::keys::Keys;
use crate::stats::{Call, Counters, Op, SAMPLE_FAST};
use bytes::Bytes;
use std::time::Duration;

/// The state behind one [`CacheManager`](crate::CacheManager) and its clones.
pub(crate) struct Shared {
    pub(crate) backend: Backend,
    pub(crate) keys: Keys,
    pub(crate) config: CacheConfig,
    pub(crate) counters: Counters,
    /// `LlmCache::get_or_compute` calls in progress, shared by key.
    pub(crate) flights: Flights,
    /// The runtime that connected: what a dropped call leaves to do (a
    /// lock's release) runs there, not on a caller's runtime that may be
    /// gone by then.
    pub(crate) runtime: tokio::runtime::Handle,
}

impl Shared {
    pub(crate) fn new(backend: Backend, config: CacheConfig) -> Self {
        // A round trip takes tens of microseconds: each is timed. An
        // embedded read or a near-cache hit can take 100 ns: one in 8 is, at
        // random.
        let fast = match &backend {
            Backend::Embedded(_) => true,
            Backend::Redis(b) => b.has_near_cache(),
        };
        let sample_every = if fast { SAMPLE_FAST } else { 1 };
        Self {
            counters: Counters::new(sample_every, config.metrics(), config.namespace()),
            backend,
            keys: Keys::new(config.namespace()),
            config,
            flights: Flights::default(),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Counts a call of `op` and times it until the guard is dropped: every
    /// public call starts with this.
    #[inline]
    pub(crate) fn call(&self, op: Op) -> Call<'_> {
        self.counters.start(op)
    }

    /// The read path of one key: the backend's answer, fail-open applied,
    /// decoded by `decode` (whose codec errors fail open too), counted as a
    /// hit or a miss.
    #[inline]
    pub(crate) fn finish_read<R, T>(
        &self,
        op: Op,
        key: &str,
        fetched: Result<Option<R>>,
        decode: impl FnOnce(R) -> Result<T>,
    ) -> Result<Option<T>> {
        let found = self.observe_read(op, key, fetched, || None)?;
        self.decode_counted(op, key, found, decode)
    }

    /// The read path of many keys answered in one reply (MGET, a pipeline):
    /// a failed reply fails the whole call, or reads as all misses in
    /// fail-open mode; so does a value that cannot be decoded, or it reads
    /// as a miss of its own key in fail-open mode.
    pub(crate) fn finish_read_many<K: AsRef<str>, R, T>(
        &self,
        op: Op,
        keys: &[K],
        fetched: Result<Vec<Option<R>>>,
        decode: impl Fn(R) -> Result<T>,
    ) -> Result<Vec<Option<T>>> {
        let misses = || keys.iter().map(|_| None).collect();
        let values = self.observe_read(op, "", fetched, misses)?;
        let each = keys.iter().zip(values);
        each.map(|(key, v)| self.decode_counted(op, key.as_ref(), v, &decode))
            .collect()
    }

    #[inline]
    fn decode_counted<R, T>(
        &self,
        op: Op,
        key: &str,
        found: Option<R>,
        decode: impl FnOnce(R) -> Result<T>,
    ) -> Result<Option<T>> {
        let decoded = found.map(decode).transpose();
        let decoded = self.observe_read(op, key, decoded, || None)?;
        self.record_read(op, key, decoded.is_some());
        Ok(decoded)
    }

    /// The write path of one value: stores it, expiring after `ttl` (`None`:
    /// never), fail-open applied.
    pub(crate) async fn write_value(
        &self,
        op: Op,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let result = self.backend.set(key, value, ttl).await;
        self.observe_write(op, key, result)
    }

    /// The write path of many values with one TTL, in one round trip.
    pub(crate) async fn write_values(
        &self,
        op: Op,
        items: &[(String, Bytes)],
        ttl: Duration,
    ) -> Result<()> {
        let result = self.backend.set_many(items, ttl).await;
        self.observe_write(op, "", result)
    }

    /// Counts a read and emits `cache_hit` / `cache_miss`.
    #[inline]
    pub(crate) fn record_read(&self, op: Op, key: &str, hit: bool) {
        self.counters.hit_or_miss(op, hit);
        if hit {
            tracing::debug!(op = op.as_str(), key, "cache_hit");
        } else {
            tracing::debug!(op = op.as_str(), key, "cache_miss");
        }
    }

    /// Counts and reports a failed call; bad input is the caller's, not counted.
    /// For calls that never fail open (health, clearing, lock bookkeeping).
    #[inline]
    pub(crate) fn observe<T>(&self, op: Op, key: &str, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            self.report(op, key, e);
        }
        result
    }

    /// As [`observe`](Self::observe), for a read: in fail-open mode, an
    /// unavailable backend or a stored value that cannot be decoded gives
    /// `miss()` instead. The caller records the miss itself
    /// ([`record_read`](Self::record_read)), as for any miss.
    #[inline]
    pub(crate) fn observe_read<T>(
        &self,
        op: Op,
        key: &str,
        result: Result<T>,
        miss: impl FnOnce() -> T,
    ) -> Result<T> {
        match result {
            Ok(value) => Ok(value),
            Err(e) => self.read_failed(op, key, e).map(|()| miss()),
        }
    }

    /// As [`observe`](Self::observe), for a write: in fail-open mode, a write
    /// the unavailable backend did not take is dropped and the caller gets
    /// `T::default()`.
    #[inline]
    pub(crate) fn observe_write<T: Default>(
        &self,
        op: Op,
        key: &str,
        result: Result<T>,
    ) -> Result<T> {
        match result {
            Ok(value) => Ok(value),
            Err(e) => self.write_failed(op, key, e).map(|()| T::default()),
        }
    }

    // The failure paths, out of line: the hot path of every call is the
    // `Ok` arm above, and it should cost a branch, not a move of the value
    // through code that formats events.

    /// A call the open circuit breaker failed fast is logged at debug
    /// level: there may be thousands a second, and the breaker's own
    /// `circuit_breaker_opened` warning says why.
    #[cold]
    fn report(&self, op: Op, key: &str, e: &Error) {
        if e.is_invalid_input() {
            return;
        }
        self.counters.error(op, e.kind());
        let backend = self.backend.name();
        if e.is_circuit_open() {
            tracing::debug!(op = op.as_str(), key, backend, error = %e, "redis_{op}_error");
        } else {
            tracing::error!(op = op.as_str(), key, backend, error = %e, "redis_{op}_error");
        }
    }

    /// `Ok(())` when fail-open mode absorbs the failed read as a miss.
    #[cold]
    fn read_failed(&self, op: Op, key: &str, e: Error) -> Result<()> {
        if !self.fails_open(&e, true) {
            self.report(op, key, &e);
            return Err(e);
        }
        self.counters.error(op, e.kind());
        self.counters.fail_open_miss();
        fail_open_event(op, key, self.backend.name(), &e, "miss");
        Ok(())
    }

    /// `Ok(())` when fail-open mode drops the failed write.
    #[cold]
    fn write_failed(&self, op: Op, key: &str, e: Error) -> Result<()> {
        if !self.fails_open(&e, false) {
            self.report(op, key, &e);
            return Err(e);
        }
        self.counters.error(op, e.kind());
        self.counters.fail_open_dropped_write();
        fail_open_event(op, key, self.backend.name(), &e, "write_dropped");
        Ok(())
    }

    /// True when fail-open mode is on and `e` is one it absorbs: the backend
    /// is unavailable, or (for reads) a stored value cannot be decoded, or
    /// (for writes) Redis is full.
    fn fails_open(&self, e: &Error, read: bool) -> bool {
        let absorbed = if read {
            e.is_codec()
        } else {
            e.is_out_of_memory()
        };
        self.config.fail_open() && (e.is_unavailable() || absorbed)
    }
}

/// `cache_fail_open`: a warning, or at debug level for a call the open
/// circuit breaker failed fast (as in [`Shared::report`]).
#[cold]
fn fail_open_event(op: Op, key: &str, backend: &str, e: &Error, outcome: &str) {
    if e.is_circuit_open() {
        tracing::debug!(op = op.as_str(), key, backend, error = %e, outcome, "cache_fail_open");
    } else {
        tracing::warn!(op = op.as_str(), key, backend, error = %e, outcome, "cache_fail_open");
    }
}
