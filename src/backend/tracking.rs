//! Keeping the near cache told: one connection to each node that can take
//! writes to the namespace's keys, in RESP3 with `CLIENT TRACKING ON BCAST
//! PREFIX {namespace}:`, whose `invalidate` pushes reach `near.rs` from
//! redis-rs's push-message plumbing.
//!
//! Broadcast mode, not the default mode in which Redis remembers the keys
//! each client read: the data connection stays as it is (its reconnects,
//! the cluster's routing, Sentinel's failovers are not tied to tracking),
//! Redis keeps no per-key table for us (so `tracking-table-max-keys` never
//! evicts one of our keys from it), and a node tells of every change under
//! the prefix, whoever reads what. The price is a push for every write in
//! the namespace, read by this process or not.
//!
//! A supervisor task keeps one tracker per node that serves the keys: the
//! one server; Sentinel's primary; on a cluster, every primary that owns
//! slots (`CLUSTER NODES`) and every empty one (a reshard's target). The
//! near cache serves only while each is up and together they own every
//! slot. Anything that could hide a change stops it at once and drops every
//! copy: a tracker's connection lost (a restart, `CLIENT KILL`, a reset), a
//! heartbeat unanswered for [`SILENCE`] (a link gone quiet), a node joining
//! the set or leaving it (a failover, a reshard). The supervisor checks the
//! set every [`TICK`] and starts serving again once every tracker is up.
//!
//! All of it runs on a thread of its own, with its own runtime: a caller's
//! loop that reads nothing but copies never yields, and on a
//! current-thread runtime would keep the pushes from being read at all.

use super::connection::Connection;
use super::near::Near;
use crate::config::RedisTarget;
use crate::error::{Error, ErrorKind, Result};
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, ProtocolVersion};
use redis::{FromRedisValue, PushInfo, PushKind, RedisResult, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How often the supervisor checks the set of nodes, and each tracker pings.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// How long a tracker's ping may go unanswered before its node counts as
/// lost: its link may have gone silent, and changes with it.
pub(crate) const SILENCE: Duration = Duration::from_millis(250);

/// A reconnecting tracker waits this long between attempts.
const RETRY: Duration = Duration::from_millis(100);

/// The running tracking of one backend; stops it when dropped (its
/// thread ends on its own, within a tick).
pub(crate) struct Tracking {
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// What the supervisor needs to know the nodes and reach them.
pub(crate) struct Setup {
    pub prefix: String,
    pub target: RedisTarget,
    pub connect_timeout: Duration,
}

impl Tracking {
    /// Starts tracking for `near` over the nodes `conn` reaches, on a
    /// thread of its own.
    pub(crate) fn start(near: &Arc<Near>, conn: &Arc<Connection>, setup: Setup) -> Result<Self> {
        let supervisor = supervise(Arc::downgrade(near), Arc::downgrade(conn), setup);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Connection,
                    format!("the near cache's tracking runtime: {e}"),
                )
            })?;
        let run = move || {
            runtime.block_on(async {
                tokio::select! {
                    () = supervisor => {}
                    _ = stopped => {}
                }
            });
        };
        std::thread::Builder::new()
            .name("iftb-near-tracking".into())
            .spawn(run)
            .map_err(|e| {
                Error::new(
                    ErrorKind::Connection,
                    format!("the near cache's tracking thread: {e}"),
                )
            })?;
        Ok(Self { _stop: stop })
    }
}

/// One node's tracker; stops it when dropped.
struct Tracker {
    watch: Arc<Watch>,
    info: ConnectionInfo,
    task: JoinHandle<()>,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a tracker reports to, shared by its task and its connection's push
/// handler: whether it is up, and the supervisor to wake.
struct Watch {
    near: Weak<Near>,
    addr: String,
    up: AtomicBool,
    changed: Arc<Notify>,
}

impl Watch {
    /// Not up any more, and every copy dropped: in this order, so that a
    /// supervisor that saw it up before the loss cannot resume after it.
    fn down(&self, why: &str) {
        self.up.store(false, Ordering::Release);
        if let Some(near) = self.near.upgrade() {
            near.lost(&format!("{}: {why}", self.addr));
        }
        self.changed.notify_one();
    }

    fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }
}

async fn supervise(near: Weak<Near>, conn: Weak<Connection>, setup: Setup) {
    let changed = Arc::new(Notify::new());
    let mut trackers: BTreeMap<String, Tracker> = BTreeMap::new();
    let mut lister = Lister::default();
    loop {
        let (Some(near), Some(conn)) = (near.upgrade(), conn.upgrade()) else {
            return;
        };
        let seen = near.state();
        let known: Vec<ConnectionInfo> = trackers.values().map(|t| t.info.clone()).collect();
        let listed = lister.nodes(&conn, &setup, &known).await;
        match listed {
            Ok(nodes) => {
                let before = trackers.len();
                trackers.retain(|addr, _| nodes.contains_key(addr));
                let left = trackers.len() < before;
                let mut joined = false;
                for (addr, info) in nodes {
                    trackers.entry(addr).or_insert_with(|| {
                        joined = true;
                        start_tracker(&near, info, &setup, &changed)
                    });
                }
                if left || joined {
                    near.lost("the set of tracked nodes changed");
                } else if trackers.values().all(|t| t.watch.is_up()) {
                    near.resume(seen);
                }
            }
            // The nodes cannot be known: one of them may be new.
            Err(e) if near.serving() => {
                near.lost(&format!("the cluster's nodes could not be listed: {e}"));
            }
            Err(_) => {}
        }
        drop((near, conn));
        let _ = tokio::time::timeout(TICK, changed.notified()).await;
    }
}

fn start_tracker(
    near: &Arc<Near>,
    info: ConnectionInfo,
    setup: &Setup,
    changed: &Arc<Notify>,
) -> Tracker {
    let watch = Arc::new(Watch {
        near: Arc::downgrade(near),
        addr: info.addr().to_string(),
        up: AtomicBool::new(false),
        changed: Arc::clone(changed),
    });
    let node = Node {
        watch: Arc::clone(&watch),
        info: info.clone(),
        prefix: setup.prefix.clone(),
        connect_timeout: setup.connect_timeout,
        primary_only: !matches!(setup.target, RedisTarget::Standalone(_)),
    };
    Tracker {
        watch,
        info,
        task: tokio::spawn(node.run()),
    }
}

/// One tracked node.
struct Node {
    watch: Arc<Watch>,
    info: ConnectionInfo,
    prefix: String,
    connect_timeout: Duration,
    /// On a cluster or Sentinel, only a primary takes writes: a node that
    /// answers `ROLE` otherwise (a demoted primary) is not tracked.
    primary_only: bool,
}

impl Node {
    /// Tracks the node for as long as the supervisor keeps it: connects,
    /// turns tracking on, checks it; and again, after each loss. A node
    /// that cannot be tracked is reported once per run of failures.
    async fn run(self) {
        let mut failing = false;
        loop {
            match self.session().await {
                Ok(why) => {
                    failing = false;
                    self.watch.down(&why);
                }
                Err(e) => {
                    if !failing {
                        let node = &self.watch.addr;
                        tracing::warn!(node, error = %e, "near_cache_tracking_failed");
                    }
                    failing = true;
                    self.watch.down(&format!("tracking failed: {e}"));
                }
            }
            tokio::time::sleep(RETRY).await;
        }
    }

    /// One connection's life: an error unless tracking came on; once up,
    /// up until the connection is lost or a check goes unanswered for
    /// [`SILENCE`], and then why.
    async fn session(&self) -> RedisResult<String> {
        // Cleared by the push handler when the connection goes: on this
        // single-threaded runtime the handler cannot run between the check
        // below and the store of `up`, but can between a reply and the check.
        let alive = Arc::new(AtomicBool::new(true));
        let on_push = self.on_push(Arc::clone(&alive));
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(SILENCE))
            .set_push_sender(on_push);
        let client = Client::open(self.info.clone())?;
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let mut track = redis::cmd("CLIENT");
        track
            .arg("TRACKING")
            .arg("ON")
            .arg("BCAST")
            .arg("PREFIX")
            .arg(&self.prefix);
        track.query_async::<()>(&mut conn).await?;
        self.check(&mut conn).await?;
        if !alive.load(Ordering::Acquire) {
            return Ok("its tracking connection was lost".into());
        }
        self.watch.up.store(true, Ordering::Release);
        self.watch.changed.notify_one();
        loop {
            tokio::time::sleep(TICK).await;
            if let Err(e) = self.check(&mut conn).await {
                return Ok(e.to_string());
            }
            if !alive.load(Ordering::Acquire) {
                return Ok("its tracking connection was lost".into());
            }
        }
    }

    /// The heartbeat: `PING`, or `ROLE` where only a primary will do.
    async fn check(&self, conn: &mut redis::aio::MultiplexedConnection) -> RedisResult<()> {
        if !self.primary_only {
            return redis::cmd("PING").query_async::<()>(conn).await;
        }
        let role: Vec<Value> = redis::cmd("ROLE").query_async(conn).await?;
        match role.first().map(String::from_redis_value_ref) {
            Some(Ok(role)) if role == "master" => Ok(()),
            other => Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "not a primary",
                format!("ROLE answered {other:?}"),
            ))),
        }
    }

    /// The push handler of one connection: invalidations to the near cache;
    /// the connection's end to the watch, at once.
    fn on_push(&self, alive: Arc<AtomicBool>) -> impl Fn(PushInfo) -> Result<(), Infallible> {
        let watch = Arc::clone(&self.watch);
        move |push: PushInfo| {
            match push.kind {
                PushKind::Invalidate => {
                    if let Some(near) = watch.near.upgrade() {
                        match push.data.first() {
                            Some(Value::Array(keys)) => {
                                keys.iter().for_each(|k| invalidate(&near, k))
                            }
                            // FLUSHALL, FLUSHDB: a null instead of the keys.
                            _ => near.flush("Redis flushed the database"),
                        }
                    }
                }
                PushKind::Disconnection => {
                    alive.store(false, Ordering::Release);
                    watch.down("its tracking connection was lost");
                }
                _ => {}
            }
            Ok(())
        }
    }
}

fn invalidate(near: &Near, key: &Value) {
    match key {
        Value::BulkString(k) => near.invalidate(k),
        Value::SimpleString(k) => near.invalidate(k.as_bytes()),
        // A key in a form never seen: drop everything rather than guess.
        _ => near.flush("an invalidation named a key in an unknown form"),
    }
}

/// Lists the nodes to track, by address: the one server, Sentinel's
/// primary, or a cluster's primaries (`cluster_primaries`) from `CLUSTER
/// NODES` over a connection of its own (a seed's or a tracked node's),
/// on this thread: not the data connection, whose driver runs on the
/// caller's runtime.
#[derive(Default)]
struct Lister {
    conn: Option<(String, redis::aio::MultiplexedConnection)>,
}

impl Lister {
    async fn nodes(
        &mut self,
        conn: &Connection,
        setup: &Setup,
        known: &[ConnectionInfo],
    ) -> RedisResult<BTreeMap<String, ConnectionInfo>> {
        let infos = match (&setup.target, conn) {
            (RedisTarget::Standalone(info), _) => vec![info.clone()],
            (RedisTarget::Sentinel { .. }, Connection::Sentinel(s)) => vec![s.primary_info()],
            (RedisTarget::Cluster(seeds), _) => {
                let listed = self.cluster(seeds, known).await;
                if listed.is_err() {
                    self.conn = None;
                }
                listed?
            }
            _ => return Err(unexpected("the connection is not the target's")),
        };
        Ok(infos
            .into_iter()
            .map(|info| {
                let settings = info
                    .redis_settings()
                    .clone()
                    .set_protocol(ProtocolVersion::RESP3);
                let info = info.set_redis_settings(settings);
                (info.addr().to_string(), info)
            })
            .collect())
    }

    /// A cluster's primaries, asked of the node listed from, or of the first
    /// seed or tracked node that answers.
    async fn cluster(
        &mut self,
        seeds: &[ConnectionInfo],
        known: &[ConnectionInfo],
    ) -> RedisResult<Vec<ConnectionInfo>> {
        if self.conn.is_none() {
            self.conn = Some(first_answering(known.iter().chain(seeds)).await?);
        }
        let Some((host, conn)) = self.conn.as_mut() else {
            return Err(unexpected("no cluster node to list the nodes from"));
        };
        let ask = redis::cmd("CLUSTER").arg("NODES").to_owned();
        let ask = ask.query_async::<String>(conn);
        let listing = tokio::time::timeout(SILENCE, ask)
            .await
            .unwrap_or_else(|_| Err(unexpected("CLUSTER NODES went unanswered")))?;
        let addrs = cluster_primaries(&listing, host)
            .ok_or_else(|| unexpected("CLUSTER NODES leaves slots without a primary"))?;
        let seed = &seeds[0];
        Ok(addrs
            .into_iter()
            .map(|(host, port)| node_info(seed, host, port))
            .collect())
    }
}

/// A connection to the first of `nodes` that answers within a [`TICK`]
/// each (tracked nodes first: they answered last), with its host.
async fn first_answering<'a>(
    nodes: impl Iterator<Item = &'a ConnectionInfo>,
) -> RedisResult<(String, redis::aio::MultiplexedConnection)> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(TICK))
        .set_response_timeout(Some(SILENCE));
    let mut last = unexpected("no cluster node to list the nodes from");
    for info in nodes {
        let client = Client::open(info.clone())?;
        match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(conn) => return Ok((host_of(info.addr()).to_string(), conn)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn host_of(addr: &ConnectionAddr) -> &str {
    match addr {
        ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host,
        _ => "",
    }
}

fn unexpected(what: &'static str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Client, what))
}

/// A cluster node at `host:port`, with the seed node's credentials and TLS mode.
fn node_info(seed: &ConnectionInfo, host: String, port: u16) -> ConnectionInfo {
    let addr = match seed.addr() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(host, port),
    };
    seed.clone().set_addr(addr)
}

/// The primaries a change to a key could reach, from `CLUSTER NODES`: each
/// that owns slots (failed or not: a failed one's tracker is down, so the
/// near cache waits for its replacement), and each empty one that has not
/// failed (a reshard may move slots to it). The node that answered may not
/// know its own address (a cluster of one): it is at `own_host`. `None`
/// unless together they own every slot, or when another has no address.
fn cluster_primaries(listing: &str, own_host: &str) -> Option<Vec<(String, u16)>> {
    let mut primaries = Vec::new();
    let mut owned = 0u32;
    for line in listing.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (addr, flags) = (*fields.get(1)?, *fields.get(2)?);
        let flags: Vec<&str> = flags.split(',').collect();
        if !flags.contains(&"master") {
            continue;
        }
        let slots: u32 = fields.iter().skip(8).filter_map(|r| slot_count(r)).sum();
        let failed = flags
            .iter()
            .any(|f| *f == "fail" || *f == "noaddr" || *f == "handshake");
        if slots == 0 && failed {
            continue;
        }
        owned += slots;
        let hostport = addr.split('@').next()?;
        let (host, port) = hostport.rsplit_once(':')?;
        let host = match host {
            "" if flags.contains(&"myself") && !own_host.is_empty() => own_host,
            "" => return None,
            host => host,
        };
        primaries.push((host.to_string(), port.parse().ok()?));
    }
    (owned == 16_384).then_some(primaries)
}

/// Slots in a `CLUSTER NODES` slot field: `5`, `0-5460`; a migration marker
/// (`[5461->-id]`) counts none.
fn slot_count(field: &str) -> Option<u32> {
    if field.starts_with('[') {
        return None;
    }
    match field.split_once('-') {
        Some((a, b)) => Some(b.parse::<u32>().ok()?.checked_sub(a.parse().ok()?)? + 1),
        None => field.parse::<u32>().ok().map(|_| 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_are_those_owning_slots_and_live_empty_ones() {
        let listing = "\
a 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b 127.0.0.1:7001@17001 master - 0 0 2 connected 5461-10922 [10923->-c]
c 127.0.0.1:7002@17002 master,fail - 0 0 3 connected 10923-16383
d 127.0.0.1:7003@17003 slave a 0 0 1 connected
e 127.0.0.1:7004@17004 master - 0 0 0 connected
f 127.0.0.1:7005@17005 master,fail - 0 0 0 connected
";
        let found = cluster_primaries(listing, "10.0.0.1").unwrap();
        let ports: Vec<u16> = found.iter().map(|(_, p)| *p).collect();
        assert_eq!(ports, [7000, 7001, 7002, 7004]);
        let uncovered = listing.replace("10923-16383", "10923-16382");
        assert_eq!(
            cluster_primaries(&uncovered, ""),
            None,
            "a slot has no primary"
        );
        let unaddressed = listing.replace("127.0.0.1:7004", ":7004");
        assert_eq!(cluster_primaries(&unaddressed, "10.0.0.1"), None);
        let backwards = listing.replace("0-5460", "5460-0");
        assert_eq!(
            cluster_primaries(&backwards, ""),
            None,
            "a range ending before it starts"
        );
        // A cluster of one that does not know its own address.
        let alone = "a :7000@17000 myself,master - 0 0 1 connected 0-16383\n";
        let found = cluster_primaries(alone, "10.0.0.1").unwrap();
        assert_eq!(found, [("10.0.0.1".to_string(), 7000)]);
    }
}
