//! The live counters behind [`CacheStats`](super::CacheStats): per operation
//! calls, hits, misses, errors by kind and latency histograms.
//!
//! Every call of every thread updates them, so they are striped: each
//! thread counts into one stripe of its own (of up to [`MAX_STRIPES`]), and
//! a snapshot sums the stripes. Calls, hits and misses are relaxed atomic
//! adds on a cache line no other thread writes; errors and latencies, rare
//! or sampled, go under the stripe's lock, which only threads sharing a
//! stripe contend for.

use super::op::Op;
use super::{LatencyStats, OpStats};
use crate::error::ErrorKind;
use hdrhistogram::Histogram;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Stripes at most: enough for the worker threads of a runtime on a big
/// machine; threads beyond share stripes, which stays correct (atomic
/// adds) and costs only contention.
const MAX_STRIPES: usize = 8;

/// The longest latency a histogram tells apart: an hour, as
/// `get_or_compute` times the caller's closure too. Longer ones count as an
/// hour.
const MAX_LATENCY_NS: u64 = 3_600 * 1_000_000_000;

/// Latencies to 1% (two significant digits): p99 of a 30 µs read to within
/// 0.3 µs, at about 35 KiB per operation and stripe, allocated at the
/// operation's first timed call.
const SIGNIFICANT_DIGITS: u8 = 2;

/// Of the calls of one operation, those timed: one in this many, at random
/// (and the first), when a call may take well under a microsecond (the embedded
/// backend, a near cache), where reading the clock twice would cost a
/// fifth of the call. Redis round trips are each timed.
pub(crate) const SAMPLE_FAST: u64 = 8;

/// The live counters of one manager and its clones.
pub(crate) struct Counters {
    stripes: Box<[Stripe]>,
    /// TSC-based where the CPU has one (9 ns a read here, against 22 for
    /// `std::time::Instant`), the OS clock elsewhere.
    clock: quanta::Clock,
    /// `calls & sample_mask == 0` picks the calls that are timed.
    sample_mask: u64,
    /// False when the configuration turned calls, hits, misses and
    /// latencies off.
    per_call: bool,
    fail_open_misses: AtomicU64,
    fail_open_dropped_writes: AtomicU64,
    #[cfg(feature = "metrics")]
    export: super::export::Exported,
}

/// One thread's share of the counters, on cache lines of its own.
#[repr(align(128))]
struct Stripe {
    ops: [OpCounts; Op::COUNT],
    rare: Mutex<Rare>,
}

#[derive(Default)]
struct OpCounts {
    calls: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// What is counted under the stripe's lock: failures, and the sampled
/// latencies.
struct Rare {
    errors: [[u64; ErrorKind::COUNT]; Op::COUNT],
    latency: [Option<Histogram<u64>>; Op::COUNT],
}

impl Stripe {
    fn new() -> Self {
        let rare = Rare {
            errors: [[0; ErrorKind::COUNT]; Op::COUNT],
            latency: std::array::from_fn(|_| None),
        };
        Self {
            ops: std::array::from_fn(|_| OpCounts::default()),
            rare: Mutex::new(rare),
        }
    }

    /// The counts stay usable after a panic elsewhere held the lock: they
    /// are plain numbers, never left half-updated.
    fn rare(&self) -> MutexGuard<'_, Rare> {
        self.rare
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A call being timed: records its latency when dropped, so a call that
/// fails, returns early or is cancelled is timed too.
#[must_use]
pub(crate) struct Call<'a> {
    counters: &'a Counters,
    op: Op,
    /// The clock's raw reading at the start, when this call is sampled.
    started: Option<u64>,
}

impl Drop for Call<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(started) = self.started {
            let clock = &self.counters.clock;
            let ns = clock.delta_as_nanos(started, clock.raw());
            self.counters.record_latency(self.op, ns);
        }
    }
}

impl Counters {
    /// `sample_every` (a power of two) calls of each operation per stripe,
    /// one is timed; with `per_call` off, none is, nor counted;
    /// `namespace` labels the exported metrics.
    pub(crate) fn new(sample_every: u64, per_call: bool, namespace: &str) -> Self {
        debug_assert!(sample_every.is_power_of_two());
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let stripes = threads.min(MAX_STRIPES).next_power_of_two();
        #[cfg(not(feature = "metrics"))]
        let _ = namespace;
        Self {
            stripes: (0..stripes).map(|_| Stripe::new()).collect(),
            clock: quanta::Clock::new(),
            sample_mask: sample_every - 1,
            per_call,
            fail_open_misses: AtomicU64::new(0),
            fail_open_dropped_writes: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            export: super::export::Exported::new(namespace),
        }
    }

    /// Counts a call of `op`, timed until the returned guard is dropped.
    #[inline]
    pub(crate) fn start(&self, op: Op) -> Call<'_> {
        if !self.per_call {
            return Call {
                counters: self,
                op,
                started: None,
            };
        }
        let n = self.stripe().ops[op.index()].calls.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        self.export.call(op);
        // At random, not every 8th: a bot cycling through 8 symbols (or
        // near-cache hits and misses in a fixed pattern) would otherwise
        // have the same one timed each time. The first call is always timed,
        // so an operation called rarely has a latency.
        let sampled = n == 0 || next_random() & self.sample_mask == 0;
        let started = sampled.then(|| self.clock.raw());
        Call {
            counters: self,
            op,
            started,
        }
    }

    /// Counts a read of one key by `op`.
    #[inline]
    pub(crate) fn hit_or_miss(&self, op: Op, hit: bool) {
        if !self.per_call {
            return;
        }
        let counts = &self.stripe().ops[op.index()];
        if hit { &counts.hits } else { &counts.misses }.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        self.export.read(op, hit);
    }

    /// Counts a failure of `op`.
    #[cold]
    pub(crate) fn error(&self, op: Op, kind: ErrorKind) {
        self.stripe().rare().errors[op.index()][kind.index()] += 1;
        #[cfg(feature = "metrics")]
        self.export.error(op, kind);
    }

    /// A failed read that fail-open mode answered with a miss.
    pub(crate) fn fail_open_miss(&self) {
        self.fail_open_misses.fetch_add(1, Relaxed);
    }

    /// A failed write that fail-open mode dropped.
    pub(crate) fn fail_open_dropped_write(&self) {
        self.fail_open_dropped_writes.fetch_add(1, Relaxed);
    }

    pub(crate) fn fail_open_counts(&self) -> (u64, u64) {
        let misses = self.fail_open_misses.load(Relaxed);
        (misses, self.fail_open_dropped_writes.load(Relaxed))
    }

    fn record_latency(&self, op: Op, ns: u64) {
        let mut rare = self.stripe().rare();
        let histogram = rare.latency[op.index()].get_or_insert_with(new_histogram);
        histogram.saturating_record(ns.clamp(1, MAX_LATENCY_NS));
        // The exporter's own work is not done under the stripe's lock.
        drop(rare);
        #[cfg(feature = "metrics")]
        self.export.latency(op, ns);
    }

    /// This thread's stripe.
    #[inline]
    fn stripe(&self) -> &Stripe {
        // `stripes.len()` is a power of two.
        &self.stripes[thread_index() & (self.stripes.len() - 1)]
    }

    /// Every operation called so far, summed over the stripes, in
    /// declaration order.
    pub(crate) fn ops(&self) -> Vec<OpStats> {
        Op::ALL.iter().filter_map(|&op| self.op_stats(op)).collect()
    }

    fn op_stats(&self, op: Op) -> Option<OpStats> {
        let i = op.index();
        let sum = |count: fn(&OpCounts) -> &AtomicU64| {
            let each = self.stripes.iter().map(|s| count(&s.ops[i]).load(Relaxed));
            each.sum::<u64>()
        };
        let calls = sum(|c| &c.calls);
        let mut errors = [0u64; ErrorKind::COUNT];
        let mut latency: Option<Histogram<u64>> = None;
        for stripe in self.stripes.iter() {
            let rare = stripe.rare();
            errors
                .iter_mut()
                .zip(rare.errors[i])
                .for_each(|(e, n)| *e += n);
            if let Some(h) = &rare.latency[i] {
                let total = latency.get_or_insert_with(new_histogram);
                // Same bounds on both sides: adding cannot fail.
                let _ = total.add(h);
            }
        }
        // With per-call counting off, an operation shows by its failures.
        if calls == 0 && errors.iter().all(|&n| n == 0) {
            return None;
        }
        let errors = ErrorKind::ALL.iter().zip(errors);
        Some(OpStats {
            op,
            calls,
            hits: sum(|c| &c.hits),
            misses: sum(|c| &c.misses),
            errors: errors
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| (*k, n))
                .collect(),
            latency: latency.as_ref().map(latency_stats),
        })
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

fn latency_stats(h: &Histogram<u64>) -> LatencyStats {
    let at = |q: f64| Duration::from_nanos(h.value_at_quantile(q));
    LatencyStats {
        samples: h.len(),
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: Duration::from_nanos(h.max()),
        mean: Duration::from_nanos(h.mean() as u64),
    }
}

/// A xorshift of this thread's own: which calls are timed, at about a
/// nanosecond; seeded from the thread's number, so never zero.
fn next_random() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new((thread_index() as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    })
}

/// Threads numbered in the order they first count something: consecutive
/// threads (a runtime's workers) land on distinct stripes.
fn thread_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|index| {
        if index.get() == usize::MAX {
            index.set(NEXT.fetch_add(1, Relaxed));
        }
        index.get()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_latencies_from_many_threads_sum_up() {
        let counters = Counters::new(1, true, "t");
        std::thread::scope(|s| {
            for t in 0..4 {
                let counters = &counters;
                s.spawn(move || {
                    for i in 0..1_000 {
                        let _call = counters.start(Op::GetTicker);
                        counters.hit_or_miss(Op::GetTicker, (i + t) % 4 == 0);
                    }
                    counters.error(Op::SetTicker, ErrorKind::Timeout);
                    drop(counters.start(Op::SetTicker));
                });
            }
        });
        let ops = counters.ops();
        assert_eq!(ops.len(), 2, "{ops:?}");
        let get = &ops.iter().find(|o| o.op == Op::GetTicker).unwrap();
        assert_eq!((get.calls, get.hits, get.misses), (4_000, 1_000, 3_000));
        assert_eq!(get.latency.unwrap().samples, 4_000);
        let set = &ops.iter().find(|o| o.op == Op::SetTicker).unwrap();
        assert_eq!(set.calls, 4);
        assert_eq!(set.errors, vec![(ErrorKind::Timeout, 4)]);
    }

    #[test]
    fn one_call_in_eight_is_timed_at_random_the_first_included() {
        let counters = Counters::new(SAMPLE_FAST, true, "t");
        drop(counters.start(Op::Ping));
        for _ in 0..8_000 {
            drop(counters.start(Op::GetLatestBar));
        }
        let ops = counters.ops();
        assert_eq!(ops[0].calls, 8_000);
        // 1,000 expected; a binomial's spread is about 30.
        let samples = ops[0].latency.unwrap().samples;
        assert!((850..=1_150).contains(&samples), "{samples}");
        assert_eq!((ops[1].op, ops[1].latency.unwrap().samples), (Op::Ping, 1));
    }

    #[test]
    fn which_calls_are_timed_follows_no_cycle() {
        // Calls cycling through 8 symbols: each position gets its share.
        let mut timed = [0u32; 8];
        for i in 0..80_000 {
            if next_random() & (SAMPLE_FAST - 1) == 0 {
                timed[i % 8] += 1;
            }
        }
        for n in timed {
            assert!((1_000..=1_500).contains(&n), "{timed:?}");
        }
    }

    #[test]
    fn a_latency_is_measured_not_made_up() {
        let counters = Counters::new(1, true, "t");
        {
            let _call = counters.start(Op::Ping);
            std::thread::sleep(Duration::from_millis(20));
        }
        let latency = counters.ops()[0].latency.unwrap();
        assert!(latency.max >= Duration::from_millis(20), "{latency:?}");
        assert!(latency.max < Duration::from_secs(2), "{latency:?}");
        assert_eq!(latency.p50, latency.max);
    }
}
