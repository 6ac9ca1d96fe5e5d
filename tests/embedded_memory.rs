//! The embedded engine's memory bound, in live heap bytes counted by this
//! test's global allocator (not the engine's own estimate): whatever the
//! writes, what the process holds for the cache stays within its capacity
//! plus the engine's fixed structures.
//!
//! One test function: the allocator counts the whole process, so phases run
//! one after another, each on a fresh cache.

mod support;

use iftb_cache::{BarWriteOptions, CacheConfig, CacheManager, LlmCache, Timeframe};
use std::alloc::{GlobalAlloc, Layout, System};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::Duration;
use support::{bar_at, minute_bars, shapes, ticker, T0};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counter only adds the sizes it was asked for.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const CAPACITY: usize = 8 << 20;

/// What the engine holds whatever it caches: its shards' locks and hints.
const FIXED: isize = 64 << 10;

fn live() -> isize {
    LIVE.load(Relaxed)
}

/// Runs `fill` on a fresh cache of [`CAPACITY`] and returns the live bytes
/// the cache holds afterwards (the inputs `fill` made are dropped by then).
async fn held_after<F, Fut>(fill: F) -> isize
where
    F: FnOnce(CacheManager) -> Fut,
    Fut: std::future::Future<Output = CacheManager>,
{
    let before = live();
    let config = CacheConfig::builder()
        .embedded_capacity(NonZeroUsize::new(CAPACITY).unwrap())
        .build()
        .unwrap();
    let cache = CacheManager::connect(config).await.unwrap();
    let cache = fill(cache).await;
    let held = live() - before;
    drop(cache);
    let leaked = live() - before;
    assert!(leaked < 4 << 10, "{leaked} bytes outlived the cache");
    held
}

fn check(phase: &str, held: isize) {
    println!("{phase}: {held} bytes held, capacity {CAPACITY}");
    assert!(
        held <= CAPACITY as isize + FIXED,
        "{phase}: the cache holds {held} bytes, over its {CAPACITY}-byte capacity"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn what_the_cache_holds_stays_within_its_capacity() {
    // Big batches capped to a few bars: each series must hold its bars, not
    // the batch they came in (this held 8x the capacity before).
    let held = held_after(|cache| async move {
        let cap = BarWriteOptions::new().max_bars(NonZeroUsize::new(500).unwrap());
        for s in 0..40 {
            let batch = minute_bars(20_000, 1.0 + f64::from(s));
            let symbol = format!("S{s}");
            let o = cache.ohlcv();
            o.set_bars_with(&symbol, Timeframe::M1, &batch, cap)
                .await
                .unwrap();
        }
        cache
    })
    .await;
    check("capped batches", held);

    // Long series, past the capacity: eviction, not growth.
    let held = held_after(|cache| async move {
        for s in 0..200 {
            let batch = shapes::weekend_hourly(2_000).bars;
            let o = cache.ohlcv();
            o.set_bars(&format!("L{s}"), Timeframe::H1, &batch)
                .await
                .unwrap();
        }
        cache
    })
    .await;
    check("series past capacity", held);

    // Tickers overwritten, LLM results, values that expire and are never
    // read again, in-progress candles: the mix of a live bot.
    let held = held_after(|cache| async move {
        let market = cache.market();
        let llm = cache.llm();
        let text = "x".repeat(40_000);
        for round in 0..20u32 {
            for s in 0..500 {
                let symbol = format!("T{s}");
                market
                    .set_ticker(&symbol, &ticker(&symbol, 100.0 + f64::from(round)))
                    .await
                    .unwrap();
            }
            for i in 0..20 {
                let hash = LlmCache::hash_input(&format!("{round}/{i}"));
                let value = serde_json::json!({ "text": text });
                llm.set_analysis("sentiment", &hash, &value).await.unwrap();
            }
            let short = Duration::from_millis(1);
            for i in 0..200 {
                let key = format!("tmp{round}/{i}");
                cache
                    .client()
                    .set(&key, &"0".repeat(500), Some(short))
                    .await
                    .unwrap();
            }
            let tick = [bar_at(T0, 100.0 + f64::from(round))];
            cache
                .ohlcv()
                .set_bars("BTCUSDT", Timeframe::M1, &tick)
                .await
                .unwrap();
        }
        cache
    })
    .await;
    check("mixed writes", held);
}
