//! Which entry of a shard goes when the engine needs room: expired entries
//! first, then S3-FIFO (Yang et al., SOSP 2023) without its ghost queue.
//!
//! New entries join a small probationary FIFO; one that is read or written
//! again before it reaches the small queue's head moves to the main FIFO,
//! where an entry used since its last turn goes round again (its use count,
//! at most 3, drops by one) and one unused is evicted. The small queue is
//! kept to a tenth of the shard's bytes, so a scan of one-off writes only
//! ever evicts other one-off writes, never the entries in use.
//!
//! An entry without a TTL is kept a turn longer than one with a TTL and the
//! same use: it is a setting someone wrote to stay, and a TTL'd value will
//! be written again. Nothing here allocates per call but the expiry index.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use tokio::time::Instant;

/// No slot: the end of a list.
const NIL: u32 = u32::MAX;
/// Uses an entry can bank; S3-FIFO's cap.
const MAX_USES: u8 = 3;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Queue {
    None,
    Small,
    Main,
}

/// One slot's place in the queues, and its use count.
struct Link {
    prev: u32,
    next: u32,
    queue: Queue,
    /// Bumped by readers under the shard's read lock, hence atomic.
    uses: AtomicU8,
    /// A turn in hand: entries without a TTL get one per admission.
    spare: bool,
    bytes: usize,
    /// When the entry expires, and when the index has it expire: never
    /// later. A write that pushes the expiry out leaves the index alone,
    /// and eviction re-files the entry when it finds it early.
    expires: Option<Instant>,
    indexed: Option<Instant>,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            prev: NIL,
            next: NIL,
            queue: Queue::None,
            uses: AtomicU8::new(0),
            spare: false,
            bytes: 0,
            expires: None,
            indexed: None,
        }
    }
}

struct List {
    head: u32,
    tail: u32,
    len: usize,
    bytes: usize,
}

/// The queues and the expiry index of one shard, over its slot indices.
pub(super) struct Policy {
    links: Vec<Link>,
    small: List,
    main: List,
    expiry: BTreeSet<(Instant, u32)>,
}

impl Default for Policy {
    fn default() -> Self {
        let empty = || List {
            head: NIL,
            tail: NIL,
            len: 0,
            bytes: 0,
        };
        Policy {
            links: Vec::new(),
            small: empty(),
            main: empty(),
            expiry: BTreeSet::new(),
        }
    }
}

/// Bytes one expiry index element costs, B-tree node share included
/// (measured by the engine's allocation test).
pub(super) const EXPIRY_NODE_BYTES: usize = 48;

impl Policy {
    /// Heap bytes of the queues and the index.
    pub(super) fn heap_bytes(&self) -> usize {
        self.links.capacity() * std::mem::size_of::<Link>() + self.expiry.len() * EXPIRY_NODE_BYTES
    }

    /// A new entry at `slot`: it joins the small queue's tail.
    pub(super) fn admit(&mut self, slot: u32, bytes: usize, expires_at: Option<Instant>) {
        let i = slot as usize;
        if self.links.len() <= i {
            self.links.resize_with(i + 1, Link::default);
        }
        let link = &mut self.links[i];
        link.uses.store(0, Relaxed);
        link.spare = expires_at.is_none();
        link.bytes = bytes;
        self.push(slot, Queue::Small);
        self.index(slot, expires_at);
    }

    /// Files `slot` in the expiry index at `at`.
    fn index(&mut self, slot: u32, at: Option<Instant>) {
        let link = &mut self.links[slot as usize];
        link.expires = at;
        if let Some(t) = std::mem::replace(&mut link.indexed, at) {
            self.expiry.remove(&(t, slot));
        }
        if let Some(t) = at {
            self.expiry.insert((t, slot));
        }
    }

    /// A read of `slot`: one more use, up to the cap. Loads first, so that
    /// readers of a hot entry do not all write its cache line.
    #[inline]
    pub(super) fn touch(&self, slot: u32) {
        if let Some(link) = self.links.get(slot as usize) {
            let n = link.uses.load(Relaxed);
            if n < MAX_USES {
                link.uses.store(n + 1, Relaxed);
            }
        }
    }

    /// A write over a live entry: a use, its new size and expiry. A later
    /// expiry is only noted (the write of every tick pushes it out): the
    /// index keeps the earlier one until eviction looks.
    pub(super) fn rewrite(&mut self, slot: u32, bytes: usize, expires_at: Option<Instant>) {
        self.touch(slot);
        let link = &mut self.links[slot as usize];
        let was = std::mem::replace(&mut link.bytes, bytes);
        let queue = link.queue;
        if expires_at.is_none() {
            link.spare = true;
        }
        let later = matches!((link.indexed, expires_at), (Some(i), Some(t)) if t >= i);
        if later {
            link.expires = expires_at;
        }
        let list = self.list(queue);
        list.bytes = list.bytes - was + bytes;
        if !later {
            self.index(slot, expires_at);
        }
    }

    /// Forgets `slot` (deleted or evicted).
    pub(super) fn remove(&mut self, slot: u32) {
        self.unlink(slot);
        self.index(slot, None);
    }

    /// The earliest expiry in the shard's index (maybe earlier than any
    /// entry's: see [`rewrite`](Self::rewrite)).
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.expiry.first().map(|(t, _)| *t)
    }

    /// Bytes of the entries in the small queue.
    pub(super) fn small_bytes(&self) -> usize {
        self.small.bytes
    }

    /// An expired slot to evict, never `keep`. Entries the index holds
    /// early (their expiry was pushed out) are re-filed on the way, `keep`
    /// too, so the shard's [`next_expiry`](Self::next_expiry) is right again.
    pub(super) fn expired(&mut self, now: Instant, keep: Option<u32>) -> Option<u32> {
        loop {
            let live = |s: u32| self.links[s as usize].expires.is_some_and(|t| t > now);
            let mut due = self.expiry.iter().take_while(|(t, _)| *t <= now);
            // A `keep` that has really expired stays filed: it is not ours to take.
            let &(_, slot) = due.find(|(_, s)| Some(*s) != keep || live(*s))?;
            match self.links[slot as usize].expires {
                // Filed early: re-filed where it belongs, later each time.
                Some(actual) if actual > now => self.index(slot, Some(actual)),
                _ => return Some(slot),
            }
        }
    }

    /// The slot S3-FIFO evicts next, never `keep`: the first unused entry
    /// from the head of the small queue (`from_small`) or the main one,
    /// promoting or passing over the used ones on the way. The store decides
    /// which queue, over all shards: S3-FIFO evicts from the small queue
    /// while it holds more than a tenth of the cache. `None` when that queue
    /// has nothing to give.
    pub(super) fn victim(&mut self, keep: Option<u32>, from_small: bool) -> Option<u32> {
        let queue = if from_small {
            Queue::Small
        } else {
            Queue::Main
        };
        // Every turn spends a use or a spare, or moves an entry out of the
        // small queue, so this ends within (MAX_USES + 2) turns per entry.
        let turns = (self.small.len + self.main.len) * (MAX_USES as usize + 2) + 1;
        for _ in 0..turns {
            let slot = self.list(queue).head;
            if slot == NIL || (Some(slot) == keep && self.list(queue).len == 1) {
                return None;
            }
            if Some(slot) == keep {
                self.requeue(slot, queue);
                continue;
            }
            let link = &mut self.links[slot as usize];
            let uses = link.uses.load(Relaxed);
            if uses > 0 {
                // Used: a small-queue entry is promoted (its count starts
                // over), a main one goes round with one use spent.
                let left = if queue == Queue::Small { 0 } else { uses - 1 };
                link.uses.store(left, Relaxed);
                self.requeue(slot, Queue::Main);
            } else if std::mem::take(&mut link.spare) {
                self.requeue(slot, queue);
            } else {
                return Some(slot);
            }
        }
        None
    }

    fn list(&mut self, queue: Queue) -> &mut List {
        match queue {
            Queue::Small => &mut self.small,
            _ => &mut self.main,
        }
    }

    fn requeue(&mut self, slot: u32, queue: Queue) {
        self.unlink(slot);
        self.push(slot, queue);
    }

    fn push(&mut self, slot: u32, queue: Queue) {
        let bytes = self.links[slot as usize].bytes;
        let list = self.list(queue);
        let tail = std::mem::replace(&mut list.tail, slot);
        if tail == NIL {
            list.head = slot;
        }
        list.bytes += bytes;
        list.len += 1;
        if tail != NIL {
            self.links[tail as usize].next = slot;
        }
        let link = &mut self.links[slot as usize];
        link.prev = tail;
        link.next = NIL;
        link.queue = queue;
    }

    fn unlink(&mut self, slot: u32) {
        let (prev, next, queue, bytes) = {
            let l = &self.links[slot as usize];
            (l.prev, l.next, l.queue, l.bytes)
        };
        if queue == Queue::None {
            return;
        }
        if prev == NIL {
            self.list(queue).head = next;
        } else {
            self.links[prev as usize].next = next;
        }
        if next == NIL {
            self.list(queue).tail = prev;
        } else {
            self.links[next as usize].prev = prev;
        }
        let list = self.list(queue);
        list.bytes -= bytes;
        list.len -= 1;
        let link = &mut self.links[slot as usize];
        link.prev = NIL;
        link.next = NIL;
        link.queue = Queue::None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_entries_are_promoted_not_evicted() {
        let now = Instant::now();
        let mut p = Policy::default();
        for i in 0..10 {
            p.admit(i, 100, Some(now + std::time::Duration::from_secs(60)));
        }
        p.touch(0);
        p.touch(5);
        let mut out = Vec::new();
        for _ in 0..8 {
            let v = p.victim(None, true).unwrap();
            p.remove(v);
            out.push(v);
        }
        assert_eq!(out, vec![1, 2, 3, 4, 6, 7, 8, 9]);
    }

    #[test]
    fn an_expiry_pushed_out_is_not_taken_for_expired() {
        let t = Instant::now();
        let at = |s: u64| Some(t + std::time::Duration::from_secs(s));
        let mut p = Policy::default();
        p.admit(0, 100, at(1));
        p.rewrite(0, 100, at(100));
        p.admit(1, 100, at(50));
        let now = t + std::time::Duration::from_secs(10);
        assert_eq!(p.expired(now, None), None, "0 was filed early, not expired");
        assert_eq!(p.next_expiry(), at(50), "re-filed at its real expiry");
        let later = t + std::time::Duration::from_secs(101);
        assert_eq!(p.expired(later, None), Some(1));
        p.remove(1);
        assert_eq!(p.expired(later, None), Some(0));
    }

    #[test]
    fn the_entry_being_written_is_re_filed_but_never_taken() {
        let t = Instant::now();
        let at = |s: u64| Some(t + std::time::Duration::from_secs(s));
        let mut p = Policy::default();
        p.admit(0, 100, at(1));
        p.rewrite(0, 100, at(100));
        let now = t + std::time::Duration::from_secs(10);
        assert_eq!(p.expired(now, Some(0)), None);
        assert_eq!(p.next_expiry(), at(100), "the hint no longer points here");
        let much_later = t + std::time::Duration::from_secs(200);
        assert_eq!(p.expired(much_later, Some(0)), None);
        assert_eq!(p.victim(Some(0), true), None, "alone: nothing to evict");
    }
}
