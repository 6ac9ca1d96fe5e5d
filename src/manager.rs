//! `CacheManager`: the entry point, owning the backend and handing out the
//! typed caches.

use crate::backend::{Backend, MemoryBackend, RedisBackend};
use crate::client::RedisClient;
use crate::config::CacheConfig;
use crate::error::Result;
use crate::keys::Keys;
use crate::llm::{Flights, LlmCache};
use crate::market::MarketDataCache;
use crate::ohlcv::OhlcvCache;
use crate::stats::{CacheStats, Counters};
use std::sync::Arc;

/// What every typed cache of one manager shares.
pub(crate) struct Shared {
    pub(crate) backend: Backend,
    pub(crate) keys: Keys,
    pub(crate) config: CacheConfig,
    counters: Counters,
    /// `LlmCache::get_or_compute` calls in progress, shared by key.
    pub(crate) flights: Flights,
}

impl Shared {
    /// Counts a read and emits `cache_hit` / `cache_miss`.
    pub(crate) fn record_read(&self, key: &str, hit: bool) {
        self.counters.hit_or_miss(hit);
        if hit {
            tracing::debug!(key, "cache_hit");
        } else {
            tracing::debug!(key, "cache_miss");
        }
    }

    /// Counts and reports a failed call; bad input is the caller's, not counted.
    /// For calls that never fail open (health, clearing); reads and writes go
    /// through [`observe_read`](Self::observe_read) and
    /// [`observe_write`](Self::observe_write).
    pub(crate) fn observe<T>(&self, op: &str, key: &str, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            if !e.is_invalid_input() {
                self.counters.error(e.is_codec());
                let backend = self.backend.name();
                tracing::error!(op, key, backend, error = %e, "redis_{op}_error");
            }
        }
        result
    }

    /// As [`observe`](Self::observe), for a read: in fail-open mode, an
    /// unavailable backend or a stored value that cannot be decoded gives
    /// `miss()` instead, counted and reported by a `cache_fail_open` warning.
    /// The caller records the miss itself (`record_read`), as for any miss.
    pub(crate) fn observe_read<T>(
        &self,
        op: &str,
        key: &str,
        result: Result<T>,
        miss: impl FnOnce() -> T,
    ) -> Result<T> {
        match result {
            Err(e) if self.fails_open(&e, true) => {
                self.counters.error(e.is_codec());
                self.counters.fail_open_miss();
                let backend = self.backend.name();
                tracing::warn!(op, key, backend, error = %e, outcome = "miss", "cache_fail_open");
                Ok(miss())
            }
            other => self.observe(op, key, other),
        }
    }

    /// As [`observe`](Self::observe), for a write: in fail-open mode, a write
    /// the unavailable backend did not take is dropped, counted and reported
    /// by a `cache_fail_open` warning, and the caller gets `T::default()`.
    pub(crate) fn observe_write<T: Default>(
        &self,
        op: &str,
        key: &str,
        result: Result<T>,
    ) -> Result<T> {
        match result {
            Err(e) if self.fails_open(&e, false) => {
                self.counters.error(false);
                self.counters.fail_open_dropped_write();
                let backend = self.backend.name();
                tracing::warn!(op, key, backend, error = %e, outcome = "write_dropped", "cache_fail_open");
                Ok(T::default())
            }
            other => self.observe(op, key, other),
        }
    }

    /// True when fail-open mode is on and `e` is one it absorbs: the backend
    /// is unavailable, or (for reads) a stored value cannot be decoded.
    fn fails_open(&self, e: &crate::Error, read: bool) -> bool {
        self.config.fail_open() && (e.is_unavailable() || (read && e.is_codec()))
    }
}

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
    /// `redis_connection_failed`.
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
            Backend::Memory(MemoryBackend::new(config.embedded_capacity().get()))
        };
        Ok(Self::from_backend(backend, config))
    }

    fn from_backend(backend: Backend, config: CacheConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                backend,
                keys: Keys::new(config.namespace()),
                config,
                counters: Counters::default(),
                flights: Flights::default(),
            }),
        }
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

    /// The low-level client, for keys of your own under `{namespace}:kv:`.
    pub fn client(&self) -> RedisClient<'_> {
        RedisClient::new(&self.shared)
    }

    /// The configuration this manager was connected with.
    pub fn config(&self) -> &CacheConfig {
        &self.shared.config
    }

    /// `"redis"` or `"embedded"`.
    pub fn backend_name(&self) -> &'static str {
        self.shared.backend.name()
    }

    /// Hit, miss and error counters since connecting, and what
    /// [fail-open mode](crate::CacheConfigBuilder::fail_open) absorbed.
    pub fn stats(&self) -> CacheStats {
        self.shared.counters.snapshot()
    }

    /// True when the backend answers (`PING` for Redis) within the response timeout.
    pub async fn health_check(&self) -> bool {
        let result = self.shared.backend.ping().await;
        self.shared.observe("ping", "", result).is_ok()
    }

    /// Deletes every key of this cache's namespace, and nothing else (SCAN +
    /// UNLINK in batches, never `FLUSHDB`). Returns how many keys went.
    ///
    /// # Errors
    ///
    /// A connection, timeout or server error; keys deleted before it stay deleted.
    pub async fn clear_all(&self) -> Result<u64> {
        let prefix = self.shared.keys.prefix();
        let result = self.shared.backend.clear_prefix(&prefix).await;
        let n = self.shared.observe("clear_all", &prefix, result)?;
        tracing::info!(namespace = %self.shared.config.namespace(), deleted = n, "cache_cleared");
        Ok(n)
    }

    /// **Deletes every key in the Redis database**, other programs' included
    /// (`FLUSHDB`), as the original's `clear_all` did. Prefer [`clear_all`](Self::clear_all).
    ///
    /// # Errors
    ///
    /// A connection, timeout or server error.
    pub async fn flush_db(&self) -> Result<()> {
        tracing::warn!(
            backend = self.backend_name(),
            "flush_db: deleting every key in the database"
        );
        let result = self.shared.backend.flush_db().await;
        self.shared.observe("flush_db", "*", result)
    }

    /// Drops this handle and emits `redis_disconnected`. The connection closes
    /// when the last clone of the manager is dropped.
    pub async fn disconnect(self) {
        match self.shared.backend {
            Backend::Redis(_) => tracing::info!("redis_disconnected"),
            Backend::Memory(_) => tracing::info!("embedded cache closed"),
        }
    }
}

impl std::fmt::Debug for CacheManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheManager")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}
