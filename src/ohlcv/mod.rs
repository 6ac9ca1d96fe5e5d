//! `OhlcvCache`: candle series, per symbol and timeframe. Writes are
//! pipelined batches applied chunk-whole; every read is one round trip and
//! one snapshot, whatever the data's shape and the size of the keyspace.
//!
//! `cache.rs` holds the calls; `archived.rs` the zero-copy view of a read,
//! [`ArchivedBars`], over the runs of bars the backends hand back.

mod archived;
mod cache;

pub(crate) use archived::decode_newest;
pub use archived::ArchivedBars;
pub use cache::OhlcvCache;
