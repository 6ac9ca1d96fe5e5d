//! The circuit breaker in front of a Redis backend: a frozen, black-holed
//! or refusing Redis costs the calls in flight one deadline, not every
//! call after them one each.
//!
//! Two states:
//! - **Closed**: calls go to Redis. Each call that fails as unavailable
//!   (timeout, refused/reset/dropped connection, `LOADING`, no primary)
//!   adds one to a count of failures in a row; any other outcome resets it.
//!   At `threshold` it opens.
//! - **Open**: calls fail at once with [`ErrorKind::CircuitOpen`] (fail-open
//!   mode turns those into misses and dropped writes, as any unavailability).
//!   One probe at a time, in the background, checks Redis every
//!   `probe_interval`; the first that succeeds closes it, and so does any
//!   call that was already in flight and succeeds.
//!
//! There is no half-open state letting a trickle of real calls through:
//! the probe is that trickle, and it costs no caller a deadline.
//!
//! This file keeps the state; `redis.rs` runs the calls and the probe.

use crate::error::{Error, ErrorKind, Result};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) struct Breaker {
    /// Failures in a row that open it; 0: never opens.
    threshold: u32,
    pub(crate) probe_interval: Duration,
    failures: AtomicU32,
    open: AtomicBool,
    /// True while a probe task runs (or is about to).
    probing: AtomicBool,
    opened_at: Mutex<Option<Instant>>,
    opens: AtomicU64,
    rejected: AtomicU64,
}

/// What the breaker did, for [`CacheStats`](crate::CacheStats).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BreakerStats {
    pub open: bool,
    pub opens: u64,
    pub rejected: u64,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, probe_interval: Duration) -> Self {
        Self {
            threshold,
            probe_interval,
            failures: AtomicU32::new(0),
            open: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            opened_at: Mutex::new(None),
            opens: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Acquire)
    }

    /// `Ok` when a call may go to Redis; the error to fail it with when open.
    #[inline]
    pub(crate) fn admit(&self) -> Result<()> {
        if self.is_open() {
            return Err(self.reject());
        }
        Ok(())
    }

    #[cold]
    fn reject(&self) -> Error {
        self.rejected.fetch_add(1, Relaxed);
        Error::new(
            ErrorKind::CircuitOpen,
            "Redis was unavailable on the last calls: failing fast until a probe answers",
        )
    }

    /// Counts a call's outcome; true when it opened the breaker, so that
    /// the caller starts the probe.
    #[inline]
    pub(crate) fn record<T>(&self, result: &Result<T>) -> bool {
        match result {
            // Not an answer from Redis, nor a failure of its.
            Err(e) if e.is_circuit_open() => false,
            Err(e) if e.is_unavailable() => self.failed(e),
            _ => {
                self.succeeded("a call succeeded");
                false
            }
        }
    }

    /// Redis answered: the count starts again, and an open breaker closes.
    #[inline]
    pub(crate) fn succeeded(&self, by: &'static str) {
        if self.failures.load(Relaxed) != 0 {
            self.failures.store(0, Relaxed);
        }
        if self.is_open() {
            self.close(by);
        }
    }

    #[cold]
    fn failed(&self, e: &Error) -> bool {
        if self.threshold == 0 {
            return false;
        }
        let failures = self.failures.fetch_add(1, Relaxed).saturating_add(1);
        if failures < self.threshold || self.open.swap(true, AcqRel) {
            return false;
        }
        self.opens.fetch_add(1, Relaxed);
        *self.lock_opened() = Some(Instant::now());
        tracing::warn!(failures, error = %e, "circuit_breaker_opened");
        true
    }

    #[cold]
    fn close(&self, by: &'static str) {
        if !self.open.swap(false, AcqRel) {
            return;
        }
        self.failures.store(0, Relaxed);
        let open_for = self.lock_opened().take().map(|t| t.elapsed());
        let rejected = self.rejected.load(Relaxed);
        tracing::info!(?open_for, by, rejected, "circuit_breaker_closed");
    }

    /// True when the caller is to run the probe: none runs yet. It calls
    /// [`probe_ended`](Self::probe_ended) when done, however it ends.
    pub(crate) fn start_probe(&self) -> bool {
        // A load first: every rejected call asks, and a swap would bounce
        // the cache line between cores while one probe runs.
        !self.probing.load(Relaxed) && !self.probing.swap(true, AcqRel)
    }

    pub(crate) fn probe_ended(&self) {
        self.probing.store(false, Release);
    }

    /// Ends a probe that saw the breaker close; true when it must go on
    /// instead: a failure reopened it meanwhile, and its call found this
    /// probe still running, so started none.
    pub(crate) fn probe_still_needed(&self) -> bool {
        self.probe_ended();
        self.is_open() && self.start_probe()
    }

    pub(crate) fn stats(&self) -> BreakerStats {
        BreakerStats {
            open: self.is_open(),
            opens: self.opens.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
        }
    }

    fn lock_opened(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // Nothing panics while it is held; if it did, the value is still valid.
        self.opened_at.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout() -> Result<()> {
        Err(Error::new(ErrorKind::Timeout, "test"))
    }

    #[test]
    fn opens_at_the_threshold_and_fails_fast_until_a_success() {
        let b = Breaker::new(2, Duration::from_millis(1));
        assert!(!b.record(&timeout()), "one failure of two opened it");
        assert!(b.admit().is_ok());
        assert!(
            b.record(&timeout()),
            "two failures in a row did not open it"
        );
        let e = b.admit().unwrap_err();
        assert!(e.is_circuit_open() && e.is_unavailable(), "{e}");
        assert!(!b.record(&timeout()), "opened twice");
        b.succeeded("probe");
        assert!(b.admit().is_ok());
        let stats = b.stats();
        assert!(
            !stats.open && stats.opens == 1 && stats.rejected == 1,
            "{stats:?}"
        );
    }

    #[test]
    fn other_outcomes_reset_the_count_and_a_zero_threshold_never_opens() {
        let b = Breaker::new(2, Duration::from_millis(1));
        b.record(&timeout());
        b.record(&Err::<(), _>(Error::codec("a foreign value")));
        assert!(!b.record(&timeout()), "failures not in a row opened it");
        let off = Breaker::new(0, Duration::from_millis(1));
        for _ in 0..10 {
            assert!(!off.record(&timeout()));
        }
        assert!(off.admit().is_ok());
    }

    #[test]
    fn one_probe_at_a_time() {
        let b = Breaker::new(1, Duration::from_millis(1));
        assert!(b.start_probe());
        assert!(!b.start_probe());
        b.probe_ended();
        assert!(b.start_probe());
    }
}
