//! The connection to Redis, whichever deployment it is: one server (redis-rs
//! `ConnectionManager`, reconnecting), a Cluster (`cluster.rs`, over redis-rs
//! `ClusterConnection`: it routes each command by its keys' slot and follows
//! `MOVED`, `ASK`, failovers and resharding), or the primary that Sentinels
//! name (`sentinel.rs`). The calls that must reach every primary (`SCAN`)
//! are given the primaries' names here.

use super::cluster::Cluster;
use super::sentinel::SentinelConnection;
use crate::config::{CacheConfig, RedisTarget};
use crate::error::{Error, ErrorKind, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::{Cmd, ConnectionInfo, FromRedisValue, Pipeline, ProtocolVersion, RedisResult, Value};
use std::future::Future;
use std::time::Duration;

pub(crate) enum Connection {
    Standalone(ConnectionManager),
    Cluster(Cluster),
    Sentinel(Box<SentinelConnection>),
}

impl Connection {
    /// Connects to `target` (not yet bounded: the caller bounds it).
    pub(crate) async fn connect(config: &CacheConfig, target: &RedisTarget) -> Result<Self> {
        match target {
            RedisTarget::Standalone(info) => connect_standalone(config, info).await,
            RedisTarget::Cluster(nodes) => connect_cluster(config, nodes).await,
            RedisTarget::Sentinel {
                master,
                sentinels,
                node,
            } => {
                let manager = manager_config(config);
                let conn = SentinelConnection::connect(master, sentinels, node, manager).await;
                let conn = conn.map_err(|e| match Error::from(e) {
                    e if e.kind() == ErrorKind::Authentication => e,
                    e => {
                        let what = format!("no Sentinel names a live primary for {master:?}");
                        Error::new(ErrorKind::Connection, what).with_source(e)
                    }
                })?;
                Ok(Self::Sentinel(Box::new(conn)))
            }
        }
    }

    /// `"redis"`, `"redis-cluster"` or `"redis-sentinel"`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Standalone(_) => "redis",
            Self::Cluster(_) => "redis-cluster",
            Self::Sentinel(_) => "redis-sentinel",
        }
    }

    /// The cluster, when this is one.
    pub(crate) fn cluster(&self) -> Option<&Cluster> {
        match self {
            Self::Cluster(c) => Some(c),
            _ => None,
        }
    }

    pub(crate) fn is_cluster(&self) -> bool {
        self.cluster().is_some()
    }

    /// One command, routed by its keys on a cluster.
    pub(crate) async fn send<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        self.request(Request::Cmd(cmd)).await
    }

    /// One pipeline (on a cluster, all of its keys on one slot).
    pub(crate) async fn send_pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> RedisResult<T> {
        self.request(Request::Pipe(pipe)).await
    }

    async fn request<T: FromRedisValue>(&self, request: Request<'_>) -> RedisResult<T> {
        match self {
            Self::Cluster(c) => request.on(&mut c.conn.clone()).await,
            Self::Standalone(conn) => {
                twice_if_refused(conn, |mut c| async move { request.on(&mut c).await }).await
            }
            Self::Sentinel(s) => {
                let sent = request.on(&mut s.conn().await).await;
                sent.inspect_err(|e| s.saw(e))
            }
        }
    }

    /// The primaries, named for [`on_node`](Self::on_node): on a cluster
    /// each one that answers `PING` (one that does not fails the whole);
    /// otherwise the one server, named `""`, without a round trip.
    pub(crate) async fn primaries(&self) -> RedisResult<Vec<String>> {
        let Self::Cluster(c) = self else {
            return Ok(vec![String::new()]);
        };
        let answers = c.on_each_primary(&redis::cmd("PING")).await?;
        Ok(answers.into_iter().map(|(node, _)| node).collect())
    }

    /// `cmd` on one node, named as [`primaries`](Self::primaries) names it.
    pub(crate) async fn on_node<T: FromRedisValue>(&self, node: &str, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Self::Cluster(c) => c.on_node(node, cmd).await,
            _ => self.send(cmd).await,
        }
    }

    /// `pipe` on one node, named as [`primaries`](Self::primaries) names
    /// it (on a cluster, its keys may span that node's slots): each
    /// command's answer. An error answer to any command fails the whole,
    /// as it does for any pipeline sent to one server.
    pub(crate) async fn pipe_on_node(
        &self,
        node: &str,
        pipe: &Pipeline,
    ) -> RedisResult<Vec<Value>> {
        let Self::Cluster(c) = self else {
            return self.send_pipe(pipe).await;
        };
        let answers = c.pipe_on_node(node, pipe, pipe.len()).await?;
        match answers.iter().find(|a| matches!(a, Value::ServerError(_))) {
            Some(Value::ServerError(e)) => Err(e.clone().into()),
            _ => Ok(answers),
        }
    }
}

/// What a call sends: one command or one pipeline.
#[derive(Clone, Copy)]
enum Request<'a> {
    Cmd(&'a Cmd),
    Pipe(&'a Pipeline),
}

impl Request<'_> {
    async fn on<T, C>(self, conn: &mut C) -> RedisResult<T>
    where
        T: FromRedisValue,
        C: redis::aio::ConnectionLike + Send,
    {
        match self {
            Request::Cmd(cmd) => cmd.query_async(conn).await,
            Request::Pipe(pipe) => pipe.query_async(conn).await,
        }
    }
}

async fn connect_standalone(config: &CacheConfig, info: &ConnectionInfo) -> Result<Connection> {
    // RESP3: the connection tells the manager when Redis goes away, and the
    // manager reconnects then, not at the next call.
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let client = redis::Client::open(info.clone().set_redis_settings(settings))?;
    check_credentials(&client, config).await?;
    let manager = ConnectionManager::new_with_config(client, manager_config(config));
    Ok(Connection::Standalone(manager.await?))
}

async fn connect_cluster(config: &CacheConfig, nodes: &[ConnectionInfo]) -> Result<Connection> {
    // Few, short retries: a call's deadline bounds them anyway, and what is
    // left of it is better spent on the next call.
    let client = ClusterClientBuilder::new(nodes.to_vec())
        .use_protocol(ProtocolVersion::RESP3)
        .connection_timeout(config.connect_timeout())
        .response_timeout(config.response_timeout())
        .retries(3)
        .max_retry_wait(200)
        .build()?;
    let conn = client.get_async_connection().await;
    Ok(Connection::Cluster(Cluster::new(
        conn.map_err(refused_credentials)?,
    )))
}

/// Sends once, and once more if the manager's last reconnection had been
/// refused: the first call after Redis comes back meets that stale failure,
/// which makes the manager reconnect, and the second send goes over the new
/// connection. A refused connection sent nothing, so any command may be
/// repeated. (A cluster or Sentinel connection reconnects on its own terms.)
async fn twice_if_refused<T, F, Fut>(conn: &ConnectionManager, send: F) -> RedisResult<T>
where
    F: Fn(ConnectionManager) -> Fut,
    Fut: Future<Output = RedisResult<T>>,
{
    match send(conn.clone()).await {
        Err(e) if e.is_connection_refusal() => send(conn.clone()).await,
        other => other,
    }
}

/// The reconnecting connection's settings: its timeouts are the config's,
/// and a lost connection is retried twice with backoff before a call fails.
fn manager_config(config: &CacheConfig) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.connect_timeout()))
        .set_response_timeout(Some(config.response_timeout()))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(1))
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
pub(crate) async fn within<T>(limit: Duration, fut: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result,
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!("Redis did not answer within {limit:?}"),
        )),
    }
}

/// redis-rs reports a cluster's refusal of the credentials as a failure
/// to connect, the server's answer in its text: it is an authentication
/// error, not a retryable one.
fn refused_credentials(e: redis::RedisError) -> Error {
    let text = e.to_string();
    if ["WRONGPASS", "NOAUTH", "NOPERM"]
        .iter()
        .any(|code| text.contains(code))
    {
        let what = "the cluster refused the credentials";
        return Error::new(ErrorKind::Authentication, what).with_source(e);
    }
    Error::from(e)
}
