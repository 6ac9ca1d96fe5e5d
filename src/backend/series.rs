//! How a series sits in Redis: runs of consecutive bars in a sorted set, and
//! a head key.
//!
//! Each member of the set is a *run* ([`codec::Kind::BarRun`]): the archived
//! bars of up to [`RUN_BARS`] consecutive bars *by count*, oldest first,
//! scored by its first bar's open time. Gaps, sparse data and timestamps off
//! the candle grid change nothing: a run holds bars, not a span of time.
//! From the newest down:
//!
//! ```text
//! tail   exactly one bar, the newest: the in-progress candle is rewritten
//!        there, a 52-byte member, never a whole run
//! open   1..=RUN_BARS bars: the run the tail's bar joins when a newer bar comes
//! full   RUN_BARS bars each up to EXACT_ZONE runs from the top;
//!        RUN_BARS..2*RUN_BARS-1 below (bars inserted deep in the history
//!        grow the run they fall in, which splits past 2*RUN_BARS-1 bars:
//!        nothing above it moves)
//! oldest may hold fewer (the retention cap trims the oldest bars); at most
//!        RUN_BARS within EXACT_ZONE runs of the top
//! ```
//!
//! A write touches only the runs its bars fall in: a run that only has bars
//! replaced keeps its size; a run within EXACT_ZONE of the top that gains
//! bars is repacked with every run above it (at most about 2,000 bars plus
//! the chunk's); a deeper one is rewritten alone. A chunk of 2,000 bars
//! rewrites at most 2,000 runs, whatever the history holds.
//!
//! So the newest `n` bars are always in the newest [`members_for`]`(n)`
//! members: one `ZRANGE .. REV` by rank, one atomic command, whatever the
//! data. The head key (`..:head`, [`codec::Kind::SeriesHead`]) holds the
//! newest bar and the bar count: the latest bar of one series is a `GET`, of
//! many an `MGET`. Both keys are written by one script, so they always agree.
//!
//! Why these sizes (measured on loopback, redis 7.0): a 42-bar run is 2,020
//! bytes, 2,026 with Redis' string header, just under jemalloc's 2,048-byte
//! class, so a bar costs about 50 bytes of Redis memory; replacing a member
//! costs Redis a hash of its bytes, so the in-progress candle lives in a
//! one-bar member (rewriting a 2 KB run each tick costs 1.5× a trivial
//! `EVALSHA`); and a reply of a few 2 KB members costs no more than a `GET`
//! of the same bytes, where a script that trims the reply server-side costs
//! 1.7× (copies in and out of Lua).

use super::BarRecord;
use crate::codec::{self, ARCHIVED_BAR_LEN};
use crate::error::{Error, Result};
use bytes::Bytes;

/// Bars per full run.
pub(crate) const RUN_BARS: usize = 42;

/// How far from the top runs are kept exactly full: a bar inserted among
/// them repacks them up to the tail (at most this many runs, about 2,000
/// bars, rewritten), so reads of up to about 2,000 bars never over-fetch
/// more than `2 * RUN_BARS - 2` bars.
pub(crate) const EXACT_ZONE: usize = 48;

/// Bars per script call: no command or reply is huge, and Redis, which runs
/// a script in one go, stays responsive.
pub(crate) const CHUNK_BARS: usize = 2_000;

/// The newest members that hold the newest `n` bars (`n >= 1`): the tail
/// holds one, the open run at least one, every other run at least
/// [`RUN_BARS`] (or it is the oldest, and the series ends there).
pub(crate) fn members_for(n: usize) -> usize {
    if n <= 1 {
        1
    } else {
        2 + (n - 2).div_ceil(RUN_BARS)
    }
}

/// Members scored inside a window that hold `limit` bars: every run but the
/// tail, the open run and the oldest holds at least [`RUN_BARS`].
pub(crate) fn members_for_window(limit: usize) -> usize {
    limit.div_ceil(RUN_BARS) + 3
}

/// Upserts bars into one series, atomically: one call per chunk.
///
/// KEYS: the run set, the head. ARGV: TTL ms, cap (0: none), RUN_BARS,
/// EXACT_ZONE, archived bar length, run header, head header, the bars
/// (archived, back to back, sorted by time, one per time), the first bar's
/// open time. Every check that
/// can fail runs before the first write, so a chunk lands whole or not at all.
/// Three paths, cheapest first: the in-progress candle (one bar, the newest's
/// time: rewrite the tail and the head), appends (every bar newer than the
/// newest: extend the open run, add full runs, a new tail), and a merge (bars
/// among or before stored ones, into the runs they fall in). A head without
/// its tail in the set, or a set without its head (Redis evicted one of the
/// two), drops the series: a cache may lose data, it must not serve a series
/// it cannot vouch for. A member or head that is not ours fails the chunk
/// with `CORRUPT` (a codec error), nothing written.
pub(crate) const UPSERT_LUA: &str = r#"#!lua
local set, headk = KEYS[1], KEYS[2]
local ttl, cap = ARGV[1], tonumber(ARGV[2])
local W, RUN, HEAD, new = tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
local H = #RUN
local head = redis.call('GET', headk)

-- The in-progress candle, the call of every tick, first and with the least
-- work: one bar at the newest bar's open time (the same 8 bytes) rewrites
-- the one-bar tail run and the head.
if head and #new == W and #head == H + W + 8 and string.sub(head, 1, H) == HEAD
    and string.sub(new, 1, 8) == string.sub(head, H + 1, H + 8)
    and (cap == 0 or (struct.unpack('<i8', head, H + W + 1)) <= cap)
    and redis.call('ZREM', set, RUN .. string.sub(head, H + 1, H + W)) == 1 then
  redis.call('ZADD', set, ARGV[9], RUN .. new)
  redis.call('SET', headk, HEAD .. new .. string.sub(head, H + W + 1), 'PX', ttl)
  redis.call('PEXPIRE', set, ttl)
  return 1
end

local B, ZONE = tonumber(ARGV[3]), tonumber(ARGV[4])
local n = #new / W
local function num(x) return string.format('%.0f', x) end
local function ts(bars, i) return (struct.unpack('<i8', bars, (i - 1) * W + 1)) end
local function corrupt(what) return redis.error_reply('CORRUPT series ' .. set .. ': ' .. what) end
local function bars_of(m)
  if #m <= H or (#m - H) % W ~= 0 or string.sub(m, 1, H) ~= RUN then return nil end
  return string.sub(m, H + 1)
end
local function put(bars) redis.call('ZADD', set, num(ts(bars, 1)), RUN .. bars) end
local function pack(bars, size)
  local total, i = #bars / W, 0
  while i < total do
    local m = math.min(size(total - i), total - i)
    put(string.sub(bars, i * W + 1, (i + m) * W))
    i = i + m
  end
end
local function full() return B end
local function even(runs)
  return function(left) local m = math.ceil(left / runs); runs = runs - 1; return m end
end

local lo = ts(new, 1)
local count, newest, tail = 0, nil, nil
if head then
  if #head ~= H + W + 8 or string.sub(head, 1, H) ~= HEAD then return corrupt('head') end
  tail = RUN .. string.sub(head, H + 1, H + W)
  newest = (struct.unpack('<i8', head, H + 1))
  count = (struct.unpack('<i8', head, H + W + 1))
end

-- Trims the oldest bars to the cap (after the writes, so it checks as it
-- goes: a member that is not a run of ours was never counted, and goes).
local function finish(newest_bar)
  while cap > 0 and count > cap do
    local m = redis.call('ZRANGE', set, 0, 0)[1]
    if not m then break end
    redis.call('ZREM', set, m)
    local bars = bars_of(m)
    if bars then
      local k = #bars / W
      if k > count - cap then
        put(string.sub(bars, (count - cap) * W + 1))
        k = count - cap
      end
      count = count - k
    end
  end
  redis.call('SET', headk, HEAD .. newest_bar .. struct.pack('<i8', count), 'PX', ttl)
  redis.call('PEXPIRE', set, ttl)
  return count
end

if head and not redis.call('ZSCORE', set, tail) then
  head = false
end
if not head then
  redis.call('DEL', set)
  count = 0
end
local last = string.sub(new, (n - 1) * W + 1)

if head and lo > newest then
  local below = redis.call('ZRANGE', set, 1, 1, 'REV')
  local open = ''
  if #below > 0 then
    local bars = bars_of(below[1])
    if not bars then return corrupt('run') end
    if #bars < B * W then open = bars end
  end
  if #open > 0 then redis.call('ZREM', set, below[1]) end
  redis.call('ZREM', set, tail)
  pack(open .. string.sub(tail, H + 1) .. string.sub(new, 1, (n - 1) * W), full)
  put(last)
  count = count + n
  return finish(last)
end

-- A merge: bars among or before stored ones. Each goes to the run holding
-- its time (the run scored at or before it; the oldest, for bars before all).
local function merge(old, add)
  local out, gained, i, j = {}, 0, 1, 1
  local on, an = #old / W, #add / W
  while i <= on or j <= an do
    local a = i <= on and ts(old, i) or nil
    local b = j <= an and ts(add, j) or nil
    if b == nil or (a ~= nil and a < b) then
      out[#out + 1] = string.sub(old, (i - 1) * W + 1, i * W); i = i + 1
    else
      if a == b then i = i + 1 else gained = gained + 1 end
      out[#out + 1] = string.sub(add, (j - 1) * W + 1, j * W); j = j + 1
    end
  end
  return table.concat(out), gained
end

if not head then
  pack(string.sub(new, 1, (n - 1) * W), full)
  put(last)
  count = n
  return finish(last)
end

local runs, j = {}, 1
while j <= n do
  local t = num(ts(new, j))
  local at = redis.call('ZRANGE', set, t, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, 1, 'WITHSCORES')
  if #at == 0 then at = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES') end
  local bars = bars_of(at[1])
  if not bars then return corrupt('run') end
  local next = redis.call('ZRANGE', set, '(' .. at[2], '+inf', 'BYSCORE', 'LIMIT', 0, 1, 'WITHSCORES')
  local first = j
  while j <= n and (next[2] == nil or ts(new, j) < tonumber(next[2])) do j = j + 1 end
  runs[#runs + 1] = {m = at[1], score = at[2], bars = bars,
    add = string.sub(new, (first - 1) * W + 1, (j - 1) * W)}
end

-- The runs that only have bars replaced keep their size. The lowest run of
-- the newest ZONE that gains bars is repacked with every run above it (the
-- exact layout the reads count on); a deeper run that gains bars is
-- rewritten alone, split when it passes 2B - 1 bars, never cascading.
local z = nil
for k, r in ipairs(runs) do
  r.merged, r.gained = merge(r.bars, r.add)
  if not z and r.gained > 0 and redis.call('ZCOUNT', set, '(' .. r.score, '+inf') <= ZONE then z = k end
end
local top_old, top_add = {}, {}
local top_members = {}
if z and runs[z].m == tail then
  -- The tail alone: the open run below it joins, or it would be left short
  -- under a new open run; as an affected run of its own, if it is one.
  local below = redis.call('ZRANGE', set, 1, 1, 'REV')
  if z > 1 and runs[z - 1].m == below[1] then
    z = z - 1
  elseif below[1] then
    local bars = bars_of(below[1])
    if not bars then return corrupt('run') end
    top_members[1], top_old[1] = below[1], bars
  end
end
if z then
  local from = runs[z]
  for _, m in ipairs(redis.call('ZRANGE', set, from.score, '+inf', 'BYSCORE')) do
    local bars = bars_of(m)
    if not bars then return corrupt('run') end
    top_members[#top_members + 1], top_old[#top_old + 1] = m, bars
  end
  for k = z, #runs do top_add[#top_add + 1] = runs[k].add end
end

local newest_bar = string.sub(head, H + 1, H + W)
for k = 1, z and z - 1 or #runs do
  local r = runs[k]
  redis.call('ZREM', set, r.m)
  local pieces = r.gained == 0 and 1 or math.max(1, math.floor(#r.merged / W / B))
  pack(r.merged, even(pieces))
  count = count + r.gained
  if r.m == tail then newest_bar = r.merged end
end
if z then
  for _, m in ipairs(top_members) do redis.call('ZREM', set, m) end
  local merged, gained = merge(table.concat(top_old), table.concat(top_add))
  pack(string.sub(merged, 1, #merged - W), full)
  newest_bar = string.sub(merged, #merged - W + 1)
  put(newest_bar)
  count = count + gained
end
return finish(newest_bar)
"#;

/// The newest `n` archived bars of members read newest first, as runs: a
/// slice of the newest bars of each member, oldest first within it, newest
/// run first. One slice per member, no copy.
pub(crate) fn newest(members: &[Bytes], n: usize) -> Result<Vec<Bytes>> {
    let mut out = Vec::with_capacity(members.len());
    let mut left = n;
    for member in members {
        if left == 0 {
            break;
        }
        let bars = bars_of(member)?;
        let take = (bars.len() / ARCHIVED_BAR_LEN).min(left);
        out.push(bars.slice(bars.len() - take * ARCHIVED_BAR_LEN..));
        left -= take;
    }
    Ok(out)
}

/// The archived bars with `from <= ts <= to` of members given oldest first,
/// at most `limit`, as runs oldest first: a slice of each member.
pub(crate) fn window(members: &[Bytes], from: i64, to: i64, limit: usize) -> Result<Vec<Bytes>> {
    let mut out = Vec::new();
    let mut left = limit;
    for member in members {
        let bars = bars_of(member)?;
        let (whole, _) = bars.as_chunks::<ARCHIVED_BAR_LEN>();
        let a = whole.partition_point(|b| codec::archived_bar_timestamp(b) < from);
        let b = whole.partition_point(|b| codec::archived_bar_timestamp(b) <= to);
        let b = b.min(a.saturating_add(left));
        if b > a {
            out.push(bars.slice(a * ARCHIVED_BAR_LEN..b * ARCHIVED_BAR_LEN));
            left -= b - a;
        }
        if left == 0 || b < whole.len() {
            break;
        }
    }
    Ok(out)
}

/// The newest bar of a head value, copied out.
pub(crate) fn head_bar(head: Vec<u8>) -> Result<BarRecord> {
    let bar = codec::head_bar(&head)?;
    bar.try_into()
        .map_err(|_| Error::codec("series head holds a short bar"))
}

/// The archived bars of one member, checked as a run, sliced without copying.
fn bars_of(member: &Bytes) -> Result<Bytes> {
    let bars = codec::run_bars(member).map_err(|e| Error::codec(format!("series member: {e}")))?;
    Ok(member.slice_ref(bars))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Bar;

    fn run(times: &[i64]) -> Bytes {
        let bars: Vec<Bar> = times
            .iter()
            .map(|&t| Bar::new(t, 1.0, 2.0, 0.5, 1.5, 1.0))
            .collect();
        codec::encode_bar_run(&bars)
    }

    fn times(bars: &[Bytes]) -> Vec<i64> {
        bars.iter()
            .flat_map(|r| {
                let (bars, _) = r.as_chunks::<ARCHIVED_BAR_LEN>();
                bars.iter()
                    .map(codec::archived_bar_timestamp)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn the_newest_n_bars_are_in_the_newest_members() {
        assert_eq!(members_for(1), 1);
        assert_eq!(members_for(2), 2);
        assert_eq!(members_for(2 + RUN_BARS), 3);
        assert_eq!(members_for(3 + RUN_BARS), 4);
        // Worst case: an open run of one bar, then full runs.
        for n in 1..500 {
            let k = members_for(n);
            let least = if k == 1 { 1 } else { 2 + (k - 2) * RUN_BARS };
            assert!(least >= n, "{n} bars, {k} members hold {least}");
        }
        assert!(members_for(crate::limits::MAX_BARS_PER_READ) > EXACT_ZONE);
    }

    #[test]
    fn newest_takes_a_slice_of_each_member() {
        let members = [run(&[9]), run(&[6, 7, 8]), run(&[1, 2, 3])];
        let runs = newest(&members, 5).unwrap();
        assert_eq!(runs.len(), 3);
        assert_eq!(times(&runs), vec![9, 6, 7, 8, 3]);
        assert_eq!(times(&newest(&members, 100).unwrap()).len(), 7);
        assert!(newest(&members, 0).unwrap().is_empty());
    }

    #[test]
    fn window_filters_and_limits() {
        let members = [run(&[1, 2, 3]), run(&[4, 5]), run(&[7, 8, 9])];
        assert_eq!(
            times(&window(&members, 2, 7, 100).unwrap()),
            vec![2, 3, 4, 5, 7]
        );
        assert_eq!(times(&window(&members, 2, 7, 2).unwrap()), vec![2, 3]);
        assert!(window(&members, 10, 20, 5).unwrap().is_empty());
    }

    #[test]
    fn a_member_that_is_not_a_run_is_a_codec_error() {
        let mut ragged = run(&[1, 2]).to_vec();
        ragged.pop();
        assert!(newest(&[Bytes::from(ragged)], 1).unwrap_err().is_codec());
        let bar = codec::encode(&Bar::new(1, 1.0, 2.0, 0.5, 1.5, 1.0));
        assert!(newest(&[bar], 1).unwrap_err().is_codec());
        assert!(head_bar(b"IF".to_vec()).unwrap_err().is_codec());
    }
}
