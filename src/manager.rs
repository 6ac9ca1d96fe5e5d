//! `CacheManager`: the entry point, owning the backend and handing out the
//! typed caches.

use crate::backend::{Backend, EmbeddedBackend, RedisBackend};
use crate::client::RedisClient;
use crate::config::CacheConfig;
use crate::error::Result;
use crate::inspect::Inspection;
use crate::llm::LlmCache;
use crate::market::MarketDataCache;
use crate::memory_report::{self, MemoryReport, DEFAULT_REPORT_LIMIT};
use crate::ohlcv::OhlcvCache;
use crate::shared::Shared;
use crate::stats::{CacheStats, Op};
use std::sync::Arc;
use std::time::Duration;

/// The entry point: connects the configured backend and hands out the typed
/// caches. Cheap to clone; clones share one connection.
///
/// # Examples
///
/// ```
/// use iftb_cache::{Bar, CacheConfig, CacheManager, Timeframe};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> iftb_cache::Result<()> {
/// let cache = CacheManager::connect(CacheConfig::embedded()).await?;
/// let bars = [Bar::new(1_705_478_400_000, 1.0, 2.0, 0.5, 1.5, 10.0)];
/// cache.ohlcv().set_bars("BTCUSDT", Timeframe::H1, &bars).await?;
/// let latest = cache.ohlcv().get_latest_bar("BTCUSDT", Timeframe::H1).await?;
/// assert_eq!(latest, Some(bars[0]));
/// assert!(cache.health_check().await);
/// cache.disconnect().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct CacheManager {
    shared: Arc<Shared>,
}

impl CacheManager {
    /// Connects the backend `config` selects: Redis when a URL or host is set,
    /// the embedded backend otherwise. Emits `redis_connected` or
    /// `redis_connection_failed`. With a [near
    /// cache](crate::CacheConfigBuilder::near_cache), it then waits up to the
    /// connect timeout for tracking to be on (`stats().near_serving`); past
    /// that, it returns anyway, reads go to Redis, and the near cache serves
    /// once tracking is on.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Connection`](crate::ErrorKind::Connection),
    /// [`Timeout`](crate::ErrorKind::Timeout) or
    /// [`Authentication`](crate::ErrorKind::Authentication) when Redis cannot be
    /// reached or refuses the credentials within the connect timeout.
    pub async fn connect(config: CacheConfig) -> Result<Self> {
        let where_ = config.backend_description();
        let backend = if config.is_redis() {
            match RedisBackend::connect(&config).await {
                Ok(b) => {
                    tracing::info!(backend = %where_, "redis_connected");
                    Backend::Redis(b)
                }
                Err(e) => {
                    tracing::error!(backend = %where_, error = %e, "redis_connection_failed");
                    return Err(e);
                }
            }
        } else {
            tracing::info!(backend = %where_, "cache backend: embedded, in-process (no REDIS_URL or REDIS_HOST set)");
            Backend::Embedded(EmbeddedBackend::new(config.embedded_capacity().get()))
        };
        let shared = Arc::new(Shared::new(backend, config));
        Ok(Self { shared })
    }

    /// The OHLCV bar cache.
    pub fn ohlcv(&self) -> OhlcvCache<'_> {
        OhlcvCache::new(&self.shared)
    }

    /// The market data cache: tickers, funding rates, Fear & Greed.
    pub fn market(&self) -> MarketDataCache<'_> {
        MarketDataCache::new(&self.shared)
    }

    /// The LLM analysis cache, with its single-flight loader.
    pub fn llm(&self) -> LlmCache<'_> {
        LlmCache::new(&self.shared)
    }

    /// The low-level client, for keys of your own under `{namespace}:kv:`, on
    /// whichever backend is configured (the embedded one included).
    pub fn client(&self) -> RedisClient<'_> {
        RedisClient::new(&self.shared)
    }

    /// The configuration this manager was connected with.
    pub fn config(&self) -> &CacheConfig {
        &self.shared.config
    }

    /// `"embedded"`, `"redis"` (one server), `"redis-cluster"` or `"redis-sentinel"`.
    pub fn backend_name(&self) -> &'static str {
        self.shared.backend.name()
    }

    /// Per operation calls, hits, misses, errors by kind and latency
    /// percentiles ([`CacheStats::ops`]), their totals since connecting, what
    /// [fail-open mode](crate::CacheConfigBuilder::fail_open) absorbed, and
    /// what the [near cache](crate::CacheConfigBuilder::near_cache) and the
    /// [circuit breaker](crate::CacheConfigBuilder::breaker_threshold) did.
    pub fn stats(&self) -> CacheStats {
        let backend = &self.shared.backend;
        let counters = &self.shared.counters;
        counters.snapshot(backend.near_stats(), backend.breaker_stats())
    }

    /// True when the backend answers (`PING` for Redis) within the response
    /// timeout; false at once while the circuit breaker is open.
    pub async fn health_check(&self) -> bool {
        let _call = self.shared.call(Op::Ping);
        let result = self.shared.backend.ping().await;
        self.shared.observe(Op::Ping, "", result).is_ok()
    }

    /// Deletes every key of this cache's namespace, and nothing else (SCAN +
    /// UNLINK in batches, never `FLUSHDB`). Returns how many keys went.
    ///
    /// # Errors
    ///
    /// A connection, timeout or server error; keys deleted before it stay deleted.
    pub async fn clear_all(&self) -> Result<u64> {
        let _call = self.shared.call(Op::ClearAll);
        let prefix = self.shared.keys.prefix();
        let result = self.shared.backend.clear_prefix(&prefix).await;
        let n = self.shared.observe(Op::ClearAll, &prefix, result)?;
        tracing::info!(namespace = %self.shared.config.namespace(), deleted = n, "cache_cleared");
        Ok(n)
    }

    /// What this namespace's keys take, by data type (series, tickers,
    /// funding, Fear & Greed, LLM results and locks, other): keys, bytes,
    /// mean TTL, keys without one; and the backend's memory in use and its
    /// limit. Within [`DEFAULT_REPORT_LIMIT`] (2 s): see
    /// [`memory_report_within`](Self::memory_report_within).
    ///
    /// # Errors
    ///
    /// As [`memory_report_within`](Self::memory_report_within).
    pub async fn memory_report(&self) -> Result<MemoryReport> {
        self.memory_report_within(DEFAULT_REPORT_LIMIT).await
    }

    /// As [`memory_report`](Self::memory_report), stopping after `limit`.
    ///
    /// On Redis: `INFO memory` of every primary, then on each one `SCAN
    /// MATCH {namespace}:* COUNT 1000`, each batch of keys it finds
    /// measured by one pipeline of `MEMORY USAGE` and `PTTL` per key. The
    /// `INFO` and each batch (its `SCAN` and its pipeline) are one request
    /// within the [call deadline](crate::CacheConfig::call_deadline), and
    /// no batch starts once `limit` has passed: the report returns within
    /// `limit` plus one call deadline, with
    /// [`complete`](MemoryReport::complete) false if it stopped before the
    /// last key. Its cost is about two commands per key of the namespace
    /// (and a `SCAN` step per 1,000 keys of the database). On the embedded
    /// backend: the engine's own bookkeeping, one lock shard at a time
    /// (writers to that shard wait for its walk), the limit checked between
    /// shards; entries expired but not yet evicted are not counted.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a
    /// `limit` under 1 ms or over [`MAX_REPORT_LIMIT`](crate::MAX_REPORT_LIMIT);
    /// a connection, timeout, circuit-open or server error of any request
    /// (nothing of what was seen by then is returned). Never absorbed by
    /// fail-open mode.
    pub async fn memory_report_within(&self, limit: Duration) -> Result<MemoryReport> {
        let _call = self.shared.call(Op::MemoryReport);
        let keys = &self.shared.keys;
        let result = memory_report::report(&self.shared.backend, keys, limit).await;
        self.shared
            .observe(Op::MemoryReport, &keys.prefix(), result)
    }

    /// **Deletes every key in the Redis database**, other programs' included
    /// (`FLUSHDB`), as the original's `clear_all` did. Prefer [`clear_all`](Self::clear_all).
    ///
    /// # Errors
    ///
    /// A connection, timeout or server error.
    pub async fn flush_db(&self) -> Result<()> {
        let _call = self.shared.call(Op::FlushDb);
        tracing::warn!(
            backend = self.backend_name(),
            "flush_db: deleting every key in the database"
        );
        let result = self.shared.backend.flush_db().await;
        self.shared.observe(Op::FlushDb, "*", result)
    }

    /// Drops this handle and emits `redis_disconnected`. The connection closes
    /// when the last clone of the manager is dropped.
    pub async fn disconnect(self) {
        match self.shared.backend {
            Backend::Redis(_) => tracing::info!("redis_disconnected"),
            Backend::Embedded(_) => tracing::info!("embedded cache closed"),
        }
    }

    /// What `key`, a full key of this cache's namespace (as `redis-cli`
    /// shows it), holds, decoded: a series (from either of its two keys: its
    /// newest 100 bars, newest first, and its bar count), a ticker, a
    /// funding rate, the Fear & Greed reading, an LLM result (compressed or
    /// not), an LLM lock, a [`RedisClient`] value; or that it is missing,
    /// [foreign](Inspection::Foreign) or [corrupt](Inspection::Corrupt).
    /// Values are checked as every read checks them. For operators and
    /// tools (`iftb-cache inspect`): what it finds is not counted as a hit,
    /// a miss or a codec error in [`stats`](Self::stats), and it never
    /// fails open; a backend failure is counted and reported as any call's.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a key
    /// outside this cache's namespace; connection, timeout or server errors.
    ///
    /// # Examples
    ///
    /// See [`Inspection`].
    pub async fn inspect(&self, key: &str) -> Result<Inspection> {
        let _call = self.shared.call(Op::Inspect);
        crate::inspect::inspect(&self.shared, key).await
    }
}

impl std::fmt::Debug for CacheManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheManager")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}
