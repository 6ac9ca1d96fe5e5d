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
//! Data flows one way: caller → typed cache → key layout + codec → backend.
//!
//! | module | what it holds |
//! |---|---|
//! | `manager` | [`CacheManager`]: connects, hands out the typed caches, health, clearing |
//! | `ohlcv` | [`OhlcvCache`]: candle series, one sorted set each, of blocks scored by open time |
//! | `market` | [`MarketDataCache`]: tickers, funding rates, Fear & Greed; batch reads in one MGET |
//! | `llm` | [`LlmCache`]: LLM results as JSON, LZ4 over 10 KB; single-flight `get_or_compute` |
//! | `client` | [`RedisClient`]: the original's low-level get/set/delete/exists/JSON |
//! | `config` | [`CacheConfig`]: backend choice, namespace, TTL table, timeouts, fail-open |
//! | `model` | [`Bar`], [`Ticker`], [`FearGreed`], [`Timeframe`], symbol validation |
//! | [`codec`] | the 4-byte header and validated rkyv access of every stored value |
//! | `keys` | the key layout under the namespace, hash-tagged per series |
//! | `backend` | the storage vocabulary; `redis.rs` (with `blocks.rs`, the series layout) and `memory.rs` implement it |
//! | `stats`, `error` | counters; [`Error`] and [`ErrorKind`] |
//!
//! ## Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `tls` | no | `rediss://` URLs, through rustls |
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod backend;
mod client;
pub mod codec;
mod config;
mod error;
mod keys;
mod llm;
mod manager;
mod market;
mod model;
mod ohlcv;
mod stats;

pub use client::{RedisClient, MAX_TTL, MAX_VALUE_LEN};
pub use config::{CacheConfig, CacheConfigBuilder, DataType};
pub use error::{Error, ErrorKind, Result};
pub use keys::MAX_KEY_LEN;
pub use llm::{ComputeOptions, LlmCache, COMPRESS_THRESHOLD};
pub use manager::CacheManager;
pub use market::{check_fear_greed, MarketDataCache, MAX_SYMBOLS_PER_CALL};
pub use model::{
    validate_symbol, ArchivedBar, ArchivedFearGreed, ArchivedTicker, Bar, FearGreed,
    FearGreedClass, Ticker, Timeframe, MAX_SYMBOL_LEN, MAX_TIMESTAMP_MS,
};
pub use ohlcv::{ArchivedBars, BarWriteOptions, OhlcvCache, MAX_BARS_PER_READ};
pub use stats::CacheStats;

/// The README's examples, compiled and run as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
