//! One primary, one replica and three Sentinels of the test's own, on free
//! loopback ports, killed on drop. The Sentinels fail a primary over after
//! it has been unreachable for 1 s (quorum 2).

use super::{wait_until, RedisServer};
use std::time::Duration;

pub const MASTER: &str = "mymaster";

/// How long a failover may take before a test gives up on it.
const SETTLE: Duration = Duration::from_secs(30);

pub struct SentinelSet {
    /// The data nodes: first the initial primary, then its replica.
    pub nodes: Vec<RedisServer>,
    pub sentinels: Vec<RedisServer>,
}

impl SentinelSet {
    pub fn start() -> Self {
        let primary = RedisServer::start();
        let replica_of = primary.port().to_string();
        let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &replica_of]);
        let conf = format!(
            "sentinel monitor {MASTER} 127.0.0.1 {replica_of} 2\n\
             sentinel down-after-milliseconds {MASTER} 1000\n\
             sentinel failover-timeout {MASTER} 5000\n"
        );
        let sentinels = (0..3).map(|_| RedisServer::start_sentinel(&conf)).collect();
        let set = Self {
            nodes: vec![primary, replica],
            sentinels,
        };
        set.wait_settled();
        set
    }

    /// A config for the Sentinels, adjusted by `configure`.
    pub fn config(
        &self,
        configure: impl FnOnce(iftb_cache::CacheConfigBuilder) -> iftb_cache::CacheConfigBuilder,
    ) -> iftb_cache::CacheConfig {
        let urls: Vec<String> = self.sentinels.iter().map(|s| s.url()).collect();
        let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        let builder = iftb_cache::CacheConfig::builder().redis_sentinel(MASTER, &urls);
        configure(builder).build().expect("sentinel config")
    }

    /// The port of the primary the Sentinels name now.
    pub fn primary_port(&self) -> u16 {
        for sentinel in self.sentinels.iter().filter(|s| s.pid().is_some()) {
            let conn = redis::Client::open(sentinel.url()).and_then(|c| c.get_connection());
            let cmd = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(MASTER)
                .to_owned();
            let answer: redis::RedisResult<(String, u16)> =
                conn.and_then(|mut c| cmd.query(&mut c));
            if let Ok((_, port)) = answer {
                return port;
            }
        }
        panic!("no Sentinel answered\n{}", self.logs())
    }

    /// The data node (an index into `nodes`) that is primary now.
    pub fn primary(&self) -> usize {
        let port = self.primary_port();
        self.nodes
            .iter()
            .position(|n| n.port() == port)
            .expect("the primary is one of ours")
    }

    /// `SENTINEL FAILOVER`: a failover of a healthy primary, at once.
    pub fn failover(&self) {
        let mut conn = self.sentinels[0].raw();
        redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(MASTER)
            .exec(&mut conn)
            .unwrap_or_else(|e| panic!("SENTINEL FAILOVER: {e}\n{}", self.logs()));
    }

    /// Waits until the Sentinels name a primary other than node `old` and
    /// it answers as primary (the old one may take longer to follow).
    pub fn wait_failed_over_from(&self, old: usize) {
        let promoted = |i: usize| has_line(&self.replication(i), "role:master");
        let failed_over = || self.primary() != old && promoted(self.primary());
        wait_until("a failover", SETTLE, || self.logs(), failed_over);
    }

    /// The primary answers as one; each live replica is in sync with it; each
    /// Sentinel knows the replica.
    pub fn wait_settled(&self) {
        wait_until(
            "the Sentinel set settled",
            SETTLE,
            || self.logs(),
            || self.settled(),
        );
    }

    fn settled(&self) -> bool {
        let primary = self.primary();
        let roles_ok = self.nodes.iter().enumerate().all(|(i, node)| {
            if node.pid().is_none() {
                return true;
            }
            let info = self.replication(i);
            let has = |line: &str| has_line(&info, line);
            if i == primary {
                has("role:master")
            } else {
                has("role:slave") && has("master_link_status:up")
            }
        });
        let live_replicas = self.nodes.iter().filter(|n| n.pid().is_some()).count() - 1;
        let known = self
            .sentinels
            .iter()
            .filter(|s| s.pid().is_some())
            .all(|s| {
                let conn = redis::Client::open(s.url()).and_then(|c| c.get_connection());
                let cmd = redis::cmd("SENTINEL")
                    .arg("REPLICAS")
                    .arg(MASTER)
                    .to_owned();
                let replicas: redis::RedisResult<Vec<redis::Value>> =
                    conn.and_then(|mut c| cmd.query(&mut c));
                replicas.is_ok_and(|r| r.len() >= live_replicas)
            });
        roles_ok && known
    }

    /// `INFO replication` of data node `i`; empty when it does not answer.
    fn replication(&self, i: usize) -> String {
        let conn = redis::Client::open(self.nodes[i].url()).and_then(|c| c.get_connection());
        conn.and_then(|mut c| redis::cmd("INFO").arg("replication").query(&mut c))
            .unwrap_or_default()
    }

    pub fn logs(&self) -> String {
        let all = self.nodes.iter().chain(&self.sentinels);
        all.map(|n| n.log()).collect::<Vec<_>>().join("\n")
    }
}

/// True when `info` has `line`, as an `INFO` section lists it.
fn has_line(info: &str, line: &str) -> bool {
    info.lines().any(|l| l.trim() == line)
}
