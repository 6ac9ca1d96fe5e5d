//! The Redis backend: one multiplexed connection with automatic reconnect
//! (redis-rs `ConnectionManager`), every call bounded by the response timeout.
//!
//! A series is a sorted set of blocks of bar records (see `blocks.rs`).
//! Writes go through a Lua script, one call per chunk, all chunks pipelined:
//! a script runs atomically, so a chunk is applied whole and a reader never
//! sees a bar replaced halfway. Reads are single `ZRANGE`s, one round trip.

use super::blocks::{self, UPSERT_LUA};
use super::{SeriesWindow, SeriesWrite};
use crate::codec;
use crate::config::CacheConfig;
use crate::error::{Error, ErrorKind, Result};
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, Pipeline, ProtocolVersion};
use std::future::Future;
use std::time::Duration;

/// Bars per script call: bounded so that no command or reply is huge.
/// (The script also runs in one go: a smaller chunk keeps Redis responsive.)
pub(crate) const CHUNK_BARS: usize = 2_000;

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
    /// Connects, failing within the connect timeout when Redis is unreachable.
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
        check_credentials(&client, config).await?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout()))
            .set_response_timeout(Some(config.response_timeout()))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let deadline = config.response_timeout() + Duration::from_millis(250);
        let connect = ConnectionManager::new_with_config(client, manager_config);
        let total = config.connect_timeout() * 3 + Duration::from_secs(1);
        let conn = bounded(total, connect).await?;
        Ok(Self {
            conn,
            deadline,
            upsert: redis::Script::new(UPSERT_LUA),
        })
    }

    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        let send = |mut conn: ConnectionManager| async move { cmd.query_async(&mut conn).await };
        bounded(self.deadline, self.send_twice_if_refused(send)).await
    }

    async fn query_pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T> {
        let send = |mut conn: ConnectionManager| async move { pipe.query_async(&mut conn).await };
        bounded(self.deadline, self.send_twice_if_refused(send)).await
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

    pub(crate) async fn series_upsert(&self, w: &SeriesWrite<'_>) -> Result<()> {
        let pipe = self.upsert_pipeline(w);
        match self.query_pipe::<()>(&pipe).await {
            // After a restart or SCRIPT FLUSH the script is gone: load it and
            // send again. Safe to repeat: an upsert is idempotent.
            Err(e) if is_noscript(&e) => {
                self.query::<String>(redis::cmd("SCRIPT").arg("LOAD").arg(UPSERT_LUA))
                    .await?;
                self.query_pipe(&pipe).await
            }
            other => other,
        }
    }

    fn upsert_pipeline(&self, w: &SeriesWrite<'_>) -> Pipeline {
        let cap = w.max_len.map_or(0, |m| m.get());
        let mut pipe = redis::pipe();
        let span = blocks::span_ms(w.interval_ms);
        for chunk in blocks::chunks(w.items, span, CHUNK_BARS) {
            let cmd = pipe
                .cmd("EVALSHA")
                .arg(self.upsert.get_hash())
                .arg(1)
                .arg(w.key)
                .arg(ttl_millis(w.ttl))
                .arg(cap)
                .arg(span)
                .arg(codec::BAR_LEN);
            for (ts, record) in chunk {
                cmd.arg(*ts).arg(record.as_ref());
            }
            cmd.ignore();
        }
        pipe
    }

    /// Enough blocks for `n` bars when the series has no gaps (one round
    /// trip); a gappy series takes more, doubling the blocks asked each time.
    pub(crate) async fn series_newest(&self, key: &str, n: usize) -> Result<Vec<Bytes>> {
        let page = |offset, count| newest_blocks(key, offset, count);
        self.paged(n, page, |fetched| {
            let runs = blocks::newest(fetched, n)?;
            let found: usize = runs.iter().map(|r| r.len() / codec::BAR_LEN).sum();
            Ok((found == n, runs))
        })
        .await
    }

    pub(crate) async fn series_latest(&self, key: &str) -> Result<Option<Bytes>> {
        let head = blocks_only(self.query(&newest_blocks(key, 0, 1)).await?);
        Ok(blocks::newest(&head, 1)?.pop())
    }

    pub(crate) async fn series_range(&self, w: &SeriesWindow<'_>) -> Result<Vec<Bytes>> {
        // A bar's block starts at or after the block of `from`, so blocks
        // scored from there up to `to` hold the window.
        let start = blocks::block_start(w.from, blocks::span_ms(w.interval_ms));
        let page = |offset, count| {
            redis::cmd("ZRANGE")
                .arg(w.key)
                .arg(start)
                .arg(w.to)
                .arg("BYSCORE")
                .arg("LIMIT")
                .arg(offset)
                .arg(count)
                .to_owned()
        };
        self.paged(w.limit, page, |fetched| {
            let records = blocks::window(fetched, w.from, w.to, w.limit)?;
            Ok((records.len() == w.limit, records))
        })
        .await
    }

    /// Reads blocks in pages until `answer` says those fetched so far hold
    /// `bars` bars, or the series has no more. The first page is sized for
    /// full blocks, so a series without gaps is one round trip and a huge
    /// read is no huge reply; a gappy series doubles the page each time.
    async fn paged<T>(
        &self,
        bars: usize,
        page: impl Fn(usize, usize) -> Cmd,
        answer: impl Fn(&[Bytes]) -> Result<(bool, T)>,
    ) -> Result<T> {
        let mut count = bars.div_ceil(blocks::BLOCK_BARS) + 1;
        let mut fetched: Vec<Bytes> = Vec::new();
        loop {
            let more = blocks_only(self.query(&page(fetched.len(), count)).await?);
            let exhausted = more.len() < count;
            fetched.extend(more);
            let (complete, out) = answer(&fetched)?;
            if complete || exhausted {
                return Ok(out);
            }
            count *= 2;
        }
    }

    pub(crate) async fn series_latest_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.add_command(newest_blocks(key, 0, 1));
        }
        let replies: Vec<Vec<Bytes>> = self.query_pipe(&pipe).await?;
        replies
            .into_iter()
            .map(|head| Ok(blocks::newest(&blocks_only(head), 1)?.pop()))
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
    let limit = config.connect_timeout() + config.response_timeout();
    let connect = client.get_multiplexed_async_connection_with_config(&probe);
    match bounded(limit, connect).await {
        Err(e) if e.kind() == ErrorKind::Authentication => Err(e),
        _ => Ok(()),
    }
}

/// The blocks of a series, newest first, skipping `offset`, by rank: cheaper
/// for Redis than by score. The `#count` member ranks last (its score is
/// negative) and is dropped by [`blocks_only`].
fn newest_blocks(key: &str, offset: usize, count: usize) -> Cmd {
    redis::cmd("ZRANGE")
        .arg(key)
        .arg(offset)
        .arg(offset + count - 1)
        .arg("REV")
        .to_owned()
}

/// Blocks only: a rank read can reach the `#count` member, which is dropped.
fn blocks_only(mut members: Vec<Bytes>) -> Vec<Bytes> {
    members.retain(|m| m.as_ref() != blocks::COUNT_MEMBER);
    members
}

/// Runs a Redis future within `limit`; past it, a timeout error.
async fn bounded<T>(
    limit: Duration,
    fut: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result.map_err(Error::from),
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
