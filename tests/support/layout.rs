//! The series layout as Redis holds it, checked member by member against
//! what `backend/series.rs` promises (and the README's design section
//! documents): the reads' "one `ZRANGE` holds the newest N bars" rests on it.

use super::RedisServer;
use iftb_cache::codec::{self, Kind, ARCHIVED_BAR_LEN, FORMAT_VERSION, HEADER_LEN};

/// Bars per full run, and the newest runs kept exactly full.
pub const RUN_BARS: usize = 42;
pub const EXACT_ZONE: usize = 48;

/// Checks the run set and head of a series (keys in the default namespace).
/// A series that is not stored passes.
pub fn check(server: &RedisServer, symbol: &str, tf: &str) -> Result<(), String> {
    let set = format!("iftb:v2:ohlcv:{{{symbol}:{tf}}}");
    let mut raw = server.raw();
    let members: Vec<(Vec<u8>, f64)> = redis::cmd("ZRANGE")
        .arg(&set)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(&mut raw)
        .map_err(|e| e.to_string())?;
    let head: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("{set}:head"))
        .query(&mut raw)
        .map_err(|e| e.to_string())?;
    let head = match (head, members.is_empty()) {
        (None, true) => return Ok(()),
        (Some(head), false) => head,
        (head, _) => {
            let has = if head.is_some() {
                "a head, no runs"
            } else {
                "runs, no head"
            };
            return Err(format!("{set}: {has}"));
        }
    };
    let runs = members
        .iter()
        .map(|(m, score)| run_times(m, *score))
        .collect::<Result<Vec<_>, _>>()?;
    let times: Vec<i64> = runs.iter().flatten().copied().collect();
    if times.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!("{set}: bars not in strictly increasing time"));
    }
    for (from_top, run) in runs.iter().rev().enumerate() {
        let oldest = from_top == runs.len() - 1;
        let ok = match from_top {
            0 => run.len() == 1,
            1 => (1..=RUN_BARS).contains(&run.len()),
            p if oldest && p <= EXACT_ZONE => run.len() <= RUN_BARS,
            _ if oldest => run.len() < 2 * RUN_BARS,
            p if p <= EXACT_ZONE => run.len() == RUN_BARS,
            _ => (RUN_BARS..2 * RUN_BARS).contains(&run.len()),
        };
        if !ok {
            return Err(format!(
                "{set}: run {from_top} from the top holds {} bars (of {} runs)",
                run.len(),
                runs.len()
            ));
        }
    }
    check_head(
        &set,
        &head,
        members.last().map(|m| &m.0[HEADER_LEN..]),
        times.len(),
    )
}

/// The open times of one run, checking its header and its score.
fn run_times(member: &[u8], score: f64) -> Result<Vec<i64>, String> {
    let bars = codec::decode_bar_run(member).map_err(|e| e.to_string())?;
    if bars[0].timestamp as f64 != score {
        return Err(format!(
            "run scored {score}, first bar at {}",
            bars[0].timestamp
        ));
    }
    Ok(bars.iter().map(|b| b.timestamp).collect())
}

fn check_head(set: &str, head: &[u8], tail: Option<&[u8]>, count: usize) -> Result<(), String> {
    let header = [b'I', b'F', Kind::SeriesHead as u8, FORMAT_VERSION];
    if head.len() != HEADER_LEN + ARCHIVED_BAR_LEN + 8 || head[..HEADER_LEN] != header {
        return Err(format!("{set}: head is not a series head"));
    }
    if Some(&head[HEADER_LEN..HEADER_LEN + ARCHIVED_BAR_LEN]) != tail {
        return Err(format!("{set}: head's bar is not the tail's"));
    }
    let stored = u64::from_le_bytes(head[HEADER_LEN + ARCHIVED_BAR_LEN..].try_into().unwrap());
    if stored != count as u64 {
        return Err(format!(
            "{set}: head counts {stored} bars, the set holds {count}"
        ));
    }
    Ok(())
}
