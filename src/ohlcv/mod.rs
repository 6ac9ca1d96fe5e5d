//! `OhlcvCache`: candle series, one sorted set per symbol and timeframe, scored
//! by open time. Writes are pipelined batches applied chunk-whole; every read
//! is one round trip, whatever the size of the keyspace.
//!
//! `cache.rs` holds the calls; `archived.rs` the zero-copy view of a read,
//! [`ArchivedBars`], over the runs of records the backends hand back.

mod archived;
mod cache;

pub use archived::ArchivedBars;
pub use cache::OhlcvCache;
