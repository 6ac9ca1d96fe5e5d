//! LLM analysis cache on both backends: the key hash, any serde type as JSON,
//! transparent compression, TTLs, and `get_or_compute`'s single flight, shared
//! errors and cross-process lock.

mod support;

use iftb_cache::{CacheManager, ComputeOptions, ErrorKind, LlmCache, WriteOptions};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::TestCache;
use tokio::task::JoinSet;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Analysis {
    sentiment: String,
    confidence: f64,
    key_points: Vec<String>,
}

fn analysis(n_points: usize) -> Analysis {
    Analysis {
        sentiment: "bullish".into(),
        confidence: 0.85,
        key_points: (0..n_points)
            .map(|i| {
                format!(
                    "point {i}: volume rising into resistance near {}",
                    45_000 + i
                )
            })
            .collect(),
    }
}

/// An LLM result of about 100 KB: prose with the repetition real output has.
fn large_analysis() -> Value {
    let news: Vec<Value> = (0..360)
        .map(|i| {
            json!({
                "headline": format!("Headline {i}: ETF flows {} as funding turns {}", ["rise", "fall", "stall"][i % 3], ["positive", "negative"][i % 2]),
                "summary": format!("Item {i}. Bitcoin is consolidating near the weekly VWAP while open interest climbs; a retest of {} is likely before any breakout, and the funding rate of {:.5} limits squeeze risk.", 42_000 + i * 17, 0.0001 * (i % 7) as f64),
                "relevance": (i % 10) as f64 / 10.0,
            })
        })
        .collect();
    json!({"sentiment": "bullish", "confidence": 0.82, "news": news})
}

/// A call of an LLM that counts its calls and takes `delay` to answer.
fn llm(calls: &Arc<AtomicUsize>, delay: Duration, answer: Value) -> impl FnOnce() -> Fut {
    let calls = calls.clone();
    move || {
        Box::pin(async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            Ok(answer)
        })
    }
}

type Fut =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, std::io::Error>> + Send>>;

on_both_backends!(
    analysis_round_trips_any_serde_type,
    large_analysis_round_trips,
    bad_input_writes_nothing,
    json_of_another_type_is_a_codec_error,
    get_or_compute_returns_the_cached_value,
    get_or_compute_stores_with_the_ttl_asked,
    hundred_concurrent_callers_share_one_call,
    ten_inputs_make_ten_calls,
    an_error_reaches_every_waiter_and_nothing_is_cached,
    cancelled_leader_hands_over_to_a_waiter,
);

#[test]
fn hash_input_is_xxh3_128_hex_with_pinned_vectors() {
    // Reference values from the xxHash project's own `xxhsum -H2`.
    let vectors = [
        ("", "99aa06d3014798d86001c324468d497f"),
        ("abc", "06b05ab6733a618578af5f94892f3950"),
        (
            "BTC market analysis for 2024-01-17",
            "faad45950595b534a81fe4baa6c57fc4",
        ),
        ("Ünïcödé ✓ 市场", "ce0bd07c00f81bb6dc015ce5f4bec8e8"),
    ];
    for (input, want) in vectors {
        assert_eq!(LlmCache::hash_input(input), want, "{input:?}");
    }
    let long = "0123456789".repeat(100);
    assert_eq!(
        LlmCache::hash_input(&long),
        "c9df19c4eccbf540dbdf770360da5ac5"
    );
}

async fn analysis_round_trips_any_serde_type(t: &TestCache) {
    let l = t.cache.llm();
    let h = LlmCache::hash_input("BTC market analysis for 2024-01-17");
    assert_eq!(
        l.get_analysis::<Analysis>("sentiment", &h).await.unwrap(),
        None
    );
    let a = analysis(3);
    l.set_analysis("sentiment", &h, &a).await.unwrap();
    assert_eq!(
        l.get_analysis("sentiment", &h).await.unwrap(),
        Some(a.clone())
    );
    // The same JSON read as a dict, as the original's callers did.
    let dict: Value = l.get_analysis("sentiment", &h).await.unwrap().unwrap();
    assert_eq!(dict["confidence"], json!(0.85));
    // Another analysis type is another key.
    assert_eq!(l.get_analysis::<Value>("summary", &h).await.unwrap(), None);
    l.set_analysis("levels", &h, &[42_000.5, 44_100.0])
        .await
        .unwrap();
    let levels: Vec<f64> = l.get_analysis("levels", &h).await.unwrap().unwrap();
    assert_eq!(levels, vec![42_000.5, 44_100.0]);
}

async fn large_analysis_round_trips(t: &TestCache) {
    let l = t.cache.llm();
    let big = large_analysis();
    let len = serde_json::to_vec(&big).unwrap().len();
    assert!((95_000..130_000).contains(&len), "{len}");
    let h = LlmCache::hash_input("big");
    l.set_analysis("report", &h, &big).await.unwrap();
    assert_eq!(l.get_analysis("report", &h).await.unwrap(), Some(big));
}

async fn bad_input_writes_nothing(t: &TestCache) {
    let l = t.cache.llm();
    let v = json!({"a": 1});
    let h = LlmCache::hash_input("x");
    let calls = [
        l.set_analysis("bad type", &h, &v).await,
        l.set_analysis("a:b", &h, &v).await,
        l.set_analysis("", &h, &v).await,
        l.set_analysis("sentiment", "not-hex", &v).await,
        l.set_analysis("sentiment", "", &v).await,
        l.set_analysis("sentiment", &"a".repeat(129), &v).await,
    ];
    for (i, r) in calls.into_iter().enumerate() {
        assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidInput, "call {i}");
    }
    // A map with non-string keys cannot be JSON.
    let unserializable = std::collections::HashMap::from([((1, 2), "x")]);
    let err = l
        .set_analysis("sentiment", &h, &unserializable)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = l.get_analysis::<Value>("bad type", &h).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let calls = Arc::new(AtomicUsize::new(0));
    let f = llm(&calls, Duration::ZERO, v);
    let err = l.get_or_compute("bad type", "x", f).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "f ran on bad input");
    assert_eq!(
        t.cache.clear_all().await.unwrap(),
        0,
        "a rejected call wrote a key"
    );
}

async fn json_of_another_type_is_a_codec_error(t: &TestCache) {
    let l = t.cache.llm();
    let h = LlmCache::hash_input("x");
    l.set_analysis("sentiment", &h, &json!({"sentiment": 5}))
        .await
        .unwrap();
    let err = l
        .get_analysis::<Analysis>("sentiment", &h)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Codec, "{err}");
    assert_eq!(t.cache.stats().codec_errors, 1);
}

async fn get_or_compute_returns_the_cached_value(t: &TestCache) {
    let l = t.cache.llm();
    let calls = Arc::new(AtomicUsize::new(0));
    let cached = json!({"sentiment": "bearish"});
    let h = LlmCache::hash_input("BTC news");
    l.set_analysis("sentiment", &h, &cached).await.unwrap();
    let f = llm(&calls, Duration::ZERO, json!("fresh"));
    let got: Value = l.get_or_compute("sentiment", "BTC news", f).await.unwrap();
    assert_eq!((got, calls.load(Ordering::SeqCst)), (cached, 0));
    let f = llm(&calls, Duration::ZERO, json!("fresh"));
    let got: Value = l.get_or_compute("sentiment", "ETH news", f).await.unwrap();
    assert_eq!((got, calls.load(Ordering::SeqCst)), (json!("fresh"), 1));
    let h = LlmCache::hash_input("ETH news");
    let stored: Option<Value> = l.get_analysis("sentiment", &h).await.unwrap();
    assert_eq!(stored, Some(json!("fresh")));
}

async fn get_or_compute_stores_with_the_ttl_asked(t: &TestCache) {
    let l = t.cache.llm();
    let calls = Arc::new(AtomicUsize::new(0));
    let opts = ComputeOptions::new().ttl(Duration::from_millis(150));
    let f = llm(&calls, Duration::ZERO, json!(1));
    let _: Value = l
        .get_or_compute_with("sentiment", "in", opts, f)
        .await
        .unwrap();
    let h = LlmCache::hash_input("in");
    assert!(l
        .get_analysis::<Value>("sentiment", &h)
        .await
        .unwrap()
        .is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        l.get_analysis::<Value>("sentiment", &h).await.unwrap(),
        None
    );
    let f = llm(&calls, Duration::ZERO, json!(2));
    let again: Value = l
        .get_or_compute_with("sentiment", "in", opts, f)
        .await
        .unwrap();
    assert_eq!((again, calls.load(Ordering::SeqCst)), (json!(2), 2));
}

/// Spawns one `get_or_compute` per input, each with its own LLM closure.
fn spawn_callers(
    cache: &CacheManager,
    inputs: impl IntoIterator<Item = String>,
    calls: &Arc<AtomicUsize>,
    delay: Duration,
) -> JoinSet<(String, iftb_cache::Result<Value>)> {
    let mut set = JoinSet::new();
    for input in inputs {
        let cache = cache.clone();
        let f = llm(calls, delay, json!({"answer_for": input}));
        set.spawn(async move {
            let r = cache.llm().get_or_compute("sentiment", &input, f).await;
            (input, r)
        });
    }
    set
}

async fn hundred_concurrent_callers_share_one_call(t: &TestCache) {
    let calls = Arc::new(AtomicUsize::new(0));
    let inputs = (0..100).map(|_| "one input".to_string());
    let set = spawn_callers(&t.cache, inputs, &calls, Duration::from_millis(100));
    for (input, r) in set.join_all().await {
        assert_eq!(r.unwrap(), json!({"answer_for": input}));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

async fn ten_inputs_make_ten_calls(t: &TestCache) {
    let calls = Arc::new(AtomicUsize::new(0));
    let inputs = (0..100).map(|i| format!("input {}", i % 10));
    let set = spawn_callers(&t.cache, inputs, &calls, Duration::from_millis(100));
    for (input, r) in set.join_all().await {
        assert_eq!(
            r.unwrap(),
            json!({"answer_for": input}),
            "each caller gets its input's answer"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 10);
}

async fn an_error_reaches_every_waiter_and_nothing_is_cached(t: &TestCache) {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..100 {
        let (cache, calls) = (t.cache.clone(), calls.clone());
        let watcher = t.cache.clone();
        let failing = move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            // Fail only once every caller has missed and joined the flight.
            while watcher.stats().misses < 100 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err::<Value, _>(std::io::Error::other("LLM quota exceeded"))
        };
        set.spawn(async move { cache.llm().get_or_compute("sentiment", "in", failing).await });
    }
    for r in set.join_all().await {
        let err = r.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Compute, "{err}");
        let source = std::error::Error::source(&err).unwrap();
        assert_eq!(source.to_string(), "LLM quota exceeded");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let h = LlmCache::hash_input("in");
    assert_eq!(
        t.cache
            .llm()
            .get_analysis::<Value>("sentiment", &h)
            .await
            .unwrap(),
        None
    );
    // Nothing was cached, so the next call asks the LLM again.
    let f = llm(&calls, Duration::ZERO, json!("recovered"));
    let got: Value = t
        .cache
        .llm()
        .get_or_compute("sentiment", "in", f)
        .await
        .unwrap();
    assert_eq!((got, calls.load(Ordering::SeqCst)), (json!("recovered"), 2));
}

/// The caller running the computation is cancelled: a waiter of the same
/// flight runs its own computation instead, and the flight still ends.
async fn cancelled_leader_hands_over_to_a_waiter(t: &TestCache) {
    let calls = Arc::new(AtomicUsize::new(0));
    let cache = t.cache.clone();
    let stuck = llm(&calls, Duration::from_secs(3_600), json!("never"));
    let leader = tokio::spawn(async move {
        cache
            .llm()
            .get_or_compute::<Value, _, _, _>("sentiment", "in", stuck)
            .await
    });
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let cache = t.cache.clone();
    let f = llm(&calls, Duration::from_millis(10), json!("waiter's"));
    let waiter = tokio::spawn(async move {
        cache
            .llm()
            .get_or_compute::<Value, _, _, _>("sentiment", "in", f)
            .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    leader.abort();
    assert_eq!(waiter.await.unwrap().unwrap(), json!("waiter's"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// 100 callers on a multi-threaded runtime, on each backend: one call.
async fn hundred_callers_on_threads(t: TestCache) {
    let calls = Arc::new(AtomicUsize::new(0));
    let inputs = (0..100).map(|_| "threads".to_string());
    let set = spawn_callers(&t.cache, inputs, &calls, Duration::from_millis(50));
    for (_, r) in set.join_all().await {
        assert_eq!(r.unwrap(), json!({"answer_for": "threads"}));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_hundred_callers_on_threads() {
    hundred_callers_on_threads(support::embedded().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_hundred_callers_on_threads() {
    hundred_callers_on_threads(support::with_redis().await).await;
}

/// TTL on the embedded backend with tokio's paused clock: the LLM default is 300 s.
#[tokio::test(start_paused = true)]
async fn embedded_analysis_expires_on_the_default_ttl() {
    let t = support::embedded().await;
    let l = t.cache.llm();
    let h = LlmCache::hash_input("in");
    l.set_analysis("sentiment", &h, &json!(1)).await.unwrap();
    l.set_analysis_with(
        "summary",
        &h,
        &json!(2),
        WriteOptions::new().ttl(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    tokio::time::advance(Duration::from_secs(31)).await;
    assert!(l
        .get_analysis::<Value>("sentiment", &h)
        .await
        .unwrap()
        .is_some());
    assert_eq!(l.get_analysis::<Value>("summary", &h).await.unwrap(), None);
    tokio::time::advance(Duration::from_secs(268)).await;
    assert!(l
        .get_analysis::<Value>("sentiment", &h)
        .await
        .unwrap()
        .is_some());
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(
        l.get_analysis::<Value>("sentiment", &h).await.unwrap(),
        None
    );
}

/// On Redis: the default TTL as Redis reports it, and a short real TTL.
#[tokio::test]
async fn redis_analysis_ttls() {
    let t = support::with_redis().await;
    let server = t.server.as_ref().unwrap();
    let l = t.cache.llm();
    let h = LlmCache::hash_input("in");
    l.set_analysis("sentiment", &h, &json!(1)).await.unwrap();
    let pttl = server.pttl(&format!("iftb:v2:llm:{{sentiment}}:{h}"));
    assert!(
        (299_000..=300_000).contains(&pttl),
        "{pttl}\n{}",
        server.log()
    );
    l.set_analysis_with(
        "summary",
        &h,
        &json!(2),
        WriteOptions::new().ttl(Duration::from_millis(150)),
    )
    .await
    .unwrap();
    assert!(l
        .get_analysis::<Value>("summary", &h)
        .await
        .unwrap()
        .is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(l.get_analysis::<Value>("summary", &h).await.unwrap(), None);
}

/// What is stored in Redis: small results as plain JSON behind the header,
/// a 100 KB one compressed to well under its JSON size.
#[tokio::test]
async fn redis_stores_large_results_compressed_and_small_ones_plain() {
    let t = support::with_redis().await;
    let server = t.server.as_ref().unwrap();
    let l = t.cache.llm();
    let (small, big) = (json!({"sentiment": "bullish"}), large_analysis());
    let h = LlmCache::hash_input("in");
    l.set_analysis("small", &h, &small).await.unwrap();
    l.set_analysis("big", &h, &big).await.unwrap();
    let stored = server.raw_get(&format!("iftb:v2:llm:{{small}}:{h}"));
    assert_eq!(&stored[..4], b"IF\x05\x02", "kind 5: JSON");
    assert_eq!(&stored[4..], serde_json::to_vec(&small).unwrap());
    let stored = server.raw_get(&format!("iftb:v2:llm:{{big}}:{h}"));
    let json_len = serde_json::to_vec(&big).unwrap().len();
    assert_eq!(&stored[..4], b"IF\x06\x02", "kind 6: compressed JSON");
    assert!(
        stored.len() * 2 < json_len,
        "{} bytes stored for {json_len}",
        stored.len()
    );
    assert_eq!(l.get_analysis("big", &h).await.unwrap(), Some(big));
}

/// A corrupt compressed value is a codec error saying so; `get_or_compute`
/// counts it and replaces the value with a fresh computation.
#[tokio::test]
async fn redis_corrupt_compressed_value_is_a_codec_error() {
    let t = support::with_redis().await;
    let server = t.server.as_ref().unwrap();
    let l = t.cache.llm();
    let h = LlmCache::hash_input("in");
    let key = format!("iftb:v2:llm:{{report}}:{h}");
    l.set_analysis("report", &h, &large_analysis())
        .await
        .unwrap();
    let mut stored = server.raw_get(&key);
    let tail = stored.len() - 200;
    stored.truncate(tail);
    server.raw_set(&key, &stored);
    let err = l.get_analysis::<Value>("report", &h).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Codec);
    assert!(err.to_string().contains("compressed LLM result"), "{err}");
    let calls = Arc::new(AtomicUsize::new(0));
    let f = llm(&calls, Duration::ZERO, json!("recomputed"));
    let got: Value = l.get_or_compute("report", "in", f).await.unwrap();
    assert_eq!(
        (got, calls.load(Ordering::SeqCst)),
        (json!("recomputed"), 1)
    );
    assert_eq!(t.cache.stats().codec_errors, 2);
    assert_eq!(
        l.get_analysis("report", &h).await.unwrap(),
        Some(json!("recomputed"))
    );
}

/// Spawns a `get_or_compute_with` of ("sentiment", "in") computing with `f`,
/// and returns once `f` has been called.
async fn flight_started(
    cache: &CacheManager,
    calls: &Arc<AtomicUsize>,
    opts: ComputeOptions,
    f: impl FnOnce() -> Fut + Send + 'static,
) -> tokio::task::JoinHandle<iftb_cache::Result<Value>> {
    let cache = cache.clone();
    let flight = tokio::spawn(async move {
        cache
            .llm()
            .get_or_compute_with::<Value, _, _, _>("sentiment", "in", opts, f)
            .await
    });
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    flight
}

/// Two bots (two managers) on one Redis: with the lock, the second waits for
/// the first's result instead of paying for the same call.
#[tokio::test]
async fn redis_lock_makes_another_process_wait_for_the_result() {
    let t = support::with_redis().await;
    let other_bot = support::connect(t.server.as_ref().unwrap(), |b| b).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let opts = ComputeOptions::new().lock(Duration::from_secs(10));
    let f = llm(&calls, Duration::from_millis(300), json!("first bot's"));
    let first = flight_started(&t.cache, &calls, opts, f).await;
    let f = llm(&calls, Duration::ZERO, json!("second bot's"));
    let second: Value = other_bot
        .llm()
        .get_or_compute_with("sentiment", "in", opts, f)
        .await
        .unwrap();
    assert_eq!(second, json!("first bot's"));
    assert_eq!(first.await.unwrap().unwrap(), json!("first bot's"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let locks: Vec<String> = redis::cmd("KEYS")
        .arg("*:lock")
        .query(&mut t.server.as_ref().unwrap().raw())
        .unwrap();
    assert!(locks.is_empty(), "the lock was not released: {locks:?}");
}

/// The lock holder's task is dropped mid-call: its lock goes with it, and
/// a waiter computes at once, not after the lease. (A holder whose process
/// dies: `tests/reliability.rs`.)
async fn an_aborted_holder_releases_its_lock_and_the_waiter_computes_at_once(
    t: &TestCache,
    lease: Duration,
) {
    let calls = Arc::new(AtomicUsize::new(0));
    let opts = ComputeOptions::new().lock(lease);
    let stuck = llm(&calls, Duration::from_secs(3_600), json!("never"));
    let holder = flight_started(&t.cache, &calls, opts, stuck).await;
    let started = tokio::time::Instant::now();
    holder.abort();
    let f = llm(&calls, Duration::ZERO, json!("waiter's"));
    let got: Value = t
        .cache
        .llm()
        .get_or_compute_with("sentiment", "in", opts, f)
        .await
        .unwrap();
    assert_eq!(got, json!("waiter's"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let waited = started.elapsed();
    assert!(
        waited < lease / 2,
        "computed after {waited:?}: the aborted holder's lock was left to expire"
    );
}

#[tokio::test(start_paused = true)]
async fn embedded_aborted_holder_releases_its_lock() {
    let t = support::embedded().await;
    an_aborted_holder_releases_its_lock_and_the_waiter_computes_at_once(&t, LONG_LEASE).await;
}

#[tokio::test]
async fn redis_aborted_holder_releases_its_lock() {
    let t = support::with_redis().await;
    an_aborted_holder_releases_its_lock_and_the_waiter_computes_at_once(&t, LONG_LEASE).await;
}

/// Far longer than a waiter may wait for an aborted holder's lock.
const LONG_LEASE: Duration = Duration::from_secs(30);

/// A lock is released only by its holder: if the lease ran out mid-call and
/// another process took the lock, finishing does not delete that one's lock.
#[tokio::test]
async fn redis_release_leaves_another_holders_lock() {
    let t = support::with_redis().await;
    let server = t.server.as_ref().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let opts = ComputeOptions::new().lock(Duration::from_secs(10));
    let f = llm(&calls, Duration::from_millis(200), json!("mine"));
    let call = flight_started(&t.cache, &calls, opts, f).await;
    let lock = format!(
        "iftb:v2:llm:{{sentiment}}:{}:lock",
        LlmCache::hash_input("in")
    );
    let ours = server.raw_get(&lock);
    assert!(!ours.is_empty(), "no lock at {lock}\n{}", server.log());
    server.raw_set(&lock, b"another bot's token");
    assert_eq!(call.await.unwrap().unwrap(), json!("mine"));
    assert_eq!(server.raw_get(&lock), b"another bot's token");
}
