//! `LlmCache`: LLM analysis results as JSON behind the codec header, LZ4
//! compressed over [`COMPRESS_THRESHOLD`], and a loader that pays for one LLM
//! call per input however many callers ask at once.
//!
//! ```text
//! Kind::Json            | JSON text |
//! Kind::JsonCompressed  | JSON length: u32 LE | LZ4 block of the JSON |
//! ```
//!
//! Single flight (the crate's `flight` module): the callers of one process
//! that miss on one key share one `tokio::sync::OnceCell`; the first runs
//! the computation, the others await its encoded result (or its error). If that caller is cancelled, the next
//! waiter runs its own computation instead. Across processes, an optional lock
//! (`SET NX PX`, released by compare-and-delete) at `<value key>:lock` makes
//! the other processes poll for the value; a lock whose holder died expires
//! after its lease, and a waiter then takes it and computes.

mod cache;
mod json;

pub use cache::LlmCache;
pub(crate) use json::decode_json;
pub use json::COMPRESS_THRESHOLD;
