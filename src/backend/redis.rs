//! The Redis backend, on one server, a Cluster or Sentinel's primary
//! (`connection.rs`), every call bounded by one deadline.
//!
//! A series is a sorted set of bar runs and a head key (see `series.rs`).
//! Writes go through a Lua script, one call per chunk, all chunks pipelined:
//! a script runs atomically, so a chunk is applied whole and a reader never
//! sees a bar replaced halfway. Every read is one command (a range read, one
//! `MULTI` transaction): one round trip, one atomic snapshot.
//!
//! With a near cache (`near.rs`, kept told by `tracking.rs`), reads go
//! through it: a valid copy answers, and a miss sends the same read with the
//! key's `PTTL` in the same round trip. Every write drops the copies of the
//! keys it touches on its way out, whatever its outcome.

use super::breaker::{Breaker, BreakerStats};
use super::cluster::{key_slot, Part};
use super::connection::{within, Connection};
use super::near::{Near, NearStats};
use super::series::{self, UPSERT_LUA};
use super::tracking::{self, Tracking};
use super::{BarRecord, KeyUsage, SeriesWindow, SeriesWrite, UsageTotals};
use crate::codec::{self, Kind};
use crate::config::CacheConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::keys::SeriesKey;
use bytes::Bytes;
use redis::{Cmd, FromRedisValue, Pipeline, Value};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Keys per SCAN step and per UNLINK of `clear_prefix`.
const CLEAR_BATCH: usize = 1_000;

/// Keys per SCAN step of `scan_usage`, each followed by one pipeline of a
/// `MEMORY USAGE` and a `PTTL` per key found. The step is one command, as
/// `clear_prefix`'s: about 0.7 ms of Redis time when all 1,000 keys match
/// (redis 7.0 here), and other clients wait for it. The pipeline holds
/// nobody up as long: Redis reads it 16 KB at a time and serves other
/// clients in between.
const USAGE_BATCH: usize = 1_000;

/// Compare-and-delete: a lock is released only by the holder whose token it
/// still holds. KEYS[1]: the lock. ARGV[1]: the token.
const DELETE_IF_EQUALS_LUA: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// Compare-and-expire: a lock's lease is renewed only by the holder whose
/// token it still holds. KEYS[1]: the lock. ARGV[1]: the token, ARGV[2]: the
/// lease in milliseconds.
const RENEW_IF_EQUALS_LUA: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"#;

pub(crate) struct RedisBackend {
    conn: Arc<Connection>,
    /// The response timeout plus a margin: the outer bound on any one call.
    deadline: Duration,
    /// Fails calls fast while Redis is unavailable (`breaker.rs`).
    breaker: Arc<Breaker>,
    /// The runtime that connected, where the breaker's probe runs.
    runtime: tokio::runtime::Handle,
    upsert: redis::Script,
    near: Option<Arc<Near>>,
    /// Keeps `near` told while it lives.
    _tracking: Option<Tracking>,
}

impl RedisBackend {
    /// Connects, failing within [`CacheConfig::connect_deadline`] when Redis
    /// is unreachable: one bound for the whole of it, credential check
    /// included. With a near cache, then waits up to the connect timeout
    /// for it to serve (never failing for it).
    pub(crate) async fn connect(config: &CacheConfig) -> Result<Self> {
        let target = config
            .redis_target()
            .ok_or_else(|| Error::new(ErrorKind::Config, "Redis is not configured"))?;
        let connect = Connection::connect(config, target);
        let conn = Arc::new(within(config.connect_deadline(), connect).await?);
        let (near, tracking) = match config.near_cache() {
            None => (None, None),
            Some(bytes) => {
                let near = Arc::new(Near::new(bytes.get()));
                let setup = tracking::Setup {
                    prefix: format!("{}:", config.namespace()),
                    target: target.clone(),
                    connect_timeout: config.connect_timeout(),
                };
                let tracking = Tracking::start(&near, &conn, setup)?;
                wait_serving(&near, config.connect_timeout()).await;
                (Some(near), Some(tracking))
            }
        };
        Ok(Self {
            conn,
            deadline: config.call_deadline(),
            breaker: Arc::new(Breaker::new(
                config.breaker_threshold(),
                config.breaker_probe_interval(),
            )),
            runtime: tokio::runtime::Handle::current(),
            upsert: redis::Script::new(UPSERT_LUA),
            near,
            _tracking: tracking,
        })
    }

    pub(crate) fn has_near_cache(&self) -> bool {
        self.near.is_some()
    }

    pub(crate) fn near_stats(&self) -> Option<NearStats> {
        self.near.as_ref().map(|n| n.stats())
    }

    /// Drops this process' copies of `keys` when dropped: on every way out
    /// of a write, a cancelled one included.
    fn touching<'a, K: AsRef<str>>(&'a self, keys: &'a [K]) -> Touched<'a, K> {
        Touched {
            near: self.near.as_deref(),
            keys,
        }
    }

    /// `"redis"`, `"redis-cluster"` or `"redis-sentinel"`.
    pub(crate) fn name(&self) -> &'static str {
        self.conn.name()
    }

    pub(crate) fn breaker_stats(&self) -> BreakerStats {
        self.breaker.stats()
    }

    /// Every request to Redis goes through here: failed fast while the
    /// breaker is open, else bounded by the call deadline, its outcome
    /// counted by the breaker.
    async fn bounded<T>(&self, request: impl Future<Output = Result<T>>) -> Result<T> {
        if let Err(e) = self.breaker.admit() {
            self.probe();
            // A caller looping on fast failures on a current-thread runtime
            // would otherwise never let the probe (or the connection's own
            // driver) run.
            tokio::task::yield_now().await;
            return Err(e);
        }
        let result = within(self.deadline, request).await;
        if self.breaker.record(&result) {
            self.probe();
        }
        result
    }

    /// Starts the breaker's probe unless one runs: it checks Redis every
    /// probe interval until Redis answers, then closes the breaker. It runs
    /// on the runtime that connected, which drives the connection too: a
    /// caller's short-lived runtime could drop it unpolled. It holds the
    /// connection weakly, and stops once the backend is gone.
    fn probe(&self) {
        if !self.breaker.start_probe() {
            return;
        }
        let ended = ProbeEnded(Some(self.breaker.clone()));
        let (conn, deadline) = (Arc::downgrade(&self.conn), self.deadline);
        self.runtime.spawn(async move {
            let mut ended = ended;
            let breaker = ended.breaker();
            loop {
                while breaker.is_open() {
                    let Some(conn) = conn.upgrade() else { return };
                    match within(deadline, answers(&conn)).await {
                        Ok(()) => breaker.succeeded("a probe succeeded"),
                        Err(e) => {
                            tracing::debug!(error = %e, "circuit_breaker_probe_failed");
                            tokio::time::sleep(breaker.probe_interval).await;
                        }
                    }
                }
                if !breaker.probe_still_needed() {
                    ended.0 = None;
                    return;
                }
            }
        });
    }

    /// One command, within the call's deadline.
    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        self.bounded(self.send(cmd)).await
    }

    async fn query_pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T> {
        self.bounded(self.send_pipe(pipe)).await
    }

    /// One command, unbounded: callers bound the whole call they are part of.
    async fn send<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        self.conn.send(cmd).await.map_err(Error::from)
    }

    async fn send_pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T> {
        self.conn.send_pipe(pipe).await.map_err(Error::from)
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let Some(near) = &self.near else {
            return self.query(redis::cmd("GET").arg(key)).await;
        };
        let fetch = || async move {
            let get = redis::cmd("GET").arg(key).to_owned();
            self.with_pttl(&get, key).await
        };
        near.value(key, fetch).await
    }

    pub(crate) async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        let Some(near) = &self.near else {
            return self.mget_any(keys).await;
        };
        let fetch = |ids| self.mget_with_pttls(keys, ids);
        near.values(keys, fetch, Ok).await
    }

    /// `cmd` (a read of `key`) and `PTTL key`, in one round trip.
    async fn with_pttl<T: FromRedisValue>(&self, cmd: &Cmd, key: &str) -> Result<(T, i64)> {
        let mut pipe = redis::pipe();
        pipe.add_command(cmd.clone()).cmd("PTTL").arg(key);
        self.query_pipe(&pipe).await
    }

    /// `MGET` of the keys at `ids` and the `PTTL` of each, in one round
    /// trip (on a cluster, one per slot, in one pipeline per node): a near
    /// cache's misses.
    async fn mget_with_pttls<K: AsRef<str>>(
        &self,
        keys: &[K],
        ids: Vec<usize>,
    ) -> Result<Vec<(Option<Bytes>, i64)>> {
        let missing: Vec<&str> = ids.iter().map(|&i| keys[i].as_ref()).collect();
        self.mget_grouped(&missing, true).await
    }

    /// One `MGET` per slot (one in all, off a cluster), each with the
    /// `PTTL` of its keys when `pttls` (-2 otherwise), sent in one round
    /// trip; the answers in the caller's order.
    async fn mget_grouped<K, T>(&self, keys: &[K], pttls: bool) -> Result<Vec<(Option<T>, i64)>>
    where
        K: AsRef<str>,
        T: FromRedisValue,
    {
        let groups: Vec<(u16, Vec<usize>)> = match self.conn.cluster() {
            Some(_) => by_slot(keys),
            None => vec![(0, (0..keys.len()).collect())],
        };
        let mut parts = Vec::new();
        for (slot, ids) in &groups {
            let mut mget = redis::cmd("MGET");
            for &i in ids {
                mget.arg(keys[i].as_ref());
            }
            parts.push(Part {
                slot: *slot,
                cmd: mget,
            });
            for &i in ids.iter().filter(|_| pttls) {
                let cmd = redis::cmd("PTTL").arg(keys[i].as_ref()).to_owned();
                parts.push(Part { slot: *slot, cmd });
            }
        }
        let mut answers = self.read_all(&parts).await?.into_iter();
        let mut found: Vec<(Option<T>, i64)> = std::iter::repeat_with(|| (None, -2))
            .take(keys.len())
            .collect();
        for (_, ids) in &groups {
            let values: Vec<Option<T>> = parse(answers.next())?;
            if values.len() != ids.len() {
                return Err(Error::new(ErrorKind::Server, "MGET answered a wrong count"));
            }
            for (&i, value) in ids.iter().zip(values) {
                let pttl = if pttls { parse(answers.next())? } else { -2 };
                found[i] = (value, pttl);
            }
        }
        Ok(found)
    }

    /// Every part's answer, in order: on a cluster through `read_parts`,
    /// otherwise in one pipeline.
    async fn read_all(&self, parts: &[Part]) -> Result<Vec<redis::Value>> {
        if let Some(cluster) = self.conn.cluster() {
            let read = async { cluster.read_parts(parts).await.map_err(Error::from) };
            return self.bounded(read).await;
        }
        let mut pipe = redis::pipe();
        for part in parts {
            pipe.add_command(part.cmd.clone());
        }
        self.query_pipe(&pipe).await
    }

    /// One `MGET`; on a cluster one per slot, one pipeline per node, all
    /// sent at once, the answers put back in the caller's order.
    async fn mget_any<K, T>(&self, keys: &[K]) -> Result<Vec<Option<T>>>
    where
        K: AsRef<str>,
        T: FromRedisValue,
    {
        if !self.conn.is_cluster() {
            let cmd = redis::cmd("MGET").arg(as_strs(keys)).to_owned();
            return self.query(&cmd).await;
        }
        let found = self.mget_grouped(keys, false).await?;
        Ok(found.into_iter().map(|(value, _)| value).collect())
    }

    pub(crate) async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value.as_ref());
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(ttl_millis(ttl));
        }
        let keys = [key];
        let _touched = self.touching(&keys);
        self.query(&cmd).await
    }

    /// One pipeline; on a cluster one per slot, all sent at once (a command
    /// cannot span slots, and the keys of a batch are on many). Not one per
    /// node as reads are: redis-rs resends a pipeline whole where one of
    /// its commands was redirected, and a `SET` replayed late could
    /// overwrite a newer value.
    pub(crate) async fn set_many(&self, items: &[(String, Bytes)], ttl: Duration) -> Result<()> {
        let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
        let _touched = self.touching(&keys);
        let pipeline = |ids: &mut dyn Iterator<Item = usize>| {
            let mut pipe = redis::pipe();
            for (key, value) in ids.map(|i| &items[i]) {
                pipe.cmd("SET")
                    .arg(key)
                    .arg(value.as_ref())
                    .arg("PX")
                    .arg(ttl_millis(ttl))
                    .ignore();
            }
            pipe
        };
        if !self.conn.is_cluster() {
            return self.query_pipe(&pipeline(&mut (0..items.len()))).await;
        }
        let pipes: Vec<Pipeline> = by_slot(&keys)
            .into_iter()
            .map(|(_, ids)| pipeline(&mut ids.into_iter()))
            .collect();
        let sends = pipes.iter().map(|pipe| self.send_pipe::<()>(pipe));
        let all = async { futures_util::future::try_join_all(sends).await.map(drop) };
        self.bounded(all).await
    }

    pub(crate) async fn delete(&self, keys: &[String]) -> Result<u64> {
        let _touched = self.touching(keys);
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
        let keys = [key];
        let _touched = self.touching(&keys);
        let found: Option<Vec<u8>> = self.query(&cmd).await?;
        Ok(found.is_none_or(|old| old == value.as_ref()))
    }

    /// GET and DEL in one script, so that no other client's SET can land
    /// between the comparison and the delete. Plain EVAL: the script is tiny,
    /// runs once per computation, and never meets NOSCRIPT.
    pub(crate) async fn delete_if_equals(&self, key: &str, value: &[u8]) -> Result<bool> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(DELETE_IF_EQUALS_LUA).arg(1).arg(key).arg(value);
        let keys = [key];
        let _touched = self.touching(&keys);
        let deleted: u64 = self.query(&cmd).await?;
        Ok(deleted > 0)
    }

    /// PEXPIRE under the same comparison as [`delete_if_equals`](Self::delete_if_equals).
    pub(crate) async fn renew_if_equals(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RENEW_IF_EQUALS_LUA).arg(1).arg(key).arg(value);
        cmd.arg(ttl_millis(ttl));
        let renewed: u64 = self.query(&cmd).await?;
        Ok(renewed > 0)
    }

    /// Every chunk in one pipeline of `EVALSHA`. Where the script is not
    /// loaded (a restart, `SCRIPT FLUSH`, a replica promoted by a failover,
    /// a cluster node new to the slot) the pipeline is sent again as `EVAL`,
    /// which loads it on the node that runs it, within the one deadline of
    /// the call. Resending is safe: an upsert is idempotent.
    pub(crate) async fn series_upsert(&self, w: &SeriesWrite<'_>) -> Result<()> {
        let keys = [w.key.set(), w.key.head()];
        let _touched = self.touching(&keys);
        let write = async {
            match self.send_pipe::<()>(&self.upsert_pipeline(w, true)).await {
                Err(e) if is_noscript(&e) => self.send_pipe(&self.upsert_pipeline(w, false)).await,
                other => other,
            }
        };
        self.bounded(write).await
    }

    /// One script call per chunk: `EVALSHA` of the hash, or `EVAL` of the source.
    fn upsert_pipeline(&self, w: &SeriesWrite<'_>, by_hash: bool) -> Pipeline {
        let cap = w.max_len.map_or(0, |m| m.get());
        let mut pipe = redis::pipe();
        let bar = codec::ARCHIVED_BAR_LEN;
        for start in (0..w.times.len()).step_by(series::CHUNK_BARS) {
            let end = (start + series::CHUNK_BARS).min(w.times.len());
            let call = if by_hash {
                pipe.cmd("EVALSHA").arg(self.upsert.get_hash())
            } else {
                pipe.cmd("EVAL").arg(UPSERT_LUA)
            };
            call.arg(2)
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
        let cmd = || {
            let members = series::members_for(n);
            let mut cmd = redis::cmd("ZRANGE");
            cmd.arg(key.set()).arg(0).arg(members - 1).arg("REV");
            cmd
        };
        let Some(near) = &self.near else {
            let fetched: Vec<Bytes> = self.query(&cmd()).await?;
            return series::newest(&fetched, n);
        };
        let fetch = || async {
            let (fetched, pttl): (Vec<Bytes>, i64) = self.with_pttl(&cmd(), key.set()).await?;
            Ok((series::newest(&fetched, n)?, pttl))
        };
        near.newest(key.set(), n, fetch).await
    }

    /// The head: one `GET` of one small value.
    pub(crate) async fn series_latest(&self, key: &SeriesKey) -> Result<Option<BarRecord>> {
        let get = || redis::cmd("GET").arg(key.head()).to_owned();
        let Some(near) = &self.near else {
            let head: Option<Vec<u8>> = self.query(&get()).await?;
            return head.map(series::head_bar).transpose();
        };
        let fetch = || async {
            let (head, pttl): (Option<Vec<u8>>, i64) = self.with_pttl(&get(), key.head()).await?;
            Ok((head.map(series::head_bar).transpose()?, pttl))
        };
        near.latest(key.head(), fetch).await
    }

    /// The head's bytes, one `GET`, past the near cache: what Redis holds.
    pub(crate) async fn series_head(&self, key: &SeriesKey) -> Result<Option<Bytes>> {
        self.query(redis::cmd("GET").arg(key.head())).await
    }

    /// The run holding `from` and the runs that start inside the window, in
    /// one `MULTI` transaction: one round trip, one snapshot (with the
    /// set's `PTTL` in it, for a near cache's copy).
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
        let window = |mut members: Vec<Bytes>, inside: Vec<Bytes>| {
            members.extend(inside);
            series::window(&members, w.from, w.to, w.limit)
        };
        let Some(near) = &self.near else {
            let (members, inside) = self.query_pipe(&pipe).await?;
            return window(members, inside);
        };
        pipe.cmd("PTTL").arg(w.key.set());
        let fetch = || async {
            let (members, inside, pttl) = self.query_pipe(&pipe).await?;
            Ok((window(members, inside)?, pttl))
        };
        near.range(w.key.set(), (w.from, w.to, w.limit), fetch)
            .await
    }

    /// Both keys in one `UNLINK`.
    pub(crate) async fn series_delete(&self, key: &SeriesKey) -> Result<bool> {
        let keys = [key.set(), key.head()];
        let _touched = self.touching(&keys);
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
        let Some(near) = &self.near else {
            let found: Vec<Option<Vec<u8>>> = self.mget_any(&heads).await?;
            return found
                .into_iter()
                .map(|head| head.map(series::head_bar).transpose())
                .collect();
        };
        let fetch = |ids| self.mget_with_pttls(&heads, ids);
        near.latest_many(&heads, fetch).await
    }

    /// `PING`; on a cluster, every primary reports every slot served. The
    /// slots are checked outside `bounded`: a primary that says some are
    /// not served is Redis answering, and opens no circuit breaker.
    pub(crate) async fn ping(&self) -> Result<()> {
        every_slot_served(self.bounded(health_answers(&self.conn)).await?)
    }

    /// SCAN + UNLINK in batches, on every primary: never blocks Redis the way
    /// `KEYS` or a `FLUSHDB` of a shared database would. (Keys a reshard
    /// moves while the scan runs may be missed; call it again after.)
    pub(crate) async fn clear_prefix(&self, prefix: &str) -> Result<u64> {
        let _flushed = Flushed(self.near.as_deref());
        let pattern = format!("{prefix}*");
        let primaries = self
            .bounded(async { self.conn.primaries().await.map_err(Error::from) })
            .await?;
        let mut deleted = 0;
        for node in primaries {
            deleted += self.clear_on(&node, &pattern).await?;
        }
        Ok(deleted)
    }

    /// SCAN one node for `pattern`, unlinking each batch found.
    async fn clear_on(&self, node: &str, pattern: &str) -> Result<u64> {
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let scan = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(CLEAR_BATCH)
                .to_owned();
            let step = async { self.conn.on_node(node, &scan).await.map_err(Error::from) };
            // Keys as bytes: a foreign writer's key need not be UTF-8.
            let (next, keys): (u64, Vec<Vec<u8>>) = self.bounded(step).await?;
            if !keys.is_empty() {
                deleted += self.query::<u64>(redis::cmd("UNLINK").arg(&keys)).await?;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    pub(crate) async fn flush_db(&self) -> Result<()> {
        let _flushed = Flushed(self.near.as_deref());
        self.query(&redis::cmd("FLUSHDB")).await
    }

    /// `INFO memory` of every primary, then on each `SCAN MATCH {prefix}*`
    /// with a pipeline of `MEMORY USAGE` (Redis' default of 5 samples for
    /// sets: our runs are all about one size) and `PTTL` per batch found.
    /// The `INFO` and each batch are one request each, within the call
    /// deadline and through the circuit breaker; no batch starts at or past
    /// `until`. So the walk ends by `until` plus one call deadline, or fails
    /// as any call does. A key gone between `SCAN` and its measure is
    /// skipped.
    pub(crate) async fn scan_usage(
        &self,
        prefix: &str,
        until: std::time::Instant,
        each: &mut (impl FnMut(KeyUsage<'_>) + Send),
    ) -> Result<UsageTotals> {
        let infos = self.bounded(memory_info(&self.conn)).await?;
        let (used, max) = memory_totals(&infos)?;
        let pattern = format!("{prefix}*");
        let mut complete = true;
        'nodes: for (node, _) in &infos {
            let mut cursor = 0;
            loop {
                if std::time::Instant::now() >= until {
                    complete = false;
                    break 'nodes;
                }
                let (next, batch) = self
                    .bounded(self.usage_step(node, &pattern, cursor))
                    .await?;
                batch.iter().for_each(|m| each(m.usage()));
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(UsageTotals {
            used,
            max,
            complete,
        })
    }

    /// One `SCAN` step on `node` and the measures of the keys it found: the
    /// next cursor and the keys still there. Unbounded: the caller bounds it.
    async fn usage_step(
        &self,
        node: &str,
        pattern: &str,
        cursor: u64,
    ) -> Result<(u64, Vec<Measured>)> {
        let scan = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(USAGE_BATCH)
            .to_owned();
        // Keys as bytes: a foreign writer's key need not be UTF-8.
        let (next, keys): (u64, Vec<Vec<u8>>) = self.conn.on_node(node, &scan).await?;
        if keys.is_empty() {
            return Ok((next, Vec::new()));
        }
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("MEMORY").arg("USAGE").arg(key);
            pipe.cmd("PTTL").arg(key);
        }
        let answers = self.conn.pipe_on_node(node, &pipe).await?;
        Ok((next, measured(keys, answers)?))
    }
}

/// A key a usage step found, measured.
#[derive(Debug, PartialEq)]
struct Measured {
    key: Vec<u8>,
    bytes: u64,
    ttl: Option<Duration>,
}

impl Measured {
    fn usage(&self) -> KeyUsage<'_> {
        KeyUsage {
            key: &self.key,
            bytes: self.bytes,
            ttl: self.ttl,
        }
    }
}

/// The keys with their `MEMORY USAGE` and `PTTL` answers, two per key in
/// order; a key either answer says is gone (nil, `-2`) is left out.
fn measured(keys: Vec<Vec<u8>>, answers: Vec<Value>) -> Result<Vec<Measured>> {
    if answers.len() != 2 * keys.len() {
        let what = format!("{} answers to {} keys' measures", answers.len(), keys.len());
        return Err(Error::new(ErrorKind::Server, what));
    }
    let mut answers = answers.into_iter();
    let mut found = Vec::with_capacity(keys.len());
    for key in keys {
        let bytes: Option<u64> = parse(answers.next())?;
        let pttl: i64 = parse(answers.next())?;
        let ttl = match pttl {
            -2 => continue,
            -1 => None,
            ms => Some(Duration::from_millis(ms.max(0) as u64)),
        };
        if let Some(bytes) = bytes {
            found.push(Measured { key, bytes, ttl });
        }
    }
    Ok(found)
}

/// `INFO memory` of every primary, by node (`""`: the one server).
/// Unbounded: the caller bounds it.
async fn memory_info(conn: &Connection) -> Result<Vec<(String, String)>> {
    let info = redis::cmd("INFO").arg("memory").to_owned();
    let Some(cluster) = conn.cluster() else {
        let text: String = conn.send(&info).await?;
        return Ok(vec![(String::new(), text)]);
    };
    let answers = cluster.on_each_primary(&info).await?;
    let text = |(node, answer): (String, Value)| {
        let text = String::from_redis_value(answer.extract_error()?)?;
        Ok((node, text))
    };
    answers
        .into_iter()
        .map(|a| text(a).map_err(|e: redis::RedisError| Error::from(e)))
        .collect()
}

/// `used_memory` summed over the nodes, and `maxmemory` summed too, or
/// `None` when a node has none (0): its data may grow without bound.
fn memory_totals(infos: &[(String, String)]) -> Result<(u64, Option<u64>)> {
    let mut used = 0u64;
    let mut max = Some(0u64);
    for (node, text) in infos {
        used = used.saturating_add(info_field(node, text, "used_memory")?);
        let limit = info_field(node, text, "maxmemory")?;
        max = max.filter(|_| limit > 0).map(|m| m.saturating_add(limit));
    }
    Ok((used, max))
}

/// The number on the `{name}:` line of an `INFO` answer.
fn info_field(node: &str, text: &str, name: &str) -> Result<u64> {
    let value = text
        .lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'));
    value.and_then(|v| v.parse().ok()).ok_or_else(|| {
        let at = if node.is_empty() { "Redis" } else { node };
        Error::new(
            ErrorKind::Server,
            format!("INFO memory of {at} has no {name}"),
        )
    })
}

/// `PING`; on a cluster, `CLUSTER INFO` of every primary, by node.
/// Unbounded: the caller bounds it.
async fn health_answers(conn: &Connection) -> Result<Vec<(String, redis::Value)>> {
    let Some(cluster) = conn.cluster() else {
        let pong: Result<String> = conn.send(&redis::cmd("PING")).await.map_err(Error::from);
        return pong.map(|_| Vec::new());
    };
    let info = redis::cmd("CLUSTER").arg("INFO").to_owned();
    Ok(cluster.on_each_primary(&info).await?)
}

/// Every primary reports the cluster up with every slot served: false
/// while a slot is uncovered, as between a primary's death and its
/// replica's promotion.
fn every_slot_served(answers: Vec<(String, redis::Value)>) -> Result<()> {
    for (node, answer) in answers {
        let text = String::from_redis_value(answer).unwrap_or_default();
        let has = |line: &str| text.lines().any(|l| l.trim() == line);
        if !has("cluster_state:ok") || !has("cluster_slots_ok:16384") {
            let what = format!("cluster node {node} reports slots not served");
            return Err(Error::new(ErrorKind::Connection, what));
        }
    }
    Ok(())
}

/// Redis answers a probe: `PING`. On a cluster, any one node answering
/// will do: the breaker guards against the whole deployment being
/// unreachable, and requiring every slot served would fail the calls to
/// every healthy primary for as long as one failover takes.
async fn answers(conn: &Connection) -> Result<()> {
    let ping = redis::cmd("PING");
    let pong: redis::RedisResult<String> = match conn.cluster() {
        Some(cluster) => cluster.on_any(&ping).await,
        None => conn.send(&ping).await,
    };
    pong.map(drop).map_err(Error::from)
}

/// Lets the next call start a probe, however this one ended: made before
/// the probe is spawned, so a task dropped unpolled still clears the flag.
struct ProbeEnded(Option<Arc<Breaker>>);

impl ProbeEnded {
    fn breaker(&self) -> Arc<Breaker> {
        self.0.clone().expect("armed until the probe ends")
    }
}

impl Drop for ProbeEnded {
    fn drop(&mut self) {
        if let Some(breaker) = &self.0 {
            breaker.probe_ended();
        }
    }
}

/// Drops the near cache's copies of `keys` when dropped.
struct Touched<'a, K: AsRef<str>> {
    near: Option<&'a Near>,
    keys: &'a [K],
}

impl<K: AsRef<str>> Drop for Touched<'_, K> {
    fn drop(&mut self) {
        if let Some(near) = self.near {
            self.keys
                .iter()
                .for_each(|k| near.invalidate(k.as_ref().as_bytes()));
        }
    }
}

/// Drops every copy of the near cache when dropped.
struct Flushed<'a>(Option<&'a Near>);

impl Drop for Flushed<'_> {
    fn drop(&mut self) {
        if let Some(near) = self.0 {
            near.flush("this process cleared keys");
        }
    }
}

/// Waits, up to `limit`, for the near cache to serve: until then reads go
/// to Redis, which is correct but not what a caller who asked for it expects
/// of the first reads after connecting.
async fn wait_serving(near: &Near, limit: Duration) {
    let serving = async {
        while !near.serving() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    if tokio::time::timeout(limit, serving).await.is_err() {
        tracing::warn!(?limit, "near_cache_not_serving_yet");
    }
}

/// One answer of a pipeline, as a `T`.
fn parse<T: FromRedisValue>(answer: Option<redis::Value>) -> Result<T> {
    let answer = answer.ok_or_else(|| Error::new(ErrorKind::Server, "a reply was missing"))?;
    T::from_redis_value(answer).map_err(|e| Error::from(redis::RedisError::from(e)))
}

/// The indices of `keys` grouped by cluster slot, groups in the order of
/// their first key.
fn by_slot<K: AsRef<str>>(keys: &[K]) -> Vec<(u16, Vec<usize>)> {
    let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
    let mut group_of: HashMap<u16, usize> = HashMap::new();
    for (i, key) in keys.iter().enumerate() {
        let slot = key_slot(key.as_ref().as_bytes());
        let g = *group_of.entry(slot).or_insert_with(|| {
            groups.push((slot, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(i);
    }
    groups
}

fn as_strs<K: AsRef<str>>(keys: &[K]) -> Vec<&str> {
    keys.iter().map(AsRef::as_ref).collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Vec<u8> {
        name.as_bytes().to_vec()
    }

    #[test]
    fn keys_gone_before_their_measure_are_skipped() {
        let keys = vec![
            key("live"),
            key("forever"),
            key("gone"),
            key("went"),
            key("late"),
        ];
        let answers = vec![
            Value::Int(70),
            Value::Int(1_234),
            Value::Int(50),
            Value::Int(-1),
            Value::Nil,
            Value::Int(-2),
            Value::Int(60),
            Value::Int(-2),
            // Gone by MEMORY USAGE, written again by PTTL: not counted either.
            Value::Nil,
            Value::Int(5_000),
        ];
        let found = measured(keys, answers).unwrap();
        let ms = Duration::from_millis;
        assert_eq!(
            found,
            [
                Measured {
                    key: key("live"),
                    bytes: 70,
                    ttl: Some(ms(1_234))
                },
                Measured {
                    key: key("forever"),
                    bytes: 50,
                    ttl: None
                },
            ]
        );
    }

    #[test]
    fn a_measure_answered_wrongly_is_an_error() {
        let short = measured(vec![key("a")], vec![Value::Int(1)]);
        assert_eq!(short.unwrap_err().kind(), ErrorKind::Server);
        let text = Value::SimpleString("OK".into());
        assert!(measured(vec![key("a")], vec![text, Value::Int(-1)]).is_err());
    }

    const INFO: &str = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n\
                        used_memory_rss:9000000\r\nmaxmemory:0\r\nmaxmemory_human:0B\r\n";

    #[test]
    fn memory_totals_sum_the_nodes_and_a_node_without_a_limit_lifts_it() {
        let node = |used: u64, max: u64| {
            let text =
                format!("used_memory:{used}\r\nmaxmemory:{max}\r\nmaxmemory_policy:noeviction\r\n");
            ("127.0.0.1:7000".to_string(), text)
        };
        assert_eq!(
            memory_totals(&[("".into(), INFO.into())]).unwrap(),
            (1_048_576, None)
        );
        let limited = [node(100, 1_000), node(200, 2_000), node(300, 3_000)];
        assert_eq!(memory_totals(&limited).unwrap(), (600, Some(6_000)));
        let one_unlimited = [node(100, 1_000), node(200, 0), node(300, 3_000)];
        assert_eq!(memory_totals(&one_unlimited).unwrap(), (600, None));
        let err = memory_totals(&[("".into(), "used_memory:1\r\n".into())]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Server, "{err}");
    }
}
