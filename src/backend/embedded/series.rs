//! A series in the embedded engine: chunks of consecutive archived bars,
//! oldest first, each its own buffer.
//!
//! The newest bar sits alone in the last chunk, so the in-progress candle
//! rewrites 48 bytes; appends repack the open chunk below it; bars among
//! stored ones rewrite only the chunks they fall in. A read hands out
//! slices of whole chunks (a reference count each), never a copy per bar:
//! a chunk is never changed once built, so a reader holding one sees the
//! series as it was when it read. Every chunk is a buffer of its own, sized
//! to its bars, so what the engine charges is what the process holds.

use crate::codec::{archived_bar_timestamp, ARCHIVED_BAR_LEN as W};
use bytes::Bytes;
use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::ops::Range;

/// Bars per full chunk: 6 KiB, so a rewrite of the open chunk stays a
/// small copy, and a read of 100 bars takes 2 or 3 chunks (measured: 64
/// bars read no faster, and their reads take one more chunk).
pub(super) const CHUNK_BARS: usize = 128;

/// What `Bytes::from_owner` allocates beside each buffer (its reference
/// count, drop function and the `Vec`), rounded up.
pub(super) const OWNER_BYTES: usize = 48;

/// Bars in a buffer of their own, never changed once built.
pub(super) struct Chunk {
    first: i64,
    bars: Bytes,
}

impl Chunk {
    /// Copies `bars` (whole archived bars, sorted) into a chunk.
    pub(super) fn new(bars: &[u8]) -> Self {
        Chunk {
            first: timestamp(bars),
            bars: Bytes::from_owner(bars.to_vec()),
        }
    }

    fn len(&self) -> usize {
        self.bars.len() / W
    }

    fn heap_bytes(&self) -> usize {
        self.bars.len() + OWNER_BYTES
    }
}

/// The bars of one series, by open time.
#[derive(Default)]
pub(super) struct Series {
    chunks: VecDeque<Chunk>,
    len: usize,
    /// Bytes of the chunks' buffers.
    buffers: usize,
}

/// A series write that would take more than its limit: its size in bytes.
pub(super) struct TooBig(pub usize);

impl Series {
    /// What the series holds on the heap.
    pub(super) fn heap_bytes(&self) -> usize {
        self.buffers + self.chunks.capacity() * std::mem::size_of::<Chunk>()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bars held.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The newest bar, copied out.
    pub(super) fn latest(&self) -> Option<[u8; W]> {
        let bars = &self.chunks.back()?.bars;
        bars[bars.len() - W..].try_into().ok()
    }

    /// The newest `n` bars as runs (oldest first within a run), newest run first.
    pub(super) fn newest(&self, n: usize) -> Vec<Bytes> {
        // The tail, the open chunk, then full ones: one allocation, no growth.
        let mut runs = Vec::with_capacity(self.chunks.len().min(2 + n.div_ceil(CHUNK_BARS)));
        let mut left = n;
        for chunk in self.chunks.iter().rev() {
            if left == 0 {
                break;
            }
            let take = chunk.len().min(left);
            runs.push(chunk.bars.slice((chunk.len() - take) * W..));
            left -= take;
        }
        runs
    }

    /// The bars with `from <= ts <= to`, at most `limit`, as runs oldest first.
    pub(super) fn range(&self, from: i64, to: i64, limit: usize) -> Vec<Bytes> {
        let mut runs = Vec::new();
        let mut left = limit;
        let start = self.chunks.partition_point(|c| c.first <= from);
        for chunk in self.chunks.range(start.saturating_sub(1)..) {
            if left == 0 || chunk.first > to {
                break;
            }
            let a = bars_before(&chunk.bars, from);
            let b = bars_before(&chunk.bars, to.saturating_add(1)).min(a.saturating_add(left));
            if b > a {
                runs.push(chunk.bars.slice(a * W..b * W));
                left -= b - a;
            }
        }
        runs
    }

    /// The in-progress candle's path: when `fresh` (one bar, built before
    /// the caller took its lock) has the newest bar's open time and no cap
    /// is to apply, it takes the newest bar's place, and the old one comes
    /// back to be dropped once the lock is released. Otherwise `fresh`
    /// comes back, and the caller upserts.
    pub(super) fn swap_latest(
        &mut self,
        fresh: Chunk,
        max_len: Option<NonZeroUsize>,
    ) -> Result<Chunk, Chunk> {
        let within_cap = max_len.is_none_or(|m| self.len <= m.get());
        match self.chunks.back_mut() {
            Some(tail)
                if within_cap
                    && tail.len() == 1
                    && fresh.len() == 1
                    && tail.first == fresh.first =>
            {
                Ok(std::mem::replace(tail, fresh))
            }
            _ => Err(fresh),
        }
    }

    /// Inserts or replaces `bars` (archived, sorted, one per time in
    /// `times`) and trims the oldest past `max_len`. Applied whole or not at
    /// all: when the series would hold more than `limit` bytes, it is left
    /// as it was. Hands back the chunks it replaced, to be dropped once the
    /// caller's lock is released.
    pub(super) fn upsert(
        &mut self,
        bars: &[u8],
        times: &[i64],
        max_len: Option<NonZeroUsize>,
        limit: usize,
    ) -> Result<Vec<Chunk>, TooBig> {
        let saved = (self.len, self.buffers, self.chunks.capacity());
        let region = self.region(times);
        let merged = self.merged(region.clone(), bars, times);
        let at_end = region.end == self.chunks.len();
        let mut replaced: Vec<Chunk> = self.chunks.drain(region.clone()).collect();
        let fresh = rechunk(&merged, at_end);
        let inserted = fresh.len();
        for (i, chunk) in fresh.into_iter().enumerate() {
            self.chunks.insert(region.start + i, chunk);
        }
        self.len = self.len + merged.len() / W - replaced.iter().map(Chunk::len).sum::<usize>();
        self.buffers = self.buffers
            + heap_of(self.chunks.range(region.start..region.start + inserted))
            - heap_of(replaced.iter());
        let trimmed = self.trim(max_len);
        let size = self.heap_bytes();
        if size > limit {
            self.untrim(trimmed);
            self.chunks.drain(region.start..region.start + inserted);
            for (i, chunk) in replaced.into_iter().enumerate() {
                self.chunks.insert(region.start + i, chunk);
            }
            let capacity;
            (self.len, self.buffers, capacity) = saved;
            self.chunks.shrink_to(capacity);
            return Err(TooBig(size));
        }
        replaced.extend(trimmed.chunks);
        Ok(replaced)
    }

    /// The chunks a batch spanning `times` rewrites: those its bars fall
    /// in, and the open chunk and the tail when it adds newer bars (they
    /// are repacked so that the newest bar stays alone).
    fn region(&self, times: &[i64]) -> Range<usize> {
        let n = self.chunks.len();
        let (Some(&lo), Some(&hi)) = (times.first(), times.last()) else {
            return n..n;
        };
        if n == 0 {
            return 0..0;
        }
        let find = |ts: i64| {
            self.chunks
                .partition_point(|c| c.first <= ts)
                .saturating_sub(1)
        };
        let mut start = find(lo);
        let end = find(hi) + 1;
        let newest = self
            .latest()
            .map_or(i64::MIN, |b| archived_bar_timestamp(&b));
        if end == n && hi > newest {
            start = start.min(n.saturating_sub(2));
        }
        start..end
    }

    /// The bars of `region` with the batch merged in (the batch wins on a
    /// shared open time), back to back.
    fn merged(&self, region: Range<usize>, bars: &[u8], times: &[i64]) -> Vec<u8> {
        let old_len: usize = self
            .chunks
            .range(region.clone())
            .map(|c| c.bars.len())
            .sum();
        let mut out = Vec::with_capacity(old_len + bars.len());
        let mut new = times.iter().zip(bars.chunks_exact(W)).peekable();
        for chunk in self.chunks.range(region) {
            for bar in chunk.bars.chunks_exact(W) {
                let ts = timestamp(bar);
                while let Some((_, b)) = new.next_if(|(t, _)| **t < ts) {
                    out.extend_from_slice(b);
                }
                if new
                    .next_if(|(t, _)| **t == ts)
                    .map(|(_, b)| out.extend_from_slice(b))
                    .is_none()
                {
                    out.extend_from_slice(bar);
                }
            }
        }
        new.for_each(|(_, b)| out.extend_from_slice(b));
        out
    }

    /// Drops the oldest bars past `max_len`; returns what it took, to put back.
    fn trim(&mut self, max_len: Option<NonZeroUsize>) -> Trimmed {
        let mut trimmed = Trimmed {
            chunks: Vec::new(),
            partial: false,
        };
        let Some(max) = max_len.map(NonZeroUsize::get) else {
            return trimmed;
        };
        while self.len > max {
            let Some(front) = self.chunks.pop_front() else {
                break;
            };
            self.len -= front.len();
            self.buffers -= front.heap_bytes();
            if self.len < max {
                // Keep the newest part of it, in a buffer of its own size.
                let keep = Chunk::new(&front.bars[(front.len() - (max - self.len)) * W..]);
                self.len += keep.len();
                self.buffers += keep.heap_bytes();
                self.chunks.push_front(keep);
                trimmed.partial = true;
            }
            trimmed.chunks.push(front);
        }
        trimmed
    }

    /// Undoes [`trim`](Self::trim); the caller restores the counts.
    fn untrim(&mut self, trimmed: Trimmed) {
        if trimmed.partial {
            self.chunks.pop_front();
        }
        for chunk in trimmed.chunks.into_iter().rev() {
            self.chunks.push_front(chunk);
        }
    }
}

/// What a trim took: whole chunks, oldest first, and whether the last of
/// them was cut rather than dropped (its newest bars stayed, in a new chunk).
struct Trimmed {
    chunks: Vec<Chunk>,
    partial: bool,
}

/// Cuts merged bars into chunks. At the end of the series the newest bar
/// goes alone and the rest fill chunks from the oldest; elsewhere they are
/// split evenly, so nothing beyond the region moves.
fn rechunk(merged: &[u8], at_end: bool) -> Vec<Chunk> {
    let n = merged.len() / W;
    if n == 0 {
        return Vec::new();
    }
    if at_end {
        let body = &merged[..(n - 1) * W];
        let mut chunks: Vec<Chunk> = body.chunks(CHUNK_BARS * W).map(Chunk::new).collect();
        chunks.push(Chunk::new(&merged[(n - 1) * W..]));
        return chunks;
    }
    let pieces = n.div_ceil(CHUNK_BARS);
    let mut chunks = Vec::with_capacity(pieces);
    let mut start = 0;
    for i in 0..pieces {
        let end = n * (i + 1) / pieces;
        chunks.push(Chunk::new(&merged[start * W..end * W]));
        start = end;
    }
    chunks
}

fn heap_of<'a>(chunks: impl Iterator<Item = &'a Chunk>) -> usize {
    chunks.map(Chunk::heap_bytes).sum()
}

/// The open time of the first bar of `bars`.
fn timestamp(bars: &[u8]) -> i64 {
    bars.first_chunk::<W>()
        .map_or(i64::MIN, archived_bar_timestamp)
}

/// How many bars of a chunk open before `ts`.
fn bars_before(bars: &[u8], ts: i64) -> usize {
    let (whole, _) = bars.as_chunks::<W>();
    whole.partition_point(|b| archived_bar_timestamp(b) < ts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::archive_bars;
    use crate::model::Bar;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Archived bars at `times`, closing at `close`.
    fn batch(times: &[i64], close: f64) -> Vec<u8> {
        let bars: Vec<Bar> = times
            .iter()
            .map(|&t| Bar::new(t, close, close + 1.0, close - 1.0, close, 1.0))
            .collect();
        archive_bars(&bars).to_vec()
    }

    fn flatten(runs: &[Bytes]) -> Vec<u8> {
        runs.iter().flat_map(|r| r.iter().copied()).collect()
    }

    /// The layout holds: sorted, the newest bar alone, chunks within size,
    /// the counts right.
    fn check_layout(s: &Series) {
        let all: Vec<u8> = s
            .chunks
            .iter()
            .flat_map(|c| c.bars.iter().copied())
            .collect();
        let times: Vec<i64> = all.chunks_exact(W).map(timestamp).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "out of order");
        assert_eq!(times.len(), s.len);
        assert_eq!(s.buffers, heap_of(s.chunks.iter()));
        assert!(s.chunks.iter().all(|c| (1..=CHUNK_BARS).contains(&c.len())));
        assert!(s.chunks.iter().all(|c| c.first == timestamp(&c.bars)));
        if s.chunks.len() > 1 {
            assert_eq!(s.chunks.back().map(Chunk::len), Some(1), "newest not alone");
        }
    }

    proptest! {
        #[test]
        fn upserts_match_a_map_and_keep_the_layout(
            writes in prop::collection::vec(
                (prop::collection::btree_set(0i64..3_000, 1..300), 0.0f64..100.0, prop::option::of(1usize..700)),
                1..12,
            ),
        ) {
            let mut s = Series::default();
            let mut model: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
            for (times, close, cap) in writes {
                let times: Vec<i64> = times.into_iter().collect();
                let bars = batch(&times, close);
                let cap = cap.and_then(NonZeroUsize::new);
                s.upsert(&bars, &times, cap, usize::MAX).ok().expect("no limit");
                for (t, b) in times.iter().zip(bars.chunks_exact(W)) {
                    model.insert(*t, b.to_vec());
                }
                if let Some(cap) = cap {
                    while model.len() > cap.get() {
                        model.pop_first();
                    }
                }
                check_layout(&s);
                let want: Vec<u8> = model.values().flatten().copied().collect();
                let newest: Vec<Bytes> = s.newest(model.len()).into_iter().rev().collect();
                prop_assert_eq!(flatten(&newest), want.clone());
                let range: Vec<u8> = model.range(500..=1_500).flat_map(|(_, b)| b.clone()).collect();
                prop_assert_eq!(flatten(&s.range(500, 1_500, usize::MAX)), range);
            }
        }

        #[test]
        fn a_write_over_the_limit_leaves_the_series_as_it_was(
            first in prop::collection::btree_set(0i64..2_000, 1..400),
            second in prop::collection::btree_set(0i64..2_000, 1..400),
            cap in prop::option::of(1usize..300),
        ) {
            let mut s = Series::default();
            let first: Vec<i64> = first.into_iter().collect();
            s.upsert(&batch(&first, 1.0), &first, None, usize::MAX).ok().expect("no limit");
            let before = flatten(&s.newest(usize::MAX));
            let size = s.heap_bytes();
            let second: Vec<i64> = second.into_iter().collect();
            let cap = cap.and_then(NonZeroUsize::new);
            if s.upsert(&batch(&second, 2.0), &second, cap, 0).is_ok() {
                prop_assert!(false, "a write within a zero limit");
            }
            check_layout(&s);
            prop_assert_eq!(flatten(&s.newest(usize::MAX)), before);
            prop_assert_eq!(s.heap_bytes(), size);
        }
    }
}
