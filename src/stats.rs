//! Counters for the metrics the original asked to track: hits, misses, errors,
//! and what fail-open mode absorbed.

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

    pub(crate) fn snapshot(&self) -> CacheStats {
        CacheStats {
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
}

impl CacheStats {
    /// Hits over reads, or `None` before the first read.
    pub fn hit_rate(&self) -> Option<f64> {
        let reads = self.hits + self.misses;
        (reads > 0).then(|| self.hits as f64 / reads as f64)
    }
}
