//! The one reference model of an OHLCV series, shared by the `cache_ops`
//! fuzz target (through `model.rs`) and the integration tests (which include
//! this file by `#[path]`, as `support::series`): plain bars by
//! open time, upserted, capped to the newest, read newest- or oldest-first.

use iftb_cache::Bar;
use std::collections::BTreeMap;

/// Every field of a bar, as bits: NaN and -0.0 compare exactly.
pub fn bar_bits(b: &Bar) -> [u64; 6] {
    [
        b.timestamp as u64,
        b.open.to_bits(),
        b.high.to_bits(),
        b.low.to_bits(),
        b.close.to_bits(),
        b.volume.to_bits(),
    ]
}

/// One series: a map from open time to bar.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series(pub BTreeMap<i64, Bar>);

impl Series {
    /// Writes `bars`, each replacing the bar of its timestamp, then keeps
    /// only the newest `cap` bars.
    pub fn upsert(&mut self, bars: &[Bar], cap: Option<usize>) {
        for b in bars {
            self.0.insert(b.timestamp, *b);
        }
        while cap.is_some_and(|c| self.0.len() > c) {
            self.0.pop_first();
        }
    }

    /// Up to `limit` bars, newest first.
    pub fn newest(&self, limit: usize) -> Vec<Bar> {
        self.0.values().rev().take(limit).copied().collect()
    }

    /// The bars opened in `from..=to`, oldest first (none when `from > to`).
    pub fn range(&self, from: i64, to: i64) -> Vec<Bar> {
        if from > to {
            return Vec::new();
        }
        self.0.range(from..=to).map(|(_, b)| *b).collect()
    }

    /// The newest bar.
    pub fn latest(&self) -> Option<Bar> {
        self.0.values().next_back().copied()
    }
}
