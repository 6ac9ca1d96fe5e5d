//! A Redis Cluster of the test's own: `redis-server --cluster-enabled yes` on
//! free loopback ports, joined by `redis-cli --cluster create`, killed on
//! drop. A node timeout of 1 s keeps a failover to about 2 s.
//!
//! A missing `redis-cli` fails the test, as a missing `redis-server` does.

use super::{wait_until, RedisServer};
use std::process::Command;
use std::time::Duration;

/// How long a node may be unreachable before the cluster fails it over.
pub const NODE_TIMEOUT_MS: u64 = 1_000;

/// How long a cluster has to form, or to settle after a failover.
const SETTLE: Duration = Duration::from_secs(30);

pub struct RedisCluster {
    /// Every node, primaries first as created; roles change with failovers.
    pub nodes: Vec<RedisServer>,
    /// The password the nodes require, if any (this harness's own connections use it).
    password: Option<String>,
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
pub struct NodeLine {
    pub id: String,
    pub port: u16,
    pub primary: bool,
    pub failed: bool,
    /// Slot ranges served, for a primary.
    pub slots: Vec<(u16, u16)>,
}

impl RedisCluster {
    /// `primaries` primaries with `replicas` replicas each, every slot
    /// covered and every replica in sync.
    pub fn start(primaries: usize, replicas: usize) -> Self {
        Self::start_with(primaries, replicas, &[], None)
    }

    /// As [`start`](Self::start), each node also given `extra` arguments;
    /// with `password`, the nodes require it (`--requirepass`, `--masterauth`).
    pub fn start_with(
        primaries: usize,
        replicas: usize,
        extra: &[&str],
        password: Option<&str>,
    ) -> Self {
        let node_timeout = NODE_TIMEOUT_MS.to_string();
        let mut args = vec![
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            &node_timeout,
        ];
        args.extend(extra);
        if let Some(pw) = password {
            args.extend(["--requirepass", pw, "--masterauth", pw]);
        }
        let nodes: Vec<RedisServer> = (0..primaries * (1 + replicas))
            .map(|_| RedisServer::start_with(&args))
            .collect();
        let password = password.map(str::to_string);
        let cluster = Self { nodes, password };
        let mut cli = Command::new("redis-cli");
        if let Some(pw) = &cluster.password {
            cli.args(["-a", pw, "--no-auth-warning"]);
        }
        cli.arg("--cluster").arg("create");
        cli.args(
            cluster
                .nodes
                .iter()
                .map(|n| format!("127.0.0.1:{}", n.port())),
        );
        cli.args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
        cluster.run(cli, "redis-cli --cluster create");
        cluster.wait_settled();
        cluster
    }

    /// The nodes' URLs: the seed list of a cache configured for the cluster
    /// (without the password: caches are given theirs).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url()).collect()
    }

    /// A connection of this harness's own to `node`.
    fn conn(&self, node: &RedisServer) -> redis::RedisResult<redis::Connection> {
        let url = match &self.password {
            Some(pw) => node.url_with(&format!(":{pw}")),
            None => node.url(),
        };
        redis::Client::open(url).and_then(|c| c.get_connection())
    }

    /// A cluster config, the seed list set, adjusted by `configure`.
    pub fn config(
        &self,
        configure: impl FnOnce(iftb_cache::CacheConfigBuilder) -> iftb_cache::CacheConfigBuilder,
    ) -> iftb_cache::CacheConfig {
        let urls = self.urls();
        let seeds: Vec<&str> = urls.iter().map(String::as_str).collect();
        let builder = iftb_cache::CacheConfig::builder().redis_cluster(&seeds);
        configure(builder).build().expect("cluster config")
    }

    /// `CLUSTER NODES` as a live node sees it.
    pub fn topology(&self) -> Vec<NodeLine> {
        let text: String = self.query_any(&redis::cmd("CLUSTER").arg("NODES").to_owned());
        text.lines().filter_map(parse_node_line).collect()
    }

    /// The node (an index into `nodes`) serving `slot` as its primary.
    pub fn primary_of_slot(&self, slot: u16) -> usize {
        let line = self
            .topology()
            .into_iter()
            .find(|n| {
                n.primary && !n.failed && n.slots.iter().any(|&(a, b)| a <= slot && slot <= b)
            })
            .unwrap_or_else(|| panic!("no primary serves slot {slot}\n{}", self.logs()));
        self.index_of_port(line.port)
    }

    /// The node serving `key` as its primary.
    pub fn primary_of_key(&self, key: &str) -> usize {
        let slot: u16 = self.query_any(&redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).to_owned());
        self.primary_of_slot(slot)
    }

    /// The cluster id of node `i`.
    pub fn node_id(&self, i: usize) -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut self.conn(&self.nodes[i]).expect("connect"))
            .expect("CLUSTER MYID")
    }

    /// Moves `slots` slots from node `from` to node `to` with keys and all
    /// (`redis-cli --cluster reshard`), while clients keep running.
    pub fn reshard(&self, from: usize, to: usize, slots: usize) {
        let mut cli = Command::new("redis-cli");
        if let Some(pw) = &self.password {
            cli.args(["-a", pw, "--no-auth-warning"]);
        }
        cli.args(["--cluster", "reshard"])
            .arg(format!("127.0.0.1:{}", self.nodes[from].port()))
            .args(["--cluster-from", &self.node_id(from)])
            .args(["--cluster-to", &self.node_id(to)])
            .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"]);
        self.run(cli, "redis-cli --cluster reshard");
    }

    /// Waits until every live node reports every slot served, each
    /// primary's replicas in sync, and all nodes agree on the topology.
    pub fn wait_settled(&self) {
        wait_until(
            "the cluster settled",
            SETTLE,
            || self.logs(),
            || self.settled(),
        );
    }

    fn settled(&self) -> bool {
        let live: Vec<&RedisServer> = self.nodes.iter().filter(|n| n.pid().is_some()).collect();
        live.iter().all(|node| {
            let Ok(mut conn) = self.conn(node) else {
                return false;
            };
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut conn)
                .unwrap_or_default();
            let nodes: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query(&mut conn)
                .unwrap_or_default();
            let repl: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut conn)
                .unwrap_or_default();
            let has = |text: &str, line: &str| text.lines().any(|l| l.trim() == line);
            let known = nodes.lines().filter(|l| !l.contains("fail")).count();
            let in_sync = has(&repl, "role:master") || has(&repl, "master_link_status:up");
            has(&info, "cluster_state:ok") && known == live.len() && in_sync
        })
    }

    /// Keys held by the primaries, everyone's (`DBSIZE` of each).
    pub fn key_count(&self) -> u64 {
        let primaries = self
            .topology()
            .into_iter()
            .filter(|n| n.primary && !n.failed);
        primaries
            .map(|n| {
                let node = &self.nodes[self.index_of_port(n.port)];
                redis::cmd("DBSIZE")
                    .query::<u64>(&mut self.conn(node).expect("connect"))
                    .expect("DBSIZE")
            })
            .sum()
    }

    /// Every node's log, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.log())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn index_of_port(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port() == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
    }

    /// `cmd` on the first node that answers.
    fn query_any<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        for node in self.nodes.iter().filter(|n| n.pid().is_some()) {
            let conn = self.conn(node);
            if let Ok(answer) = conn.and_then(|mut c| cmd.query(&mut c)) {
                return answer;
            }
        }
        panic!("no cluster node answered {cmd:?}\n{}", self.logs())
    }

    fn run(&self, mut cli: Command, what: &str) {
        let out = match cli.output() {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-cli is not installed: run scripts/test (it installs redis-server, \
                 which brings redis-cli) or install Redis 7+ yourself. Tests never skip."
            ),
            Err(e) => panic!("cannot run {what}: {e}"),
        };
        assert!(
            out.status.success(),
            "{what} failed: {}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
    }
}

impl NodeLine {
    /// How many slots it serves.
    pub fn slot_count(&self) -> usize {
        self.slots.iter().map(|&(a, b)| (b - a) as usize + 1).sum()
    }
}

/// `<id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot>...`
fn parse_node_line(line: &str) -> Option<NodeLine> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let port = fields
        .get(1)?
        .split('@')
        .next()?
        .rsplit(':')
        .next()?
        .parse()
        .ok()?;
    let flags = fields.get(2)?;
    let slots = fields
        .iter()
        .skip(8)
        .filter(|s| !s.starts_with('['))
        .filter_map(|s| match s.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => s.parse().ok().map(|a| (a, a)),
        })
        .collect();
    Some(NodeLine {
        id: fields[0].to_string(),
        port,
        primary: flags.contains("master"),
        failed: flags.contains("fail"),
        slots,
    })
}
