//! The cache under test on each backend, and the macro that runs one test
//! body on each: embedded, one Redis server, a Redis Cluster.

use super::{RedisCluster, RedisServer};

/// A cache under test, with the server or cluster it runs on, if any.
pub struct TestCache {
    pub cache: iftb_cache::CacheManager,
    pub server: Option<RedisServer>,
    pub cluster: Option<RedisCluster>,
}

/// A cache on the embedded backend.
pub async fn embedded() -> TestCache {
    let config = iftb_cache::CacheConfig::embedded();
    let cache = iftb_cache::CacheManager::connect(config)
        .await
        .expect("embedded");
    TestCache {
        cache,
        server: None,
        cluster: None,
    }
}

/// A cache on a fresh redis-server of its own.
pub async fn with_redis() -> TestCache {
    let server = RedisServer::start();
    let cache = connect(&server, |b| b).await;
    TestCache {
        cache,
        server: Some(server),
        cluster: None,
    }
}

/// A cache on a fresh redis-server of its own, with a near cache (8 MiB)
/// serving before the test begins.
pub async fn with_near() -> TestCache {
    let server = RedisServer::start();
    let cache = connect(&server, |b| b.near_cache(NEAR_BYTES)).await;
    assert_near_serving(&cache).await;
    TestCache {
        cache,
        server: Some(server),
        cluster: None,
    }
}

/// The near cache of the tests' caches.
pub const NEAR_BYTES: std::num::NonZeroUsize = std::num::NonZeroUsize::new(8 << 20).unwrap();

/// Waits until the near cache of `cache` serves: tracking is on.
pub async fn assert_near_serving(cache: &iftb_cache::CacheManager) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !cache.stats().near_serving {
        assert!(
            std::time::Instant::now() < deadline,
            "the near cache never served: {:?}",
            cache.stats()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A cache on a cluster of its own: 3 primaries, no replicas (the failover
/// tests make their own, with replicas).
pub async fn with_cluster() -> TestCache {
    let cluster = RedisCluster::start(3, 0);
    let cache = iftb_cache::CacheManager::connect(cluster.config(|b| b))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", cluster.logs()));
    assert_eq!(cache.backend_name(), "redis-cluster");
    TestCache {
        cache,
        server: None,
        cluster: Some(cluster),
    }
}

/// A cache manager on `server`, its config adjusted by `configure`.
pub async fn connect(
    server: &RedisServer,
    configure: impl FnOnce(iftb_cache::CacheConfigBuilder) -> iftb_cache::CacheConfigBuilder,
) -> iftb_cache::CacheManager {
    let builder = iftb_cache::CacheConfig::builder().redis_url(&server.url());
    let config = configure(builder).build().expect("config");
    iftb_cache::CacheManager::connect(config)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", server.log()))
}

/// Runs each listed `async fn(&TestCache)` as a test on every backend:
/// `on_embedded::name`, `on_redis::name`, `on_near::name` (one server, with
/// a near cache) and `on_cluster::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $crate::on_backend!(on_embedded, embedded, $($name),*);
        $crate::on_backend!(on_redis, with_redis, $($name),*);
        $crate::on_backend!(on_near, with_near, $($name),*);
        $crate::on_backend!(on_cluster, with_cluster, $($name),*);
    };
}

/// One module of [`on_both_backends`]: each test on the cache `start` makes.
#[macro_export]
macro_rules! on_backend {
    ($module:ident, $start:ident, $($name:ident),*) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $name() {
                    let t = $crate::support::$start().await;
                    super::$name(&t).await;
                }
            )*
        }
    };
}
