//! The Redis backend: one multiplexed connection with automatic reconnect
//! (redis-rs `ConnectionManager`), every call bounded by one deadline.
//!
//! A series is a sorted set of bar runs and a head key (see `series.rs`).
//! Writes go through a Lua script, one call per chunk, all chunks pipelined:
//! a script runs atomically, so a chunk is applied whole and a reader never
//! sees a bar replaced halfway. Every read is one command (a range read, one
//! `MULTI` transaction): one round trip, one atomic snapshot.

use super::series::{self, UPSERT_LUA};
use super::{BarRecord, SeriesWindow, SeriesWrite};
use crate::codec::{self, Kind};
use crate::config::CacheConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::keys::SeriesKey;
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, Pipeline, ProtocolVersion};
use std::future::Future;
use std::time::Duration;

/// Keys per SCAN step and per UNLINK of `clear_prefix`.
const CLEAR_BATCH: usize = 1_000;

/// Compare-and-delete: a lock is released only by the holder whose token it
/// still holds. KEYS[1]: the lock. ARGV[1]: the token.
const DELETE_IF_EQUALS_LUA: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

pub(crate) struct RedisBackend {
    conn: ConnectionManager,
    /// The response timeout plus a margin: the outer bound on any one call.
    deadline: Duration,
    upsert: redis::Script,
}

impl RedisBackend {
    /// Connects, failing within [`CacheConfig::connect_deadline`] when Redis
    /// is unreachable: one bound for the whole of it, credential check included.
    pub(crate) async fn connect(config: &CacheConfig) -> Result<Self> {
        let info = config
            .redis_info()
            .ok_or_else(|| Error::new(ErrorKind::Config, "Redis is not configured"))?;
        // RESP3: the connection tells the manager when Redis goes away, and
        // the manager reconnects then, without waiting for a call to fail.
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.clone().set_redis_settings(settings))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout()))
            .set_response_timeout(Some(config.response_timeout()))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let connect = async {
            check_credentials(&client, config).await?;
            let manager = ConnectionManager::new_with_config(client.clone(), manager_config);
            manager.await.map_err(Error::from)
        };
        let conn = within(config.connect_deadline(), connect).await?;
        Ok(Self {
            conn,
            deadline: config.call_deadline(),
            upsert: redis::Script::new(UPSERT_LUA),
        })
    }

    /// One command, within the call's deadline.
    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        within(self.deadline, self.send(cmd)).await
    }

    async fn query_pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T> {
        within(self.deadline, self.send_pipe(pipe)).await
    }

    /// One command, unbounded: callers bound the whole call they are part of.
    async fn send<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        let send = |mut conn: ConnectionManager| async move { cmd.query_async(&mut conn).await };
        self.send_twice_if_refused(send).await.map_err(Error::from)
    }

    async fn send_pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T> {
        let send = |mut conn: ConnectionManager| async move { pipe.query_async(&mut conn).await };
        self.send_twice_if_refused(send).await.map_err(Error::from)
    }

    /// Sends once, and once more if the manager's last reconnection had been
    /// refused: the first call after Redis comes back meets that stale
    /// failure, which makes the manager reconnect, and the second send goes
    /// over the new connection. A refused connection sent nothing, so any
    /// command may be repeated. Still within the deadline.
    async fn send_twice_if_refused<T, F, Fut>(&self, send: F) -> redis::RedisResult<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        match send(self.conn.clone()).await {
            Err(e) if e.is_connection_refusal() => send(self.conn.clone()).await,
            other => other,
        }
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        self.query(redis::cmd("GET").arg(key)).await
    }

    pub(crate) async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        self.query(redis::cmd("MGET").arg(keys)).await
    }

    pub(crate) async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value.as_ref());
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl_millis(ttl));
        }
        self.query(&cmd).await
    }

    pub(crate) async fn set_many(&self, items: &[(String, Bytes)], ttl: Duration) -> Result<()> {
        let mut pipe = redis::pipe();
        for (key, value) in items {
            pipe.cmd("SET")
                .arg(key)
                .arg(value.as_ref())
                .arg("PX")
                .arg(ttl_millis(ttl))
                .ignore();
        }
        self.query_pipe(&pipe).await
    }

    pub(crate) async fn delete(&self, keys: &[String]) -> Result<u64> {
        self.query(redis::cmd("UNLINK").arg(keys)).await
    }

    pub(crate) async fn exists(&self, key: &str) -> Result<bool> {
        self.query(redis::cmd("EXISTS").arg(key)).await
    }

    /// `SET NX PX GET` (Redis 7+) answers the value it found, so a send
    /// repeated after a dropped reply still knows it set the key: it finds
    /// its own value there. Callers pass a value unique to the attempt.
    pub(crate) async fn set_nx(&self, key: &str, value: Bytes, ttl: Duration) -> Result<bool> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value.as_ref()).arg("NX").arg("PX");
        cmd.arg(ttl_millis(ttl)).arg("GET");
        let found: Option<Vec<u8>> = self.query(&cmd).await?;
        Ok(found.is_none_or(|old| old == value.as_ref()))
    }

    /// GET and DEL in one script, so that no other client's SET can land
    /// between the comparison and the delete. Plain EVAL: the script is tiny,
    /// runs once per computation, and never meets NOSCRIPT.
    pub(crate) async fn delete_if_equals(&self, key: &str, value: &[u8]) -> Result<bool> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(DELETE_IF_EQUALS_LUA).arg(1).arg(key).arg(value);
        let deleted: u64 = self.query(&cmd).await?;
        Ok(deleted > 0)
    }

    /// Every chunk in one pipeline, and after Redis lost its scripts (a
    /// restart, `SCRIPT FLUSH`) the load and the resend too, all within the
    /// one deadline of the call. Resending is safe: an upsert is idempotent.
    pub(crate) async fn series_upsert(&self, w: &SeriesWrite<'_>) -> Result<()> {
        let pipe = self.upsert_pipeline(w);
        let write = async {
            match self.send_pipe::<()>(&pipe).await {
                Err(e) if is_noscript(&e) => {
                    let load = redis::cmd("SCRIPT").arg("LOAD").arg(UPSERT_LUA).to_owned();
                    self.send::<String>(&load).await?;
                    self.send_pipe(&pipe).await
                }
                other => other,
            }
        };
        within(self.deadline, write).await
    }

    fn upsert_pipeline(&self, w: &SeriesWrite<'_>) -> Pipeline {
        let cap = w.max_len.map_or(0, |m| m.get());
        let mut pipe = redis::pipe();
        let bar = codec::ARCHIVED_BAR_LEN;
        for start in (0..w.times.len()).step_by(series::CHUNK_BARS) {
            let end = (start + series::CHUNK_BARS).min(w.times.len());
            pipe.cmd("EVALSHA")
                .arg(self.upsert.get_hash())
                .arg(2)
                .arg(w.key.set())
                .arg(w.key.head())
                .arg(ttl_millis(w.ttl))
                .arg(cap)
                .arg(series::RUN_BARS)
                .arg(series::EXACT_ZONE)
                .arg(bar)
                .arg(&codec::header_bytes(Kind::BarRun)[..])
                .arg(&codec::header_bytes(Kind::SeriesHead)[..])
                .arg(&w.bars[start * bar..end * bar])
                .arg(w.times[start])
                .ignore();
        }
        pipe
    }

    /// The newest members that hold `n` bars, by rank: one `ZRANGE`.
    pub(crate) async fn series_newest(&self, key: &SeriesKey, n: usize) -> Result<Vec<Bytes>> {
        let members = series::members_for(n);
        let cmd = redis::cmd("ZRANGE")
            .arg(key.set())
            .arg(0)
            .arg(members - 1)
            .arg("REV")
            .to_owned();
        let fetched: Vec<Bytes> = self.query(&cmd).await?;
        series::newest(&fetched, n)
    }

    /// The head: one `GET` of one small value.
    pub(crate) async fn series_latest(&self, key: &SeriesKey) -> Result<Option<BarRecord>> {
        let head: Option<Vec<u8>> = self.query(redis::cmd("GET").arg(key.head())).await?;
        head.map(series::head_bar).transpose()
    }

    /// The run holding `from` and the runs that start inside the window, in
    /// one `MULTI` transaction: one round trip, one snapshot.
    pub(crate) async fn series_range(&self, w: &SeriesWindow<'_>) -> Result<Vec<Bytes>> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("ZRANGE")
            .arg(w.key.set())
            .arg(w.from)
            .arg("-inf")
            .arg("BYSCORE")
            .arg("REV")
            .arg("LIMIT")
            .arg(0)
            .arg(1)
            .cmd("ZRANGE")
            .arg(w.key.set())
            .arg(format!("({}", w.from))
            .arg(w.to)
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(series::members_for_window(w.limit));
        let (mut members, inside): (Vec<Bytes>, Vec<Bytes>) = self.query_pipe(&pipe).await?;
        members.extend(inside);
        series::window(&members, w.from, w.to, w.limit)
    }

    /// Both keys in one `UNLINK`.
    pub(crate) async fn series_delete(&self, key: &SeriesKey) -> Result<bool> {
        let cmd = redis::cmd("UNLINK")
            .arg(key.set())
            .arg(key.head())
            .to_owned();
        Ok(self.query::<u64>(&cmd).await? > 0)
    }

    /// The heads in one `MGET`.
    pub(crate) async fn series_latest_many(
        &self,
        keys: &[SeriesKey],
    ) -> Result<Vec<Option<BarRecord>>> {
        let heads = keys.iter().map(|k| k.head()).collect::<Vec<_>>();
        let found: Vec<Option<Vec<u8>>> = self.query(redis::cmd("MGET").arg(heads)).await?;
        found
            .into_iter()
            .map(|head| head.map(series::head_bar).transpose())
            .collect()
    }

    pub(crate) async fn ping(&self) -> Result<()> {
        self.query::<String>(&redis::cmd("PING")).await.map(drop)
    }

    /// SCAN + UNLINK in batches: never blocks Redis the way `KEYS` or a
    /// `FLUSHDB` of a shared database would.
    pub(crate) async fn clear_prefix(&self, prefix: &str) -> Result<u64> {
        let pattern = format!("{prefix}*");
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let scan = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(CLEAR_BATCH)
                .to_owned();
            let (next, keys): (u64, Vec<String>) = self.query(&scan).await?;
            if !keys.is_empty() {
                deleted += self.delete(&keys).await?;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    pub(crate) async fn flush_db(&self) -> Result<()> {
        self.query(&redis::cmd("FLUSHDB")).await
    }
}

/// One direct connection before the manager's: Redis refusing the credentials
/// is reported at once, where the manager would try them twice more with
/// backoff (a retry loop on a wrong password). Other failures are left to
/// the manager's retries.
async fn check_credentials(client: &redis::Client, config: &CacheConfig) -> Result<()> {
    let probe = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout()))
        .set_response_timeout(Some(config.response_timeout()));
    // One connection's share of the connect deadline: a probe that hangs
    // leaves the manager's connection its own.
    let limit = config.connect_timeout() + config.response_timeout();
    let connect = async {
        let probe = client.get_multiplexed_async_connection_with_config(&probe);
        probe.await.map_err(Error::from)
    };
    match within(limit, connect).await {
        Err(e) if e.kind() == ErrorKind::Authentication => Err(e),
        _ => Ok(()),
    }
}

/// Runs a future within `limit`; past it, a timeout error.
async fn within<T>(limit: Duration, fut: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result,
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!("Redis did not answer within {limit:?}"),
        )),
    }
}

fn is_noscript(e: &Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<redis::RedisError>())
        .is_some_and(|r| r.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript))
}

/// TTLs go to Redis in milliseconds; config and callers reject anything under 1 ms.
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}
