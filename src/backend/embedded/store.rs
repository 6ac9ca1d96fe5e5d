//! The embedded engine's map: keys to entries in lock shards, every byte it
//! holds charged against one capacity, and the eviction that keeps it there.
//!
//! A key's xxh3 hash, computed once per call, picks its shard (the top bits)
//! and finds it in the shard's table (which holds slab indices, so that the
//! policy's queues can name entries by index). Readers take the shard's read
//! lock for a lookup and a copy; writers take the write lock for their own
//! change only: eviction runs after it, one victim per lock, and what it
//! frees is dropped once no lock is held.
//!
//! The charge of an entry is its key, its value's heap bytes and
//! [`SLOT_BYTES`]; a shard's table, slab and queues are charged as they
//! grow. The sum is what the process holds for the cache, within the
//! allocator's rounding, and never exceeds the capacity for longer than the
//! write that crossed it.

use super::policy::Policy;
use super::series::Series;
use bytes::Bytes;
use hashbrown::HashTable;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::time::Instant;
use xxhash_rust::xxh3::xxh3_64;

/// Lock shards: at most 2^6, enough that two writers rarely meet; fewer
/// for small capacities, where each shard's tables would weigh too much.
const MAX_SHARD_BITS: u32 = 6;
const MIN_SHARD_BYTES: usize = 256 << 10;

/// Charged per entry on top of its key and value: its slab slot is charged
/// with the slab, this covers the key's and the value's allocation headers.
pub(super) const SLOT_BYTES: usize = 32;

/// A stored value.
pub(super) enum Value {
    Bytes(Bytes),
    /// Boxed: most entries are values, and every slot is as big as the
    /// biggest variant.
    Series(Box<Series>),
}

impl Value {
    fn heap_bytes(&self) -> usize {
        match self {
            Value::Bytes(b) => b.len() + super::series::OWNER_BYTES,
            Value::Series(s) => s.heap_bytes(),
        }
    }
}

/// A value and when it expires (`None`: never).
pub(super) struct Entry {
    pub value: Value,
    pub expires_at: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }
}

struct Slot {
    hash: u64,
    key: Box<str>,
    entry: Entry,
    charge: usize,
}

#[derive(Default)]
struct Shard {
    table: HashTable<u32>,
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    policy: Policy,
    /// The charges of its entries.
    entry_bytes: usize,
    /// What this shard charged to the store's `used`, `entries` and `small`.
    charged: usize,
    entries_charged: usize,
    small_charged: usize,
}

/// One shard, on cache lines of its own.
#[repr(align(128))]
struct Cell {
    lock: RwLock<Shard>,
    /// The shard's earliest expiry, in ms since the store's epoch
    /// (`u64::MAX`: none): lets eviction find expired entries first
    /// without taking every lock.
    next_expiry: AtomicU64,
}

pub(super) struct Store {
    cells: Box<[Cell]>,
    shard_bits: u32,
    capacity: usize,
    used: AtomicUsize,
    /// Of `used`, the entries' own charges (the rest: tables, slabs, queues).
    entries: AtomicUsize,
    /// Bytes of the entries in the policy's small queues, over all shards.
    small: AtomicUsize,
    cursor: AtomicUsize,
    epoch: Instant,
}

fn hash(key: &str) -> u64 {
    xxh3_64(key.as_bytes())
}

/// Shard bits for `capacity`: a shard per `MIN_SHARD_BYTES`, a power of two.
fn shard_bits(capacity: usize) -> u32 {
    (capacity / MIN_SHARD_BYTES)
        .max(1)
        .ilog2()
        .min(MAX_SHARD_BITS)
}

impl Store {
    pub(super) fn new(capacity: usize) -> Self {
        let shard_bits = shard_bits(capacity);
        let cells = (0..1usize << shard_bits).map(|_| Cell {
            lock: RwLock::default(),
            next_expiry: AtomicU64::new(u64::MAX),
        });
        Store {
            cells: cells.collect(),
            shard_bits,
            capacity,
            used: AtomicUsize::new(0),
            entries: AtomicUsize::new(0),
            small: AtomicUsize::new(0),
            cursor: AtomicUsize::new(0),
            epoch: Instant::now(),
        }
    }

    /// The bytes charged now.
    pub(super) fn used(&self) -> usize {
        self.used.load(Relaxed)
    }

    /// The bytes it may charge before evicting.
    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many lock shards it has: [`for_each_live`](Self::for_each_live)
    /// walks `0..shards()`.
    pub(super) fn shards(&self) -> usize {
        self.cells.len()
    }

    /// Calls `f` with the key, charge and expiry of every entry of shard
    /// `at` live at `now`, under that shard's read lock alone: readers go
    /// on, writers to that shard wait for one walk of it. Not a use.
    pub(super) fn for_each_live(
        &self,
        at: usize,
        now: Instant,
        mut f: impl FnMut(&str, usize, Option<Instant>),
    ) {
        let shard = read(&self.cells[at].lock);
        for i in shard.live_slots() {
            let slot = shard.slot(i);
            if slot.entry.live(now) {
                f(&slot.key, slot.charge, slot.entry.expires_at);
            }
        }
    }

    /// The largest charge one entry under `key` may take: the capacity,
    /// less what the shards' tables and queues hold now.
    pub(super) fn entry_limit(&self, key: &str) -> usize {
        let structures = self.used().saturating_sub(self.entries.load(Relaxed));
        self.capacity
            .saturating_sub(structures)
            .saturating_sub(key.len() + SLOT_BYTES)
    }

    fn shard_of(&self, hash: u64) -> usize {
        // `checked_shr`: with one shard, the shift would be by 64.
        hash.checked_shr(64 - self.shard_bits).unwrap_or(0) as usize
    }

    fn cell(&self, hash: u64) -> &Cell {
        &self.cells[self.shard_of(hash)]
    }

    /// True when `key` holds a live value. Not a use: as Redis' `EXISTS`,
    /// asking does not keep an entry.
    pub(super) fn contains(&self, key: &str) -> bool {
        self.lookup(key, false, |_| ()).is_some()
    }

    /// Runs `f` on the live value of `key`, under the shard's read lock,
    /// and counts the read as a use.
    #[inline]
    pub(super) fn read<T>(&self, key: &str, f: impl FnOnce(&Value) -> T) -> Option<T> {
        self.lookup(key, true, f)
    }

    /// The one lookup: `f` on the live value of `key`, under the shard's
    /// read lock; a use when `touch`. The clock is read only for an entry
    /// with a TTL.
    #[inline]
    fn lookup<T>(&self, key: &str, touch: bool, f: impl FnOnce(&Value) -> T) -> Option<T> {
        let hash = hash(key);
        let shard = read(&self.cell(hash).lock);
        let i = shard.find(hash, key)?;
        let slot = shard.slots[i as usize].as_ref()?;
        if slot.entry.expires_at.is_some() && !slot.entry.live(Instant::now()) {
            return None;
        }
        if touch {
            shard.policy.touch(i);
        }
        Some(f(&slot.entry.value))
    }

    /// Runs `f` on the live entry of `key` (`None` when absent or expired)
    /// under the shard's write lock; what `f` leaves is stored (`None`
    /// deletes). `f` must leave the entry as it found it when it fails, keep
    /// a value within [`entry_limit`](Self::entry_limit), and hand what it
    /// replaces back in its result, to be dropped once the lock is released.
    /// No `f` here panics; if one did, the key would hold an empty value (a
    /// codec error on read) until written again.
    pub(super) fn write<T, E>(
        &self,
        key: &str,
        f: impl FnOnce(&mut Option<Entry>) -> Result<T, E>,
    ) -> Result<T, E> {
        let hash = hash(key);
        let cell = self.cell(hash);
        let now = Instant::now();
        let mut garbage = None;
        let (result, kept) = {
            let mut shard = write(&cell.lock);
            let mut found = shard.find(hash, key);
            if let Some(i) = found.filter(|&i| !shard.entry(i).live(now)) {
                garbage = shard.remove(i);
                found = None;
            }
            let mut entry = found.and_then(|i| shard.take(i));
            let result = f(&mut entry);
            let kept = match (found, entry) {
                (Some(i), Some(e)) => Some(shard.put_back(i, e)),
                (Some(i), None) => {
                    garbage = garbage.or(shard.remove(i));
                    None
                }
                (None, Some(e)) => Some(shard.insert(hash, key, e)),
                (None, None) => None,
            };
            self.settle(cell, &mut shard);
            (result, kept)
        };
        drop(garbage);
        if self.used() > self.capacity {
            self.make_room(kept.map(|i| (self.shard_of(hash), i)));
        }
        result
    }

    /// Drops every key `doomed` picks; returns how many of them were live.
    pub(super) fn remove_where(&self, doomed: impl Fn(&str) -> bool) -> u64 {
        let now = Instant::now();
        let mut n = 0;
        for cell in self.cells.iter() {
            let mut shard = write(&cell.lock);
            let picked: Vec<u32> = shard
                .live_slots()
                .filter(|&i| doomed(&shard.slot(i).key))
                .collect();
            let mut freed = Vec::with_capacity(picked.len());
            for i in picked {
                n += u64::from(shard.entry(i).live(now));
                freed.push(shard.remove(i));
            }
            self.settle(cell, &mut shard);
            drop(shard);
            drop(freed);
        }
        n
    }

    /// Brings the store's `used` and the cell's expiry hint up to date
    /// with the shard.
    fn settle(&self, cell: &Cell, shard: &mut Shard) {
        if shard.table.is_empty() && shard.slots.capacity() > 0 {
            // Emptied (cleared, or evicted to the last entry): give back its
            // tables, which never shrink otherwise.
            shard.slots = Vec::new();
            shard.free = Vec::new();
            shard.table = HashTable::new();
            shard.policy = Policy::default();
        }
        let charged = shard.charge();
        adjust(
            &self.used,
            std::mem::replace(&mut shard.charged, charged),
            charged,
        );
        let entries = shard.entry_bytes;
        adjust(
            &self.entries,
            std::mem::replace(&mut shard.entries_charged, entries),
            entries,
        );
        let small = shard.policy.small_bytes();
        adjust(
            &self.small,
            std::mem::replace(&mut shard.small_charged, small),
            small,
        );
        let next = shard
            .policy
            .next_expiry()
            .map_or(u64::MAX, |t| self.millis(t));
        cell.next_expiry.store(next, Relaxed);
    }

    fn millis(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Evicts until the store is within capacity: expired entries first,
    /// wherever they are, then the policy's victims shard by shard in turn,
    /// from the small queues while they hold more than a tenth of the
    /// store (S3-FIFO), else from the main ones. `keep` (the entry just
    /// written) stays. Ends after two rounds over the shards with nothing
    /// to evict (one per queue).
    fn make_room(&self, keep: Option<(usize, u32)>) {
        let n = self.cells.len();
        let start = self.cursor.fetch_add(1, Relaxed);
        // Shards whose expiry hint led to nothing this call (a `keep`
        // that has expired): not asked again.
        let mut stale = 0u64;
        let (mut step, mut fruitless) = (0, 0);
        while self.used() > self.capacity && fruitless < 2 * n {
            let now = Instant::now();
            if let Some(at) = self.expired_shard(now, stale) {
                if !self.evict_at(at, keep, |p, k| p.expired(now, k)) {
                    stale |= 1 << at;
                }
                continue;
            }
            // Past one fruitless round, the other queue.
            let small_over = self.small.load(Relaxed) * 10 > self.used();
            let from_small = small_over == (fruitless < n);
            let at = (start + step) % n;
            step += 1;
            if self.evict_at(at, keep, |p, k| p.victim(k, from_small)) {
                fruitless = 0;
            } else {
                fruitless += 1;
            }
        }
    }

    /// Evicts what `pick` chooses in shard `at`, never `keep`; true when it
    /// chose something. The entry is dropped once the lock is released.
    fn evict_at(
        &self,
        at: usize,
        keep: Option<(usize, u32)>,
        pick: impl FnOnce(&mut Policy, Option<u32>) -> Option<u32>,
    ) -> bool {
        let cell = &self.cells[at];
        let keep = keep.filter(|(s, _)| *s == at).map(|(_, i)| i);
        let freed = {
            let mut shard = write(&cell.lock);
            let victim = pick(&mut shard.policy, keep);
            let freed = victim.and_then(|i| shard.remove(i));
            self.settle(cell, &mut shard);
            freed
        };
        freed.is_some()
    }

    /// A shard, not in the `stale` mask, whose index holds an entry due.
    fn expired_shard(&self, now: Instant, stale: u64) -> Option<usize> {
        let now = self.millis(now);
        let due =
            |(i, c): &(usize, &Cell)| stale & (1 << i) == 0 && c.next_expiry.load(Relaxed) < now;
        self.cells.iter().enumerate().find(due).map(|(i, _)| i)
    }
}

/// Moves `total` by a shard's change from `was` to `now`.
fn adjust(total: &AtomicUsize, was: usize, now: usize) {
    if now >= was {
        total.fetch_add(now - was, Relaxed);
    } else {
        total.fetch_sub(was - now, Relaxed);
    }
}

// A panic never happens while a lock is held, but if one did, the shard is
// still consistent: keep serving rather than poison every later call.
fn read(lock: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write(lock: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl Shard {
    #[inline]
    fn find(&self, hash: u64, key: &str) -> Option<u32> {
        let slots = &self.slots;
        let same = |&i: &u32| slots[i as usize].as_ref().is_some_and(|s| &*s.key == key);
        self.table.find(hash, same).copied()
    }

    fn slot(&self, i: u32) -> &Slot {
        self.slots[i as usize]
            .as_ref()
            .expect("indexed slots are occupied")
    }

    fn entry(&self, i: u32) -> &Entry {
        &self.slot(i).entry
    }

    fn live_slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.table.iter().copied()
    }

    /// Takes the entry out of slot `i`, to be put back or removed.
    fn take(&mut self, i: u32) -> Option<Entry> {
        let slot = self.slots[i as usize].as_mut()?;
        let placeholder = Entry {
            value: Value::Bytes(Bytes::new()),
            expires_at: slot.entry.expires_at,
        };
        Some(std::mem::replace(&mut slot.entry, placeholder))
    }

    fn put_back(&mut self, i: u32, entry: Entry) -> u32 {
        let slot = self.slots[i as usize].as_mut().expect("taken from here");
        let new = entry.expires_at;
        let was = std::mem::replace(&mut slot.charge, charge(&slot.key, &entry));
        slot.entry = entry;
        let bytes = slot.charge;
        self.entry_bytes = self.entry_bytes - was + bytes;
        self.policy.rewrite(i, bytes, new);
        i
    }

    fn insert(&mut self, hash: u64, key: &str, entry: Entry) -> u32 {
        let slot = Slot {
            hash,
            key: key.into(),
            charge: charge(key, &entry),
            entry,
        };
        let (bytes, expires_at) = (slot.charge, slot.entry.expires_at);
        self.entry_bytes += bytes;
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                (self.slots.len() - 1) as u32
            }
        };
        let slots = &self.slots;
        self.table.insert_unique(hash, i, |&j| {
            slots[j as usize].as_ref().map_or(0, |s| s.hash)
        });
        self.policy.admit(i, bytes, expires_at);
        i
    }

    /// Removes slot `i`; hands back its entry, to be dropped off the lock.
    fn remove(&mut self, i: u32) -> Option<Entry> {
        let slot = self.slots[i as usize].take()?;
        if let Ok(found) = self.table.find_entry(slot.hash, |&j| j == i) {
            found.remove();
        }
        self.policy.remove(i);
        self.entry_bytes -= slot.charge;
        self.free.push(i);
        Some(slot.entry)
    }

    /// Everything this shard holds: its entries and its structures.
    fn charge(&self) -> usize {
        self.entry_bytes
            + self.table.allocation_size()
            + self.slots.capacity() * std::mem::size_of::<Option<Slot>>()
            + self.free.capacity() * 4
            + self.policy.heap_bytes()
    }
}

fn charge(key: &str, entry: &Entry) -> usize {
    key.len() + SLOT_BYTES + entry.value.heap_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn put(store: &Store, key: &str, len: usize, ttl: Duration) {
        let value = Value::Bytes(Bytes::from(vec![0u8; len]));
        let entry = Entry {
            value,
            expires_at: Some(Instant::now() + ttl),
        };
        let old = store.write(key, |e| Ok::<_, ()>(e.replace(entry)));
        drop(old);
    }

    fn shard_of(store: &Store, key: &str) -> usize {
        store.shard_of(hash(key))
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_rewritten_past_its_first_expiry_does_not_pin_eviction_to_its_shard() {
        let store = Store::new(4 << 20);
        let long = Duration::from_secs(600);
        put(&store, "hot", 1_000, Duration::from_secs(1));
        let mut i = 0;
        while store.used() < (4 << 20) - 100_000 {
            put(&store, &format!("k{i}"), 1_000, long);
            i += 1;
        }
        // Rewritten before it expires, the hot key stays filed at its first
        // expiry; past it, it is rewritten with more and more bytes: each
        // write evicts, with the hot key kept.
        tokio::time::advance(Duration::from_millis(500)).await;
        put(&store, "hot", 1_000, Duration::from_secs(1));
        tokio::time::advance(Duration::from_millis(700)).await;
        for n in 0..300 {
            put(&store, "hot", 2_000 + n * 1_000, Duration::from_secs(1));
        }
        let hot = shard_of(&store, "hot");
        let mut left = vec![0usize; store.cells.len()];
        for k in (0..i)
            .map(|k| format!("k{k}"))
            .filter(|k| store.contains(k))
        {
            left[shard_of(&store, &k)] += 1;
        }
        let others = left.iter().enumerate().filter(|(s, _)| *s != hot);
        let fewest_elsewhere = others.map(|(_, n)| *n).min().unwrap();
        assert!(
            left[hot] * 2 >= fewest_elsewhere,
            "the hot key's shard kept {} entries, the others at least {fewest_elsewhere}",
            left[hot]
        );
        assert!(store.used() <= store.capacity);
    }

    #[test]
    fn an_emptied_store_gives_its_tables_back() {
        let store = Store::new(4 << 20);
        for i in 0..10_000 {
            put(&store, &format!("k{i}"), 10, Duration::from_secs(60));
        }
        let full = store.used();
        assert!(store.entry_limit("big") < store.capacity - 10_000 * 10);
        store.remove_where(|_| true);
        assert_eq!(store.used(), 0, "after {full} bytes");
        assert_eq!(store.entry_limit("big"), store.capacity - 3 - SLOT_BYTES);
    }
}
