//! Counters for the metrics the original asked to track: hits, misses, errors,
//! and what fail-open mode absorbed; and what the near cache and the circuit
//! breaker did.

use crate::backend::{BreakerStats, NearStats};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters, shared by every clone of a [`CacheManager`](crate::CacheManager).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    codec_errors: AtomicU64,
    fail_open_misses: AtomicU64,
    fail_open_dropped_writes: AtomicU64,
}

impl Counters {
    pub(crate) fn hit_or_miss(&self, hit: bool) {
        if hit { &self.hits } else { &self.misses }.fetch_add(1, Relaxed);
    }

    pub(crate) fn error(&self, codec: bool) {
        self.errors.fetch_add(1, Relaxed);
        if codec {
            self.codec_errors.fetch_add(1, Relaxed);
        }
    }

    /// A failed read that fail-open mode answered with a miss.
    pub(crate) fn fail_open_miss(&self) {
        self.fail_open_misses.fetch_add(1, Relaxed);
    }

    /// A failed write that fail-open mode dropped.
    pub(crate) fn fail_open_dropped_write(&self) {
        self.fail_open_dropped_writes.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self, near: Option<NearStats>, breaker: BreakerStats) -> CacheStats {
        let near = near.unwrap_or_default();
        CacheStats {
            breaker_open: breaker.open,
            breaker_opens: breaker.opens,
            breaker_rejected: breaker.rejected,
            near_hits: near.hits,
            near_misses: near.misses,
            near_invalidations: near.invalidations,
            near_flushes: near.flushes,
            near_serving: near.serving,
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            errors: self.errors.load(Relaxed),
            codec_errors: self.codec_errors.load(Relaxed),
            fail_open_misses: self.fail_open_misses.load(Relaxed),
            fail_open_dropped_writes: self.fail_open_dropped_writes.load(Relaxed),
        }
    }
}

/// A snapshot of the counters since the manager was connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CacheStats {
    /// Reads that found a value.
    pub hits: u64,
    /// Reads that found nothing, fail-open misses included.
    pub misses: u64,
    /// Calls that failed, for any reason but bad input, fail-open ones included.
    pub errors: u64,
    /// Of `errors`, those caused by a corrupt or foreign stored value.
    pub codec_errors: u64,
    /// Of `errors`, reads that [fail-open mode](crate::CacheConfigBuilder::fail_open)
    /// answered with a miss (also counted in `misses`).
    pub fail_open_misses: u64,
    /// Of `errors`, writes that [fail-open mode](crate::CacheConfigBuilder::fail_open)
    /// dropped: nothing was stored, and the caller saw success.
    pub fail_open_dropped_writes: u64,
    /// Reads the [near cache](crate::CacheConfigBuilder::near_cache) answered
    /// from a valid copy, with no round trip (a batch read counts each key).
    /// These are in `hits` or `misses` too, as the value they found.
    pub near_hits: u64,
    /// Reads the near cache sent to Redis: no copy, or a dead one.
    pub near_misses: u64,
    /// Keys Redis said changed, and keys this process wrote: each drops
    /// the near cache's copies of that key.
    pub near_invalidations: u64,
    /// Times every copy was dropped at once while the near cache served: a
    /// lost tracking connection, a failover, `FLUSHALL`/`FLUSHDB`, `clear_all`.
    pub near_flushes: u64,
    /// True while the near cache serves: every node that serves the keys is
    /// tracked. False without a near cache, and until tracking is on after
    /// connecting or after a loss, while reads go to Redis.
    pub near_serving: bool,
    /// True while the [circuit breaker](crate::CacheConfigBuilder::breaker_threshold)
    /// is open: calls fail fast while a probe waits for Redis.
    pub breaker_open: bool,
    /// Times the circuit breaker opened.
    pub breaker_opens: u64,
    /// Requests to Redis the open circuit breaker failed fast (a call such
    /// as `get_or_compute` may make several, a lock's bookkeeping
    /// included); the calls they failed are in `errors` too, and in
    /// `fail_open_*` in fail-open mode.
    pub breaker_rejected: u64,
}

impl CacheStats {
    /// Hits over reads, or `None` before the first read.
    pub fn hit_rate(&self) -> Option<f64> {
        let reads = self.hits + self.misses;
        (reads > 0).then(|| self.hits as f64 / reads as f64)
    }
}
