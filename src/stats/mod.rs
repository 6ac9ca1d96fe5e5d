//! The metrics the original asked to track, per operation: calls, hits,
//! misses, errors by kind, latency percentiles; what fail-open mode
//! absorbed; and what the near cache and the circuit breaker did. With the
//! `metrics` feature, the same go to the [`metrics`](https://docs.rs/metrics)
//! facade as they happen.

mod op;
mod recorder;

#[cfg(feature = "metrics")]
mod export;

pub use self::op::Op;
pub(crate) use self::recorder::{Call, Counters, SAMPLE_FAST};

use crate::backend::{BreakerStats, NearStats};
use crate::error::ErrorKind;
use std::time::Duration;

impl Counters {
    /// A snapshot of every counter, with the near cache's and the breaker's.
    pub(crate) fn snapshot(&self, near: Option<NearStats>, breaker: BreakerStats) -> CacheStats {
        let near = near.unwrap_or_default();
        let ops = self.ops();
        let sum = |count: fn(&OpStats) -> u64| ops.iter().map(count).sum();
        let (fail_open_misses, fail_open_dropped_writes) = self.fail_open_counts();
        CacheStats {
            breaker_open: breaker.open,
            breaker_opens: breaker.opens,
            breaker_rejected: breaker.rejected,
            near_hits: near.hits,
            near_misses: near.misses,
            near_invalidations: near.invalidations,
            near_flushes: near.flushes,
            near_serving: near.serving,
            hits: sum(|o| o.hits),
            misses: sum(|o| o.misses),
            errors: sum(|o| o.errors()),
            codec_errors: sum(|o| o.errors_of(ErrorKind::Codec)),
            fail_open_misses,
            fail_open_dropped_writes,
            ops,
        }
    }
}

/// A snapshot of the counters since the manager was connected.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
    /// Per operation, every one called since connecting, in the order of
    /// [`Op::ALL`]: calls, hits, misses, errors by kind, latency. The
    /// totals above are their sums. See [`op`](Self::op).
    pub ops: Vec<OpStats>,
}

impl CacheStats {
    /// Hits over reads, or `None` before the first read.
    pub fn hit_rate(&self) -> Option<f64> {
        hit_rate(self.hits, self.misses)
    }

    /// The counters of `op`; `None` before its first call.
    pub fn op(&self, op: Op) -> Option<&OpStats> {
        self.ops.iter().find(|o| o.op == op)
    }
}

/// What one operation did since the manager connected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpStats {
    /// The operation.
    pub op: Op,
    /// Calls made, bad input and calls still in flight included.
    pub calls: u64,
    /// Keys read that held a value: one per call for a read of one key,
    /// one per key for a batch read (`get_tickers`, `get_latest_bars`...).
    pub hits: u64,
    /// Keys read that held nothing, fail-open misses included.
    pub misses: u64,
    /// Failures by kind, for the kinds that happened, as in
    /// [`CacheStats::errors`]: bad input is the caller's and is not
    /// counted, what fail-open mode absorbed is. A call may count more
    /// than one (`get_or_compute` reads again after waiting for a lock).
    pub errors: Vec<(ErrorKind, u64)>,
    /// The calls' latencies, from first poll to return (or to being
    /// dropped, for a cancelled call); `None` before a call was timed.
    pub latency: Option<LatencyStats>,
}

impl OpStats {
    /// Every failure counted, of any kind.
    pub fn errors(&self) -> u64 {
        self.errors.iter().map(|(_, n)| n).sum()
    }

    /// The failures of one kind.
    pub fn errors_of(&self, kind: ErrorKind) -> u64 {
        let of_kind = self.errors.iter().filter(|(k, _)| *k == kind);
        of_kind.map(|(_, n)| n).sum()
    }

    /// Hits over keys read, or `None` for a call that reads none.
    pub fn hit_rate(&self) -> Option<f64> {
        hit_rate(self.hits, self.misses)
    }
}

/// Hits over reads, or `None` before the first read.
fn hit_rate(hits: u64, misses: u64) -> Option<f64> {
    let reads = hits + misses;
    (reads > 0).then(|| hits as f64 / reads as f64)
}

/// Latency percentiles of one operation, from an HDR histogram (to 1%, up to
/// an hour).
///
/// On Redis without a near cache every call is timed. On the embedded
/// backend and with a near cache, where a call can take 100 ns, the first
/// call of each operation is timed and then one in 8, at random (not every
/// 8th, which a bot cycling through 8 symbols would alias): reading the
/// clock for every call would cost a fifth of it. The calls
/// timed are [`samples`](Self::samples); the percentiles are theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LatencyStats {
    /// Calls timed.
    pub samples: u64,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// The slowest call timed.
    pub max: Duration,
    /// The mean.
    pub mean: Duration,
}
