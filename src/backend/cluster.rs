//! A Redis Cluster connection (redis-rs `ClusterConnection`), the calls
//! addressed to every primary or to one node by name (`SCAN`, the health
//! check), and the one thing it adds: a read that spans slots goes as one
//! pipeline per node.
//!
//! Redis refuses a command whose keys span slots, and redis-rs splits such
//! a call into one request per slot: a hundred tickers on a hundred slots
//! were a hundred requests, ten times one `MGET` on one server. Here the
//! per-slot `MGET`s of one node go in one pipeline to that node, found in
//! the slot map Redis gave at most a second ago (`CLUSTER SLOTS`).
//!
//! Redis stays the judge of where a key lives: a node answers only for the
//! slots it serves. When it answers `MOVED` or `ASK`, redis-rs resends the
//! whole pipeline to the node named; a reply is taken only if every command
//! in it was answered, and otherwise each part goes again through
//! redis-rs's own per-slot routing and the map is asked for again. That
//! whole-pipeline resend is harmless for reads and not for writes (a
//! replayed `SET` could overwrite a newer value), so writes go per slot.
//! Routing, redirects and failover remain redis-rs's.

use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, FromRedisValue, Pipeline, RedisResult, Value};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a slot map is used before it is asked for again: a map that
/// redis-rs's redirects made stale costs a redirect per read until then.
const MAP_LIFETIME: Duration = Duration::from_secs(1);

pub(crate) struct Cluster {
    pub(crate) conn: ClusterConnection,
    /// The slot map and when it was asked for; `None` until asked, and
    /// again after a read that could not use it.
    owners: RwLock<Option<(Instant, Arc<SlotOwners>)>>,
}

/// One read whose keys are all on one slot.
pub(crate) struct Part {
    pub slot: u16,
    pub cmd: Cmd,
}

/// Which node served which slots: `(first, last, "host:port")`, by `first`.
struct SlotOwners(Vec<(u16, u16, String)>);

/// Forgets the slot map when dropped: a read cut short by its deadline (a
/// node gone, say) leaves the next one to ask for the map again.
struct Forget<'a>(&'a RwLock<Option<(Instant, Arc<SlotOwners>)>>);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl Cluster {
    pub(crate) fn new(conn: ClusterConnection) -> Self {
        Self {
            conn,
            owners: RwLock::new(None),
        }
    }

    /// Sends every part of a read, one pipeline per node, all at once; the
    /// answer of each part, in order.
    pub(crate) async fn read_parts(&self, parts: &[Part]) -> RedisResult<Vec<Value>> {
        let forget = Forget(&self.owners);
        let owners = self.owners().await;
        let mut nodes: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let Some(node) = owners.as_deref().and_then(|o| o.owner(part.slot)) else {
                continue;
            };
            match nodes.iter_mut().find(|(n, _)| *n == node) {
                Some((_, ids)) => ids.push(i),
                None => nodes.push((node, vec![i])),
            }
        }
        let sends = nodes
            .iter()
            .map(|(node, ids)| self.send_to(node, ids, parts));
        let mut answers: Vec<Option<Value>> = parts.iter().map(|_| None).collect();
        let sent = futures_util::future::join_all(sends).await;
        for ((_, ids), sent) in nodes.iter().zip(sent) {
            for (&i, answer) in ids.iter().zip(sent) {
                answers[i] = answer;
            }
        }
        if answers.iter().all(Option::is_some) {
            std::mem::forget(forget);
        }
        self.send_the_rest(parts, answers).await
    }

    /// The parts `ids` in one pipeline to `node`: each part's answer, or
    /// `None` for a part to send again (an error answer, or no answer).
    async fn send_to(&self, node: &str, ids: &[usize], parts: &[Part]) -> Vec<Option<Value>> {
        let mut pipe = redis::pipe();
        for &i in ids {
            pipe.add_command(parts[i].cmd.clone());
        }
        let sent = match address(node) {
            Some(route) => {
                self.conn
                    .clone()
                    .route_pipeline(pipe, 0, ids.len(), route)
                    .await
            }
            None => return ids.iter().map(|_| None).collect(),
        };
        match sent {
            Ok(values) if values.len() == ids.len() => values
                .into_iter()
                .map(|v| (!matches!(v, Value::ServerError(_))).then_some(v))
                .collect(),
            _ => ids.iter().map(|_| None).collect(),
        }
    }

    /// Sends the parts without an answer yet through redis-rs's routing, all
    /// at once.
    async fn send_the_rest(
        &self,
        parts: &[Part],
        answers: Vec<Option<Value>>,
    ) -> RedisResult<Vec<Value>> {
        let missing = (0..parts.len()).filter(|&i| answers[i].is_none());
        let routed = missing.map(|i| {
            let mut conn = self.conn.clone();
            async move { parts[i].cmd.query_async::<Value>(&mut conn).await }
        });
        let mut resent = futures_util::future::try_join_all(routed)
            .await?
            .into_iter();
        let all = answers
            .into_iter()
            .map(|a| a.or_else(|| resent.next()).unwrap_or(Value::Nil));
        Ok(all.collect())
    }

    /// `cmd` on every primary, in parallel: each primary's address and
    /// answer. A server error of one primary is its answer; a primary that
    /// cannot be reached fails the whole.
    pub(crate) async fn on_each_primary(&self, cmd: &Cmd) -> RedisResult<Vec<(String, Value)>> {
        let every = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
        match self.conn.clone().route_command(cmd.clone(), every).await? {
            Value::Map(answers) => answers
                .into_iter()
                .map(|(addr, answer)| Ok((String::from_redis_value(addr)?, answer)))
                .collect(),
            other => Err(unexpected("the answers of every primary", &other)),
        }
    }

    /// `cmd` on the node named `host:port`, as `on_each_primary` names it.
    pub(crate) async fn on_node<T: FromRedisValue>(&self, node: &str, cmd: &Cmd) -> RedisResult<T> {
        let route = address(node)
            .ok_or_else(|| unexpected("a node address", &Value::SimpleString(node.into())))?;
        let route = RoutingInfo::SingleNode(route);
        let answer = self.conn.clone().route_command(cmd.clone(), route).await?;
        T::from_redis_value(answer).map_err(Into::into)
    }

    /// `pipe` (of `count` commands) on the node named `host:port`, as
    /// `on_each_primary` names it: each command's answer, an error answer
    /// as its value.
    pub(crate) async fn pipe_on_node(
        &self,
        node: &str,
        pipe: &Pipeline,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        let route = address(node)
            .ok_or_else(|| unexpected("a node address", &Value::SimpleString(node.into())))?;
        let mut conn = self.conn.clone();
        conn.route_pipeline(pipe.clone(), 0, count, route).await
    }

    /// `cmd` on any one node.
    pub(crate) async fn on_any<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        let random = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
        let answer = self.conn.clone().route_command(cmd.clone(), random).await?;
        T::from_redis_value(answer).map_err(Into::into)
    }

    /// The slot map, asked for when not known or over a second old; `None`
    /// when Redis would not say (every part then goes through redis-rs's
    /// routing).
    async fn owners(&self) -> Option<Arc<SlotOwners>> {
        let known = self
            .owners
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some((_, owners)) = known.filter(|(asked, _)| asked.elapsed() < MAP_LIFETIME) {
            return Some(owners);
        }
        let ask = redis::cmd("CLUSTER").arg("SLOTS").to_owned();
        let answer = self.on_any::<Value>(&ask).await.ok()?;
        let owners = Arc::new(SlotOwners::parse(answer)?);
        let known = Some((Instant::now(), Arc::clone(&owners)));
        *self.owners.write().unwrap_or_else(|e| e.into_inner()) = known;
        Some(owners)
    }
}

impl SlotOwners {
    /// `CLUSTER SLOTS`: `[[first, last, [host, port, ..], replicas..], ..]`.
    fn parse(answer: Value) -> Option<Self> {
        let Value::Array(ranges) = answer else {
            return None;
        };
        let mut owners = Vec::with_capacity(ranges.len());
        for range in ranges {
            let Value::Array(fields) = range else {
                return None;
            };
            let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(primary))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return None;
            };
            let host = match primary.first()? {
                Value::BulkString(b) => String::from_utf8(b.clone()).ok()?,
                Value::SimpleString(s) => s.clone(),
                _ => return None,
            };
            let Some(Value::Int(port)) = primary.get(1) else {
                return None;
            };
            // A node that does not know its own address ("" or "?") is one
            // redis-rs names by the address it reached it at: its slots are
            // left out, and their parts go through redis-rs's routing.
            if host.is_empty() || host == "?" {
                continue;
            }
            let node = format!("{host}:{port}");
            owners.push((
                u16::try_from(*first).ok()?,
                u16::try_from(*last).ok()?,
                node,
            ));
        }
        owners.sort_unstable_by_key(|o| o.0);
        Some(Self(owners))
    }

    fn owner(&self, slot: u16) -> Option<&str> {
        let i = self.0.partition_point(|o| o.0 <= slot).checked_sub(1)?;
        let (first, last, node) = &self.0[i];
        (*first <= slot && slot <= *last).then_some(node.as_str())
    }
}

/// A node named `host:port` as redis-rs addresses it.
fn address(node: &str) -> Option<SingleNodeRoutingInfo> {
    let (host, port) = node.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.to_string();
    Some(SingleNodeRoutingInfo::ByAddress { host, port })
}

fn unexpected(what: &str, got: &Value) -> redis::RedisError {
    let detail = format!("expected {what}, got {got:?}");
    redis::RedisError::from((redis::ErrorKind::UnexpectedReturnType, "cluster", detail))
}

/// The hash slot of `key`, as Redis computes it: CRC16 (XMODEM) of the
/// key's hash tag (the first non-empty `{..}`), or of the whole key, modulo
/// 16384. (`tests/cluster.rs` checks it against `CLUSTER KEYSLOT`; redis-rs
/// computes the same, but keeps the number to itself.)
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    let tag = key.iter().position(|&b| b == b'{').and_then(|open| {
        let len = key[open + 1..].iter().position(|&b| b == b'}')?;
        (len > 0).then(|| &key[open + 1..open + 1 + len])
    });
    crc16::State::<crc16::XMODEM>::calculate(tag.unwrap_or(key)) % 16_384
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_slots_are_redis_s() {
        // Redis' own examples (cluster spec) and `CLUSTER KEYSLOT` answers.
        assert_eq!(key_slot(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12_182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        // An empty tag is no tag: the whole key is hashed.
        let whole = crc16::State::<crc16::XMODEM>::calculate(b"foo{}{bar}") % 16_384;
        assert_eq!(key_slot(b"foo{}{bar}"), whole);
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    }

    #[test]
    fn the_owner_of_a_slot_is_found_by_range() {
        let owners = SlotOwners(vec![
            (0, 99, "a:1".into()),
            (100, 199, "b:2".into()),
            (300, 400, "c:3".into()),
        ]);
        assert_eq!(owners.owner(0), Some("a:1"));
        assert_eq!(owners.owner(99), Some("a:1"));
        assert_eq!(owners.owner(100), Some("b:2"));
        assert_eq!(owners.owner(250), None);
        assert_eq!(owners.owner(400), Some("c:3"));
        assert_eq!(owners.owner(401), None);
    }
}
