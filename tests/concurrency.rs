//! A live feed and a strategy at once: writers appending, updating the
//! in-progress candle and rewriting history while readers call every read.
//! Each read must be a snapshot of the series at one instant: strictly
//! ordered, no duplicates, nothing missing from the middle, and never older
//! than a write acknowledged before the read began.
//!
//! The series is gappy and sparse on purpose (bars a minute, an hour or days
//! apart, some off the minute grid, stored under `1m`): the shape that made
//! rank-paged reads return duplicated and out-of-order bars.

mod support;

use iftb_cache::{Bar, CacheManager, Timeframe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const SYMBOL: &str = "FEED";
const OTHER: &str = "QUIET";
const TF: Timeframe = Timeframe::M1;
/// Bars the feed appends, one by one and in small bursts.
const BARS: usize = 1_500;
/// Reads per reader, and readers.
const READS: usize = 1_500;
const READERS: usize = 3;
/// Versions of a bar: its close is `index * VERSIONS + version`.
const VERSIONS: usize = 16;

/// The open time of the `i`-th bar: mostly a minute apart, then an hour,
/// 7 seconds (off the grid), three days.
fn schedule() -> Vec<i64> {
    let gaps = [
        60_000,
        60_000,
        60_000,
        3_600_000,
        7_000,
        60_000,
        259_200_000,
    ];
    let mut ts = 1_705_478_400_000;
    (0..BARS)
        .map(|i| {
            ts += gaps[i % gaps.len()];
            ts
        })
        .collect()
}

fn bar(times: &[i64], i: usize, version: usize) -> Bar {
    let close = (i * VERSIONS + version) as f64;
    Bar::new(times[i], close, close + 1.0, close - 1.0, close, 1.0)
}

/// What the writers have had acknowledged: the first `appended` bars, and
/// the version of each bar the rewriter wrote last.
struct Written {
    times: Vec<i64>,
    appended: AtomicUsize,
    rewritten: std::sync::Mutex<Vec<Option<usize>>>,
}

/// The version the feed leaves bar `i` at: its in-progress updates (1, 2)
/// go to a bar alone or to the last of a burst; bar 0 is written once.
fn feed_version(i: usize) -> usize {
    let in_burst = i >= 100 && i % 100 < 10;
    if i == 0 || (in_burst && i % 100 != 9) {
        0
    } else {
        2
    }
}

impl Written {
    fn acked(&self) -> usize {
        self.appended.load(Ordering::SeqCst)
    }

    /// The index of a bar read, checked against its time and its close.
    fn index_of(&self, bar: &Bar) -> Result<usize, String> {
        let i = self
            .times
            .binary_search(&bar.timestamp)
            .map_err(|_| format!("bar at {} was never written", bar.timestamp))?;
        if bar.close as usize / VERSIONS != i {
            return Err(format!("bar {i} holds the close of another bar: {bar:?}"));
        }
        Ok(i)
    }

    /// Bars that are `times[start..end]` in order (`newest_first`: reversed).
    fn contiguous(&self, bars: &[Bar], newest_first: bool) -> Result<(usize, usize), String> {
        let mut idx = bars
            .iter()
            .map(|b| self.index_of(b))
            .collect::<Result<Vec<_>, _>>()?;
        if newest_first {
            idx.reverse();
        }
        if idx.windows(2).any(|w| w[1] != w[0] + 1) {
            return Err(format!("not one contiguous run of bars: {idx:?}"));
        }
        Ok((idx[0], idx[idx.len() - 1] + 1))
    }

    /// The newest `n`: the newest of a prefix at least as long as `before`.
    fn check_newest(&self, bars: Option<Vec<Bar>>, n: usize, before: usize) -> Result<(), String> {
        let bars = bars.ok_or("a miss on a series that exists")?;
        let (start, end) = self.contiguous(&bars, true)?;
        if end < before {
            return Err(format!(
                "ends at bar {end}, {before} were acknowledged before"
            ));
        }
        if bars.len() != n.min(end) || start != end - bars.len() {
            return Err(format!(
                "{} bars of {n} asked, from {start} to {end}",
                bars.len()
            ));
        }
        Ok(())
    }

    /// A window: the bars of `times` inside it, from the first one, up to
    /// the end of a prefix at least as long as `before`.
    fn check_window(
        &self,
        bars: Option<Vec<Bar>>,
        lo: usize,
        hi: usize,
        before: usize,
    ) -> Result<(), String> {
        let Some(bars) = bars else {
            return if lo < before {
                Err("a miss on a window holding bars".into())
            } else {
                Ok(())
            };
        };
        let (start, end) = self.contiguous(&bars, false)?;
        if start != lo || end > hi || (end < hi && end < before) {
            return Err(format!(
                "window {lo}..{hi} read as {start}..{end}, {before} acknowledged"
            ));
        }
        Ok(())
    }

    fn check_latest(&self, bar: Option<Bar>, before: usize) -> Result<(), String> {
        let bar = bar.ok_or("no latest bar")?;
        let i = self.index_of(&bar)?;
        if i + 1 < before {
            return Err(format!("latest is bar {i}, {before} were acknowledged"));
        }
        Ok(())
    }
}

/// The feed: bars one at a time, each updated twice as the candle forms,
/// and every 100th a burst of 10 at once (a reconnect catching up).
async fn feed(cache: CacheManager, w: Arc<Written>) {
    let o = cache.ohlcv();
    let mut i = 1;
    while i < BARS {
        let burst = if i % 100 == 0 { 10.min(BARS - i) } else { 1 };
        let bars: Vec<Bar> = (i..i + burst).map(|j| bar(&w.times, j, 0)).collect();
        o.set_bars(SYMBOL, TF, &bars).await.unwrap();
        w.appended.store(i + burst, Ordering::SeqCst);
        for version in 1..3 {
            let update = [bar(&w.times, i + burst - 1, version)];
            o.set_bars(SYMBOL, TF, &update).await.unwrap();
        }
        i += burst;
    }
}

/// History rewritten: batches of acknowledged bars the feed is done with
/// (all but the newest), each a new version.
async fn rewriter(cache: CacheManager, w: Arc<Written>) {
    let o = cache.ohlcv();
    for round in 0..300usize {
        let done = w.acked().saturating_sub(1).max(1);
        let version = 3 + round % (VERSIONS - 3);
        let picks: Vec<usize> = (0..20)
            .map(|k| (round * 7_919 + k * 104_729) % done)
            .collect();
        let bars: Vec<Bar> = picks.iter().map(|&i| bar(&w.times, i, version)).collect();
        o.set_bars(SYMBOL, TF, &bars).await.unwrap();
        {
            let mut rewritten = w.rewritten.lock().unwrap();
            for i in picks {
                rewritten[i] = Some(version);
            }
        }
        tokio::task::yield_now().await;
    }
}

/// Every read, in turn; the failures it saw.
async fn reader(cache: CacheManager, w: Arc<Written>, seed: usize) -> Vec<String> {
    let o = cache.ohlcv();
    let mut failures = Vec::new();
    for r in 0..READS {
        let before = w.acked();
        let pick = (r * 31 + seed * 17) % 7;
        let outcome = match pick {
            0..=2 => {
                let n = [5, 100, 500][pick];
                w.check_newest(o.get_bars(SYMBOL, TF, n).await.unwrap(), n, before)
            }
            3 => {
                let view = o.get_bars_archived(SYMBOL, TF, 100).await.unwrap();
                w.check_newest(view.map(|v| v.to_vec()), 100, before)
            }
            4 => {
                let lo = (r * 13 + seed) % BARS;
                let hi = (lo + 1 + r % 400).min(BARS);
                let (from, to) = (w.times[lo], w.times[hi - 1]);
                w.check_window(
                    o.get_range(SYMBOL, TF, from, to).await.unwrap(),
                    lo,
                    hi,
                    before,
                )
            }
            5 => w.check_latest(o.get_latest_bar(SYMBOL, TF).await.unwrap(), before),
            _ => {
                let both = o
                    .get_latest_bars(&[(SYMBOL, TF), (OTHER, TF)])
                    .await
                    .unwrap();
                w.check_latest(both[0], before).and_then(|()| {
                    both[1]
                        .map(|_| ())
                        .ok_or_else(|| "no latest bar of the quiet series".into())
                })
            }
        };
        if let Err(e) = outcome {
            failures.push(format!("read {r} (kind {pick}): {e}"));
        }
    }
    failures
}

async fn readers_see_snapshots(connect: impl Fn() -> CacheManager) {
    let w = Arc::new(Written {
        times: schedule(),
        appended: AtomicUsize::new(1),
        rewritten: std::sync::Mutex::new(vec![None; BARS]),
    });
    let setup = connect();
    setup
        .ohlcv()
        .set_bars(SYMBOL, TF, &[bar(&w.times, 0, 0)])
        .await
        .unwrap();
    setup
        .ohlcv()
        .set_bars(OTHER, TF, &[bar(&w.times, 0, 0)])
        .await
        .unwrap();
    let writers = [
        tokio::spawn(feed(connect(), w.clone())),
        tokio::spawn(rewriter(connect(), w.clone())),
    ];
    let readers: Vec<_> = (0..READERS)
        .map(|seed| tokio::spawn(reader(connect(), w.clone(), seed)))
        .collect();
    let mut failures = Vec::new();
    for r in readers {
        failures.extend(r.await.unwrap());
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} of {} reads were no snapshot, first: {:#?}",
        failures.len(),
        READS * READERS,
        &failures[..failures.len().min(5)]
    );
    // And once the writers are done, the whole series, as written last: no
    // update lost, none applied twice.
    let all = setup.ohlcv().get_bars(SYMBOL, TF, BARS).await.unwrap();
    w.check_newest(all.clone(), BARS, BARS).unwrap();
    let rewritten = w.rewritten.lock().unwrap();
    for bar in all.unwrap() {
        let i = w.index_of(&bar).unwrap();
        let want = rewritten[i].unwrap_or_else(|| feed_version(i));
        assert_eq!(bar.close as usize % VERSIONS, want, "bar {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_every_read_is_a_snapshot_while_writers_write() {
    let t = support::with_redis().await;
    let server = t.server.as_ref().unwrap();
    // A connection of its own for each writer and reader.
    let mut managers = Vec::new();
    for _ in 0..READERS + 3 {
        managers.push(support::connect(server, |b| b).await);
    }
    let managers = std::sync::Mutex::new(managers);
    readers_see_snapshots(|| managers.lock().unwrap().pop().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_embedded_every_read_is_a_snapshot_while_writers_write() {
    let t = support::embedded().await;
    readers_see_snapshots(|| t.cache.clone()).await;
}
