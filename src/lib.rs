//! # iftb-cache
//!
//! A low-latency cache of market data and LLM results for trading strategies,
//! in Redis (shared by every process of a trading system) or in-process (the
//! embedded backend, the default when no Redis is configured). The Rust
//! successor of the IFTB bot's Python `iftb.data.cache`, whose names it keeps.
//!
//! ```no_run
//! use iftb_cache::{Bar, CacheConfig, CacheManager, Timeframe};
//! # #[tokio::main] async fn main() -> iftb_cache::Result<()> {
//! let cache = CacheManager::connect(CacheConfig::from_env()?).await?; // REDIS_URL, else embedded
//! let bars = vec![Bar::new(1_705_478_400_000, 45_000.0, 45_500.0, 44_800.0, 45_200.0, 1_234.5)];
//! cache.ohlcv().set_bars("BTCUSDT", Timeframe::H1, &bars).await?;
//! let newest = cache.ohlcv().get_bars("BTCUSDT", Timeframe::H1, 100).await?;
//! # Ok(()) }
//! ```
//!
//! ## Layout
//!
//! Data flows one way: caller → typed cache → shared read/write path → key
//! layout + codec → backend. Imports run one way too, each module using only
//! those above it in this table:
//!
//! | module | what it holds |
//! |---|---|
//! | `error` | [`Error`] and [`ErrorKind`] |
//! | `limits` | [`MAX_TTL`], [`MAX_VALUE_LEN`], [`MAX_KEY_LEN`], [`MAX_BARS_PER_READ`], [`MAX_SYMBOLS_PER_CALL`] and their checks |
//! | `model/` | [`Bar`], [`Ticker`], [`FearGreed`], funding rates, [`Timeframe`], symbols: every rule of what a valid record is |
//! | `keys` | the key layout under the namespace, hash-tagged per series, and [`KeyType`]: a key read back into what it holds |
//! | [`codec`] | the 4-byte header and validated rkyv access of every stored value |
//! | `config` | [`CacheConfig`]: backend choice (embedded, a Redis server, a Cluster, Sentinel), namespace, TTL table, timeouts, fail-open, near cache |
//! | `options` | [`WriteOptions`], [`BarWriteOptions`], [`ComputeOptions`]: per-call options of the `*_with` calls |
//! | `flight` | single flight: one computation of `get_or_compute`, one fetch of a near-cache miss, shared by the callers that wait for it |
//! | `backend/` | the storage vocabulary; `redis.rs` (with `series.rs`, the series layout; `connection.rs`, one server, a Cluster or Sentinel's primary, with `cluster.rs` and `sentinel.rs`; `near.rs`, the near cache, kept told by `tracking.rs`) and `embedded/` (store, eviction policy, series chunks) implement it |
//! | `stats` | per-operation counters and latency histograms ([`CacheStats`], [`Op`]), striped per thread; the `metrics` facade export |
//! | `memory_report` | [`MemoryReport`], [`TypeUsage`]: what the namespace's keys take by [`KeyType`] (keys, bytes, mean TTL), walked within a time bound |
//! | `shared` | what one manager's typed caches share: the one read path and one write path, fail-open rules |
//! | `client` | [`RedisClient`]: the original's low-level get/set/delete/exists/JSON, on either backend |
//! | `ohlcv/` | [`OhlcvCache`]: candle series, a sorted set of bar runs and a head each; [`ArchivedBars`], the zero-copy view of a read |
//! | `market` | [`MarketDataCache`]: tickers, funding rates, Fear & Greed; batch reads in one MGET |
//! | `llm/` | [`LlmCache`]: LLM results as JSON, LZ4 over 10 KB; single-flight `get_or_compute` |
//! | `inspect` | [`Inspection`]: what one key holds, decoded for a person (`iftb-cache inspect`) |
//! | `manager` | [`CacheManager`]: connects, hands out the typed caches, health, clearing |
//!
//! ## Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `tls` | no | `rediss://` URLs, through rustls |
//! | `metrics` | no | every counter of [`CacheManager::stats`] through the [`metrics`](https://docs.rs/metrics) facade, for any exporter |
//! | `cli` | no | the `iftb-cache` command-line tool: `inspect`, `bars`, `load`, `stats`, `clear` |
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod backend;
mod client;
pub mod codec;
mod config;
mod error;
mod flight;
mod inspect;
mod keys;
mod limits;
mod llm;
mod manager;
mod market;
mod memory_report;
mod model;
mod ohlcv;
mod options;
mod shared;
mod stats;

pub use client::RedisClient;
pub use config::{CacheConfig, CacheConfigBuilder, DataType, MIN_NEAR_CACHE_BYTES};
pub use error::{Error, ErrorKind, Result};
pub use inspect::Inspection;
pub use keys::KeyType;
pub use limits::{
    MAX_BARS_PER_READ, MAX_KEY_LEN, MAX_REPORT_LIMIT, MAX_SYMBOLS_PER_CALL, MAX_TIMEOUT, MAX_TTL,
    MAX_VALUE_LEN,
};
pub use llm::{LlmCache, COMPRESS_THRESHOLD};
pub use manager::CacheManager;
pub use market::MarketDataCache;
pub use memory_report::{MemoryReport, TypeUsage, DEFAULT_REPORT_LIMIT};
pub use model::{
    validate_symbol, ArchivedBar, ArchivedFearGreed, ArchivedTicker, Bar, FearGreed,
    FearGreedClass, Ticker, Timeframe, MAX_SYMBOL_LEN, MAX_TIMESTAMP_MS,
};
pub use ohlcv::{ArchivedBars, OhlcvCache};
pub use options::{BarWriteOptions, ComputeOptions, WriteOptions};
pub use stats::{CacheStats, LatencyStats, Op, OpStats};

/// The README's examples, compiled and run as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
