//! Side by side, in one run against one `redis-server` this program starts:
//! the floor (one raw redis-rs GET of as many bytes as a 100-bar reply),
//! iftb-cache, and the Python original's design ported to Rust.
//!
//! ```sh
//! cargo run --release --example compare            # about a minute
//! cargo run --release --example compare -- --quick # a smoke run, seconds
//! cargo run --release --example compare -- --svg docs/compare.svg
//! ```
//!
//! Besides the table it writes the latency distributions at 100,000 keys as
//! CDF curves in an SVG (`--svg PATH`, by default `target/compare.svg`).
//!
//! Reads are interleaved round by round (the order rotates), so that the
//! ratios hold on a noisy machine even when absolute times drift. Every
//! connection is a redis-rs `ConnectionManager` (what iftb-cache uses) on one
//! current-thread tokio runtime. Data is seeded: every run reads the same bars.
//!
//! The old design, as the Python `iftb.data.cache` did it: one JSON document
//! per bar at `ohlcv:{sym}:{tf}:{ts}`, one `SETEX` round trip per bar, and
//! `get_bars` = `SCAN MATCH ohlcv:{sym}:{tf}:* COUNT 100` over the whole
//! keyspace, then `MGET` + JSON parse + sort. The port is its cheapest
//! reading: it sorts the keys by their timestamp and fetches only the newest
//! `limit`, so its ratio is a lower bound.

#[path = "../benches/common/mod.rs"]
mod common;
#[path = "../benches/common/plot.rs"]
mod plot;
#[path = "../tests/support/mod.rs"]
mod support;

use common::samples::{fmt_time, load_average, ratio, thousands, Res, Samples};
use iftb_cache::{codec, Bar, BarWriteOptions, CacheConfig, CacheManager, Timeframe};
use plot::{Curve, Stroke};
use plotters::style::RGBColor;
use redis::aio::ConnectionManager;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const SYMBOL: &str = "BTCUSDT";
const TF: Timeframe = Timeframe::H1;
const SERIES_LEN: usize = 1_000;
const LIMIT: usize = 100;
const TTL: Duration = Duration::from_secs(3_600);
/// The old design's SCAN step (redis-py's `scan_iter(match=.., count=100)`).
const SCAN_COUNT: usize = 100;
/// The series' sorted set, as `src/keys.rs` lays it out in the default namespace.
/// The naive sorted-set layout, for comparison: one member per bar record,
/// scored by open time (what iftb-cache stored before it packed bars in runs).
const NAIVE_KEY: &str = "naive:ohlcv:{BTCUSDT:1h}";

/// How many samples each measurement takes, and where the SVG goes.
struct Plan {
    quick: bool,
    rounds: usize,
    /// One old-design read every this many rounds, at 10,000 and 100,000 keys.
    old_every: [usize; 2],
    writes: usize,
    write_bars: usize,
    svg: PathBuf,
}

impl Plan {
    fn from_args() -> Res<Self> {
        let (mut quick, mut svg) = (false, PathBuf::from("target/compare.svg"));
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                "--svg" => svg = args.next().ok_or("--svg needs a path")?.into(),
                _ => match arg.strip_prefix("--svg=") {
                    Some(path) => svg = path.into(),
                    None => return Err(format!("unknown argument {arg:?}").into()),
                },
            }
        }
        Ok(Plan {
            quick,
            rounds: if quick { 500 } else { 10_000 },
            old_every: [25, 100],
            writes: if quick { 3 } else { 10 },
            write_bars: if quick { 20_000 } else { 100_000 },
            svg,
        })
    }
}

/// The Python original's OHLCV layout, ported faithfully.
struct OldDesign {
    conn: ConnectionManager,
}

impl OldDesign {
    fn key(symbol: &str, tf: Timeframe, ts: i64) -> String {
        format!("ohlcv:{symbol}:{tf}:{ts}")
    }

    fn setex(symbol: &str, bar: &Bar) -> Res<redis::Cmd> {
        let mut cmd = redis::cmd("SETEX");
        cmd.arg(Self::key(symbol, TF, bar.timestamp))
            .arg(TTL.as_secs())
            .arg(serde_json::to_vec(bar)?);
        Ok(cmd)
    }

    /// One `SETEX` round trip per bar, as the original's loop awaited them.
    async fn set_bars(&self, symbol: &str, bars: &[Bar], per_set: &mut Samples) -> Res<()> {
        for bar in bars {
            let cmd = Self::setex(symbol, bar)?;
            let mut conn = self.conn.clone();
            let set = async { Ok(cmd.query_async::<()>(&mut conn).await?) };
            per_set.time(set).await?;
        }
        Ok(())
    }

    /// Every key of the series, found by scanning the whole keyspace.
    async fn scan(&self, symbol: &str) -> Res<Vec<String>> {
        let pattern = format!("ohlcv:{symbol}:{TF}:*");
        let (mut cursor, mut keys) = (0u64, Vec::new());
        let mut conn = self.conn.clone();
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor).arg("MATCH").arg(&pattern);
            let (next, batch): (u64, Vec<String>) = scan
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut conn)
                .await?;
            keys.extend(batch);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    /// SCAN, sort the keys by timestamp, MGET the newest `limit`, parse, sort.
    async fn get_bars(&self, symbol: &str, limit: usize) -> Res<Option<Vec<Bar>>> {
        let mut keys = self.scan(symbol).await?;
        if keys.is_empty() {
            return Ok(None);
        }
        let ts = |k: &String| k.rsplit(':').next().and_then(|t| t.parse::<i64>().ok());
        keys.sort_by_key(|k| std::cmp::Reverse(ts(k)));
        keys.truncate(limit);
        let mget = redis::cmd("MGET").arg(&keys).to_owned();
        let values: Vec<Option<Vec<u8>>> = mget.query_async(&mut self.conn.clone()).await?;
        let parse = |v: &Vec<u8>| serde_json::from_slice::<Bar>(v);
        let mut bars = values
            .iter()
            .flatten()
            .map(parse)
            .collect::<Result<Vec<_>, _>>()?;
        bars.sort_by_key(|b| std::cmp::Reverse(b.timestamp));
        Ok(Some(bars))
    }
}

/// The server, the clients under test, and an admin connection.
struct Bench {
    server: support::RedisServer,
    cache: CacheManager,
    /// The same cache with `metrics(false)`: what the per-call counting costs.
    unmetered: CacheManager,
    floor: ConnectionManager,
    old: OldDesign,
    admin: ConnectionManager,
}

impl Bench {
    async fn start() -> Res<Self> {
        let server = support::RedisServer::start();
        let cache = Self::connect_cache(&server, true).await?;
        let unmetered = Self::connect_cache(&server, false).await?;
        Ok(Bench {
            unmetered,
            floor: Self::connect(&server).await?,
            old: OldDesign {
                conn: Self::connect(&server).await?,
            },
            admin: Self::connect(&server).await?,
            cache,
            server,
        })
    }

    async fn connect(server: &support::RedisServer) -> Res<ConnectionManager> {
        let client = redis::Client::open(server.url())?;
        Ok(client.get_connection_manager().await?)
    }

    async fn connect_cache(server: &support::RedisServer, metrics: bool) -> Res<CacheManager> {
        let builder = CacheConfig::builder().redis_url(&server.url());
        let config = builder.metrics(metrics).build()?;
        Ok(CacheManager::connect(config).await?)
    }

    async fn admin<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Res<T> {
        Ok(cmd.query_async(&mut self.admin.clone()).await?)
    }

    async fn info(&self, section: &str, field: &str) -> Res<String> {
        let info: String = self.admin(redis::cmd("INFO").arg(section)).await?;
        let prefix = format!("{field}:");
        let value = info.lines().find_map(|l| l.strip_prefix(prefix.as_str()));
        Ok(value
            .ok_or_else(|| format!("no {field} in INFO"))?
            .trim()
            .into())
    }

    async fn used_memory(&self) -> Res<i64> {
        // Let the server free the buffers of a connection that just closed.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(self.info("memory", "used_memory").await?.parse()?)
    }

    async fn dbsize(&self) -> Res<usize> {
        self.admin(&redis::cmd("DBSIZE")).await
    }
}

/// Redis memory per bar of a 1,000-bar series in each layout, written through
/// a connection of its own that is closed before measuring (no client buffers).
async fn memory_per_bar(b: &Bench) -> Res<(f64, f64, f64)> {
    let bars = common::bars(SERIES_LEN, TF.millis() as i64, common::SEED);
    // Write a series of the same size first: the script cache and the
    // connection's query buffer grow once, and their bytes are not the series'.
    let ohlcv = b.cache.ohlcv();
    ohlcv
        .set_bars_with("WARMUSDT", TF, &bars, BarWriteOptions::new().ttl(TTL))
        .await?;
    ohlcv.invalidate("WARMUSDT", TF).await?;
    let m0 = b.used_memory().await?;
    ohlcv
        .set_bars_with("MEMUSDT", TF, &bars, BarWriteOptions::new().ttl(TTL))
        .await?;
    let m1 = b.used_memory().await?;
    let key = format!("iftb:v2:ohlcv:{{MEMUSDT:{TF}}}");
    let mut usage: i64 = 0;
    for key in [key.clone(), format!("{key}:head")] {
        let cmd = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(0)
            .to_owned();
        usage += b.admin::<i64>(&cmd).await?;
    }
    let old = OldDesign {
        conn: Bench::connect(&b.server).await?,
    };
    old.set_bars("MEMUSDT", &bars, &mut Samples::default())
        .await?;
    drop(old);
    let m2 = b.used_memory().await?;
    b.admin::<()>(&redis::cmd("FLUSHDB")).await?; // our own server: nothing else is on it
    let per_bar = |d: i64| d as f64 / SERIES_LEN as f64;
    Ok((per_bar(m1 - m0), per_bar(usage), per_bar(m2 - m1)))
}

/// The series both designs read, and the floor's values: the very bytes of
/// the newest 100 records as one value, and of the newest one.
async fn load(b: &Bench) -> Res<()> {
    let bars = common::bars(SERIES_LEN, TF.millis() as i64, common::SEED);
    let ohlcv = b.cache.ohlcv();
    ohlcv
        .set_bars_with(SYMBOL, TF, &bars, BarWriteOptions::new().ttl(TTL))
        .await?;
    let mut pipe = redis::pipe();
    for bar in &bars {
        pipe.add_command(OldDesign::setex(SYMBOL, bar)?).ignore();
    }
    for (bar, record) in bars.iter().zip(codec::encode_bars(&bars)) {
        pipe.cmd("ZADD")
            .arg(NAIVE_KEY)
            .arg(bar.timestamp)
            .arg(record.as_ref())
            .ignore();
    }
    let newest: Vec<u8> = codec::encode_bars(&bars[SERIES_LEN - LIMIT..]).concat();
    pipe.cmd("SET").arg("floor:100").arg(&newest).ignore();
    let last = &newest[newest.len() - codec::BAR_LEN..];
    pipe.cmd("SET").arg("floor:1").arg(last).ignore();
    pipe.query_async::<()>(&mut b.admin.clone()).await?;
    check_same_answer(b).await
}

/// Both designs must return the same 100 bars, newest first (to the last bit
/// or two: serde_json's default float parsing is not always correctly rounded).
async fn check_same_answer(b: &Bench) -> Res<()> {
    let ours = b.cache.ohlcv().get_bars(SYMBOL, TF, LIMIT).await?;
    let old = b.old.get_bars(SYMBOL, LIMIT).await?;
    let (ours, old) = (ours.unwrap_or_default(), old.unwrap_or_default());
    let near = |x: f64, y: f64| (x - y).abs() <= 1e-12 * x.abs().max(1.0);
    let fields = |b: &Bar| [b.open, b.high, b.low, b.close, b.volume];
    let same = |(a, o): (&Bar, &Bar)| {
        let prices = fields(a).into_iter().zip(fields(o));
        a.timestamp == o.timestamp && prices.into_iter().all(|(x, y)| near(x, y))
    };
    if ours.len() != LIMIT || ours.len() != old.len() || !ours.iter().zip(&old).all(same) {
        return Err("the two designs disagree on the newest 100 bars".into());
    }
    Ok(())
}

/// Other symbols' bars in the old layout until the db holds `target` keys.
async fn fill_to(b: &Bench, target: usize) -> Res<usize> {
    let mut n = b.dbsize().await?;
    let mut symbol = 0u64;
    while n < target {
        let bars = common::bars(SERIES_LEN.min(target - n), TF.millis() as i64, symbol);
        let mut pipe = redis::pipe();
        for bar in &bars {
            let cmd = OldDesign::setex(&format!("FILL{symbol:05}USDT"), bar)?;
            pipe.add_command(cmd).ignore();
        }
        pipe.query_async::<()>(&mut b.admin.clone()).await?;
        n = b.dbsize().await?;
        symbol += 1;
    }
    Ok(n)
}

/// The reads of one keyspace size.
#[derive(Default)]
struct Reads {
    floor: Samples,
    floor_1: Samples,
    raw_zrange: Samples,
    get_bars: Samples,
    latest: Samples,
    latest_unmetered: Samples,
    old_get_bars: Samples,
}

async fn get(conn: &ConnectionManager, key: &str) -> Res<Option<usize>> {
    let cmd = redis::cmd("GET").arg(key).to_owned();
    let value: Option<Vec<u8>> = cmd.query_async(&mut conn.clone()).await?;
    Ok(value.map(|v| v.len()))
}

/// The naive layout's read: one member per bar, raw redis-rs, no decoding.
async fn zrange(conn: &ConnectionManager) -> Res<Option<usize>> {
    let mut cmd = redis::cmd("ZRANGE");
    cmd.arg(NAIVE_KEY).arg(0).arg(LIMIT - 1).arg("REV");
    let records: Vec<Vec<u8>> = cmd.query_async(&mut conn.clone()).await?;
    match records.len() {
        LIMIT => Ok(Some(LIMIT)),
        n => Err(format!("{NAIVE_KEY} gave {n} records, expected {LIMIT}").into()),
    }
}

/// One read of kind `which` into `r`.
async fn read_once(b: &Bench, r: &mut Reads, which: usize) -> Res<()> {
    let ohlcv = b.cache.ohlcv();
    let bars = async { Ok(ohlcv.get_bars(SYMBOL, TF, LIMIT).await?.map(|v| v.len())) };
    let latest = async { Ok(ohlcv.get_latest_bar(SYMBOL, TF).await?.map(|_| 1)) };
    let unmetered = b.unmetered.ohlcv();
    let latest_unmetered = async { Ok(unmetered.get_latest_bar(SYMBOL, TF).await?.map(|_| 1)) };
    let old = async { Ok(b.old.get_bars(SYMBOL, LIMIT).await?.map(|v| v.len())) };
    let got = match which {
        0 => r.floor.time(get(&b.floor, "floor:100")).await?,
        1 => r.floor_1.time(get(&b.floor, "floor:1")).await?,
        2 => r.raw_zrange.time(zrange(&b.floor)).await?,
        3 => r.get_bars.time(bars).await?,
        4 => r.latest.time(latest).await?,
        5 => r.latest_unmetered.time(latest_unmetered).await?,
        _ => r.old_get_bars.time(old).await?,
    };
    match got {
        Some(0) | None => Err(format!("read {which} found nothing").into()),
        Some(_) => Ok(()),
    }
}

/// `rounds` rounds of the six fast reads in a rotating order, and one old-design
/// read every `old_every` rounds; the first tenth of the rounds only warms up.
async fn measure_reads(b: &Bench, rounds: usize, old_every: usize) -> Res<Reads> {
    let warm_up = rounds / 10;
    let (mut r, mut scratch) = (Reads::default(), Reads::default());
    for i in 0..warm_up + rounds {
        let r = if i < warm_up { &mut scratch } else { &mut r };
        for step in 0..6 {
            read_once(b, r, (step + i) % 6).await?;
        }
        if i.is_multiple_of(old_every) {
            read_once(b, r, 6).await?;
        }
    }
    Ok(r)
}

/// `set_bars` of `n` bars into a new series, `times` times; then the old
/// design's one SETEX per bar, once.
async fn measure_writes(b: &Bench, plan: &Plan) -> Res<(Samples, Samples, Duration)> {
    let bars = common::bars(plan.write_bars, TF.millis() as i64, common::SEED + 7);
    let ohlcv = b.cache.ohlcv();
    let mut ours = Samples::default();
    for _ in 0..plan.writes {
        ohlcv.invalidate("WRITEUSDT", TF).await?;
        let write = async {
            Ok(ohlcv
                .set_bars_with("WRITEUSDT", TF, &bars, BarWriteOptions::new().ttl(TTL))
                .await?)
        };
        ours.time(write).await?;
    }
    let mut per_set = Samples::default();
    let start = Instant::now();
    b.old.set_bars("WRITEUSDT", &bars, &mut per_set).await?;
    Ok((ours, per_set, start.elapsed()))
}

/// One table row; `base` is the floor its ratios are taken against.
fn row(what: &str, keys: &str, s: &Samples, base: Option<&Samples>, note: &str) {
    let n = thousands(s.0.len() as u64);
    let (p50, p99) = (fmt_time(s.p50()), fmt_time(s.p99()));
    let (r50, r99) = match base {
        Some(f) => (
            format!("{:.2}×", ratio(s.p50(), f.p50())),
            format!("{:.2}×", ratio(s.p99(), f.p99())),
        ),
        None => (String::new(), String::new()),
    };
    println!("| {what} | {keys} | {n} | {p50} | {p99} | {r50} | {r99} | {note} |");
}

fn print_reads(keys: usize, r: &Reads) {
    let keys = thousands(keys as u64);
    let big = LIMIT * codec::BAR_LEN;
    let big = format!("floor: one `GET` of {} B", thousands(big as u64));
    row(
        &big,
        &keys,
        &r.floor,
        Some(&r.floor),
        "the floor of a 100-bar read",
    );
    let target = "target ≤ 1.1× (p50), ≤ 1.3× (p99): see examples/targets.rs";
    row(
        "iftb-cache `get_bars(.., 100)`",
        &keys,
        &r.get_bars,
        Some(&r.floor),
        target,
    );
    let diag = "naive layout: a member per bar; raw redis-rs, no decoding";
    row(
        "naive `ZRANGE key 0 99 REV`",
        &keys,
        &r.raw_zrange,
        Some(&r.floor),
        diag,
    );
    let small = format!("floor: one `GET` of {} B", codec::BAR_LEN);
    row(
        &small,
        &keys,
        &r.floor_1,
        Some(&r.floor_1),
        "the floor of a 1-bar read",
    );
    let vs = "ratios against the 1-bar floor";
    row(
        "iftb-cache `get_latest_bar`",
        &keys,
        &r.latest,
        Some(&r.floor_1),
        vs,
    );
    let cost = ratio(r.latest.p50(), r.latest_unmetered.p50());
    let note = format!("metrics on ÷ off, p50: **{cost:.3}×** (target ≤ 1.05×)");
    row(
        "iftb-cache `get_latest_bar`, `metrics(false)`",
        &keys,
        &r.latest_unmetered,
        Some(&r.floor_1),
        &note,
    );
    let old = &r.old_get_bars;
    let slower = ratio(old.p50(), r.get_bars.p50());
    let note = format!("**{slower:.0}× slower than iftb-cache** (p50)");
    row(
        "old design `get_bars(.., 100)`: SCAN + MGET + parse + sort",
        &keys,
        old,
        Some(&r.floor),
        &note,
    );
}

fn print_writes(n: usize, ours: &Samples, per_set: &Samples, old_total: Duration) {
    let ours_rate = n as f64 / ours.p50().as_secs_f64();
    let old_rate = n as f64 / old_total.as_secs_f64();
    let n = thousands(n as u64);
    let what = format!("iftb-cache `set_bars` of {n} bars, new series (whole call)");
    let note = format!(
        "**{} bars/s** (p50), {:.0}× the old design; target ≥ 1,500,000",
        thousands(ours_rate as u64),
        ours_rate / old_rate
    );
    row(&what, "", ours, None, &note);
    let what = format!("old design: one `SETEX` per bar, {n} bars (each `SETEX`)");
    let secs = old_total.as_secs_f64();
    let note = format!("{} bars/s, {secs:.2} s in all", thousands(old_rate as u64));
    row(&what, "", per_set, None, &note);
}

fn print_memory(ours: f64, usage: f64, old: f64) {
    let blank = "| | | | | | |";
    let what = "Redis memory per cached bar (`used_memory` delta, 1,000-bar series)";
    println!(
        "| {what}: iftb-cache, a sorted set of 42-bar runs and a head {blank} **{ours:.0} B** |"
    );
    let key = "Redis memory per cached bar (`MEMORY USAGE` of both keys, 1,000-bar series)";
    println!("| {key}: iftb-cache {blank} {usage:.0} B |");
    let x = old / ours;
    println!("| {what}: old design, key + JSON per bar with TTL {blank} {old:.0} B ({x:.1}× iftb-cache) |");
}

/// How many cores this process (and the server it started) may run on.
fn mode() -> String {
    match std::thread::available_parallelism().map_or(1, |n| n.get()) {
        1 => "one core (client and server share it)".into(),
        2 => "two cores".into(),
        n => format!("{n} cores"),
    }
}

/// The CDFs of the 100,000-keys phase, and the old design's at 10,000 keys.
fn plot_reads(plan: &Plan, version: &str, reads: &[(usize, Reads)]) -> Res<()> {
    const BLUE: RGBColor = RGBColor(0, 114, 178);
    const GREEN: RGBColor = RGBColor(0, 158, 115);
    const RED: RGBColor = RGBColor(213, 94, 0);
    let ((small_keys, small), (keys, r)) = (&reads[0], &reads[1]);
    let big = thousands((LIMIT * codec::BAR_LEN) as u64);
    let floor_100 = format!("floor: GET of {big} B (100 bars)");
    let floor_1 = format!("floor: GET of {} B (1 bar)", codec::BAR_LEN);
    let old_small = format!("old design, {} keys", thousands(*small_keys as u64));
    let (bars, old) = (
        "iftb-cache get_bars(.., 100)",
        "old design get_bars(.., 100)",
    );
    // The floors first: their wide bands go under the lines read against them.
    let curves = [
        Curve::new(floor_100, &r.floor, BLUE, Stroke::Band),
        Curve::new(floor_1, &r.floor_1, GREEN, Stroke::Band),
        Curve::new(bars, &r.get_bars, BLUE, Stroke::Line),
        Curve::new("iftb-cache get_latest_bar", &r.latest, GREEN, Stroke::Line),
        Curve::new(old, &r.old_get_bars, RED, Stroke::Line),
        Curve::new(old_small, &small.old_get_bars, RED, Stroke::Dashed),
    ];
    let quick = if plan.quick { ", --quick" } else { "" };
    let title = format!(
        "Reads at {} keys in the db: redis {version}, loopback, {}{quick}",
        thousands(*keys as u64),
        mode()
    );
    plot::write_svg(&plan.svg, &title, &curves)
}

async fn run(plan: &Plan) -> Res<()> {
    let b = Bench::start().await?;
    let (ours_mem, usage, old_mem) = memory_per_bar(&b).await?;
    load(&b).await?;
    let mut reads = Vec::new();
    for (target, every) in [10_000, 100_000].into_iter().zip(plan.old_every) {
        let keys = fill_to(&b, target).await?;
        reads.push((keys, measure_reads(&b, plan.rounds, every).await?));
    }
    let (ours_w, old_w, old_total) = measure_writes(&b, plan).await?;
    let version = b.info("server", "redis_version").await?;
    println!("\nredis {version}, loopback, {}; redis-rs ConnectionManager on a current-thread tokio runtime; load average {}\n", mode(), load_average());
    println!("| measurement | keys in db | samples | p50 | p99 | p50 ÷ floor p50 | p99 ÷ floor p99 | note |");
    println!("|---|--:|--:|--:|--:|--:|--:|---|");
    for (keys, r) in &reads {
        print_reads(*keys, r);
    }
    print_writes(plan.write_bars, &ours_w, &old_w, old_total);
    print_memory(ours_mem, usage, old_mem);
    // Against the floor of the same phase: the machine's speed may drift between phases.
    let vs_floor = |r: &Reads, s: &Samples| ratio(s.p50(), r.floor.p50());
    let (small, large) = (&reads[0].1, &reads[1].1);
    let ours = [small, large].map(|r| vs_floor(r, &r.get_bars));
    let old = [small, large].map(|r| vs_floor(r, &r.old_get_bars));
    let (from, to) = (thousands(reads[0].0 as u64), thousands(reads[1].0 as u64));
    println!(
        "\nfrom {from} to {to} keys in the db, p50 ÷ floor p50: iftb-cache `get_bars` {:.2}× → {:.2}×, old design {:.0}× → {:.0}×",
        ours[0], ours[1], old[0], old[1]
    );
    plot_reads(plan, &version, &reads)?;
    println!("\nthe latency distributions: {}", plan.svg.display());
    Ok(())
}

fn main() -> Res<()> {
    let plan = Plan::from_args()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(&plan))
}
