//! The `metrics` feature: every counter of [`CacheStats`](super::CacheStats)
//! also goes to the [`metrics`] facade as it changes, so whichever exporter
//! the program installed (Prometheus, StatsD...) publishes it.
//!
//! The handles of the hot counters are registered once, when the manager
//! connects, so a call costs an atomic add each rather than a lookup of
//! its name and labels: install the exporter before connecting.

use super::op::Op;
use crate::error::ErrorKind;
use metrics::{Counter, Histogram, SharedString, Unit};

/// Calls, by `op` and `namespace`.
pub(crate) const CALLS: &str = "iftb_cache_calls_total";
/// Keys read that held a value, by `op` and `namespace`.
pub(crate) const HITS: &str = "iftb_cache_hits_total";
/// Keys read that held nothing, by `op` and `namespace`.
pub(crate) const MISSES: &str = "iftb_cache_misses_total";
/// Failures, by `op`, `kind` and `namespace`.
pub(crate) const ERRORS: &str = "iftb_cache_errors_total";
/// Latencies of the timed calls, by `op` and `namespace`.
pub(crate) const DURATION: &str = "iftb_cache_call_duration_seconds";

/// The handles of one manager's exported metrics.
pub(crate) struct Exported {
    namespace: SharedString,
    ops: Vec<OpHandles>,
}

struct OpHandles {
    calls: Counter,
    hits: Counter,
    misses: Counter,
    latency: Histogram,
}

impl Exported {
    pub(crate) fn new(namespace: &str) -> Self {
        describe();
        let namespace = SharedString::from(namespace.to_owned());
        let ops = Op::ALL
            .iter()
            .map(|op| {
                let labels = [("op", op.as_str().into()), ("namespace", namespace.clone())];
                OpHandles {
                    calls: metrics::counter!(CALLS, &labels),
                    hits: metrics::counter!(HITS, &labels),
                    misses: metrics::counter!(MISSES, &labels),
                    latency: metrics::histogram!(DURATION, &labels),
                }
            })
            .collect();
        Self { namespace, ops }
    }

    #[inline]
    pub(crate) fn call(&self, op: Op) {
        self.ops[op.index()].calls.increment(1);
    }

    #[inline]
    pub(crate) fn read(&self, op: Op, hit: bool) {
        let handles = &self.ops[op.index()];
        if hit { &handles.hits } else { &handles.misses }.increment(1);
    }

    pub(crate) fn latency(&self, op: Op, ns: u64) {
        self.ops[op.index()].latency.record(ns as f64 / 1e9);
    }

    /// Failures are rare: registered by name as they happen.
    pub(crate) fn error(&self, op: Op, kind: ErrorKind) {
        let labels = [
            ("op", op.as_str().into()),
            ("kind", kind.as_str().into()),
            ("namespace", self.namespace.clone()),
        ];
        metrics::counter!(ERRORS, &labels).increment(1);
    }
}

fn describe() {
    metrics::describe_counter!(CALLS, Unit::Count, "Calls of an iftb-cache operation");
    metrics::describe_counter!(HITS, Unit::Count, "Keys read that held a value");
    metrics::describe_counter!(MISSES, Unit::Count, "Keys read that held nothing");
    metrics::describe_counter!(ERRORS, Unit::Count, "Failed calls, by error kind");
    metrics::describe_histogram!(
        DURATION,
        Unit::Seconds,
        "Latency of the timed calls (every Redis round trip; 1 in 8 embedded or near-cache calls, at random)"
    );
}
