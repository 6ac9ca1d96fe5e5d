//! A Redis Cluster connection (redis-rs `ClusterConnection`), and the one
//! thing it adds: a call that spans slots goes as one pipeline per node.
//!
//! Redis refuses a command whose keys span slots, and redis-rs splits such
//! a call into one request per slot: a hundred tickers on a hundred slots
//! were a hundred requests, ten times one `MGET` on one server. Here the
//! per-slot commands of one node go in one pipeline to that node, found in
//! the slot map Redis gave when last asked (`CLUSTER SLOTS`). Redis stays
//! the judge of where a key lives: a node that no longer serves a slot
//! answers `MOVED` or `ASK` for that slot's commands, and those go again
//! through redis-rs's own routing, which follows them; the map is then
//! asked for again. Routing, redirects and failover remain redis-rs's.

use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, RedisResult, Value};
use std::sync::{Arc, RwLock};

pub(crate) struct Cluster {
    pub(crate) conn: ClusterConnection,
    /// `None` until asked, and again after a part met a slot moved.
    owners: RwLock<Option<Arc<SlotOwners>>>,
}

/// One batch of commands whose keys are all on one slot.
pub(crate) struct Part {
    pub slot: u16,
    pub cmds: Vec<Cmd>,
}

/// Which node served which slots: `(first, last, "host:port")`, by `first`.
struct SlotOwners(Vec<(u16, u16, String)>);

impl Cluster {
    pub(crate) fn new(conn: ClusterConnection) -> Self {
        Self {
            conn,
            owners: RwLock::new(None),
        }
    }

    /// Sends every part, one pipeline per node, all at once; the answers of
    /// each part's commands, in order.
    pub(crate) async fn send_parts(&self, parts: &[Part]) -> RedisResult<Vec<Vec<Value>>> {
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
        let mut answers: Vec<Option<Vec<Value>>> = parts.iter().map(|_| None).collect();
        for (ids, sent) in nodes
            .iter()
            .map(|(_, ids)| ids)
            .zip(futures_util::future::join_all(sends).await)
        {
            for (&i, answer) in ids.iter().zip(sent) {
                answers[i] = answer;
            }
        }
        self.send_the_rest(parts, answers).await
    }

    /// The parts `ids` in one pipeline to `node`: each part's answers, or
    /// `None` for a part to send again (an error answer, or no answer).
    async fn send_to(&self, node: &str, ids: &[usize], parts: &[Part]) -> Vec<Option<Vec<Value>>> {
        let pipe = pipeline_of(ids.iter().flat_map(|&i| &parts[i].cmds));
        let count = ids.iter().map(|&i| parts[i].cmds.len()).sum();
        let Some(route) = address(node) else {
            return vec![None; ids.len()];
        };
        let Ok(mut values) = self
            .conn
            .clone()
            .route_pipeline(pipe, 0, count, route)
            .await
        else {
            return vec![None; ids.len()];
        };
        if values.len() != count {
            return vec![None; ids.len()];
        }
        let mut rest = values.drain(..);
        let split = ids
            .iter()
            .map(|&i| rest.by_ref().take(parts[i].cmds.len()).collect::<Vec<_>>());
        let answers = split.map(|answer| {
            let whole = !answer.iter().any(|v| matches!(v, Value::ServerError(_)));
            whole.then_some(answer)
        });
        answers.collect()
    }

    /// Sends the parts without an answer yet through redis-rs's routing, all
    /// at once, and forgets the slot map if any of them had been sent.
    async fn send_the_rest(
        &self,
        parts: &[Part],
        answers: Vec<Option<Vec<Value>>>,
    ) -> RedisResult<Vec<Vec<Value>>> {
        let missing: Vec<usize> = (0..parts.len()).filter(|&i| answers[i].is_none()).collect();
        if missing.is_empty() {
            return Ok(answers.into_iter().flatten().collect());
        }
        *self.owners.write().unwrap_or_else(|e| e.into_inner()) = None;
        let routed = missing.iter().map(|&i| {
            let pipe = pipeline_of(&parts[i].cmds);
            let mut conn = self.conn.clone();
            async move { pipe.query_async::<Vec<Value>>(&mut conn).await }
        });
        let mut resent = futures_util::future::try_join_all(routed)
            .await?
            .into_iter();
        let all = answers
            .into_iter()
            .map(|a| a.or_else(|| resent.next()).unwrap_or_default());
        Ok(all.collect())
    }

    /// The slot map, asked for when not known; `None` when Redis would not
    /// say (every part then goes through redis-rs's routing).
    async fn owners(&self) -> Option<Arc<SlotOwners>> {
        if let Some(known) = self
            .owners
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Some(known);
        }
        let ask = redis::cmd("CLUSTER").arg("SLOTS").to_owned();
        let random = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
        let answer = self.conn.clone().route_command(ask, random).await.ok()?;
        let owners = Arc::new(SlotOwners::parse(answer)?);
        *self.owners.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&owners));
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

/// One pipeline of `cmds`, their answers not ignored.
pub(crate) fn pipeline_of<'a>(cmds: impl IntoIterator<Item = &'a Cmd>) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for cmd in cmds {
        pipe.add_command(cmd.clone());
    }
    pipe
}

/// A node named `host:port` as redis-rs addresses it.
pub(crate) fn address(node: &str) -> Option<SingleNodeRoutingInfo> {
    let (host, port) = node.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.to_string();
    Some(SingleNodeRoutingInfo::ByAddress { host, port })
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
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
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
