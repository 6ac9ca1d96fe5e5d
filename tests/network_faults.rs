//! Faults of the network between the cache and Redis, made by a proxy in
//! between (`support::FaultProxy`): a delay under and over the response
//! timeout, dropped connections, a reply cut by a reset, a black hole
//! (half-open connections), and a near cache whose tracking goes dark.
//! Through each, every public call succeeds, or fails as unavailable (fails
//! open, in fail-open mode) within its bound, and no read returns a value
//! that was not written; once the network heals, the same managers serve
//! again, with the data as it was.
//!
//! After a run of failures the library may fail fast (a circuit breaker:
//! `is_unavailable` too) until a probe in the background gets through, so
//! every check of recovery first polls `health_check` until it answers.

mod support;

use iftb_cache::{CacheConfig, CacheConfigBuilder, CacheManager, Result};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{
    assert_every_call_works, assert_failed_open, assert_near_serving, assert_unavailable,
    btc_ticker, every_call, minute_bars, run_calls, run_every_call, sample_fear_greed, seed,
    ticker, Call, Fault, FaultProxy, Op, Outcome, Ran, RedisServer, HASH, NEAR_BYTES, RESPONSE,
    SLACK, SYM, TF,
};

/// A delay each way that the response timeout absorbs.
const UNDER: Duration = Duration::from_millis(20);

/// A delay each way past the response timeout and the backend's margin.
const OVER: Duration = Duration::from_secs(1);

/// How long a cleared fault may take to stop mattering: reconnecting, the
/// breaker's probe, the late replies of a delay.
const RECOVERY: Duration = Duration::from_secs(5);

/// The calls that delete keys. A fault that still delivers requests (a
/// delay, a cut reply) lets them land, and the data check after it would
/// find nothing left to check: they run under the fault last, on their own.
const DELETING: [&str; 2] = ["manager.clear_all", "manager.flush_db"];

/// Every call that leaves the seeded data as it is.
fn sparing_calls() -> Vec<Call> {
    let spares = |c: &Call| !DELETING.contains(&c.name);
    every_call().into_iter().filter(spares).collect()
}

fn deleting_calls() -> Vec<Call> {
    let deletes = |c: &Call| DELETING.contains(&c.name);
    every_call().into_iter().filter(deletes).collect()
}

/// A manager through `proxy` with the bounded tests' timeouts, its config
/// adjusted by `configure`.
async fn connect_through(
    proxy: &FaultProxy,
    fail_open: bool,
    configure: impl FnOnce(CacheConfigBuilder) -> CacheConfigBuilder,
) -> CacheManager {
    let builder = CacheConfig::builder()
        .redis_url(&proxy.url())
        .response_timeout(RESPONSE)
        .connect_timeout(RESPONSE)
        .fail_open(fail_open);
    let config = configure(builder).build().expect("config");
    CacheManager::connect(config)
        .await
        .unwrap_or_else(|e| panic!("connect through the proxy: {e}"))
}

/// What a call may take: a computation reads, then writes, and each may
/// wait out the timeout.
fn bound(op: Op) -> Duration {
    match op {
        Op::Compute => 2 * (RESPONSE + Duration::from_millis(250)) + SLACK,
        _ => RESPONSE + SLACK,
    }
}

fn assert_within_bound(ran: &Ran) {
    let limit = bound(ran.op);
    assert!(
        ran.took <= limit,
        "{} took {:?}, over {limit:?}",
        ran.name,
        ran.took
    );
}

/// Polls `health_check` until it answers, within [`RECOVERY`].
async fn wait_healthy(cache: &CacheManager, server: &RedisServer) {
    let started = Instant::now();
    while !cache.health_check().await {
        assert!(
            started.elapsed() < RECOVERY,
            "not serving {RECOVERY:?} after the fault was cleared: {:?}\n{}",
            cache.stats(),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Each value `seed` wrote, read back: `Ok(true)` when it is the value
/// written. The series may have lost its oldest bar: a fault round's
/// `max_bars(2)` write may land after its `set_bars`.
async fn read_seeded(cache: &CacheManager) -> Vec<(&'static str, Result<bool>)> {
    let mut written = minute_bars(3, 1.0);
    written.reverse();
    let (o, m, c, llm) = (cache.ohlcv(), cache.market(), cache.client(), cache.llm());
    let bars = o.get_bars(SYM, TF, 10).await.map(|bars| {
        let bars = bars.unwrap_or_default();
        bars.len() >= 2 && written.starts_with(&bars)
    });
    let ticker = m.get_ticker(SYM).await.map(|t| t == Some(btc_ticker()));
    let rate = m.get_funding_rate(SYM).await.map(|r| r == Some(0.0001));
    let reading = m.get_fear_greed().await;
    let reading = reading.map(|r| r == Some(sample_fear_greed()));
    let text = c.get("k").await.map(|v| v.as_deref() == Some("v"));
    let bytes = c.get_bytes("b").await;
    let bytes = bytes.map(|v| v.as_deref() == Some(b"\x00\x01"));
    let doc = c.get_json::<Value>("j").await;
    let doc = doc.map(|v| v == Some(json!({"a": 1})));
    let analysis = llm.get_analysis::<Value>("sentiment", HASH).await;
    let analysis = analysis.map(|v| v == Some(json!({"sentiment": "bullish"})));
    vec![
        ("ohlcv.get_bars", bars),
        ("market.get_ticker", ticker),
        ("market.get_funding_rate", rate),
        ("market.get_fear_greed", reading),
        ("client.get", text),
        ("client.get_bytes", bytes),
        ("client.get_json", doc),
        ("llm.get_analysis", analysis),
    ]
}

/// Every seeded value reads back as written.
async fn assert_seeded_intact(cache: &CacheManager) {
    for (name, read) in read_seeded(cache).await {
        assert!(matches!(read, Ok(true)), "{name} after the fault: {read:?}");
    }
}

/// What a call may do when a reply may be cut: give the right outcome (its
/// reply came whole before the cut), or fail as unavailable; in fail-open
/// mode fail open instead (a read's miss, a write's `Done`). Never a wrong
/// outcome, never past its bound.
fn assert_right_or_unavailable(ran: &[Ran], fail_open: bool) {
    for r in ran {
        let right = matches!(
            (r.op, &r.result),
            (Op::Read, Ok(Outcome::Hit)) | (Op::Write | Op::Compute | Op::Admin, Ok(Outcome::Done))
        );
        let failed = match &r.result {
            Err(e) => e.is_unavailable() && (!fail_open || r.op == Op::Admin),
            Ok(Outcome::Miss) => fail_open && r.op == Op::Read,
            Ok(_) => false,
        };
        assert!(
            right || failed,
            "{} ({:?}, fail-open {fail_open}) gave {:?}",
            r.name,
            r.op,
            r.result
        );
        assert_within_bound(r);
    }
}

/// A server, a proxy before it, and two managers through the proxy: one
/// that reports failures, one in fail-open mode; the data seeded.
struct Rig {
    server: RedisServer,
    proxy: FaultProxy,
    strict: CacheManager,
    lenient: CacheManager,
}

impl Rig {
    async fn start() -> Self {
        let server = RedisServer::start();
        let proxy = FaultProxy::new(server.port());
        let strict = connect_through(&proxy, false, |b| b).await;
        let lenient = connect_through(&proxy, true, |b| b).await;
        seed(&strict).await;
        Self {
            server,
            proxy,
            strict,
            lenient,
        }
    }

    fn both(&self) -> [&CacheManager; 2] {
        [&self.strict, &self.lenient]
    }

    /// Under the fault set: each of `calls` fails unavailable on the strict
    /// manager and fails open on the lenient one, each within its bound.
    async fn assert_calls_fail(&self, calls: fn() -> Vec<Call>) {
        for ran in run_calls(&self.strict, calls()).await {
            assert_unavailable(&ran, &self.server);
        }
        let ran = run_calls(&self.lenient, calls()).await;
        assert_failed_open(&ran, &self.server);
    }

    /// Under the fault set: each manager's health check answers false
    /// within the response timeout and slack.
    async fn assert_unhealthy(&self) {
        for cache in self.both() {
            let started = Instant::now();
            let healthy = cache.health_check().await;
            let took = started.elapsed();
            assert!(
                !healthy && took <= RESPONSE + SLACK,
                "health {healthy} in {took:?}"
            );
        }
    }

    /// Clears the fault. Once both managers answer their health checks, the
    /// seeded data reads back as written, and every call is served: no error,
    /// nothing failed open.
    async fn assert_serves_again(&self) {
        self.proxy.set(Fault::None);
        for cache in self.both() {
            wait_healthy(cache, &self.server).await;
            assert_seeded_intact(cache).await;
        }
        for cache in self.both() {
            let before = cache.stats();
            for ran in run_every_call(cache).await {
                assert!(
                    ran.result.is_ok(),
                    "{} after the fault: {:?}",
                    ran.name,
                    ran.result
                );
            }
            let after = cache.stats();
            assert_eq!(
                (after.fail_open_misses, after.fail_open_dropped_writes),
                (before.fail_open_misses, before.fail_open_dropped_writes),
                "failed open after the fault"
            );
        }
        assert_every_call_works(&self.strict).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_under_the_response_timeout_fails_no_call() {
    let rig = Rig::start().await;
    rig.proxy.set(Fault::Delay(UNDER));
    for cache in rig.both() {
        assert_seeded_intact(cache).await;
        assert!(cache.health_check().await, "health under a {UNDER:?} delay");
    }
    for cache in rig.both() {
        for ran in run_every_call(cache).await {
            assert!(
                ran.result.is_ok(),
                "{} under a {UNDER:?} delay: {:?}",
                ran.name,
                ran.result
            );
            assert_within_bound(&ran);
        }
        let stats = cache.stats();
        assert_eq!(stats.errors, 0, "a slow network is no failure: {stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_over_the_response_timeout_fails_every_call_then_serves_again() {
    let rig = Rig::start().await;
    rig.proxy.set(Fault::Delay(OVER));
    rig.assert_calls_fail(sparing_calls).await;
    rig.assert_unhealthy().await;
    rig.assert_serves_again().await;
    rig.proxy.set(Fault::Delay(OVER));
    rig.assert_calls_fail(deleting_calls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_fail_every_call_then_serve_again() {
    let rig = Rig::start().await;
    // Nothing sent reaches Redis: the deleting calls run with the others.
    rig.proxy.set(Fault::Drop);
    rig.assert_calls_fail(every_call).await;
    rig.assert_unhealthy().await;
    rig.assert_serves_again().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_cut_by_a_reset_fails_calls_unavailable_and_reads_nothing_wrong() {
    let rig = Rig::start().await;
    rig.proxy.set(Fault::ResetMidReply);
    for cache in rig.both() {
        let fail_open = cache.config().fail_open();
        assert_right_or_unavailable(&run_calls(cache, sparing_calls()).await, fail_open);
    }
    for (name, read) in read_seeded(&rig.strict).await {
        match read {
            Ok(true) => {}
            Err(e) if e.is_unavailable() => {}
            other => panic!("{name} with replies cut: {other:?}"),
        }
    }
    rig.assert_unhealthy().await;
    rig.assert_serves_again().await;
    rig.proxy.set(Fault::ResetMidReply);
    for cache in rig.both() {
        let fail_open = cache.config().fail_open();
        assert_right_or_unavailable(&run_calls(cache, deleting_calls()).await, fail_open);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_connection_fails_every_call_within_the_timeout_then_serves_again() {
    let rig = Rig::start().await;
    rig.proxy.set(Fault::HalfOpen);
    // A black hole, not a closed connection: the managers' connections stay
    // open, and every call has to wait out its timeout.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let held = rig.proxy.connections();
    assert!(held >= 2, "{held} connections held open by the black hole");
    // Nothing sent reaches Redis: the deleting calls run with the others.
    rig.assert_calls_fail(every_call).await;
    rig.assert_unhealthy().await;
    rig.assert_serves_again().await;
}

/// Reads the ticker until the near cache serves it (a hit), checking each
/// read is `expected`: the first copy may die at once, to the invalidation
/// of the write just made.
async fn assert_near_hit(cache: &CacheManager, expected: &iftb_cache::Ticker) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let before = cache.stats().near_hits;
        let read = cache.market().get_ticker(SYM).await.unwrap();
        assert_eq!(read.as_ref(), Some(expected));
        if cache.stats().near_hits > before {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no copy kept: {:?}",
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_near_cache_stops_serving_and_never_reads_an_overwritten_copy() {
    let server = RedisServer::start();
    let proxy = FaultProxy::new(server.port());
    let cache = connect_through(&proxy, false, |b| b.near_cache(NEAR_BYTES)).await;
    assert_near_serving(&cache).await;
    let (old, new) = (ticker(SYM, 1.0), ticker(SYM, 2.0));
    cache.market().set_ticker(SYM, &old).await.unwrap();
    assert_near_hit(&cache, &old).await;

    // The tracking connection goes dark with the others: no invalidation
    // of the write made straight to Redis can arrive.
    proxy.set(Fault::HalfOpen);
    let holed = Instant::now();
    let direct = support::connect(&server, |b| b).await;
    direct.market().set_ticker(SYM, &new).await.unwrap();
    let written = Instant::now();
    while cache.stats().near_serving {
        assert!(
            holed.elapsed() < Duration::from_secs(1),
            "still serving 1 s into a black hole: {:?}",
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep_until((written + Duration::from_secs(1)).into()).await;
    let reads_end = Instant::now() + Duration::from_secs(1);
    while Instant::now() < reads_end {
        let started = Instant::now();
        match cache.market().get_ticker(SYM).await {
            Ok(read) => assert_eq!(read, Some(new.clone()), "read in the black hole"),
            Err(e) => assert!(e.is_unavailable(), "{e}"),
        }
        let took = started.elapsed();
        assert!(took <= RESPONSE + SLACK, "a read took {took:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    proxy.set(Fault::None);
    wait_healthy(&cache, &server).await;
    assert_eq!(
        cache.market().get_ticker(SYM).await.unwrap(),
        Some(new.clone())
    );
    assert_near_serving(&cache).await;
    assert_near_hit(&cache, &new).await;
}
