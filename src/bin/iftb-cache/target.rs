//! Which Redis and namespace: configured exactly as the library is
//! (`CacheConfig::from_env`: `REDIS_URL`, or `REDIS_HOST`.., a cluster,
//! Sentinel, `./.env`, `IFTB_CACHE_NAMESPACE`), then `--url` and
//! `--namespace` on top.

use crate::exit;
use crate::output::Failure;
use iftb_cache::{CacheConfig, CacheManager};

/// The flags every command takes.
#[derive(Debug, clap::Args)]
pub struct Global {
    /// Redis to use instead of the environment's: redis://[user:password@]host:port/db
    ///
    /// `rediss://` with the `tls` feature. A password is safer in REDIS_URL than
    /// on a command line, where `ps` shows it.
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// Key namespace, instead of IFTB_CACHE_NAMESPACE (default: iftb)
    #[arg(long, global = true, value_name = "NS")]
    pub namespace: Option<String>,
    /// Print one JSON document on stdout, errors included
    #[arg(long, global = true)]
    pub json: bool,
}

/// The configuration, refused when it names no Redis.
pub fn config(global: &Global) -> Result<CacheConfig, Failure> {
    let from_env = CacheConfig::from_env().map_err(|e| Failure::of("configuration", &e))?;
    let mut builder = from_env.into_builder();
    if let Some(url) = &global.url {
        builder = builder.redis_url(url);
    }
    if let Some(ns) = &global.namespace {
        builder = builder.namespace(ns);
    }
    let config = builder
        .build()
        .map_err(|e| Failure::of("configuration", &e))?;
    if !config.is_redis() {
        return Err(Failure::new(
            exit::USAGE,
            "no Redis is configured: set REDIS_URL (or REDIS_HOST, REDIS_CLUSTER_NODES, \
             REDIS_SENTINELS; ./.env is read too) or pass --url. Without Redis the library \
             uses its embedded backend, which lives inside the process that runs it: there \
             is nothing here for this tool to look at.",
        ));
    }
    Ok(config)
}

/// A manager connected to the configured Redis.
pub async fn connect(config: CacheConfig) -> Result<CacheManager, Failure> {
    let at = config.backend_description();
    CacheManager::connect(config)
        .await
        .map_err(|e| Failure::of(format!("cannot connect to {at}"), &e))
}
