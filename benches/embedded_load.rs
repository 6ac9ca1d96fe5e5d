//! The embedded engine under load, two figures a criterion loop cannot give:
//!
//! - read latency of two reader threads, with and without a writer
//!   upserting the in-progress bar of the same series 10,000 times a second
//!   (target: p99 with the writer <= 2x p99 without);
//! - the process' resident memory after filling a cache to its capacity
//!   with a bot's mix of writes (target: <= 1.3x the capacity).
//!
//! `cargo bench --bench embedded_load`

#[path = "common/mod.rs"]
mod common;

use common::samples::{fmt_time, load_average, Samples};
use common::{SYMBOL, TF};
use iftb_cache::{BarWriteOptions, CacheConfig, CacheManager, LlmCache, Timeframe};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUN: Duration = Duration::from_secs(3);

/// Reads `SYMBOL`'s latest bar or newest 100 bars until `stop`, timing each.
fn reader(cache: CacheManager, stop: Arc<AtomicBool>, bars: bool) -> Samples {
    common::runtime().block_on(async move {
        let o = cache.ohlcv();
        let mut s = Samples::default();
        while !stop.load(Relaxed) {
            let start = Instant::now();
            if bars {
                std::hint::black_box(o.get_bars(SYMBOL, TF, 100).await.expect("read"));
            } else {
                std::hint::black_box(o.get_latest_bar(SYMBOL, TF).await.expect("read"));
            }
            s.0.push(start.elapsed());
        }
        s
    })
}

/// Upserts the in-progress bar 10,000 times a second until `stop`.
fn writer(cache: CacheManager, stop: Arc<AtomicBool>) -> u64 {
    common::runtime().block_on(async move {
        let o = cache.ohlcv();
        let last = common::bars(1_000, TF.millis() as i64, common::SEED)[999];
        let mut n = 0u64;
        let start = Instant::now();
        while !stop.load(Relaxed) {
            let bar = iftb_cache::Bar {
                close: last.close + (n % 7) as f64,
                ..last
            };
            o.set_bars(SYMBOL, TF, &[bar]).await.expect("write");
            n += 1;
            let due = start + Duration::from_micros(100 * n);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        n
    })
}

/// Two readers for [`RUN`], with or without the writer: their samples, and
/// the writes made.
fn contended(cache: &CacheManager, with_writer: bool, bars: bool) -> (Samples, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (c, s) = (cache.clone(), stop.clone());
            std::thread::spawn(move || reader(c, s, bars))
        })
        .collect();
    let w = with_writer.then(|| {
        let (c, s) = (cache.clone(), stop.clone());
        std::thread::spawn(move || writer(c, s))
    });
    std::thread::sleep(RUN);
    stop.store(true, Relaxed);
    let mut all = Samples::default();
    for r in readers {
        all.0.extend(r.join().expect("reader").0);
    }
    let writes = w.map_or(0, |w| w.join().expect("writer"));
    (all, writes)
}

fn contention() {
    let cache = common::runtime().block_on(common::embedded_with_series(SYMBOL, TF));
    println!("two readers of one series, a writer upserting its in-progress bar at 10,000/s:");
    for (name, bars) in [("get_latest_bar", false), ("get_bars(100)", true)] {
        let (alone, _) = contended(&cache, false, bars);
        let (with, writes) = contended(&cache, true, bars);
        let ratio = with.p99().as_secs_f64() / alone.p99().as_secs_f64();
        println!(
            "  {name:<15} p50 {} / {}  p99 {} / {}  p99.9 {} / {}  (alone / with writer, {} writes/s)  p99 ratio {ratio:.2} (target <= 2)",
            fmt_time(alone.p50()),
            fmt_time(with.p50()),
            fmt_time(alone.p99()),
            fmt_time(with.p99()),
            fmt_time(alone.pct(0.999)),
            fmt_time(with.pct(0.999)),
            writes / RUN.as_secs(),
        );
    }
}

/// Resident set size of this process, from /proc (Linux).
fn rss() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Fills a cache of `capacity` bytes past it, with a bot's mix of writes:
/// capped series from big batches, long series, tickers rewritten, LLM
/// results, short-lived values.
async fn fill(cache: &CacheManager, capacity: usize) {
    let o = cache.ohlcv();
    let cap = BarWriteOptions::new().max_bars(NonZeroUsize::new(2_000).unwrap());
    let mut written = 0;
    let mut round = 0u64;
    while written < 2 * capacity {
        let batch = common::bars(10_000, TF.millis() as i64, common::SEED + round);
        o.set_bars_with(&format!("C{round}"), TF, &batch, cap)
            .await
            .expect("capped");
        let long = &batch[..5_000];
        o.set_bars(&format!("L{round}"), Timeframe::H1, long)
            .await
            .expect("long");
        for s in 0..200 {
            let symbol = format!("T{}", (round * 200 + s) % 5_000);
            let t = common::ticker(&symbol, round + s);
            cache
                .market()
                .set_ticker(&symbol, &t)
                .await
                .expect("ticker");
        }
        let doc = common::llm_result(20_000, round);
        let hash = LlmCache::hash_input(&format!("{round}"));
        cache
            .llm()
            .set_analysis("sentiment", &hash, &doc)
            .await
            .expect("llm");
        let short = Some(Duration::from_millis(5));
        for i in 0..100 {
            let key = format!("tmp{round}/{i}");
            cache
                .client()
                .set(&key, &"0".repeat(400), short)
                .await
                .expect("tmp");
        }
        written += 10_000 * 52 + 5_000 * 52 + 200 * 150 + 20_000 + 100 * 450;
        round += 1;
    }
}

fn memory() {
    let capacity = 128 << 20;
    let Some(before) = rss() else {
        println!("RSS: /proc/self/statm is not readable here");
        return;
    };
    let rt = common::runtime();
    let config = CacheConfig::builder()
        .embedded_capacity(NonZeroUsize::new(capacity).expect("non-zero"))
        .build()
        .expect("config");
    let cache = rt
        .block_on(CacheManager::connect(config))
        .expect("embedded");
    rt.block_on(fill(&cache, capacity));
    let after = rss().unwrap_or(before);
    let grown = after.saturating_sub(before);
    println!(
        "RSS after filling a {} MiB cache to twice its capacity with mixed writes: +{:.1} MiB = {:.2}x the capacity (target <= 1.3)",
        capacity >> 20,
        grown as f64 / f64::from(1 << 20),
        grown as f64 / capacity as f64,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument picks one part.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |part: &str| only.is_empty() || only.iter().any(|o| part.contains(o.as_str()));
    println!("load average {}", load_average());
    if wants("contention") {
        contention();
    }
    if wants("memory") {
        memory();
    }
}
