//! How a series sits in its Redis sorted set: bars packed in blocks.
//!
//! A member is a *block*: the 52-byte records of the bars of one span of time
//! (`BLOCK_BARS` candle intervals, aligned to the epoch), oldest first,
//! scored by the span's start. One more member, `#count`, carries the number
//! of bars in its (negative) score, for the retention cap.
//!
//! Why blocks rather than a member per bar: a 100-bar read returns 3 bulk
//! strings instead of 100, which is what a reply costs the client to parse
//! (measured on loopback: 100 members cost 1.26× a GET of the same bytes, so
//! it is the member count, not the byte count, that costs), and Redis keeps
//! about 55 bytes per bar instead of 72 to 200.

use crate::codec::{self, BAR_LEN};
use crate::error::{Error, Result};
use bytes::Bytes;

/// The member holding the bar count (as `-1 - count` in its score, so it
/// ranks below every block); `COUNT` in the script.
pub(crate) const COUNT_MEMBER: &[u8] = b"#count";

/// Candle intervals per block. 64 × 52 B = 3.3 KB: a handful of blocks
/// answer any usual read, and the per-member overhead spreads over 64 bars.
pub(crate) const BLOCK_BARS: usize = 64;

/// The width in milliseconds of the blocks of a series of `interval_ms` candles.
pub(crate) fn span_ms(interval_ms: i64) -> i64 {
    interval_ms.max(1) * BLOCK_BARS as i64
}

/// The start of the block holding `ts` (timestamps are never negative).
pub(crate) fn block_start(ts: i64, span: i64) -> i64 {
    ts.max(0) - ts.max(0) % span
}

/// Upserts bars into the blocks of one series, atomically.
///
/// KEYS[1]: the series. ARGV: TTL ms, cap (0: none), block span ms, record
/// length, then ts, record pairs. Phase 1 only reads and fails on a corrupt
/// block before anything is written; phase 2 only writes, so a chunk lands
/// whole. A new record replaces the stored one of the same open time.
pub(crate) const UPSERT_LUA: &str = r#"#!lua
local key, ttl, cap = KEYS[1], ARGV[1], tonumber(ARGV[2])
local span, len = tonumber(ARGV[3]), tonumber(ARGV[4])
local COUNT = '#count'

local news, order = {}, {}
for i = 5, #ARGV, 2 do
  local ts = tonumber(ARGV[i])
  local start = ts - ts % span
  if not news[start] then news[start] = {}; order[#order + 1] = start end
  news[start][ts] = ARGV[i + 1]
end

local c = redis.call('ZSCORE', key, COUNT)
local count = c and (-1 - tonumber(c)) or 0
local writes = {}
for _, start in ipairs(order) do
  local recs = news[start]
  local old = redis.call('ZRANGE', key, start, start, 'BYSCORE')
  for _, block in ipairs(old) do
    if #block == 0 or #block % len ~= 0 then
      return redis.error_reply('ERR corrupt block in ' .. key)
    end
    for off = 1, #block, len do
      local ts = struct.unpack('<i8', block, off + 4)
      if recs[ts] == nil then recs[ts] = string.sub(block, off, off + len - 1) end
      count = count - 1
    end
  end
  local times = {}
  for ts in pairs(recs) do times[#times + 1] = ts end
  table.sort(times)
  local parts = {}
  for i, ts in ipairs(times) do parts[i] = recs[ts] end
  count = count + #times
  writes[#writes + 1] = {start, old, table.concat(parts)}
end

for _, w in ipairs(writes) do
  if #w[2] > 0 then redis.call('ZREM', key, unpack(w[2])) end
  redis.call('ZADD', key, w[1], w[3])
end
while cap > 0 and count > cap do
  local oldest = redis.call('ZRANGE', key, 0, '+inf', 'BYSCORE', 'LIMIT', 0, 1, 'WITHSCORES')
  if #oldest == 0 then break end
  local n = #oldest[1] / len
  redis.call('ZREM', key, oldest[1])
  if count - n < cap then
    local drop = count - cap
    redis.call('ZADD', key, oldest[2], string.sub(oldest[1], drop * len + 1))
    n = drop
  end
  count = count - n
end
redis.call('ZADD', key, -1 - count, COUNT)
redis.call('PEXPIRE', key, ttl)
return count
"#;

/// Splits bars sorted by time into chunks of about `max`, never splitting
/// a block: each block is then read and rewritten once per write.
pub(crate) fn chunks<T>(items: &[(i64, T)], span: i64, max: usize) -> Vec<&[(i64, T)]> {
    let mut out = Vec::with_capacity(items.len() / max.max(1) + 1);
    let mut start = 0;
    for i in 1..items.len() {
        let new_block = block_start(items[i].0, span) != block_start(items[i - 1].0, span);
        if i - start >= max && new_block {
            out.push(&items[start..i]);
            start = i;
        }
    }
    if start < items.len() {
        out.push(&items[start..]);
    }
    out
}

/// The records of one block, oldest first, sliced without copying.
pub(crate) fn records(
    block: &Bytes,
) -> Result<impl DoubleEndedIterator<Item = Bytes> + ExactSizeIterator + '_> {
    if block.is_empty() || !block.len().is_multiple_of(BAR_LEN) {
        return Err(Error::codec(format!(
            "series block of {} bytes is not a whole number of {BAR_LEN}-byte records",
            block.len()
        )));
    }
    Ok((0..block.len() / BAR_LEN).map(move |i| block.slice(i * BAR_LEN..(i + 1) * BAR_LEN)))
}

/// The newest `n` records of blocks given newest first, as runs: a slice of
/// the newest records of each block, oldest first within it, newest run
/// first. One slice per block instead of one per record.
pub(crate) fn newest(blocks: &[Bytes], n: usize) -> Result<Vec<Bytes>> {
    let mut out = Vec::with_capacity(blocks.len());
    let mut left = n;
    for block in blocks {
        if left == 0 {
            break;
        }
        let count = records(block)?.len().min(left);
        out.push(block.slice(block.len() - count * BAR_LEN..));
        left -= count;
    }
    Ok(out)
}

/// The records with `from <= ts <= to` of blocks given oldest first, at most `limit`.
pub(crate) fn window(blocks: &[Bytes], from: i64, to: i64, limit: usize) -> Result<Vec<Bytes>> {
    let mut out = Vec::new();
    for block in blocks {
        for record in records(block)? {
            let ts = codec::bar_timestamp(&record)?;
            if ts > to || out.len() == limit {
                return Ok(out);
            }
            if ts >= from {
                out.push(record);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Bar;

    fn block(times: &[i64]) -> Bytes {
        let bars: Vec<Bar> = times
            .iter()
            .map(|&t| Bar::new(t, 1.0, 2.0, 0.5, 1.5, 1.0))
            .collect();
        codec::encode_bars(&bars).concat().into()
    }

    fn times(records: &[Bytes]) -> Vec<i64> {
        records
            .iter()
            .map(|r| codec::bar_timestamp(r).unwrap())
            .collect()
    }

    /// Runs read newest first: runs in order, records reversed within each.
    fn newest_times(runs: &[Bytes]) -> Vec<i64> {
        let records = runs.iter().flat_map(|r| records(r).unwrap().rev());
        records.map(|r| codec::bar_timestamp(&r).unwrap()).collect()
    }

    #[test]
    fn blocks_align_to_the_epoch() {
        let span = span_ms(60_000);
        assert_eq!(span, 64 * 60_000);
        assert_eq!(block_start(0, span), 0);
        assert_eq!(block_start(span - 1, span), 0);
        assert_eq!(block_start(span, span), span);
        assert_eq!(block_start(-5, span), 0);
    }

    #[test]
    fn chunks_end_on_block_boundaries() {
        let items: Vec<(i64, ())> = (0..1_000).map(|t| (t, ())).collect();
        let chunks = chunks(&items, 64, 100);
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 1_000);
        for c in &chunks[..chunks.len() - 1] {
            assert_eq!(c.len(), 128, "100 bars, rounded up to a whole block");
        }
        assert!(super::chunks::<()>(&[], 64, 100).is_empty());
    }

    #[test]
    fn newest_walks_blocks_newest_first() {
        let blocks = [block(&[7, 8, 9]), block(&[4, 5]), block(&[1, 2, 3])];
        let runs = newest(&blocks, 4).unwrap();
        assert_eq!(runs.len(), 2, "one slice per block");
        assert_eq!(newest_times(&runs), vec![9, 8, 7, 5]);
        assert_eq!(newest_times(&newest(&blocks, 100).unwrap()).len(), 8);
        assert!(newest(&blocks, 0).unwrap().is_empty());
    }

    #[test]
    fn window_filters_and_limits() {
        let blocks = [block(&[1, 2, 3]), block(&[4, 5]), block(&[7, 8, 9])];
        assert_eq!(
            times(&window(&blocks, 2, 7, 100).unwrap()),
            vec![2, 3, 4, 5, 7]
        );
        assert_eq!(times(&window(&blocks, 2, 7, 2).unwrap()), vec![2, 3]);
        assert!(window(&blocks, 10, 20, 5).unwrap().is_empty());
    }

    #[test]
    fn a_ragged_block_is_a_codec_error() {
        let mut ragged = block(&[1, 2]).to_vec();
        ragged.pop();
        let err = newest(&[Bytes::from(ragged)], 1).unwrap_err();
        assert!(err.is_codec());
        assert!(records(&Bytes::new()).is_err());
    }
}
