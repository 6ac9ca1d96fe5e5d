//! The cache under test on either backend, and the macro that runs one test
//! body on both.

use super::RedisServer;

/// A cache under test, with the server it runs on when that is Redis.
pub struct TestCache {
    pub cache: iftb_cache::CacheManager,
    pub server: Option<RedisServer>,
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
    }
}

/// A cache on a fresh redis-server of its own.
pub async fn with_redis() -> TestCache {
    let server = RedisServer::start();
    let cache = connect(&server, |b| b).await;
    TestCache {
        cache,
        server: Some(server),
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

/// Runs each listed `async fn(&TestCache)` as a test on both backends:
/// `on_embedded::name` and `on_redis::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_embedded {
            $(
                #[tokio::test]
                async fn $name() {
                    let t = $crate::support::embedded().await;
                    super::$name(&t).await;
                }
            )*
        }
        mod on_redis {
            $(
                #[tokio::test]
                async fn $name() {
                    let t = $crate::support::with_redis().await;
                    super::$name(&t).await;
                }
            )*
        }
    };
}
