//! The primary that Redis Sentinel names, followed through failovers.
//!
//! redis-rs asks the Sentinels where the primary is (and checks its `ROLE`),
//! but its connection stays with the address it was given. This keeps one
//! `ConnectionManager` to the current primary and asks the Sentinels again
//! when that connection shows the primary may have moved: a reply of
//! `READONLY` (it was demoted), a refused, dropped or timed-out connection,
//! or a disconnection (Sentinel's failover kills the clients of a demoted
//! primary). Until the Sentinels name a new primary, the same one is kept
//! and the calls fail as it does.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{ConnectionAddr, ConnectionInfo, PushKind, RedisConnectionInfo, RedisResult};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The least time between two lookups: calls queued behind one that failed
/// go on with the primary they have, not one more lookup each.
const LOOKUP_GAP: Duration = Duration::from_millis(100);

pub(crate) struct SentinelConnection {
    /// Asked one call at a time: the first call that finds `moved` set asks,
    /// the ones queued behind it find it cleared, or a lookup just made.
    sentinels: tokio::sync::Mutex<Lookups>,
    primary: RwLock<Primary>,
    /// Set when the primary may have moved; the next call asks the Sentinels.
    moved: Arc<AtomicBool>,
    manager: ConnectionManagerConfig,
}

struct Lookups {
    client: SentinelClient,
    /// When the last lookup started.
    last: Option<Instant>,
}

/// The primary in use and its address, to tell a new one from the same.
struct Primary {
    addr: String,
    info: ConnectionInfo,
    conn: ConnectionManager,
}

impl SentinelConnection {
    /// Asks the Sentinels for the primary of `master`, and connects to it.
    pub(crate) async fn connect(
        master: &str,
        sentinels: &[ConnectionInfo],
        node: &RedisConnectionInfo,
        manager: ConnectionManagerConfig,
    ) -> RedisResult<Self> {
        let mut client = sentinel_client(master, sentinels, node)?;
        let moved = Arc::new(AtomicBool::new(false));
        let redis_client = client.async_get_client().await?;
        let primary = Primary::connect(redis_client, &manager, &moved).await?;
        Ok(Self {
            sentinels: tokio::sync::Mutex::new(Lookups { client, last: None }),
            primary: RwLock::new(primary),
            moved,
            manager,
        })
    }

    /// The connection to the primary, asking the Sentinels first when it may
    /// have moved. A lookup that fails leaves the primary in use: with the
    /// Sentinels unreachable, a primary that answers still serves.
    pub(crate) async fn conn(&self) -> ConnectionManager {
        if self.moved.load(Ordering::Acquire) {
            // Boxed: redis-rs's Sentinel futures nest deep, and every call's
            // future would carry their layout (rustc's query depth limit).
            if let Err(e) = Box::pin(self.follow()).await {
                tracing::warn!(error = %e, "redis_sentinel_lookup_failed");
            }
        }
        self.read().conn.clone()
    }

    /// Notes a failed call: the errors a moved primary causes make the next
    /// call ask the Sentinels.
    pub(crate) fn saw(&self, e: &redis::RedisError) {
        let moved = e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
        if moved {
            self.moved.store(true, Ordering::Release);
        }
    }

    /// Asks the Sentinels where the primary is, and connects there if it is
    /// somewhere new. Until that succeeds `moved` stays set, so that the next
    /// call asks again: after a failure, and after a call cancelled (its
    /// deadline passed) while it asked.
    async fn follow(&self) -> RedisResult<()> {
        let mut lookups = self.sentinels.lock().await;
        let recent = lookups.last.is_some_and(|t| t.elapsed() < LOOKUP_GAP);
        if recent || !self.moved.load(Ordering::Acquire) {
            return Ok(());
        }
        lookups.last = Some(Instant::now());
        // Cleared before asking: a disconnection seen meanwhile sets it again.
        self.moved.store(false, Ordering::Release);
        let rearm = Rearm(&self.moved);
        let client = lookups.client.async_get_client().await?;
        let addr = client.get_connection_info().addr().to_string();
        if addr != self.read().addr {
            let primary = Primary::connect(client, &self.manager, &self.moved).await?;
            tracing::warn!(primary = %primary.addr, "redis_sentinel_failover_followed");
            *self.primary.write().unwrap_or_else(|e| e.into_inner()) = primary;
        }
        std::mem::forget(rearm);
        Ok(())
    }

    /// Where the primary in use is, with the credentials to reach it.
    pub(crate) fn primary_info(&self) -> ConnectionInfo {
        self.read().info.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Primary> {
        self.primary.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sets `moved` again when dropped: a lookup that did not finish.
struct Rearm<'a>(&'a AtomicBool);

impl Drop for Rearm<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

impl Primary {
    async fn connect(
        client: redis::Client,
        manager: &ConnectionManagerConfig,
        moved: &Arc<AtomicBool>,
    ) -> RedisResult<Self> {
        let info = client.get_connection_info().clone();
        let addr = info.addr().to_string();
        let on_push = {
            let moved = Arc::clone(moved);
            move |push: redis::PushInfo| {
                if push.kind == PushKind::Disconnection {
                    moved.store(true, Ordering::Release);
                }
                Ok::<(), std::convert::Infallible>(())
            }
        };
        let config = manager.clone().set_push_sender(on_push);
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self { addr, info, conn })
    }
}

/// The Sentinels, with their own credentials (from their URLs), and the
/// data nodes' credentials, database and TLS mode (the Sentinels' mode).
fn sentinel_client(
    master: &str,
    sentinels: &[ConnectionInfo],
    node: &RedisConnectionInfo,
) -> RedisResult<SentinelClient> {
    let addrs = sentinels.iter().map(|s| s.addr().clone());
    let mut builder = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)?
        .set_client_to_redis_protocol(redis::ProtocolVersion::RESP3)
        .set_client_to_redis_db(node.db());
    if let Some(user) = node.username() {
        builder = builder.set_client_to_redis_username(user);
    }
    if let Some(password) = node.password() {
        builder = builder.set_client_to_redis_password(password);
    }
    if let Some(own) = sentinels.first().map(|s| s.redis_settings()) {
        if let Some(user) = own.username() {
            builder = builder.set_client_to_sentinel_username(user);
        }
        if let Some(password) = own.password() {
            builder = builder.set_client_to_sentinel_password(password);
        }
    }
    if let Some(ConnectionAddr::TcpTls { insecure, .. }) = sentinels.first().map(|s| s.addr()) {
        let mode = if *insecure {
            redis::TlsMode::Insecure
        } else {
            redis::TlsMode::Secure
        };
        builder = builder
            .set_client_to_redis_tls_mode(mode)
            .set_client_to_sentinel_tls_mode(mode);
    }
    builder.build()
}
