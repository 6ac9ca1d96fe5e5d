//! Short timeouts, so that faults are quick to see, and the checks that a
//! call stayed within them: failing as unavailable, or failing open.

use super::{connect, Op, Outcome, Ran, RedisServer};
use iftb_cache::CacheManager;
use std::time::Duration;

/// The response (and connect) timeout of these tests.
pub const RESPONSE: Duration = Duration::from_millis(300);
/// What a call may take past the response timeout: the backend's own 250 ms
/// margin, plus slack for a loaded 2-core CI machine.
pub const SLACK: Duration = Duration::from_millis(500);

/// A cache manager on `server` with the [`RESPONSE`] timeouts, fail-open or not.
pub async fn connect_bounded(server: &RedisServer, fail_open: bool) -> CacheManager {
    connect(server, |b| {
        b.response_timeout(RESPONSE)
            .connect_timeout(RESPONSE)
            .fail_open(fail_open)
    })
    .await
}

/// As [`connect_bounded`] (fail-open off), with the circuit breaker off:
/// for what the connection itself does when Redis fails.
pub async fn connect_without_breaker(server: &RedisServer) -> CacheManager {
    connect(server, |b| {
        b.response_timeout(RESPONSE)
            .connect_timeout(RESPONSE)
            .breaker_threshold(0)
    })
    .await
}

/// Polls `health_check` until it answers (after a fault, once the circuit
/// breaker's probe has), and returns how long that took.
pub async fn time_to_healthy(cache: &CacheManager, within: Duration) -> Duration {
    let started = std::time::Instant::now();
    while !cache.health_check().await {
        assert!(started.elapsed() < within, "not serving after {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

pub fn assert_bounded(ran: &Ran, server: &RedisServer) {
    assert!(
        ran.took <= RESPONSE + SLACK,
        "{} took {:?}, over {RESPONSE:?} + {SLACK:?}\n{}",
        ran.name,
        ran.took,
        server.log()
    );
}

pub fn assert_unavailable(ran: &Ran, server: &RedisServer) {
    match &ran.result {
        Err(e) if e.is_unavailable() => {}
        other => panic!(
            "{}: expected an unavailability error, got {other:?}\n{}",
            ran.name,
            server.log()
        ),
    }
    assert_bounded(ran, server);
}

/// What fail-open mode must do with each call while Redis is unavailable.
pub fn assert_failed_open(ran: &[Ran], server: &RedisServer) {
    for r in ran {
        match (r.op, &r.result) {
            (Op::Read, Ok(Outcome::Miss)) | (Op::Write | Op::Compute, Ok(Outcome::Done)) => {}
            (Op::Admin, Err(e)) if e.is_unavailable() => {}
            (op, result) => panic!("{} ({op:?}) in fail-open mode gave {result:?}", r.name),
        }
        if r.op == Op::Compute {
            // Its read and its write each wait out the timeout when frozen.
            let bound = 2 * (RESPONSE + Duration::from_millis(250)) + SLACK;
            assert!(r.took <= bound, "{} took {:?}", r.name, r.took);
        } else {
            assert_bounded(r, server);
        }
    }
}
