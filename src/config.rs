//! Configuration: which backend, the key namespace, TTL defaults and timeouts.

use crate::error::{Error, ErrorKind, Result};
use crate::limits::{timeout_in_range, ttl_in_range};
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};
use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

/// The kinds of cached data, each with its own default TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DataType {
    /// Tickers: 10 s by default.
    Ticker,
    /// Funding rates: 60 s by default.
    FundingRate,
    /// OHLCV bars: 300 s by default, counted from a series' last write.
    Bars,
    /// The Fear & Greed index: 300 s by default.
    FearGreed,
    /// LLM analysis results: 300 s by default.
    Llm,
}

impl DataType {
    /// The default TTL of the original module's table.
    pub fn default_ttl(self) -> Duration {
        Duration::from_secs(match self {
            DataType::Ticker => 10,
            DataType::FundingRate => 60,
            DataType::Bars | DataType::FearGreed | DataType::Llm => 300,
        })
    }
}

/// Where values are kept.
#[derive(Clone)]
enum BackendConfig {
    Embedded,
    Redis(Box<RedisTarget>),
}

/// Which Redis deployment, and how to reach it.
#[derive(Clone)]
pub(crate) enum RedisTarget {
    /// One server.
    Standalone(ConnectionInfo),
    /// A Redis Cluster, found from its seed nodes.
    Cluster(Vec<ConnectionInfo>),
    /// The primary a set of Sentinels names.
    Sentinel {
        /// The master name the Sentinels monitor (`sentinel monitor <name> ..`).
        master: String,
        /// The Sentinels, with their own credentials and TLS mode.
        sentinels: Vec<ConnectionInfo>,
        /// Credentials and database of the data nodes.
        node: RedisConnectionInfo,
    },
}

/// Configuration of a [`CacheManager`](crate::CacheManager).
///
/// Build one with [`CacheConfig::builder`], or read it from the environment with
/// [`CacheConfig::from_env`]. `Debug` output never shows the Redis password.
///
/// # Examples
///
/// ```
/// use iftb_cache::{CacheConfig, DataType};
/// use std::time::Duration;
/// let config = CacheConfig::builder()
///     .namespace("bot1")
///     .ttl(DataType::Ticker, Duration::from_secs(5))
///     .build()?;
/// assert!(!config.is_redis());
/// assert_eq!(config.ttl(DataType::Ticker), Duration::from_secs(5));
/// # Ok::<(), iftb_cache::Error>(())
/// ```
#[derive(Clone)]
pub struct CacheConfig {
    backend: BackendConfig,
    namespace: String,
    ttls: HashMap<DataType, Duration>,
    connect_timeout: Duration,
    response_timeout: Duration,
    embedded_capacity: NonZeroUsize,
    max_bars_per_series: Option<NonZeroUsize>,
    fail_open: bool,
    metrics: bool,
    near_cache: Option<NonZeroUsize>,
    breaker_threshold: u32,
    breaker_probe_interval: Duration,
}

/// The least near cache [`build`](CacheConfigBuilder::build) accepts: below
/// it, the engine's own tables would take most of it.
pub const MIN_NEAR_CACHE_BYTES: usize = 64 << 10;

impl CacheConfig {
    /// A builder starting from the defaults: embedded backend, namespace `iftb`,
    /// the original TTL table, 2 s connect and 1 s response timeouts, 256 MiB of
    /// embedded capacity, no cap on bars per series, fail-open off, no near
    /// cache, a circuit breaker that opens at the first unavailability and
    /// probes every 100 ms.
    pub fn builder() -> CacheConfigBuilder {
        CacheConfigBuilder {
            config: CacheConfig {
                backend: BackendConfig::Embedded,
                namespace: "iftb".into(),
                ttls: HashMap::new(),
                connect_timeout: Duration::from_secs(2),
                response_timeout: Duration::from_secs(1),
                embedded_capacity: NonZeroUsize::new(256 << 20).expect("non-zero"),
                max_bars_per_series: None,
                fail_open: false,
                metrics: true,
                near_cache: None,
                breaker_threshold: 1,
                breaker_probe_interval: Duration::from_millis(100),
            },
            error: None,
            node_auth: None,
        }
    }

    /// The default configuration on the embedded backend.
    pub fn embedded() -> Self {
        Self::builder().build().expect("the defaults are valid")
    }

    /// Reads the configuration from the environment, and from a `.env` file in
    /// the working directory when there is one (real variables win).
    ///
    /// `REDIS_URL` (`redis://[user:password@]host:port/db`, `rediss://` with the
    /// `tls` feature) selects Redis; otherwise `REDIS_HOST` with the optional
    /// `REDIS_PORT` (6379), `REDIS_PASSWORD` and `REDIS_DB` (0) does, as in the
    /// original module. With neither, the embedded backend is used.
    ///
    /// A Redis Cluster is selected by `REDIS_CLUSTER_NODES`
    /// (`redis://h1:7000,redis://h2:7001`, any of its nodes), Sentinel by
    /// `REDIS_SENTINELS` (`redis://h1:26379,redis://h2:26379`) with
    /// `REDIS_SENTINEL_MASTER` (the monitored master's name); either wins over
    /// `REDIS_URL` and `REDIS_HOST`, and takes the data nodes' password from
    /// `REDIS_PASSWORD` (with `REDIS_USERNAME` for an ACL user).
    /// `IFTB_CACHE_NAMESPACE` sets the key namespace, and
    /// `IFTB_NEAR_CACHE_BYTES` turns on the [near cache](CacheConfigBuilder::near_cache)
    /// with that many bytes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for an unparsable URL, port, db or byte count,
    /// `REDIS_SENTINELS` without `REDIS_SENTINEL_MASTER`, or a bad `.env` file;
    /// and as [`build`](CacheConfigBuilder::build).
    pub fn from_env() -> Result<Self> {
        let vars = env_with_dotenv(".env")?;
        Self::from_vars(|name| vars.get(name).cloned())
    }

    /// As [`from_env`](Self::from_env), reading variables through `get`.
    pub(crate) fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let mut builder = Self::builder();
        let nodes = get("REDIS_CLUSTER_NODES");
        let sentinels = get("REDIS_SENTINELS");
        if nodes.is_some() && sentinels.is_some() {
            return Err(config_error(
                "both REDIS_CLUSTER_NODES and REDIS_SENTINELS are set: a cache uses one",
            ));
        }
        if let Some(nodes) = nodes {
            builder = builder.redis_cluster(&split_list(&nodes));
        } else if let Some(sentinels) = sentinels {
            let master = get("REDIS_SENTINEL_MASTER").ok_or_else(|| {
                config_error("REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER is not")
            })?;
            builder = builder.redis_sentinel(master.trim(), &split_list(&sentinels));
        } else if let Some(url) = get("REDIS_URL") {
            builder = builder.redis_url(url.trim());
        } else if let Some(host) = get("REDIS_HOST") {
            let port = parse_var("REDIS_PORT", get("REDIS_PORT"), 6379u16)?;
            let db = parse_var("REDIS_DB", get("REDIS_DB"), 0i64)?;
            builder = builder.redis_host(host.trim(), port, get("REDIS_PASSWORD").as_deref(), db);
        }
        if get("REDIS_CLUSTER_NODES").is_some() || get("REDIS_SENTINELS").is_some() {
            if let Some(password) = get("REDIS_PASSWORD") {
                builder = builder.redis_node_auth(get("REDIS_USERNAME").as_deref(), &password);
            }
        }
        if let Some(ns) = get("IFTB_CACHE_NAMESPACE") {
            builder = builder.namespace(ns.trim());
        }
        if let Some(bytes) = get("IFTB_NEAR_CACHE_BYTES") {
            let bytes = parse_var("IFTB_NEAR_CACHE_BYTES", Some(bytes), 0usize)?;
            let bytes = NonZeroUsize::new(bytes).ok_or_else(|| {
                config_error("IFTB_NEAR_CACHE_BYTES is 0: leave it unset for no near cache")
            })?;
            builder = builder.near_cache(bytes);
        }
        builder.build()
    }

    /// A builder starting from this configuration, to change some of it:
    /// read the environment, then override in code (the CLI's `--url` and
    /// `--namespace`).
    ///
    /// ```
    /// use iftb_cache::CacheConfig;
    /// let config = CacheConfig::embedded()
    ///     .into_builder()
    ///     .redis_url("redis://127.0.0.1:6379")
    ///     .namespace("bot2")
    ///     .build()?;
    /// assert!(config.is_redis());
    /// assert_eq!(config.namespace(), "bot2");
    /// # Ok::<(), iftb_cache::Error>(())
    /// ```
    pub fn into_builder(self) -> CacheConfigBuilder {
        CacheConfigBuilder {
            config: self,
            error: None,
            node_auth: None,
        }
    }

    /// The one Redis server this configuration connects to (its address,
    /// database, credentials and TLS mode), when it names one: `None` for
    /// the embedded backend, a Cluster or Sentinel. For tools that time a
    /// raw redis-rs call beside the cache's own (`iftb-cache stats`).
    pub fn redis_server(&self) -> Option<&redis::ConnectionInfo> {
        match self.redis_target()? {
            RedisTarget::Standalone(info) => Some(info),
            RedisTarget::Cluster(_) | RedisTarget::Sentinel { .. } => None,
        }
    }

    /// True when a Redis backend (a server, a cluster or Sentinels) is configured.
    pub fn is_redis(&self) -> bool {
        matches!(self.backend, BackendConfig::Redis(_))
    }

    /// The Redis deployment, when Redis is configured.
    pub(crate) fn redis_target(&self) -> Option<&RedisTarget> {
        match &self.backend {
            BackendConfig::Redis(target) => Some(target),
            BackendConfig::Embedded => None,
        }
    }

    /// A description of the backend for events and errors, without the password.
    pub fn backend_description(&self) -> String {
        match &self.backend {
            BackendConfig::Embedded => "embedded".to_string(),
            BackendConfig::Redis(target) => describe_target(target),
        }
    }

    /// The key namespace: every key this cache writes starts with `{namespace}:`.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The default TTL of `data`.
    pub fn ttl(&self, data: DataType) -> Duration {
        self.ttls
            .get(&data)
            .copied()
            .unwrap_or_else(|| data.default_ttl())
    }

    /// Time allowed to open a connection to Redis.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Time allowed for Redis to answer one call.
    pub fn response_timeout(&self) -> Duration {
        self.response_timeout
    }

    /// The bound on any one call to Redis, end to end (every step of it: a
    /// script reload and resend, a resend after a refused reconnect): the
    /// response timeout plus 250 ms. Past it the call fails with
    /// [`ErrorKind::Timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = iftb_cache::CacheConfig::builder()
    ///     .response_timeout(Duration::from_millis(500))
    ///     .build()?;
    /// assert_eq!(config.call_deadline(), Duration::from_millis(750));
    /// # Ok::<(), iftb_cache::Error>(())
    /// ```
    pub fn call_deadline(&self) -> Duration {
        self.response_timeout + crate::limits::DEADLINE_MARGIN
    }

    /// The bound on [`CacheManager::connect`](crate::CacheManager::connect)
    /// to Redis, end to end: twice the connect timeout plus the response
    /// timeout (two connections and their handshakes: the credential check's,
    /// which reports a refused password at once, and the one kept), plus
    /// 250 ms. Past it, connecting fails with [`ErrorKind::Timeout`] or the
    /// connection error met.
    pub fn connect_deadline(&self) -> Duration {
        let one = self.connect_timeout + self.response_timeout;
        one * 2 + crate::limits::DEADLINE_MARGIN
    }

    /// Bytes of keys and values the embedded backend holds before it evicts.
    pub fn embedded_capacity(&self) -> NonZeroUsize {
        self.embedded_capacity
    }

    /// The default cap on bars kept per series (oldest trimmed first), if any.
    pub fn max_bars_per_series(&self) -> Option<NonZeroUsize> {
        self.max_bars_per_series
    }

    /// The near cache's capacity in bytes, when it is on; see
    /// [`CacheConfigBuilder::near_cache`].
    pub fn near_cache(&self) -> Option<NonZeroUsize> {
        self.near_cache
    }

    /// True when reads and writes fail open while the backend is unavailable;
    /// see [`CacheConfigBuilder::fail_open`].
    pub fn fail_open(&self) -> bool {
        self.fail_open
    }

    /// True when per-operation metrics are kept (the default); see
    /// [`CacheConfigBuilder::metrics`].
    pub fn metrics(&self) -> bool {
        self.metrics
    }

    /// Consecutive unavailability failures that open the circuit breaker;
    /// 0 when it is off. See [`CacheConfigBuilder::breaker_threshold`].
    pub fn breaker_threshold(&self) -> u32 {
        self.breaker_threshold
    }

    /// The wait between two failed probes of an open circuit breaker.
    pub fn breaker_probe_interval(&self) -> Duration {
        self.breaker_probe_interval
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self::embedded()
    }
}

impl fmt::Debug for CacheConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheConfig")
            .field("backend", &self.backend_description())
            .field("namespace", &self.namespace)
            .field("ttls", &self.ttls)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("embedded_capacity", &self.embedded_capacity)
            .field("max_bars_per_series", &self.max_bars_per_series)
            .field("fail_open", &self.fail_open)
            .field("metrics", &self.metrics)
            .field("near_cache", &self.near_cache)
            .field("breaker_threshold", &self.breaker_threshold)
            .field("breaker_probe_interval", &self.breaker_probe_interval)
            .finish()
    }
}

/// Builds a [`CacheConfig`]; [`build`](Self::build) validates it.
pub struct CacheConfigBuilder {
    config: CacheConfig,
    error: Option<Error>,
    /// The data nodes' user and password, applied at `build()`.
    node_auth: Option<(Option<String>, String)>,
}

impl fmt::Debug for CacheConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let node_auth = self.node_auth.as_ref().map(|(user, _)| (user, "***"));
        f.debug_struct("CacheConfigBuilder")
            .field("config", &self.config)
            .field("error", &self.error)
            .field("node_auth", &node_auth)
            .finish()
    }
}

impl CacheConfigBuilder {
    /// Use Redis at `url`: `redis://[user:password@]host[:port][/db]`, or
    /// `rediss://` with the `tls` feature.
    pub fn redis_url(mut self, url: &str) -> Self {
        match url.into_connection_info() {
            Ok(info) => self.config.backend = redis(RedisTarget::Standalone(info)),
            Err(e) => {
                let what = format!("invalid REDIS_URL {}", redact_url(url));
                self.error = Some(Error::new(ErrorKind::Config, what).with_source(e));
            }
        }
        self
    }

    /// Use Redis at `host:port`, database `db`, with an optional password.
    pub fn redis_host(mut self, host: &str, port: u16, password: Option<&str>, db: i64) -> Self {
        let info = ConnectionAddr::Tcp(host.to_string(), port).into_connection_info();
        match info {
            Ok(info) => {
                let mut settings = info.redis_settings().clone().set_db(db);
                if let Some(p) = password {
                    settings = settings.set_password(p);
                }
                let info = info.set_redis_settings(settings);
                self.config.backend = redis(RedisTarget::Standalone(info));
            }
            Err(e) => {
                let what = format!("invalid Redis host {host}:{port}");
                self.error = Some(Error::new(ErrorKind::Config, what).with_source(e));
            }
        }
        self
    }

    /// Use a Redis Cluster, found from any of its nodes (`redis://host:port`,
    /// `rediss://` with the `tls` feature; a password or ACL user in the URLs,
    /// or from [`redis_node_auth`](Self::redis_node_auth)). The client learns
    /// the slot map from them and follows failovers and resharding.
    ///
    /// ```
    /// let config = iftb_cache::CacheConfig::builder()
    ///     .redis_cluster(&["redis://10.0.0.1:7000", "redis://10.0.0.2:7001"])
    ///     .build()?;
    /// assert!(config.backend_description().starts_with("redis cluster"));
    /// # Ok::<(), iftb_cache::Error>(())
    /// ```
    pub fn redis_cluster(mut self, nodes: &[&str]) -> Self {
        match parse_urls("REDIS_CLUSTER_NODES", nodes) {
            Ok(nodes) if nodes.iter().any(|n| n.redis_settings().db() != 0) => {
                self.error = Some(config_error(
                    "a Redis Cluster has database 0 only: drop the /db from REDIS_CLUSTER_NODES",
                ));
            }
            Ok(nodes) => self.config.backend = redis(RedisTarget::Cluster(nodes)),
            Err(e) => self.error = Some(e),
        }
        self
    }

    /// Use the primary that the Sentinels at `sentinels` name for `master`,
    /// following it through failovers. The first sentinel URL's credentials
    /// and TLS mode (`rediss://`) are used for every Sentinel, and its
    /// database (`/2`) on the primary; the data nodes use the same TLS mode,
    /// and the credentials of [`redis_node_auth`](Self::redis_node_auth).
    ///
    /// ```
    /// let config = iftb_cache::CacheConfig::builder()
    ///     .redis_sentinel("mymaster", &["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"])
    ///     .build()?;
    /// assert!(config.backend_description().starts_with("redis sentinel"));
    /// # Ok::<(), iftb_cache::Error>(())
    /// ```
    pub fn redis_sentinel(mut self, master: &str, sentinels: &[&str]) -> Self {
        match parse_urls("REDIS_SENTINELS", sentinels) {
            Ok(_) if master.trim().is_empty() => {
                self.error = Some(config_error("the Sentinel master name is empty"));
            }
            Ok(sentinels) => {
                let db = sentinels[0].redis_settings().db();
                let node = RedisConnectionInfo::default().set_db(db);
                let master = master.to_string();
                self.config.backend = redis(RedisTarget::Sentinel {
                    master,
                    sentinels,
                    node,
                });
            }
            Err(e) => self.error = Some(e),
        }
        self
    }

    /// The password (and ACL user) of the data nodes of a cluster or of a
    /// Sentinel-managed primary; for cluster nodes it replaces any in the
    /// node URLs. A standalone server takes its credentials from its URL or
    /// [`redis_host`](Self::redis_host): with one, [`build`](Self::build)
    /// fails.
    pub fn redis_node_auth(mut self, username: Option<&str>, password: &str) -> Self {
        self.node_auth = Some((username.map(str::to_string), password.to_string()));
        self
    }

    /// Use the embedded in-process backend (the default).
    pub fn embedded(mut self) -> Self {
        self.config.backend = BackendConfig::Embedded;
        self
    }

    /// The key namespace (default `iftb`): ASCII letters, digits, `_`, `-`, `.`;
    /// at most 32 bytes.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.config.namespace = namespace.to_string();
        self
    }

    /// The default TTL of `data`: one millisecond to
    /// [`MAX_TTL`](crate::MAX_TTL) (100 years).
    pub fn ttl(mut self, data: DataType, ttl: Duration) -> Self {
        self.config.ttls.insert(data, ttl);
        self
    }

    /// Time allowed to open a connection to Redis (default 2 s; 1 ms to
    /// [`MAX_TIMEOUT`](crate::MAX_TIMEOUT)).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Time allowed for Redis to answer one call (default 1 s; 1 ms to
    /// [`MAX_TIMEOUT`](crate::MAX_TIMEOUT)).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.config.response_timeout = timeout;
        self
    }

    /// Bytes the embedded backend may hold before evicting the entries closest
    /// to expiry (default 256 MiB).
    pub fn embedded_capacity(mut self, bytes: NonZeroUsize) -> Self {
        self.config.embedded_capacity = bytes;
        self
    }

    /// Keeps at most `max` bars per series by default, trimming the oldest.
    pub fn max_bars_per_series(mut self, max: NonZeroUsize) -> Self {
        self.config.max_bars_per_series = Some(max);
        self
    }

    /// Fail-open mode (default off), for strategies that must keep trading
    /// while Redis is down: when the backend is unavailable (a connection or
    /// timeout error, or the circuit breaker open) a read returns a miss and
    /// a write is dropped, so is a write Redis refuses for want of memory
    /// (`OOM`), and a stored value that cannot be decoded reads as a miss. Each such call
    /// emits a `cache_fail_open` warn event and is counted in
    /// [`CacheStats::fail_open_misses`](crate::CacheStats::fail_open_misses) or
    /// [`CacheStats::fail_open_dropped_writes`](crate::CacheStats::fail_open_dropped_writes).
    ///
    /// Bad input is still an error, and so are the calls that report on or
    /// manage the whole cache (`health_check` answers false, `clear_all` and
    /// `flush_db` fail). Every call is still bounded by its deadline
    /// ([`CacheConfig::call_deadline`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = iftb_cache::CacheConfig::builder().fail_open(true).build()?;
    /// assert!(config.fail_open());
    /// # Ok::<(), iftb_cache::Error>(())
    /// ```
    pub fn fail_open(mut self, on: bool) -> Self {
        self.config.fail_open = on;
        self
    }

    /// Whether [`stats()`](crate::CacheManager::stats) counts calls, hits,
    /// misses and latencies per operation (on by default). They cost 5 to
    /// 20 ns a call on the embedded backend (`cargo bench --bench embedded
    /// -- metrics`) and 1 to 2% of a Redis round trip (`examples/compare`);
    /// off, a
    /// strategy that never reads them saves that. Failures, fail-open
    /// mode, the near cache and the circuit breaker are counted either way.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = iftb_cache::CacheConfig::builder().metrics(false).build()?;
    /// assert!(!config.metrics());
    /// # Ok::<(), iftb_cache::Error>(())
    /// ```
    pub fn metrics(mut self, on: bool) -> Self {
        self.config.metrics = on;
        self
    }

    /// A near cache of `bytes` (off by default): reads of bars, tickers,
    /// funding rates, Fear & Greed, LLM results and the client's values are
    /// answered from copies in process memory, kept in an embedded engine of
    /// that capacity, while Redis confirms that they are current. Redis tells
    /// the cache of every change to the namespace's keys (`CLIENT TRACKING`
    /// in broadcast mode, RESP3 `invalidate` pushes), so a copy is dropped
    /// within about a millisecond of another process' write on loopback; a
    /// write of this process drops its copies before it returns. Whenever
    /// Redis could have missed telling it (a lost connection, a failover, a
    /// silent link), the whole near cache is dropped, and reads go to Redis
    /// until tracking is on again. See the README's "Near cache" section.
    ///
    /// Needs Redis 6 or later, and a Redis backend: the embedded backend is
    /// in process memory already.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::num::NonZeroUsize;
    /// let config = iftb_cache::CacheConfig::builder()
    ///     .redis_url("redis://127.0.0.1:6379")
    ///     .near_cache(NonZeroUsize::new(64 << 20).unwrap())
    ///     .build()?;
    /// assert_eq!(config.near_cache().map(NonZeroUsize::get), Some(64 << 20));
    /// # Ok::<(), iftb_cache::Error>(())
    /// ```
    pub fn near_cache(mut self, bytes: NonZeroUsize) -> Self {
        self.config.near_cache = Some(bytes);
        self
    }

    /// The circuit breaker of a Redis backend: after `failures` calls in a
    /// row failed as unavailable (a timeout, a refused, reset or dropped
    /// connection, Redis loading or without a primary), it opens. While it
    /// is open, every call that would reach Redis fails at once with
    /// [`ErrorKind::CircuitOpen`](crate::ErrorKind::CircuitOpen) (or, in
    /// [fail-open](Self::fail_open) mode, misses and drops its write), and
    /// one probe at a time checks Redis in the background: `PING` (on a
    /// cluster, to any node: the breaker guards against the deployment
    /// being unreachable, not one primary failing over), each bounded by
    /// the call deadline, [`breaker_probe_interval`](Self::breaker_probe_interval)
    /// apart. The first probe that succeeds closes it, and so does any call
    /// that was in flight and succeeds. So a frozen or black-holed Redis
    /// costs the calls in flight one deadline, and the calls after them
    /// nothing.
    ///
    /// The default, 1, opens at the first unavailability: the calls of a
    /// strategy's tick come one after another, and each failure past the
    /// first would cost another full deadline. A false alarm (one slow
    /// reply on a healthy server) costs one probe's round trip of fast
    /// failures. `0` turns the breaker off. Near-cache hits never reach
    /// Redis, so they are served whatever its state.
    ///
    /// Over 1,000 is rejected at [`build`](Self::build): a breaker that
    /// waits that long no longer protects anything.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = iftb_cache::CacheConfig::builder().breaker_threshold(3).build()?;
    /// assert_eq!(config.breaker_threshold(), 3);
    /// # Ok::<(), iftb_cache::Error>(())
    /// ```
    pub fn breaker_threshold(mut self, failures: u32) -> Self {
        self.config.breaker_threshold = failures;
        self
    }

    /// The wait between two failed probes of an open circuit breaker
    /// (default 100 ms; 1 ms to 1 minute). Each probe is bounded by the
    /// call deadline, so while Redis is frozen a probe is in flight most
    /// of the time, and it closes the breaker as soon as Redis answers it.
    pub fn breaker_probe_interval(mut self, interval: Duration) -> Self {
        self.config.breaker_probe_interval = interval;
        self
    }

    /// Validates and returns the configuration.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] for a bad URL or namespace, a TTL under one
    /// millisecond or over [`MAX_TTL`](crate::MAX_TTL), a timeout under one
    /// millisecond or over [`MAX_TIMEOUT`](crate::MAX_TIMEOUT), a near
    /// cache under [`MIN_NEAR_CACHE_BYTES`] or without Redis, or a circuit
    /// breaker threshold over 1,000 or probe interval outside 1 ms..=1 min.
    pub fn build(self) -> Result<CacheConfig> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut c = self.config;
        if let Some((user, password)) = &self.node_auth {
            apply_node_auth(&mut c.backend, user.as_deref(), password)?;
        }
        validate_namespace(&c.namespace)?;
        if let Some((data, ttl)) = c.ttls.iter().find(|(_, t)| !ttl_in_range(**t)) {
            return Err(config_error(format!(
                "TTL of {data:?} is {ttl:?}; it must be 1 ms to 100 years"
            )));
        }
        for (what, t) in [
            ("connect", c.connect_timeout),
            ("response", c.response_timeout),
        ] {
            if !timeout_in_range(t) {
                return Err(config_error(format!(
                    "{what} timeout is {t:?}; it must be 1 ms to 1 hour"
                )));
            }
        }
        check_near_cache(&c)?;
        check_breaker(&c)?;
        Ok(c)
    }
}

/// Most consecutive failures a circuit breaker may wait for.
const MAX_BREAKER_THRESHOLD: u32 = 1_000;

fn check_breaker(c: &CacheConfig) -> Result<()> {
    if c.breaker_threshold > MAX_BREAKER_THRESHOLD {
        return Err(config_error(format!(
            "breaker_threshold of {} is over {MAX_BREAKER_THRESHOLD}; 0 turns the breaker off",
            c.breaker_threshold
        )));
    }
    let interval = c.breaker_probe_interval;
    if interval.as_millis() == 0 || interval > Duration::from_secs(60) {
        return Err(config_error(format!(
            "breaker_probe_interval is {interval:?}; it must be 1 ms to 1 minute"
        )));
    }
    Ok(())
}

fn check_near_cache(c: &CacheConfig) -> Result<()> {
    let Some(bytes) = c.near_cache else {
        return Ok(());
    };
    if !c.is_redis() {
        return Err(config_error(
            "near_cache needs a Redis backend: the embedded backend is in process memory already",
        ));
    }
    if bytes.get() < MIN_NEAR_CACHE_BYTES {
        return Err(config_error(format!(
            "near_cache of {bytes} bytes is under the {MIN_NEAR_CACHE_BYTES}-byte minimum"
        )));
    }
    Ok(())
}

/// Sets the data nodes' credentials of a cluster or Sentinel backend.
fn apply_node_auth(backend: &mut BackendConfig, user: Option<&str>, password: &str) -> Result<()> {
    if password.is_empty() {
        return Err(config_error("redis_node_auth: the password is empty"));
    }
    let auth = |info: RedisConnectionInfo| {
        let info = info.set_password(password);
        match user {
            Some(user) => info.set_username(user),
            None => info,
        }
    };
    let BackendConfig::Redis(target) = backend else {
        return Err(config_error(
            "redis_node_auth needs a cluster or Sentinel backend",
        ));
    };
    match target.as_mut() {
        RedisTarget::Cluster(nodes) => {
            for node in nodes.iter_mut() {
                let settings = auth(node.redis_settings().clone());
                *node = node.clone().set_redis_settings(settings);
            }
        }
        RedisTarget::Sentinel { node, .. } => *node = auth(node.clone()),
        RedisTarget::Standalone(_) => {
            return Err(config_error(
                "redis_node_auth is for a cluster or Sentinel; a single server's password goes in its URL",
            ))
        }
    }
    Ok(())
}

fn redis(target: RedisTarget) -> BackendConfig {
    BackendConfig::Redis(Box::new(target))
}

/// A comma-separated list of URLs, without empty items.
fn split_list(list: &str) -> Vec<&str> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Parses every URL; an error names the variable and hides passwords.
fn parse_urls(what: &str, urls: &[&str]) -> Result<Vec<ConnectionInfo>> {
    if urls.is_empty() {
        return Err(config_error(format!("{what}: no node given")));
    }
    urls.iter()
        .map(|url| {
            url.into_connection_info().map_err(|e| {
                let what = format!("invalid URL in {what}: {}", redact_url(url));
                Error::new(ErrorKind::Config, what).with_source(e)
            })
        })
        .collect()
}

fn config_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Config, message)
}

fn validate_namespace(ns: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if ns.is_empty() || ns.len() > 32 || !ns.chars().all(ok_char) {
        return Err(config_error(format!(
            "namespace {ns:?} must be 1 to 32 ASCII letters, digits, '_', '-' or '.'"
        )));
    }
    Ok(())
}

fn parse_var<T: std::str::FromStr>(name: &str, value: Option<String>, default: T) -> Result<T> {
    match value {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| config_error(format!("{name}={v:?} is not a valid value"))),
    }
}

/// The process environment over the `.env` file at `path`, if there is one.
fn env_with_dotenv(path: &str) -> Result<HashMap<String, String>> {
    let mut vars = HashMap::new();
    match dotenvy::from_path_iter(path) {
        Ok(iter) => {
            for item in iter {
                let (k, v) = item.map_err(|e| {
                    Error::new(ErrorKind::Config, format!("cannot read {path}")).with_source(e)
                })?;
                vars.insert(k, v);
            }
        }
        Err(e) if e.not_found() => {}
        Err(e) => {
            return Err(Error::new(ErrorKind::Config, format!("cannot read {path}")).with_source(e))
        }
    }
    vars.extend(std::env::vars());
    Ok(vars)
}

/// The deployment, its nodes as `user@host:port/db`, never a password.
fn describe_target(target: &RedisTarget) -> String {
    let list = |infos: &[ConnectionInfo]| {
        let nodes: Vec<String> = infos.iter().map(describe_node).collect();
        nodes.join(", ")
    };
    match target {
        RedisTarget::Standalone(info) => format!("redis {}", describe_node(info)),
        RedisTarget::Cluster(nodes) => format!("redis cluster {}", list(nodes)),
        RedisTarget::Sentinel {
            master, sentinels, ..
        } => format!("redis sentinel {master} via {}", list(sentinels)),
    }
}

fn describe_node(info: &ConnectionInfo) -> String {
    let settings = info.redis_settings();
    let user = settings
        .username()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let auth = if settings.password().is_some() {
        " (password set)"
    } else {
        ""
    };
    format!("{user}{}/{}{auth}", info.addr(), settings.db())
}

/// The URL with any password replaced by `***`, for error messages.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsable URL>".to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn nothing_set_means_embedded() {
        let c = CacheConfig::from_vars(vars(&[])).unwrap();
        assert!(!c.is_redis());
        assert_eq!(c.namespace(), "iftb");
        assert_eq!(c.ttl(DataType::Ticker), Duration::from_secs(10));
        assert_eq!(c.ttl(DataType::FundingRate), Duration::from_secs(60));
        assert_eq!(c.ttl(DataType::Bars), Duration::from_secs(300));
    }

    #[test]
    fn host_variables_select_redis_and_hide_the_password() {
        let c = CacheConfig::from_vars(vars(&[
            ("REDIS_HOST", "cache.local"),
            ("REDIS_PORT", "6380"),
            ("REDIS_PASSWORD", "hunter2-secret"),
            ("REDIS_DB", "2"),
        ]))
        .unwrap();
        assert!(c.is_redis());
        let shown = format!("{c:?} {}", c.backend_description());
        assert!(shown.contains("cache.local:6380/2"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn a_config_from_the_environment_takes_overrides_and_keeps_the_rest() {
        let env = CacheConfig::from_vars(vars(&[
            ("REDIS_CLUSTER_NODES", "redis://10.0.0.1:7000"),
            ("REDIS_PASSWORD", "pw-secret"),
            ("IFTB_CACHE_NAMESPACE", "bot1"),
        ]))
        .unwrap();
        assert!(env.redis_server().is_none(), "a cluster is not one server");
        let kept = env.clone().into_builder().build().unwrap();
        assert_eq!(kept.backend_description(), env.backend_description());
        assert_eq!(kept.namespace(), "bot1");
        let moved = env
            .into_builder()
            .redis_url("redis://127.0.0.1:7001/3")
            .build()
            .unwrap();
        let server = moved.redis_server().expect("one server");
        assert_eq!(server.redis_settings().db(), 3);
        assert_eq!(moved.namespace(), "bot1");
        assert!(CacheConfig::embedded().redis_server().is_none());
    }

    #[test]
    fn url_wins_over_host_and_bad_values_are_config_errors() {
        let c = CacheConfig::from_vars(vars(&[
            ("REDIS_URL", "redis://:pw-secret@127.0.0.1:7000/1"),
            ("REDIS_HOST", "ignored"),
        ]))
        .unwrap();
        assert!(c.backend_description().contains("127.0.0.1:7000/1"));
        assert!(!format!("{c:?}").contains("pw-secret"));
        let bad_port = CacheConfig::from_vars(vars(&[("REDIS_HOST", "h"), ("REDIS_PORT", "x")]));
        assert_eq!(bad_port.unwrap_err().kind(), ErrorKind::Config);
        let bad_url = CacheConfig::from_vars(vars(&[("REDIS_URL", "http://u:pw-secret@h")]));
        let err = bad_url.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(!err.to_string().contains("pw-secret"), "{err}");
    }

    #[test]
    fn the_near_cache_is_off_by_default_and_needs_redis_and_room() {
        let redis = [("REDIS_URL", "redis://127.0.0.1:7000")];
        assert_eq!(
            CacheConfig::from_vars(vars(&redis)).unwrap().near_cache(),
            None
        );
        let on = CacheConfig::from_vars(vars(&[redis[0], ("IFTB_NEAR_CACHE_BYTES", "1048576")]));
        assert_eq!(
            on.unwrap().near_cache().map(NonZeroUsize::get),
            Some(1 << 20)
        );
        let cases: [&[(&str, &str)]; 4] = [
            &[("IFTB_NEAR_CACHE_BYTES", "1048576")],
            &[redis[0], ("IFTB_NEAR_CACHE_BYTES", "0")],
            &[redis[0], ("IFTB_NEAR_CACHE_BYTES", "lots")],
            &[redis[0], ("IFTB_NEAR_CACHE_BYTES", "4096")],
        ];
        for case in cases {
            let err = CacheConfig::from_vars(vars(case)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{case:?}");
        }
        let embedded = CacheConfig::builder().near_cache(NonZeroUsize::new(1 << 20).unwrap());
        let err = embedded.build().unwrap_err();
        assert!(err.to_string().contains("needs a Redis backend"), "{err}");
    }

    #[test]
    fn zero_ttl_and_bad_namespace_are_rejected() {
        let zero = CacheConfig::builder()
            .ttl(DataType::Llm, Duration::ZERO)
            .build();
        assert_eq!(zero.unwrap_err().kind(), ErrorKind::Config);
        for ns in ["", "a:b", "has space", "x{y}", &"n".repeat(33)] {
            let r = CacheConfig::builder().namespace(ns).build();
            assert_eq!(r.unwrap_err().kind(), ErrorKind::Config, "{ns:?}");
        }
    }

    #[test]
    fn cluster_and_sentinel_variables_select_them() {
        let c = CacheConfig::from_vars(vars(&[
            ("REDIS_CLUSTER_NODES", " redis://h1:7000, redis://h2:7001 ,"),
            ("REDIS_PASSWORD", "pw-secret"),
            ("REDIS_URL", "redis://ignored:1"),
        ]))
        .unwrap();
        let shown = format!("{c:?}");
        assert!(
            shown.contains("redis cluster h1:7000/0 (password set), h2:7001/0 (password set)"),
            "{shown}"
        );
        assert!(!shown.contains("pw-secret"), "{shown}");
        let c = CacheConfig::from_vars(vars(&[
            ("REDIS_SENTINELS", "redis://s1:26379,redis://s2:26380"),
            ("REDIS_SENTINEL_MASTER", "mymaster"),
        ]))
        .unwrap();
        let shown = c.backend_description();
        assert_eq!(shown, "redis sentinel mymaster via s1:26379/0, s2:26380/0");
        let Some(RedisTarget::Sentinel { node, .. }) = c.redis_target() else {
            panic!("not sentinel: {shown}");
        };
        assert!(node.password().is_none());
    }

    #[test]
    fn bad_cluster_and_sentinel_settings_are_config_errors() {
        let cases: [&[(&str, &str)]; 4] = [
            &[(
                "REDIS_CLUSTER_NODES",
                "redis://h1:7000,http://u:pw-secret@h2",
            )],
            &[("REDIS_CLUSTER_NODES", " , ")],
            &[("REDIS_SENTINELS", "redis://s1:26379")],
            &[("REDIS_SENTINELS", "nope"), ("REDIS_SENTINEL_MASTER", "m")],
        ];
        for case in cases {
            let err = CacheConfig::from_vars(vars(case)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{case:?}");
            assert!(!err.to_string().contains("pw-secret"), "{err}");
        }
        let both = CacheConfig::from_vars(vars(&[
            ("REDIS_CLUSTER_NODES", "redis://h1:7000"),
            ("REDIS_SENTINELS", "redis://s1:26379"),
            ("REDIS_SENTINEL_MASTER", "m"),
        ]));
        assert_eq!(both.unwrap_err().kind(), ErrorKind::Config);
        let bad = [
            CacheConfig::builder().redis_cluster(&[]),
            CacheConfig::builder().redis_cluster(&["redis://h1:7000/3"]),
            CacheConfig::builder().redis_sentinel(" ", &["redis://s1:26379"]),
            CacheConfig::builder()
                .redis_cluster(&["redis://h1:7000"])
                .redis_node_auth(None, ""),
        ];
        for builder in bad {
            let shown = format!("{builder:?}");
            assert_eq!(
                builder.build().unwrap_err().kind(),
                ErrorKind::Config,
                "{shown}"
            );
        }
        for builder in [
            CacheConfig::builder(),
            CacheConfig::builder().redis_url("redis://h:1"),
        ] {
            let auth = builder.redis_node_auth(None, "pw").build();
            assert_eq!(auth.unwrap_err().kind(), ErrorKind::Config);
        }
    }

    #[test]
    fn the_builder_never_shows_the_node_password() {
        let builder = CacheConfig::builder()
            .redis_sentinel("m", &["redis://s1:26379/2"])
            .redis_node_auth(Some("bot"), "pw-secret");
        let shown = format!("{builder:?}");
        assert!(
            !shown.contains("pw-secret") && shown.contains("bot"),
            "{shown}"
        );
        let c = builder.build().unwrap();
        let Some(RedisTarget::Sentinel { node, .. }) = c.redis_target() else {
            panic!("not sentinel");
        };
        assert_eq!(node.db(), 2, "the first sentinel URL's database");
        assert!(!format!("{c:?}").contains("pw-secret"));
    }

    #[test]
    fn node_auth_reaches_every_data_node_in_any_order() {
        let c = CacheConfig::builder()
            .redis_node_auth(Some("bot"), "pw")
            .redis_cluster(&["redis://a:1", "redis://:other@b:2"])
            .build()
            .unwrap();
        let Some(RedisTarget::Cluster(nodes)) = c.redis_target() else {
            panic!("not a cluster");
        };
        for node in nodes {
            assert_eq!(node.redis_settings().password(), Some("pw"));
            assert_eq!(node.redis_settings().username(), Some("bot"));
        }
    }

    #[test]
    fn redact_url_hides_only_the_password() {
        assert_eq!(redact_url("redis://u:p@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn dotenv_file_is_read_and_real_env_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, "IFTB_TEST_ONLY_FROM_FILE=file\nPATH=from-file\n").unwrap();
        let vars = env_with_dotenv(path.to_str().unwrap()).unwrap();
        assert_eq!(vars["IFTB_TEST_ONLY_FROM_FILE"], "file");
        assert_ne!(vars["PATH"], "from-file");
        let missing = env_with_dotenv(dir.path().join("none").to_str().unwrap());
        assert!(missing.is_ok());
    }
}
