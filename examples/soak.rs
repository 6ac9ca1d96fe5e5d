//! A soak run under faults: every public call of the cache, from many tasks at
//! once, for a given time, against one `redis-server` this program starts and
//! then kills, freezes and cuts off on a schedule; every read is checked
//! against what was written.
//!
//! ```sh
//! cargo run --example soak -- --seconds 60      # a minute (plus a second of setup): four cycles
//! cargo run --example soak -- --seconds 600 --tasks 16 --cycle-secs 10 --no-near
//! ```
//!
//! Flags: `--seconds N` (60), `--tasks N` (8 load tasks, plus one "tick"
//! task), `--cycle-secs N` (15: the fault cycle), `--no-near` (no near
//! cache), `--no-breaker` (`breaker_threshold(0)`), `--fail-open`.
//!
//! Each cycle holds one of each fault, at 3/15, 7/15 and 11/15 of it: a
//! freeze (SIGSTOP, ~2 s, then SIGCONT), a drop of every client connection
//! (`CLIENT KILL TYPE normal SKIPME yes`), and a SIGKILL followed ~1 s later
//! by a restart on the same port (no persistence: the data is gone); a cycle
//! under 15 s shortens the freeze and the downtime in proportion. No fault
//! starts unless it ends 3 s before the run does, so the last seconds show
//! recovery.
//!
//! **The model.** Each task owns a few symbols (`SOAK{task}K{i}USDT`) and
//! their keys, and writes each key with increasing versions, one write after
//! another, so it knows per key the highest version attempted and the highest
//! acknowledged (`Ok`). A read that finds a value is right when its version
//! `v` has `acked at the read's start <= v <= attempted at its end`; a miss is
//! always right (a killed server loses everything, TTLs run out); a deletion
//! is a version that holds no value. Versions ride in the values: a ticker's
//! prices, a funding rate of `v * 1e-6`, a Fear & Greed reading stamped
//! `T0 + v` (written by task 0 only, read by all), 60 minute bars that all
//! close at `v`, `{"v": v}` LLM and JSON values, `v{v}` strings and bytes. A
//! read of bars must hold the expected open times, in the documented order,
//! all of one version. `get_or_compute` must answer `{"input": input}`. In
//! fail-open mode a dropped write also answers `Ok`, so there an `Ok` proves
//! nothing and only the upper bound is checked.
//!
//! One more task is a strategy's tick: 50 `get_latest_bar` in a row, then a
//! millisecond's pause, all run long; its longest tick is what a frozen Redis
//! costs a strategy (the circuit breaker's point: one deadline, not 50).
//! Every call is timed (p50/p99/max of all calls, and of the successful
//! ones); calls over the call deadline are listed by name.
//!
//! Exit 0 when no read was wrong, no task panicked, and every class of call
//! (each module's reads and writes, `get_or_compute`, `health_check`)
//! succeeded after the last fault; in fail-open mode, where a failure answers
//! `Ok`, after the last failure it absorbed too, which must be a second
//! before the end. 1 otherwise, saying why; 2 for bad flags or no
//! `redis-server` on `PATH`. The summary is printed as text, then as one JSON
//! line starting `soak-json: `. `manager.clear_all` and `flush_db` are left
//! out: they delete every task's keys at once, which no task's model could
//! follow.

use bytes::Bytes;
use hdrhistogram::Histogram;
use iftb_cache::{
    Bar, BarWriteOptions, CacheConfig, CacheManager, CacheStats, ComputeOptions, FearGreed,
    FearGreedClass, LlmCache, Ticker, Timeframe, WriteOptions,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::TcpListener;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: soak [--seconds N] [--tasks N] [--cycle-secs N] [--no-near] [--no-breaker] [--fail-open]";

const TF: Timeframe = Timeframe::M1;
const MINUTE: i64 = 60_000;
/// The open time of the first bar, and the stamp of every ticker.
const T0: i64 = 1_705_478_400_000;
/// Bars per series: every write upserts the same ones.
const BARS: i64 = 60;
const KEYS_PER_TASK: usize = 3;
/// Reads in one tick of the tick task, and its pause between ticks.
const TICK_READS: usize = 50;
const TICK_EVERY: Duration = Duration::from_millis(1);
/// Inputs each task rotates `get_or_compute` over: with a short TTL, some
/// are computed again all run long.
const LLM_INPUTS: u64 = 40;
const LLM_TTL: Duration = Duration::from_secs(5);
const LLM_LEASE: Duration = Duration::from_secs(2);
/// The TTL of the `*_with` writes and of the client's values.
const TTL: Duration = Duration::from_secs(60);
const WRONG_SHOWN: usize = 20;
const ODD_SHOWN: usize = 10;
/// No fault starts unless it is over this long before the end.
const QUIET_TAIL: Duration = Duration::from_secs(3);
/// A call is reported as over its deadline past this much more: a timer
/// fires late by a few milliseconds on two busy cores.
const DEADLINE_SLACK: Duration = Duration::from_millis(50);
/// In fail-open mode, the quiet stretch at the end that proves recovery:
/// no failure absorbed in it.
const QUIET_END: Duration = Duration::from_secs(1);
/// How long the tasks may overrun the end before they count as hung.
const JOIN_GRACE: Duration = Duration::from_secs(30);
/// The default cycle, and the faults' lengths in it.
const DEFAULT_CYCLE: Duration = Duration::from_secs(15);
const FREEZE_FOR: Duration = Duration::from_secs(2);
const DOWN_FOR: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(why) => {
            eprintln!("soak: {why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let Some(binary) = find_on_path("redis-server") else {
        eprintln!(
            "soak: redis-server is not on PATH; install Redis 7+ (scripts/test installs it on Debian/Ubuntu)"
        );
        return ExitCode::from(2);
    };
    match run(&args, binary) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(why) => {
            eprintln!("soak: {why}");
            ExitCode::from(1)
        }
    }
}

// ---------------------------------------------------------------------------
// Flags

struct Args {
    seconds: u64,
    tasks: usize,
    cycle: Duration,
    near: bool,
    breaker: bool,
    fail_open: bool,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut parsed = Args {
            seconds: 60,
            tasks: 8,
            cycle: DEFAULT_CYCLE,
            near: true,
            breaker: true,
            fail_open: false,
        };
        while let Some(arg) = args.next() {
            let mut number = |flag: &str| -> Result<u64, String> {
                let value = args.next().ok_or(format!("{flag} needs a number"))?;
                match value.parse::<u64>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(format!("{flag} {value:?}: expected a whole number over 0")),
                }
            };
            match arg.as_str() {
                "--seconds" => parsed.seconds = number("--seconds")?,
                "--tasks" => parsed.tasks = number("--tasks")? as usize,
                "--cycle-secs" => parsed.cycle = Duration::from_secs(number("--cycle-secs")?),
                "--no-near" => parsed.near = false,
                "--no-breaker" => parsed.breaker = false,
                "--fail-open" => parsed.fail_open = true,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(parsed)
    }

    fn config(&self, url: &str) -> iftb_cache::Result<CacheConfig> {
        let mut builder = CacheConfig::builder()
            .redis_url(url)
            .namespace("soak")
            .response_timeout(Duration::from_millis(250))
            .connect_timeout(Duration::from_millis(250))
            .fail_open(self.fail_open)
            // 0 turns the breaker off; the default, 1, opens at the first
            // unavailability.
            .breaker_threshold(if self.breaker { 1 } else { 0 });
        if self.near {
            builder = builder.near_cache(NonZeroUsize::new(8 << 20).expect("non-zero"));
        }
        builder.build()
    }

    fn describe(&self) -> String {
        let on = |b: bool| if b { "on" } else { "off" };
        format!(
            "{} s, {} tasks + 1 tick task, fault cycle {} s, near cache {}, breaker {}, fail-open {}",
            self.seconds,
            self.tasks,
            self.cycle.as_secs(),
            on(self.near),
            on(self.breaker),
            on(self.fail_open)
        )
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------
// The server and its faults

/// The `redis-server` child, on one port for its whole life (a restart
/// comes back on the same one, as a restarted Redis does).
struct Server {
    binary: PathBuf,
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Server {
    fn start(binary: PathBuf) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        // Free a moment ago; nothing else on this machine races for it.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free loopback port: {e}"))?;
        let mut server = Server {
            binary,
            child: None,
            port,
            dir,
        };
        server.spawn()?;
        Ok(server)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Starts the server and waits until it answers `PING`.
    fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let path = |p: &Path| p.to_str().expect("utf-8 temp path").to_string();
        let child = Command::new(&self.binary)
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", &path(self.dir.path())])
            .args(["--logfile", &path(&self.log_path())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("redis-server exited with {status}\n{}", self.log()));
            }
            if ping(&self.url()).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!(
            "redis-server not answering after 10 s\n{}",
            self.log()
        ))
    }

    /// SIGKILL, as in a crash (a stopped process dies of it too).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `kill -STOP` / `kill -CONT`: connections stay open, nothing answers.
    fn signal(&self, sig: &str) -> Result<(), String> {
        let pid = self.child.as_ref().ok_or("server not running")?.id();
        let status = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .map_err(|e| format!("kill {sig}: {e}"))?;
        status
            .success()
            .then_some(())
            .ok_or(format!("kill {sig} {pid}: {status}"))
    }

    /// Closes every client connection but the one asking, over a connection
    /// of its own: the cache's data and tracking connections both go.
    fn drop_clients(&self) -> Result<u64, String> {
        let mut conn = connect_sync(&self.url())?;
        redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"][..])
            .query(&mut conn)
            .map_err(|e| format!("CLIENT KILL: {e}"))
    }
}

/// Kills the server when the program ends, also by a panic. The fault
/// thread shares the server, so this does not wait for the last `Arc`.
/// (Ctrl-C reaches the server too: it is in this process' group.)
struct ServerGuard(Arc<Mutex<Server>>);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        lock(&self.0).kill();
    }
}

/// A lock that a panic elsewhere does not poison for the code cleaning up.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn connect_sync(url: &str) -> Result<redis::Connection, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let conn = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .map_err(|e| format!("connect: {e}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

fn ping(url: &str) -> Result<(), String> {
    let mut conn = connect_sync(url)?;
    redis::cmd("PING")
        .query::<String>(&mut conn)
        .map(drop)
        .map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    Freeze,
    Drop,
    KillRestart,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Freeze => "freeze",
            Fault::Drop => "drop",
            Fault::KillRestart => "kill+restart",
        }
    }
}

/// One fault applied: when it started and ended, since the load started.
#[derive(Debug, Clone)]
struct FaultEvent {
    fault: Fault,
    at: Duration,
    ended: Option<Duration>,
    note: String,
}

/// The faults' lengths in a cycle: the defaults, shortened in a short cycle
/// so that one fault is over before the next starts.
fn fault_lengths(cycle: Duration) -> (Duration, Duration) {
    let freeze = FREEZE_FOR.min(cycle * 2 / 15);
    let down = DOWN_FOR.min(cycle / 15);
    (freeze, down)
}

/// Every fault of the run, in order: one of each per cycle, none that would
/// end within `QUIET_TAIL` of the end.
fn schedule(cycle: Duration, total: Duration) -> Vec<(Duration, Fault)> {
    let (freeze, down) = fault_lengths(cycle);
    let mut plan = Vec::new();
    for n in 0.. {
        let base = cycle * n;
        if base >= total {
            break;
        }
        for (fifteenths, fault, lasts) in [
            (3, Fault::Freeze, freeze),
            (7, Fault::Drop, Duration::ZERO),
            (11, Fault::KillRestart, down),
        ] {
            let at = base + cycle * fifteenths / 15;
            if at + lasts + QUIET_TAIL <= total {
                plan.push((at, fault));
            }
        }
    }
    plan
}

/// Applies the plan on its own thread (the faults block: signals, sleeps,
/// a restart that waits for `PING`). Always thaws what it froze.
fn inject_faults(
    server: Arc<Mutex<Server>>,
    plan: Vec<(Duration, Fault)>,
    cycle: Duration,
    start: Instant,
    log: Arc<Mutex<Vec<FaultEvent>>>,
    stop: Arc<AtomicBool>,
) {
    let (freeze_for, down_for) = fault_lengths(cycle);
    for (at, fault) in plan {
        while start.elapsed() < at {
            if stop.load(SeqCst) {
                return;
            }
            std::thread::sleep((at - start.elapsed()).min(Duration::from_millis(20)));
        }
        let index = {
            let mut log = lock(&log);
            log.push(FaultEvent {
                fault,
                at: start.elapsed(),
                ended: None,
                note: String::new(),
            });
            log.len() - 1
        };
        let mut server = lock(&server);
        let outcome = match fault {
            Fault::Freeze => server.signal("-STOP").and_then(|()| {
                std::thread::sleep(freeze_for);
                server.signal("-CONT").map(|()| String::new())
            }),
            Fault::Drop => server
                .drop_clients()
                .map(|n| format!("{n} connections closed")),
            Fault::KillRestart => {
                server.kill();
                std::thread::sleep(down_for);
                server.spawn().map(|()| String::new())
            }
        };
        drop(server);
        let mut log = lock(&log);
        let event = &mut log[index];
        event.ended = Some(start.elapsed());
        match outcome {
            Ok(note) => event.note = note,
            Err(why) => {
                event.note = format!("FAILED: {why}");
                return;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The model

/// One key's versions. Only its owner writes it, one write at a time;
/// readers may be any task (Fear & Greed, the tick task's bars).
#[derive(Default)]
struct Version {
    attempted: AtomicU64,
    acked: AtomicU64,
    /// Versions that were deletions (`invalidate`, `delete`): they hold no
    /// value. Increasing, so a range of them is two binary searches.
    tombstones: Mutex<Vec<u64>>,
}

impl Version {
    /// The next version, counted as attempted before it is sent.
    fn attempt(&self) -> u64 {
        self.attempted.fetch_add(1, SeqCst) + 1
    }

    /// A deletion: a version with nothing in it.
    fn delete(&self) -> u64 {
        let mut tombstones = lock(&self.tombstones);
        let v = self.attempt();
        tombstones.push(v);
        v
    }

    fn ack(&self, v: u64) {
        self.acked.fetch_max(v, SeqCst);
    }

    /// The lowest version a read starting now may return. In fail-open
    /// mode a dropped write answers `Ok` too: acks prove nothing there.
    fn floor(&self, fail_open: bool) -> u64 {
        if fail_open {
            0
        } else {
            self.acked.load(SeqCst)
        }
    }

    fn ceiling(&self) -> u64 {
        self.attempted.load(SeqCst)
    }

    fn is_tombstone(&self, v: u64) -> bool {
        lock(&self.tombstones).binary_search(&v).is_ok()
    }

    /// True when some version in `lo..=hi` holds a value (version 0 is the
    /// key before its first write: none).
    fn holds_value(&self, lo: u64, hi: u64) -> bool {
        let lo = lo.max(1);
        if lo > hi {
            return false;
        }
        let t = lock(&self.tombstones);
        let deletions = t.partition_point(|&v| v <= hi) - t.partition_point(|&v| v < lo);
        (deletions as u64) < hi - lo + 1
    }
}

/// What a key holds; each kind of each symbol is its own Redis key.
#[derive(Clone, Copy)]
enum Kind {
    Ticker,
    Funding,
    Series,
    Analysis,
    Text,
    Bytes,
    Json,
}

const KINDS: usize = 7;

struct Model {
    keys: Vec<Version>,
    /// The one Fear & Greed key of the namespace, written by task 0.
    fear_greed: Version,
}

impl Model {
    fn new(tasks: usize) -> Self {
        let keys = (0..tasks * KEYS_PER_TASK * KINDS)
            .map(|_| Version::default())
            .collect();
        Model {
            keys,
            fear_greed: Version::default(),
        }
    }

    fn of(&self, task: usize, key: usize, kind: Kind) -> &Version {
        &self.keys[(task * KEYS_PER_TASK + key) * KINDS + kind as usize]
    }
}

/// The keys a read names: `key` alone for a one-key call, every key of the
/// task for its batch twin.
fn keys_read(one: bool, key: usize) -> Vec<usize> {
    if one {
        vec![key]
    } else {
        (0..KEYS_PER_TASK).collect()
    }
}

fn symbol(task: usize, key: usize) -> String {
    format!("SOAK{task}K{key}USDT")
}

/// The ticker of version `v`: every price is `v`.
fn ticker(symbol: &str, v: u64) -> Ticker {
    let p = v as f64;
    Ticker {
        symbol: symbol.into(),
        bid: p,
        ask: p,
        last: p,
        volume_24h: 1.0,
        change_24h: 0.0,
        high_24h: p,
        low_24h: p,
        timestamp: T0,
    }
}

fn ticker_version(symbol: &str, t: &Ticker) -> Option<u64> {
    let v = whole(t.last)?;
    (ticker(symbol, v) == *t).then_some(v)
}

fn funding_rate(v: u64) -> f64 {
    v as f64 * 1e-6
}

fn funding_version(rate: f64) -> Option<u64> {
    let v = whole((rate * 1e6).round())?;
    (funding_rate(v) == rate).then_some(v)
}

/// Version `v` as a reading: its value `v % 101`, with alternative.me's
/// class of that value, stamped `T0 + v` (where the version really rides).
fn fear_greed(v: u64) -> FearGreed {
    let value = (v % 101) as u8;
    let classification = match value {
        0..=24 => FearGreedClass::ExtremeFear,
        25..=46 => FearGreedClass::Fear,
        47..=54 => FearGreedClass::Neutral,
        55..=75 => FearGreedClass::Greed,
        _ => FearGreedClass::ExtremeGreed,
    };
    FearGreed {
        value,
        classification,
        timestamp: T0 + v as i64,
    }
}

fn fear_greed_version(fg: &FearGreed) -> Option<u64> {
    let v = u64::try_from(fg.timestamp - T0).ok().filter(|&v| v > 0)?;
    (fear_greed(v) == *fg).then_some(v)
}

/// The series of version `v`: the same `BARS` minute bars, all at `v`.
fn series(v: u64) -> Vec<Bar> {
    let p = v as f64;
    (0..BARS)
        .map(|i| Bar::new(T0 + i * MINUTE, p, p, p, p, 1.0))
        .collect()
}

fn bar_version(b: &Bar) -> Option<u64> {
    let v = whole(b.close)?;
    (Bar::new(b.timestamp, b.close, b.close, b.close, b.close, 1.0) == *b).then_some(v)
}

/// The version of bars read, which must open at exactly `times`, in that
/// order, and all be of one version; else what is wrong with them.
fn bars_version(bars: &[Bar], times: &[i64]) -> Result<u64, String> {
    if bars.len() != times.len() {
        let first = bars.first().map(|b| b.timestamp);
        return Err(format!(
            "{} bars (first at {first:?}), expected {} from {:?}",
            bars.len(),
            times.len(),
            times.first()
        ));
    }
    let mut version = None;
    for (j, (bar, &t)) in bars.iter().zip(times).enumerate() {
        if bar.timestamp != t {
            return Err(format!("bar {j} opens at {}, expected {t}", bar.timestamp));
        }
        let v = bar_version(bar).ok_or(format!("bar {j} is no soak bar: {bar:?}"))?;
        match version {
            Some(first) if first != v => {
                return Err(format!("bars of versions {first} and {v} in one read"))
            }
            _ => version = Some(v),
        }
    }
    version.ok_or("no bars in a hit".to_string())
}

/// A window of whole minutes, its ends off the grid by under a minute (so
/// exactly the bars `a..=b` fall in it): `from`, `to`, and the open times
/// expected, oldest first.
fn window(rng: &mut Rng) -> (i64, i64, Vec<i64>) {
    let a = rng.below(BARS as u64) as i64;
    let b = a + rng.below((BARS - a) as u64) as i64;
    let from = T0 + a * MINUTE - rng.below(MINUTE as u64) as i64;
    let to = T0 + b * MINUTE + rng.below(MINUTE as u64) as i64;
    (from, to, (a..=b).map(|i| T0 + i * MINUTE).collect())
}

/// Open times of the newest `n` bars, newest first.
fn newest_times(n: usize) -> Vec<i64> {
    (0..BARS.min(n as i64))
        .map(|j| T0 + (BARS - 1 - j) * MINUTE)
        .collect()
}

/// A positive whole number, as every version is.
fn whole(x: f64) -> Option<u64> {
    (x >= 1.0 && x.fract() == 0.0 && x < 1e15).then_some(x as u64)
}

/// `v{n}` back to `n`, exactly as written.
fn text_version(s: &str) -> Option<u64> {
    let v: u64 = s.strip_prefix('v')?.parse().ok()?;
    (format!("v{v}") == s).then_some(v)
}

fn json_version(value: &Value) -> Option<u64> {
    let v = value.get("v")?.as_u64()?;
    (*value == json!({ "v": v })).then_some(v)
}

// ---------------------------------------------------------------------------
// What the load shares

/// What a call is, for the proof of recovery: each class must succeed after
/// the last fault.
#[derive(Clone, Copy)]
enum Class {
    OhlcvRead,
    OhlcvWrite,
    MarketRead,
    MarketWrite,
    LlmRead,
    LlmWrite,
    LlmCompute,
    ClientRead,
    ClientWrite,
    Health,
}

const CLASSES: [(Class, &str); 10] = [
    (Class::OhlcvRead, "ohlcv read"),
    (Class::OhlcvWrite, "ohlcv write"),
    (Class::MarketRead, "market read"),
    (Class::MarketWrite, "market write"),
    (Class::LlmRead, "llm read"),
    (Class::LlmWrite, "llm write"),
    (Class::LlmCompute, "llm compute"),
    (Class::ClientRead, "client read"),
    (Class::ClientWrite, "client write"),
    (Class::Health, "health_check"),
];

/// Every public call that reaches the backend but `clear_all`/`flush_db`
/// (see the top), with its class; each task runs them round robin.
const CALLS: [(&str, Class); 38] = [
    ("ohlcv.set_bars", Class::OhlcvWrite),
    ("ohlcv.get_bars", Class::OhlcvRead),
    ("ohlcv.set_bars_with", Class::OhlcvWrite),
    ("ohlcv.get_bars_archived", Class::OhlcvRead),
    ("ohlcv.get_range", Class::OhlcvRead),
    ("ohlcv.get_latest_bar", Class::OhlcvRead),
    ("ohlcv.get_latest_bars", Class::OhlcvRead),
    ("ohlcv.invalidate", Class::OhlcvWrite),
    ("market.set_ticker", Class::MarketWrite),
    ("market.get_ticker", Class::MarketRead),
    ("market.set_ticker_with", Class::MarketWrite),
    ("market.set_tickers", Class::MarketWrite),
    ("market.get_tickers", Class::MarketRead),
    ("market.set_tickers_with", Class::MarketWrite),
    ("market.set_funding_rate", Class::MarketWrite),
    ("market.get_funding_rate", Class::MarketRead),
    ("market.set_funding_rate_with", Class::MarketWrite),
    ("market.set_funding_rates", Class::MarketWrite),
    ("market.get_funding_rates", Class::MarketRead),
    ("market.set_funding_rates_with", Class::MarketWrite),
    ("market.set_fear_greed", Class::MarketWrite),
    ("market.get_fear_greed", Class::MarketRead),
    ("market.set_fear_greed_with", Class::MarketWrite),
    ("llm.set_analysis", Class::LlmWrite),
    ("llm.get_analysis", Class::LlmRead),
    ("llm.set_analysis_with", Class::LlmWrite),
    ("llm.get_or_compute", Class::LlmCompute),
    ("llm.get_or_compute_with", Class::LlmCompute),
    ("client.set", Class::ClientWrite),
    ("client.get", Class::ClientRead),
    ("client.set_bytes", Class::ClientWrite),
    ("client.get_bytes", Class::ClientRead),
    ("client.set_json", Class::ClientWrite),
    ("client.get_json", Class::ClientRead),
    ("client.mget", Class::ClientRead),
    ("client.delete", Class::ClientWrite),
    ("client.exists", Class::ClientRead),
    ("manager.health_check", Class::Health),
];

struct Ctx {
    cache: CacheManager,
    model: Model,
    tasks: usize,
    fail_open: bool,
    start: Instant,
    deadline: Instant,
    /// The bound on one call (`CacheConfig::call_deadline`).
    call_deadline: Duration,
    computations: AtomicU64,
    /// Per class, the end of its last success, µs since the start + 1.
    last_ok: [AtomicU64; CLASSES.len()],
    wrong: AtomicU64,
    wrong_shown: Mutex<Vec<String>>,
    /// Errors other than Redis being unavailable: the first few, in full.
    odd: Mutex<Vec<String>>,
    faults: Arc<Mutex<Vec<FaultEvent>>>,
}

impl Ctx {
    fn since_start(&self) -> Duration {
        self.start.elapsed()
    }

    fn succeeded(&self, class: Class) {
        let now = self.since_start().as_micros() as u64 + 1;
        self.last_ok[class as usize].fetch_max(now, SeqCst);
    }

    /// Checks a version read against the window: `lo` taken before the
    /// read, the ceiling now, after it.
    fn check(&self, task: usize, call: &str, key: &str, ver: &Version, lo: u64, got: u64) {
        let hi = ver.ceiling();
        if got < lo || got > hi || ver.is_tombstone(got) {
            let what = if ver.is_tombstone(got) {
                format!("version {got}, a deletion")
            } else {
                format!("version {got}")
            };
            self.wrong(task, call, key, &what, &format!("{lo}..={hi}"));
        }
    }

    /// The versions of `task`'s `keys` of `kind`, and the floor each must
    /// meet in a read that starts now.
    fn versions(&self, task: usize, kind: Kind, keys: &[usize]) -> (Vec<&Version>, Vec<u64>) {
        let vers: Vec<&Version> = keys.iter().map(|&k| self.model.of(task, k, kind)).collect();
        let los = vers.iter().map(|v| v.floor(self.fail_open)).collect();
        (vers, los)
    }

    /// Every key of `task`'s `kind`, each with the version a batch write of
    /// them all attempts.
    fn attempt_all(&self, task: usize, kind: Kind) -> (Vec<&Version>, Vec<u64>) {
        let vers: Vec<&Version> = (0..KEYS_PER_TASK)
            .map(|k| self.model.of(task, k, kind))
            .collect();
        let vs = vers.iter().map(|v| v.attempt()).collect();
        (vers, vs)
    }

    /// True when a batch read answered as many values as it asked for;
    /// otherwise the read is wrong, and noted so.
    fn answered_all(&self, task: usize, call: &str, asked: usize, answered: usize) -> bool {
        if answered != asked {
            let got = format!("{answered} answers");
            self.wrong(task, call, "all", &got, &format!("{asked}"));
        }
        answered == asked
    }

    fn wrong(&self, task: usize, call: &str, key: &str, got: &str, expected: &str) {
        let n = self.wrong.fetch_add(1, SeqCst);
        if n as usize >= WRONG_SHOWN {
            return;
        }
        let now = self.since_start();
        let line = format!(
            "[{:.3} s] task {task} {call} {key}: got {got}, expected {expected}; {}",
            now.as_secs_f64(),
            self.fault_near(now)
        );
        lock(&self.wrong_shown).push(line);
    }

    /// The fault closest before `now`, for a wrong read's report.
    fn fault_near(&self, now: Duration) -> String {
        let faults = lock(&self.faults);
        let Some(last) = faults.iter().rev().find(|f| f.at <= now) else {
            return "before any fault".into();
        };
        match last.ended {
            Some(end) if end <= now => format!(
                "{:.3} s after the {} of {:.3}..{:.3} s",
                (now - end).as_secs_f64(),
                last.fault.name(),
                last.at.as_secs_f64(),
                end.as_secs_f64()
            ),
            _ => format!(
                "during the {} since {:.3} s",
                last.fault.name(),
                last.at.as_secs_f64()
            ),
        }
    }

    fn odd(&self, call: &str, e: &iftb_cache::Error) {
        let mut odd = lock(&self.odd);
        if odd.len() < ODD_SHOWN {
            let at = self.since_start().as_secs_f64();
            odd.push(format!("[{at:.3} s] {call}: {e}"));
        }
    }
}

/// One task's counts, merged at the end.
struct Recorder {
    /// Every call, failed fast or not; and the successful ones alone.
    latency_us: Histogram<u64>,
    ok_latency_us: Histogram<u64>,
    calls: u64,
    errors: BTreeMap<String, u64>,
    health_false: u64,
    /// Per call, those that took longer than the call deadline.
    slow: BTreeMap<&'static str, Slow>,
    ticks: u64,
    longest_tick: Duration,
}

/// Calls of one name over the call deadline: how many, the longest, when.
#[derive(Clone, Copy, Default)]
struct Slow {
    calls: u64,
    longest: Duration,
    /// The longest one's start, since the load started.
    at: Duration,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to an hour, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("bounds")
}

impl Recorder {
    fn new() -> Self {
        Recorder {
            latency_us: histogram(),
            ok_latency_us: histogram(),
            calls: 0,
            errors: BTreeMap::new(),
            health_false: 0,
            slow: BTreeMap::new(),
            ticks: 0,
            longest_tick: Duration::ZERO,
        }
    }

    fn timed(&mut self, ctx: &Ctx, name: &'static str, started: Instant, ok: bool) {
        let took = started.elapsed();
        let us = (took.as_micros() as u64).max(1);
        self.calls += 1;
        self.latency_us.saturating_record(us);
        if ok {
            self.ok_latency_us.saturating_record(us);
        }
        if took > ctx.call_deadline + DEADLINE_SLACK {
            let slow = self.slow.entry(name).or_default();
            slow.calls += 1;
            if took > slow.longest {
                slow.longest = took;
                slow.at = started - ctx.start;
            }
        }
    }

    /// Runs one call, timed; its error counted by kind. `Some` on success.
    async fn call<T>(
        &mut self,
        ctx: &Ctx,
        (name, class): (&'static str, Class),
        call: impl Future<Output = iftb_cache::Result<T>>,
    ) -> Option<T> {
        let started = Instant::now();
        let result = call.await;
        self.timed(ctx, name, started, result.is_ok());
        match result {
            Ok(value) => {
                ctx.succeeded(class);
                Some(value)
            }
            Err(e) => {
                *self.errors.entry(format!("{:?}", e.kind())).or_default() += 1;
                if !e.is_unavailable() {
                    ctx.odd(name, &e);
                }
                None
            }
        }
    }

    fn merge(&mut self, other: Recorder) {
        self.latency_us.add(&other.latency_us).expect("same bounds");
        self.ok_latency_us
            .add(&other.ok_latency_us)
            .expect("same bounds");
        self.calls += other.calls;
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        self.health_false += other.health_false;
        for (name, o) in other.slow {
            let slow = self.slow.entry(name).or_default();
            slow.calls += o.calls;
            if o.longest > slow.longest {
                (slow.longest, slow.at) = (o.longest, o.at);
            }
        }
        self.ticks += other.ticks;
        self.longest_tick = self.longest_tick.max(other.longest_tick);
    }
}

/// xorshift64*: enough to vary keys, limits and windows.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

// ---------------------------------------------------------------------------
// The load

/// One load task: its symbols, their keys, and what it recorded.
struct Worker {
    ctx: Arc<Ctx>,
    task: usize,
    rng: Rng,
    rec: Recorder,
    symbols: Vec<String>,
    hashes: Vec<String>,
    /// Per key: the client's text, bytes and JSON keys.
    kv: Vec<[String; 3]>,
}

impl Worker {
    fn new(ctx: Arc<Ctx>, task: usize) -> Self {
        let keys = 0..KEYS_PER_TASK;
        Worker {
            ctx,
            task,
            rng: Rng(0x9e37_79b9_7f4a_7c15 ^ (task as u64 + 1)),
            rec: Recorder::new(),
            symbols: keys.clone().map(|k| symbol(task, k)).collect(),
            hashes: keys
                .clone()
                .map(|k| LlmCache::hash_input(&format!("soak-analysis-{task}-{k}")))
                .collect(),
            kv: keys
                .map(|k| ["text", "bytes", "json"].map(|s| format!("soak:{task}:{k}:{s}")))
                .collect(),
        }
    }

    async fn run(mut self) -> Recorder {
        // Tasks start at different calls, so that every call meets others.
        let mut n = self.task * 5;
        while Instant::now() < self.ctx.deadline {
            let call = CALLS[n % CALLS.len()];
            n += 1;
            let key = self.rng.below(KEYS_PER_TASK as u64) as usize;
            match call.0.split('.').next() {
                Some("ohlcv") => self.ohlcv(call, key).await,
                Some("market") => self.market(call, key).await,
                Some("llm") => self.llm(call, key).await,
                Some("client") => self.client(call, key).await,
                _ => self.health(call).await,
            }
            // A near-cache hit never waits: let the other tasks in.
            if n.is_multiple_of(8) {
                tokio::task::yield_now().await;
            }
        }
        self.rec
    }

    async fn health(&mut self, call: (&'static str, Class)) {
        let started = Instant::now();
        let healthy = self.ctx.cache.health_check().await;
        self.rec.timed(&self.ctx, call.0, started, healthy);
        if healthy {
            self.ctx.succeeded(call.1);
        } else {
            self.rec.health_false += 1;
        }
    }

    async fn ohlcv(&mut self, call: (&'static str, Class), key: usize) {
        let ctx = Arc::clone(&self.ctx);
        let (o, fail_open) = (ctx.cache.ohlcv(), ctx.fail_open);
        let sym = self.symbols[key].as_str();
        let ver = ctx.model.of(self.task, key, Kind::Series);
        let lo = ver.floor(fail_open);
        match call.0 {
            "ohlcv.set_bars" => {
                let v = ver.attempt();
                let bars = series(v);
                if self
                    .rec
                    .call(&ctx, call, o.set_bars(sym, TF, &bars))
                    .await
                    .is_some()
                {
                    ver.ack(v);
                }
            }
            "ohlcv.set_bars_with" => {
                let v = ver.attempt();
                let bars = series(v);
                // The cap is the series' length: its trim runs, trimming nothing.
                let cap = NonZeroUsize::new(BARS as usize).expect("non-zero");
                let opts = BarWriteOptions::new().ttl(TTL).max_bars(cap);
                let write = o.set_bars_with(sym, TF, &bars, opts);
                if self.rec.call(&ctx, call, write).await.is_some() {
                    ver.ack(v);
                }
            }
            "ohlcv.invalidate" => {
                let v = ver.delete();
                if self
                    .rec
                    .call(&ctx, call, o.invalidate(sym, TF))
                    .await
                    .is_some()
                {
                    ver.ack(v);
                }
            }
            "ohlcv.get_bars" => {
                let n = 1 + self.rng.below(BARS as u64 + 20) as usize;
                if let Some(Some(bars)) = self.rec.call(&ctx, call, o.get_bars(sym, TF, n)).await {
                    self.check_bars(call.0, sym, ver, lo, &bars, &newest_times(n));
                }
            }
            "ohlcv.get_bars_archived" => {
                let n = 1 + self.rng.below(BARS as u64 + 20) as usize;
                let read = o.get_bars_archived(sym, TF, n);
                if let Some(Some(view)) = self.rec.call(&ctx, call, read).await {
                    let bars = view.to_vec();
                    // The view itself, not only its copy.
                    let first = view.get(0).map(|b| b.timestamp.to_native());
                    if view.len() != bars.len() || first != bars.first().map(|b| b.timestamp) {
                        let got = format!("a view of {} bars, first {first:?}", view.len());
                        ctx.wrong(self.task, call.0, sym, &got, "its copy's");
                    }
                    self.check_bars(call.0, sym, ver, lo, &bars, &newest_times(n));
                }
            }
            "ohlcv.get_range" => {
                let (from, to, times) = window(&mut self.rng);
                let read = o.get_range(sym, TF, from, to);
                if let Some(Some(bars)) = self.rec.call(&ctx, call, read).await {
                    self.check_bars(call.0, sym, ver, lo, &bars, &times);
                }
            }
            "ohlcv.get_latest_bar" => {
                let read = o.get_latest_bar(sym, TF);
                if let Some(Some(bar)) = self.rec.call(&ctx, call, read).await {
                    self.check_bars(call.0, sym, ver, lo, &[bar], &newest_times(1));
                }
            }
            "ohlcv.get_latest_bars" => self.latest_bars(call).await,
            other => unreachable!("{other}"),
        }
    }

    async fn latest_bars(&mut self, call: (&'static str, Class)) {
        let ctx = Arc::clone(&self.ctx);
        let series: Vec<(&str, Timeframe)> =
            self.symbols.iter().map(|s| (s.as_str(), TF)).collect();
        let all: Vec<usize> = (0..KEYS_PER_TASK).collect();
        let (vers, los) = ctx.versions(self.task, Kind::Series, &all);
        let o = ctx.cache.ohlcv();
        let read = o.get_latest_bars(&series);
        let Some(found) = self.rec.call(&ctx, call, read).await else {
            return;
        };
        if !ctx.answered_all(self.task, call.0, series.len(), found.len()) {
            return;
        }
        for (k, bar) in found.iter().enumerate() {
            if let Some(bar) = bar {
                let sym = series[k].0;
                self.check_bars(call.0, sym, vers[k], los[k], &[*bar], &newest_times(1));
            }
        }
    }

    fn check_bars(
        &self,
        call: &str,
        sym: &str,
        ver: &Version,
        lo: u64,
        bars: &[Bar],
        times: &[i64],
    ) {
        match bars_version(bars, times) {
            Ok(v) => self.ctx.check(self.task, call, sym, ver, lo, v),
            Err(why) => {
                let expected = format!("bars of one version in {lo}..={}", ver.ceiling());
                self.ctx.wrong(self.task, call, sym, &why, &expected);
            }
        }
    }

    async fn market(&mut self, call: (&'static str, Class), key: usize) {
        match call.0 {
            "market.set_ticker" | "market.set_ticker_with" => self.set_ticker(call, key).await,
            "market.set_tickers" | "market.set_tickers_with" => self.set_tickers(call).await,
            "market.get_ticker" | "market.get_tickers" => self.get_tickers(call, key).await,
            "market.set_funding_rate" | "market.set_funding_rate_with" => {
                self.set_funding(call, key).await
            }
            "market.set_funding_rates" | "market.set_funding_rates_with" => {
                self.set_fundings(call).await
            }
            "market.get_funding_rate" | "market.get_funding_rates" => {
                self.get_funding(call, key).await
            }
            "market.set_fear_greed" | "market.set_fear_greed_with" if self.task == 0 => {
                self.set_fear_greed(call).await
            }
            // Task 0 alone writes the one Fear & Greed key: the others read it.
            "market.set_fear_greed" | "market.set_fear_greed_with" | "market.get_fear_greed" => {
                self.get_fear_greed(("market.get_fear_greed", Class::MarketRead))
                    .await
            }
            other => unreachable!("{other}"),
        }
    }

    async fn set_ticker(&mut self, call: (&'static str, Class), key: usize) {
        let ctx = Arc::clone(&self.ctx);
        let m = ctx.cache.market();
        let sym = self.symbols[key].as_str();
        let ver = ctx.model.of(self.task, key, Kind::Ticker);
        let v = ver.attempt();
        let t = ticker(sym, v);
        let done = if call.0 == "market.set_ticker" {
            self.rec.call(&ctx, call, m.set_ticker(sym, &t)).await
        } else {
            let write = m.set_ticker_with(sym, &t, WriteOptions::new().ttl(TTL));
            self.rec.call(&ctx, call, write).await
        };
        if done.is_some() {
            ver.ack(v);
        }
    }

    /// Every key of the task's in one batch; each key's version moves on.
    async fn set_tickers(&mut self, call: (&'static str, Class)) {
        let ctx = Arc::clone(&self.ctx);
        let m = ctx.cache.market();
        let (vers, vs) = ctx.attempt_all(self.task, Kind::Ticker);
        let tickers: Vec<Ticker> = self
            .symbols
            .iter()
            .zip(&vs)
            .map(|(s, &v)| ticker(s, v))
            .collect();
        let done = if call.0 == "market.set_tickers" {
            self.rec.call(&ctx, call, m.set_tickers(&tickers)).await
        } else {
            let write = m.set_tickers_with(&tickers, WriteOptions::new().ttl(TTL));
            self.rec.call(&ctx, call, write).await
        };
        if done.is_some() {
            vers.iter().zip(&vs).for_each(|(ver, &v)| ver.ack(v));
        }
    }

    async fn get_tickers(&mut self, call: (&'static str, Class), key: usize) {
        let ctx = Arc::clone(&self.ctx);
        let m = ctx.cache.market();
        let keys = keys_read(call.0 == "market.get_ticker", key);
        let (vers, los) = ctx.versions(self.task, Kind::Ticker, &keys);
        let found = if call.0 == "market.get_ticker" {
            let read = m.get_ticker(&self.symbols[key]);
            self.rec.call(&ctx, call, read).await.map(|t| vec![t])
        } else {
            self.rec
                .call(&ctx, call, m.get_tickers(&self.symbols))
                .await
        };
        let Some(found) = found else { return };
        if !ctx.answered_all(self.task, call.0, keys.len(), found.len()) {
            return;
        }
        for (j, t) in found.iter().enumerate() {
            let Some(t) = t else { continue };
            let sym = self.symbols[keys[j]].as_str();
            match ticker_version(sym, t) {
                Some(v) => ctx.check(self.task, call.0, sym, vers[j], los[j], v),
                None => ctx.wrong(self.task, call.0, sym, &format!("{t:?}"), "a soak ticker"),
            }
        }
    }

    async fn set_funding(&mut self, call: (&'static str, Class), key: usize) {
        let ctx = Arc::clone(&self.ctx);
        let m = ctx.cache.market();
        let sym = self.symbols[key].as_str();
        let ver = ctx.model.of(self.task, key, Kind::Funding);
        let v = ver.attempt();
        let done = if call.0 == "market.set_funding_rate" {
            self.rec
                .call(&ctx, call, m.set_funding_rate(sym, funding_rate(v)))
                .await
        } else {
            let opts = WriteOptions::new().ttl(TTL);
            let write = m.set_funding_rate_with(sym, funding_rate(v), opts);
            self.rec.call(&ctx, call, write).await
        };
        if done.is_some() {
            ver.ack(v);
        }
    }

    async fn set_fundings(&mut self, call: (&'static str, Class)) {
        let ctx = Arc::clone(&self.ctx);
        let m = ctx.cache.market();
        let (vers, vs) = ctx.attempt_all(self.task, Kind::Funding);
        let rates: Vec<(&str, f64)> = self
            .symbols
            .iter()
            .zip(&vs)
            .map(|(s, &v)| (s.as_str(), funding_rate(v)))
            .collect();
        let done = if call.0 == "market.set_funding_rates" {
            self.rec.call(&ctx, call, m.set_funding_rates(&rates)).await
        } else {
            let write = m.set_funding_rates_with(&rates, WriteOptions::new().ttl(TTL));
            self.rec.call(&ctx, call, write).await
        };
        if done.is_some() {
            vers.iter().zip(&vs).for_each(|(ver, &v)| ver.ack(v));
        }
    }

    async fn get_funding(&mut self, call: (&'static str, Class), key: usize) {
        let ctx = Arc::clone(&self.ctx);
        let m = ctx.cache.market();
        let keys = keys_read(call.0 == "market.get_funding_rate", key);
        let (vers, los) = ctx.versions(self.task, Kind::Funding, &keys);
        let found = if call.0 == "market.get_funding_rate" {
            let read = m.get_funding_rate(&self.symbols[key]);
            self.rec.call(&ctx, call, read).await.map(|r| vec![r])
        } else {
            self.rec
                .call(&ctx, call, m.get_funding_rates(&self.symbols))
                .await
        };
        let Some(found) = found else { return };
        if !ctx.answered_all(self.task, call.0, keys.len(), found.len()) {
            return;
        }
        for (j, rate) in found.iter().enumerate() {
            let Some(rate) = *rate else { continue };
            let sym = self.symbols[keys[j]].as_str();
            match funding_version(rate) {
                Some(v) => ctx.check(self.task, call.0, sym, vers[j], los[j], v),
                None => ctx.wrong(
                    self.task,
                    call.0,
                    sym,
                    &format!("rate {rate:e}"),
                    "v * 1e-6",
                ),
            }
        }
    }

    async fn set_fear_greed(&mut self, call: (&'static str, Class)) {
        let ctx = Arc::clone(&self.ctx);
        let m = ctx.cache.market();
        let ver = &ctx.model.fear_greed;
        let v = ver.attempt();
        let reading = fear_greed(v);
        let done = if call.0 == "market.set_fear_greed" {
            self.rec.call(&ctx, call, m.set_fear_greed(&reading)).await
        } else {
            let write = m.set_fear_greed_with(&reading, WriteOptions::new().ttl(TTL));
            self.rec.call(&ctx, call, write).await
        };
        if done.is_some() {
            ver.ack(v);
        }
    }

    async fn get_fear_greed(&mut self, call: (&'static str, Class)) {
        let ctx = Arc::clone(&self.ctx);
        let ver = &ctx.model.fear_greed;
        let lo = ver.floor(ctx.fail_open);
        let m = ctx.cache.market();
        let read = m.get_fear_greed();
        if let Some(Some(fg)) = self.rec.call(&ctx, call, read).await {
            match fear_greed_version(&fg) {
                Some(v) => ctx.check(self.task, call.0, "fear_greed", ver, lo, v),
                None => ctx.wrong(
                    self.task,
                    call.0,
                    "fear_greed",
                    &format!("{fg:?}"),
                    "a soak reading",
                ),
            }
        }
    }

    async fn llm(&mut self, call: (&'static str, Class), key: usize) {
        let ctx = Arc::clone(&self.ctx);
        let llm = ctx.cache.llm();
        let hash = self.hashes[key].as_str();
        let ver = ctx.model.of(self.task, key, Kind::Analysis);
        match call.0 {
            "llm.set_analysis" | "llm.set_analysis_with" => {
                let v = ver.attempt();
                let doc = json!({ "v": v });
                let done = if call.0 == "llm.set_analysis" {
                    self.rec
                        .call(&ctx, call, llm.set_analysis("soak", hash, &doc))
                        .await
                } else {
                    let opts = WriteOptions::new().ttl(TTL);
                    let write = llm.set_analysis_with("soak", hash, &doc, opts);
                    self.rec.call(&ctx, call, write).await
                };
                if done.is_some() {
                    ver.ack(v);
                }
            }
            "llm.get_analysis" => {
                let lo = ver.floor(ctx.fail_open);
                let read = llm.get_analysis::<Value>("soak", hash);
                if let Some(Some(doc)) = self.rec.call(&ctx, call, read).await {
                    match json_version(&doc) {
                        Some(v) => ctx.check(self.task, call.0, hash, ver, lo, v),
                        None => ctx.wrong(self.task, call.0, hash, &doc.to_string(), "{\"v\": v}"),
                    }
                }
            }
            "llm.get_or_compute" | "llm.get_or_compute_with" => self.compute(call).await,
            other => unreachable!("{other}"),
        }
    }

    /// `get_or_compute(_with)` of one of the task's inputs: whether cached or
    /// computed, the answer is the input's own.
    async fn compute(&mut self, call: (&'static str, Class)) {
        let ctx = Arc::clone(&self.ctx);
        let llm = ctx.cache.llm();
        let input = format!("soak-{}-{}", self.task, self.rng.below(LLM_INPUTS));
        let expected = json!({ "input": input });
        let (computations, asked) = (&ctx.computations, input.clone());
        let ask = move || async move {
            computations.fetch_add(1, SeqCst);
            // An LLM call takes a while: let the other callers pile up.
            tokio::task::yield_now().await;
            Ok::<_, std::io::Error>(json!({ "input": asked }))
        };
        let answer = if call.0 == "llm.get_or_compute" {
            let read = llm.get_or_compute::<Value, _, _, _>("soak-plain", &input, ask);
            self.rec.call(&ctx, call, read).await
        } else {
            let opts = ComputeOptions::new().ttl(LLM_TTL).lock(LLM_LEASE);
            let read = llm.get_or_compute_with::<Value, _, _, _>("soak-locked", &input, opts, ask);
            self.rec.call(&ctx, call, read).await
        };
        if let Some(answer) = answer {
            if answer != expected {
                ctx.wrong(
                    self.task,
                    call.0,
                    &input,
                    &answer.to_string(),
                    &expected.to_string(),
                );
            }
        }
    }

    async fn client(&mut self, call: (&'static str, Class), key: usize) {
        let ctx = Arc::clone(&self.ctx);
        let c = ctx.cache.client();
        let [text, bytes, json_key] = &self.kv[key];
        let ver = |kind| ctx.model.of(self.task, key, kind);
        match call.0 {
            "client.set" => {
                let v = ver(Kind::Text).attempt();
                let value = format!("v{v}");
                let write = c.set(text, &value, Some(TTL));
                if self.rec.call(&ctx, call, write).await.is_some() {
                    ver(Kind::Text).ack(v);
                }
            }
            "client.set_bytes" => {
                let v = ver(Kind::Bytes).attempt();
                let write = c.set_bytes(bytes, Bytes::from(format!("v{v}")), None);
                if self.rec.call(&ctx, call, write).await.is_some() {
                    ver(Kind::Bytes).ack(v);
                }
            }
            "client.set_json" => {
                let v = ver(Kind::Json).attempt();
                let doc = json!({ "v": v });
                let write = c.set_json(json_key, &doc, Some(TTL));
                if self.rec.call(&ctx, call, write).await.is_some() {
                    ver(Kind::Json).ack(v);
                }
            }
            "client.delete" => {
                let v = ver(Kind::Text).delete();
                if self.rec.call(&ctx, call, c.delete(text)).await.is_some() {
                    ver(Kind::Text).ack(v);
                }
            }
            "client.get" => {
                let lo = ver(Kind::Text).floor(ctx.fail_open);
                if let Some(Some(s)) = self.rec.call(&ctx, call, c.get(text)).await {
                    self.check_text(call.0, text, ver(Kind::Text), lo, s.as_bytes());
                }
            }
            "client.get_bytes" => {
                let lo = ver(Kind::Bytes).floor(ctx.fail_open);
                if let Some(Some(b)) = self.rec.call(&ctx, call, c.get_bytes(bytes)).await {
                    self.check_text(call.0, bytes, ver(Kind::Bytes), lo, &b);
                }
            }
            "client.get_json" => {
                let lo = ver(Kind::Json).floor(ctx.fail_open);
                let read = c.get_json::<Value>(json_key);
                if let Some(Some(doc)) = self.rec.call(&ctx, call, read).await {
                    match json_version(&doc) {
                        Some(v) => ctx.check(self.task, call.0, json_key, ver(Kind::Json), lo, v),
                        None => {
                            ctx.wrong(self.task, call.0, json_key, &doc.to_string(), "{\"v\": v}")
                        }
                    }
                }
            }
            "client.mget" => {
                let (t, b) = (ver(Kind::Text), ver(Kind::Bytes));
                let los = [t.floor(ctx.fail_open), b.floor(ctx.fail_open)];
                let keys = [text.as_str(), bytes.as_str()];
                let read = c.mget(&keys);
                let Some(found) = self.rec.call(&ctx, call, read).await else {
                    return;
                };
                if !ctx.answered_all(self.task, call.0, keys.len(), found.len()) {
                    return;
                }
                for (j, (k, ver)) in [(text, t), (bytes, b)].into_iter().enumerate() {
                    if let Some(value) = &found[j] {
                        self.check_text(call.0, k, ver, los[j], value);
                    }
                }
            }
            "client.exists" => {
                let ver = ver(Kind::Text);
                let lo = ver.floor(ctx.fail_open);
                if let Some(true) = self.rec.call(&ctx, call, c.exists(text)).await {
                    let hi = ver.ceiling();
                    if !ver.holds_value(lo, hi) {
                        let expected = format!("false: no version in {lo}..={hi} holds a value");
                        ctx.wrong(self.task, call.0, text, "true", &expected);
                    }
                }
            }
            other => unreachable!("{other}"),
        }
    }

    fn check_text(&self, call: &str, key: &str, ver: &Version, lo: u64, value: &[u8]) {
        match std::str::from_utf8(value).ok().and_then(text_version) {
            Some(v) => self.ctx.check(self.task, call, key, ver, lo, v),
            None => {
                let got = format!("{:?}", String::from_utf8_lossy(value));
                self.ctx.wrong(self.task, call, key, &got, "v{version}");
            }
        }
    }
}

/// A strategy's tick: `TICK_READS` reads in a row over every task's series,
/// one tick a millisecond; each read checked as the load's are.
async fn tick(ctx: Arc<Ctx>) -> Recorder {
    let mut rec = Recorder::new();
    let series: Vec<(usize, usize, String)> = (0..ctx.tasks)
        .flat_map(|t| (0..KEYS_PER_TASK).map(move |k| (t, k, symbol(t, k))))
        .collect();
    let call = ("ohlcv.get_latest_bar", Class::OhlcvRead);
    let mut next = 0;
    while Instant::now() < ctx.deadline {
        let started = Instant::now();
        for _ in 0..TICK_READS {
            let (task, key, sym) = &series[next % series.len()];
            next += 1;
            let ver = ctx.model.of(*task, *key, Kind::Series);
            let lo = ver.floor(ctx.fail_open);
            let o = ctx.cache.ohlcv();
            let read = o.get_latest_bar(sym, TF);
            if let Some(Some(bar)) = rec.call(&ctx, call, read).await {
                match bars_version(&[bar], &newest_times(1)) {
                    Ok(v) => ctx.check(*task, "tick get_latest_bar", sym, ver, lo, v),
                    Err(why) => ctx.wrong(*task, "tick get_latest_bar", sym, &why, "a soak bar"),
                }
            }
        }
        rec.longest_tick = rec.longest_tick.max(started.elapsed());
        rec.ticks += 1;
        tokio::time::sleep(TICK_EVERY).await;
    }
    rec
}

// ---------------------------------------------------------------------------
// The run and its report

/// What the run saw, for the text and the JSON summary.
struct Summary {
    duration: Duration,
    /// In fail-open mode, when it last turned a failure into a miss or a
    /// dropped write.
    last_absorbed: Option<Duration>,
    call_deadline: Duration,
    faults: Vec<FaultEvent>,
    rec: Recorder,
    wrong: u64,
    wrong_shown: Vec<String>,
    odd: Vec<String>,
    panics: usize,
    hung: usize,
    computations: u64,
    rss_start: Option<u64>,
    rss_half: Option<u64>,
    rss_end: Option<u64>,
    stats: CacheStats,
    /// Per class, the end of its last success since the start, if any.
    last_ok: Vec<(&'static str, Option<Duration>)>,
}

fn run(args: &Args, binary: PathBuf) -> Result<bool, String> {
    let server = Server::start(binary)?;
    let url = server.url();
    let guard = ServerGuard(Arc::new(Mutex::new(server)));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let summary = runtime.block_on(soak(args, &url, &guard.0))?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    drop(guard);
    Ok(report(args, &summary))
}

async fn soak(args: &Args, url: &str, server: &Arc<Mutex<Server>>) -> Result<Summary, String> {
    let config = args.config(url).map_err(|e| format!("config: {e}"))?;
    let cache = CacheManager::connect(config)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let rss_start = rss_kb();
    let total = Duration::from_secs(args.seconds);
    let start = Instant::now();
    let faults = Arc::new(Mutex::new(Vec::new()));
    let ctx = Arc::new(Ctx {
        cache: cache.clone(),
        model: Model::new(args.tasks),
        tasks: args.tasks,
        fail_open: args.fail_open,
        start,
        deadline: start + total,
        call_deadline: cache.config().call_deadline(),
        computations: AtomicU64::new(0),
        last_ok: Default::default(),
        wrong: AtomicU64::new(0),
        wrong_shown: Mutex::new(Vec::new()),
        odd: Mutex::new(Vec::new()),
        faults: Arc::clone(&faults),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let injector = {
        let (server, faults, stop) = (Arc::clone(server), Arc::clone(&faults), Arc::clone(&stop));
        let plan = schedule(args.cycle, total);
        let cycle = args.cycle;
        std::thread::spawn(move || inject_faults(server, plan, cycle, start, faults, stop))
    };
    let mut handles: Vec<_> = (0..args.tasks)
        .map(|t| tokio::spawn(Worker::new(Arc::clone(&ctx), t).run()))
        .collect();
    handles.push(tokio::spawn(tick(Arc::clone(&ctx))));
    let watcher = tokio::spawn(watch_fail_open(cache.clone(), start, ctx.deadline));
    // Halfway as well as at the end: growth that stops is the allocator and
    // the caches filling up; growth that goes on is a leak.
    let rss_half = tokio::spawn(async move {
        tokio::time::sleep(total / 2).await;
        rss_kb()
    });

    let (mut rec, mut panics, mut hung) = (Recorder::new(), 0, 0);
    let join_by = tokio::time::Instant::now() + total + JOIN_GRACE;
    for handle in handles {
        let abort = handle.abort_handle();
        match tokio::time::timeout_at(join_by, handle).await {
            Ok(Ok(task_rec)) => rec.merge(task_rec),
            Ok(Err(e)) if e.is_panic() => panics += 1,
            Ok(Err(_)) => hung += 1,
            Err(_) => {
                abort.abort();
                hung += 1;
            }
        }
    }
    let duration = start.elapsed();
    let last_absorbed = watcher.await.ok().flatten();
    stop.store(true, SeqCst);
    let _ = injector.join();
    let rss_end = rss_kb();
    let rss_half = rss_half.await.ok().flatten();
    let stats = cache.stats();
    cache.disconnect().await;

    let last_ok = CLASSES
        .iter()
        .map(|&(class, name)| {
            let us = ctx.last_ok[class as usize].load(SeqCst);
            (name, (us > 0).then(|| Duration::from_micros(us - 1)))
        })
        .collect();
    let faults = lock(&faults).clone();
    let wrong_shown = lock(&ctx.wrong_shown).clone();
    let odd = lock(&ctx.odd).clone();
    Ok(Summary {
        duration,
        last_absorbed,
        call_deadline: ctx.call_deadline,
        faults,
        rec,
        wrong: ctx.wrong.load(SeqCst),
        wrong_shown,
        odd,
        panics,
        hung,
        computations: ctx.computations.load(SeqCst),
        rss_start,
        rss_half,
        rss_end,
        stats,
        last_ok,
    })
}

/// When fail-open mode last absorbed a failure, from the stats' counters
/// polled every 20 ms: there, an `Ok` does not prove that Redis answered.
async fn watch_fail_open(cache: CacheManager, start: Instant, until: Instant) -> Option<Duration> {
    let absorbed = |s: CacheStats| s.fail_open_misses + s.fail_open_dropped_writes;
    let (mut seen, mut last) = (absorbed(cache.stats()), None);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = absorbed(cache.stats());
        if now != seen {
            (seen, last) = (now, Some(start.elapsed()));
        }
    }
    last
}

/// `VmRSS` of this process in kB; `None` off Linux.
fn rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    line.trim().trim_end_matches("kB").trim().parse().ok()
}

impl Summary {
    fn count(&self, fault: Fault) -> usize {
        self.faults.iter().filter(|f| f.fault == fault).count()
    }

    /// When the last fault was over: recovery is counted from there.
    fn last_fault_end(&self) -> Duration {
        self.faults
            .iter()
            .filter_map(|f| f.ended)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Where recovery is counted from: the last fault's end; in fail-open
    /// mode, where a failure reads as a success, the last failure it
    /// absorbed too, if later.
    fn recovery_from(&self) -> Duration {
        self.last_fault_end()
            .max(self.last_absorbed.unwrap_or_default())
    }

    /// The classes with no success after the recovery point.
    fn not_recovered(&self) -> Vec<&'static str> {
        let end = self.recovery_from();
        self.last_ok
            .iter()
            .filter(|(_, ok)| !ok.is_some_and(|t| t > end))
            .map(|(name, _)| *name)
            .collect()
    }

    /// Why the run failed; empty when it passed.
    fn failures(&self) -> Vec<String> {
        let mut why = Vec::new();
        if self.wrong > 0 {
            why.push(format!("{} wrong reads", self.wrong));
        }
        if self.panics > 0 {
            why.push(format!("{} tasks panicked", self.panics));
        }
        if self.hung > 0 {
            why.push(format!(
                "{} tasks still running {JOIN_GRACE:?} after the end",
                self.hung
            ));
        }
        if let Some(f) = self.faults.iter().find(|f| f.note.starts_with("FAILED")) {
            why.push(format!(
                "the {} at {:.1} s {}",
                f.fault.name(),
                f.at.as_secs_f64(),
                f.note
            ));
        }
        let from = self.recovery_from();
        if self
            .last_absorbed
            .is_some_and(|t| t + QUIET_END > self.duration)
        {
            why.push(format!(
                "fail-open mode still absorbed failures in the last {QUIET_END:?}"
            ));
        }
        let missing = self.not_recovered();
        if !missing.is_empty() {
            why.push(format!(
                "no success after {:.3} s (the recovery point) for: {}",
                from.as_secs_f64(),
                missing.join(", ")
            ));
        }
        why
    }
}

/// Prints the summary, as text and as one JSON line; true when it passed.
fn report(args: &Args, s: &Summary) -> bool {
    let secs = s.duration.as_secs_f64();
    let per_sec = s.rec.calls as f64 / secs;
    let kb = |v: Option<u64>| v.map_or("n/a".to_string(), |v| format!("{} kB", thousands(v)));
    let errors: Vec<String> = s
        .rec
        .errors
        .iter()
        .map(|(k, n)| format!("{k} {}", thousands(*n)))
        .collect();
    let failures = s.failures();

    println!("soak: {}", args.describe());
    println!("duration: {secs:.1} s");
    println!(
        "faults: {} freezes, {} connection drops, {} kills+restarts",
        s.count(Fault::Freeze),
        s.count(Fault::Drop),
        s.count(Fault::KillRestart)
    );
    for f in &s.faults {
        let end = f
            .ended
            .map_or("-".into(), |e| format!("{:.3}", e.as_secs_f64()));
        println!(
            "  {:>8.3}..{end} s  {} {}",
            f.at.as_secs_f64(),
            f.fault.name(),
            f.note
        );
    }
    println!(
        "calls: {} ({}/s), {} of them ok",
        thousands(s.rec.calls),
        thousands(per_sec as u64),
        thousands(s.rec.ok_latency_us.len())
    );
    let errors = if errors.is_empty() {
        "none".to_string()
    } else {
        errors.join(", ")
    };
    println!("errors: {errors}");
    println!("health_check false: {}", s.rec.health_false);
    for line in &s.odd {
        println!("  odd error {line}");
    }
    println!("wrong reads: {}", s.wrong);
    for line in &s.wrong_shown {
        println!("  WRONG {line}");
    }
    println!("panics: {}", s.panics);
    println!("llm computations: {}", thousands(s.computations));
    println!("latency, every call: {}", quantiles(&s.rec.latency_us));
    println!("latency, ok calls: {}", quantiles(&s.rec.ok_latency_us));
    for (name, slow) in &s.rec.slow {
        println!(
            "  over the call deadline ({} ms + {} ms): {name} {} times, longest {:.1} ms at {:.3} s",
            s.call_deadline.as_millis(),
            DEADLINE_SLACK.as_millis(),
            slow.calls,
            slow.longest.as_secs_f64() * 1e3,
            slow.at.as_secs_f64()
        );
    }
    println!(
        "longest tick ({TICK_READS} get_latest_bar): {:.1} ms over {} ticks",
        s.rec.longest_tick.as_secs_f64() * 1e3,
        thousands(s.rec.ticks)
    );
    println!(
        "client RSS: {} at start, {} halfway, {} at end",
        kb(s.rss_start),
        kb(s.rss_half),
        kb(s.rss_end)
    );
    // The totals; the per-operation rows would be a screen each.
    let mut totals = s.stats.clone();
    totals.ops.clear();
    println!("stats: {totals:?}");
    if failures.is_empty() {
        println!(
            "result: PASS (every class succeeded after {:.3} s, the {})",
            s.recovery_from().as_secs_f64(),
            if s.recovery_from() > s.last_fault_end() {
                "last failure fail-open absorbed"
            } else {
                "last fault's end"
            }
        );
    } else {
        println!("result: FAIL: {}", failures.join("; "));
    }
    println!("soak-json: {}", to_json(args, s, &failures));
    failures.is_empty()
}

fn to_json(args: &Args, s: &Summary, failures: &[String]) -> Value {
    let st = &s.stats;
    let slow: BTreeMap<&str, Value> = s
        .rec
        .slow
        .iter()
        .map(|(name, slow)| {
            let longest_ms = slow.longest.as_secs_f64() * 1e3;
            let at_s = slow.at.as_secs_f64();
            (
                *name,
                json!({ "calls": slow.calls, "longest_ms": longest_ms, "at_s": at_s }),
            )
        })
        .collect();
    json!({
        "flags": {
            "seconds": args.seconds, "tasks": args.tasks, "cycle_secs": args.cycle.as_secs(),
            "near": args.near, "breaker": args.breaker, "fail_open": args.fail_open,
        },
        "duration_s": s.duration.as_secs_f64(),
        "faults": {
            "freeze": s.count(Fault::Freeze),
            "drop": s.count(Fault::Drop),
            "kill_restart": s.count(Fault::KillRestart),
            "last_ended_s": s.last_fault_end().as_secs_f64(),
            "recovery_from_s": s.recovery_from().as_secs_f64(),
        },
        "calls": s.rec.calls,
        "calls_per_s": s.rec.calls as f64 / s.duration.as_secs_f64(),
        "errors": s.rec.errors,
        "health_false": s.rec.health_false,
        "wrong": s.wrong,
        "panics": s.panics,
        "hung": s.hung,
        "llm_computations": s.computations,
        "ok_calls": s.rec.ok_latency_us.len(),
        "latency_us": quantiles_json(&s.rec.latency_us),
        "ok_latency_us": quantiles_json(&s.rec.ok_latency_us),
        "over_deadline": slow,
        "longest_tick_ms": s.rec.longest_tick.as_secs_f64() * 1e3,
        "ticks": s.rec.ticks,
        "rss_kb": { "start": s.rss_start, "half": s.rss_half, "end": s.rss_end },
        "stats": {
            "hits": st.hits, "misses": st.misses, "errors": st.errors,
            "codec_errors": st.codec_errors,
            "fail_open_misses": st.fail_open_misses,
            "fail_open_dropped_writes": st.fail_open_dropped_writes,
            "near_hits": st.near_hits, "near_misses": st.near_misses,
            "near_invalidations": st.near_invalidations, "near_flushes": st.near_flushes,
            "near_serving": st.near_serving,
            "breaker_open": st.breaker_open, "breaker_opens": st.breaker_opens,
            "breaker_rejected": st.breaker_rejected,
        },
        "not_recovered": s.not_recovered(),
        "pass": failures.is_empty(),
        "failures": failures,
    })
}

fn quantiles(h: &Histogram<u64>) -> String {
    let q = |q| thousands(h.value_at_quantile(q));
    let max = thousands(h.max());
    format!("p50 {} µs, p99 {} µs, max {max} µs", q(0.5), q(0.99))
}

fn quantiles_json(h: &Histogram<u64>) -> Value {
    let q = |q| h.value_at_quantile(q);
    json!({ "p50": q(0.5), "p99": q(0.99), "max": h.max() })
}

/// 1234567 as "1,234,567".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
