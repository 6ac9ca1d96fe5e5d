//! The OHLCV targets of the series layout, side by side in one run against
//! one `redis-server` this program starts, in both loopback modes: client and
//! server on one core (`taskset` 0 for both), and on two (server on core 1,
//! client on core 0).
//!
//! ```sh
//! cargo run --release --example targets            # both modes, about two minutes
//! cargo run --release --example targets -- --quick # a smoke run, seconds
//! ```
//!
//! Each read is timed beside its floor, a raw redis-rs call carrying the same
//! bytes on a connection of the same kind, interleaved round by round (the
//! order rotates), so that ratios hold when the machine's speed drifts. The
//! series are 1,000 to 1,041 bars long, so that reads meet every fill of the
//! open run (what a read over-fetches depends on it), dense and with weekend
//! gaps.

#[path = "../benches/common/mod.rs"]
mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use common::samples::{fmt_time, load_average, ratio, thousands, Res, Samples};
use iftb_cache::codec::{self, Kind};
use iftb_cache::{Bar, BarWriteOptions, CacheConfig, CacheManager, Timeframe};
use redis::aio::ConnectionManager;
use std::time::Duration;
use support::shapes::{self, Shape};

const LIMIT: usize = 100;
/// Series lengths 1,000..1,000 + POSITIONS: every fill of a 42-bar open run.
const POSITIONS: usize = 42;
const SERIES: usize = 100;
const TTL: Duration = Duration::from_secs(3_600);
const WRITE_BARS: usize = 100_000;

/// What is measured, in the order of the table.
#[derive(Clone, Copy)]
enum Read {
    FloorRun,
    FloorSame,
    RawZrange,
    Dense,
    Gappy,
    FloorRecord,
    Latest,
    FloorMget,
    LatestMany,
    PipelinedTails,
    FloorEvalsha,
    Upsert,
}

const READS: [Read; 12] = [
    Read::FloorRun,
    Read::FloorSame,
    Read::RawZrange,
    Read::Dense,
    Read::Gappy,
    Read::FloorRecord,
    Read::Latest,
    Read::FloorMget,
    Read::LatestMany,
    Read::PipelinedTails,
    Read::FloorEvalsha,
    Read::Upsert,
];

struct Fixture {
    server: support::RedisServer,
    cache: CacheManager,
    raw: ConnectionManager,
    /// `(symbol, timeframe)` of the `POSITIONS` dense and gappy series.
    dense: Vec<String>,
    gappy: Vec<String>,
    /// Every series, for the latest bar of many.
    all: Vec<(String, Timeframe)>,
    /// The floor's values: `floor:same:{symbol}` as long as the reply of that
    /// series' 100-bar read, and 100 keys of one bar record each.
    mget_keys: Vec<String>,
    evalsha: redis::Cmd,
    upsert_bar: Bar,
}

async fn connect_raw(server: &support::RedisServer) -> Res<ConnectionManager> {
    Ok(redis::Client::open(server.url())?
        .get_connection_manager()
        .await?)
}

impl Fixture {
    async fn start() -> Res<Self> {
        let server = support::RedisServer::start();
        let config = CacheConfig::builder().redis_url(&server.url()).build()?;
        let cache = CacheManager::connect(config).await?;
        let raw = connect_raw(&server).await?;
        let mut f = Fixture {
            server,
            cache,
            raw,
            dense: Vec::new(),
            gappy: Vec::new(),
            all: Vec::new(),
            mget_keys: (0..SERIES).map(|i| format!("floor:m{i}")).collect(),
            evalsha: redis::Cmd::new(),
            upsert_bar: Bar::new(0, 1.0, 2.0, 0.5, 1.5, 1.0),
        };
        f.load().await?;
        Ok(f)
    }

    async fn write(&self, symbol: &str, shape: &Shape) -> Res<()> {
        let opts = BarWriteOptions::new().ttl(TTL);
        let o = self.cache.ohlcv();
        Ok(o.set_bars_with(symbol, shape.tf, &shape.bars, opts).await?)
    }

    async fn set(&self, key: &str, value: &[u8]) -> Res<()> {
        let cmd = redis::cmd("SET").arg(key).arg(value).to_owned();
        Ok(cmd.query_async(&mut self.raw.clone()).await?)
    }

    /// The bytes of the members a 100-bar read of `symbol` fetches.
    async fn reply_len(&self, symbol: &str, tf: Timeframe) -> Res<usize> {
        let key = format!("iftb:v2:ohlcv:{{{symbol}:{tf}}}");
        // The same members `get_bars(.., 100)` asks for: its rank read.
        let members: Vec<Vec<u8>> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(4)
            .arg("REV")
            .query_async(&mut self.raw.clone())
            .await?;
        Ok(members.iter().map(Vec::len).sum())
    }

    /// One series of the reads, and the floor value of the same bytes as its reply.
    async fn position(&mut self, name: String, shape: Shape) -> Res<String> {
        self.write(&name, &shape).await?;
        let same = self.reply_len(&name, shape.tf).await?;
        self.set(&format!("floor:same:{name}"), &vec![7u8; same])
            .await?;
        self.all.push((name.clone(), shape.tf));
        Ok(name)
    }

    async fn load(&mut self) -> Res<()> {
        for j in 0..POSITIONS {
            let dense = self
                .position(format!("D{j}"), shapes::dense(1_000 + j))
                .await?;
            self.dense.push(dense);
            let gappy = self
                .position(format!("G{j}"), shapes::weekend_hourly(1_000 + j))
                .await?;
            self.gappy.push(gappy);
        }
        while self.all.len() < SERIES {
            let name = format!("E{}", self.all.len());
            self.write(&name, &shapes::sparse(200, 10)).await?;
            self.all.push((name, Timeframe::M1));
        }
        let bars = shapes::dense(1_000).bars;
        self.set("floor:run", &codec::encode_bar_run(&bars[900..]))
            .await?;
        let record = codec::encode(&bars[999]);
        self.set("floor:record", &record).await?;
        for key in &self.mget_keys {
            self.set(key, &record).await?;
        }
        self.write("UPSERT", &shapes::dense(1_000)).await?;
        self.upsert_bar = bars[999];
        self.evalsha = self.trivial_evalsha().await?;
        Ok(())
    }

    /// `return 1` called as our upsert script is: the same keys, the same
    /// arguments, one bar.
    async fn trivial_evalsha(&self) -> Res<redis::Cmd> {
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg("return 1")
            .query_async(&mut self.raw.clone())
            .await?;
        let set = "iftb:v2:ohlcv:{UPSERT:1m}";
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(sha).arg(2).arg(set).arg(format!("{set}:head"));
        cmd.arg(TTL.as_millis() as u64)
            .arg(0)
            .arg(42)
            .arg(48)
            .arg(48);
        cmd.arg(&codec::header_bytes(Kind::BarRun)[..]);
        cmd.arg(&codec::header_bytes(Kind::SeriesHead)[..]);
        cmd.arg(&codec::encode(&self.upsert_bar)[codec::HEADER_LEN..]);
        Ok(cmd)
    }

    async fn get(&self, key: &str) -> Res<usize> {
        let cmd = redis::cmd("GET").arg(key).to_owned();
        let v: Option<Vec<u8>> = cmd.query_async(&mut self.raw.clone()).await?;
        v.map(|v| v.len())
            .ok_or_else(|| format!("{key} is missing").into())
    }

    /// One read of `what` on series position `j`; how many bars or bytes.
    async fn read(&self, what: Read, j: usize, round: usize) -> Res<usize> {
        let o = self.cache.ohlcv();
        let some = |n: Option<usize>| n.ok_or_else(|| "a miss".into());
        match what {
            Read::FloorRun => self.get("floor:run").await,
            Read::FloorSame => self.get(&format!("floor:same:{}", self.dense[j])).await,
            Read::RawZrange => {
                // What `get_bars` sends, raw: the transport's share of its cost.
                let key = format!("iftb:v2:ohlcv:{{{}:1m}}", self.dense[j]);
                let cmd = redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(4)
                    .arg("REV")
                    .to_owned();
                let members: Vec<bytes::Bytes> = cmd.query_async(&mut self.raw.clone()).await?;
                Ok(members.len())
            }
            Read::Dense => some(
                o.get_bars(&self.dense[j], Timeframe::M1, LIMIT)
                    .await?
                    .map(|v| v.len()),
            ),
            Read::Gappy => some(
                o.get_bars(&self.gappy[j], Timeframe::H1, LIMIT)
                    .await?
                    .map(|v| v.len()),
            ),
            Read::FloorRecord => self.get("floor:record").await,
            Read::Latest => some(
                o.get_latest_bar(&self.dense[j], Timeframe::M1)
                    .await?
                    .map(|_| 1),
            ),
            Read::FloorMget => {
                let cmd = redis::cmd("MGET").arg(&self.mget_keys).to_owned();
                let v: Vec<Option<Vec<u8>>> = cmd.query_async(&mut self.raw.clone()).await?;
                Ok(v.iter().flatten().count())
            }
            Read::LatestMany => {
                let all: Vec<(&str, Timeframe)> =
                    self.all.iter().map(|(s, tf)| (s.as_str(), *tf)).collect();
                Ok(o.get_latest_bars(&all).await?.iter().flatten().count())
            }
            Read::PipelinedTails => {
                // The alternative to the heads: the tail run of each series.
                let mut pipe = redis::pipe();
                for (symbol, tf) in &self.all {
                    let key = format!("iftb:v2:ohlcv:{{{symbol}:{tf}}}");
                    pipe.cmd("ZRANGE").arg(key).arg(0).arg(0).arg("REV");
                }
                let tails: Vec<Vec<Vec<u8>>> = pipe.query_async(&mut self.raw.clone()).await?;
                Ok(tails.iter().filter(|t| !t.is_empty()).count())
            }
            Read::FloorEvalsha => {
                let one: i64 = self.evalsha.query_async(&mut self.raw.clone()).await?;
                Ok(one as usize)
            }
            Read::Upsert => {
                let bar = Bar {
                    close: 1.0 + (round % 100) as f64 / 100.0,
                    ..self.upsert_bar
                };
                o.set_bars_with(
                    "UPSERT",
                    Timeframe::M1,
                    &[bar],
                    BarWriteOptions::new().ttl(TTL),
                )
                .await?;
                Ok(1)
            }
        }
    }

    async fn measure(&self, rounds: usize) -> Res<Vec<Samples>> {
        let mut samples: Vec<Samples> = READS.iter().map(|_| Samples::default()).collect();
        let warm_up = rounds / 10;
        for round in 0..warm_up + rounds {
            for step in 0..READS.len() {
                let i = (step + round) % READS.len();
                let mut scratch = Samples::default();
                let s = if round < warm_up {
                    &mut scratch
                } else {
                    &mut samples[i]
                };
                let n = s
                    .time(self.read(READS[i], round % POSITIONS, round))
                    .await?;
                if n == 0 {
                    return Err(format!("read {i} found nothing").into());
                }
            }
        }
        Ok(samples)
    }

    async fn writes(&self, times: usize) -> Res<Samples> {
        let bars = common::bars(WRITE_BARS, 60_000, common::SEED);
        let o = self.cache.ohlcv();
        let mut s = Samples::default();
        for _ in 0..times {
            o.invalidate("WRITE", Timeframe::M1).await?;
            let write = o.set_bars_with(
                "WRITE",
                Timeframe::M1,
                &bars,
                BarWriteOptions::new().ttl(TTL),
            );
            s.time(async { Ok(write.await?) }).await?;
        }
        Ok(s)
    }
}

/// `taskset` for every thread of `pid`.
fn pin(pid: u32, cpus: &str) -> Res<()> {
    let status = std::process::Command::new("taskset")
        .args(["-a", "-pc", cpus, &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("taskset -a -pc {cpus} {pid} failed").into());
    }
    Ok(())
}

fn row(what: &str, s: &Samples, floor: &Samples, target: &str, met: bool) {
    let (r50, r99) = (ratio(s.p50(), floor.p50()), ratio(s.p99(), floor.p99()));
    let mark = if met { "yes" } else { "**no**" };
    println!(
        "| {what} | {} | {} | {r50:.3}× | {r99:.3}× | {target} | {mark} |",
        fmt_time(s.p50()),
        fmt_time(s.p99())
    );
}

fn floor_row(what: &str, s: &Samples) {
    println!(
        "| {what} | {} | {} | 1 | 1 | | |",
        fmt_time(s.p50()),
        fmt_time(s.p99())
    );
}

fn print(mode: &str, s: &[Samples], writes: &Samples) {
    let [run, same, zrange, dense, gappy, record, latest, mget, many, tails, evalsha, upsert] = s
    else {
        unreachable!("one sample set per read")
    };
    println!(
        "\n**{mode}** ({} rounds; load average {})\n",
        thousands(run.0.len() as u64),
        load_average()
    );
    println!("| measurement | p50 | p99 | p50 ÷ floor | p99 ÷ floor | target | met |");
    println!("|---|--:|--:|--:|--:|---|---|");
    floor_row("floor: `GET` of the 100 bars as one run (4,804 B)", run);
    let ok = |s: &Samples, f: &Samples, a: f64, b: f64| {
        ratio(s.p50(), f.p50()) <= a && ratio(s.p99(), f.p99()) <= b
    };
    row(
        "`get_bars(.., 100)`, dense 1m",
        dense,
        run,
        "≤ 1.1× p50, ≤ 1.3× p99",
        ok(dense, run, 1.1, 1.3),
    );
    row(
        "`get_bars(.., 100)`, hourly with weekend gaps",
        gappy,
        run,
        "≤ 1.1× p50, ≤ 1.3× p99",
        ok(gappy, run, 1.1, 1.3),
    );
    floor_row(
        "floor: `GET` of as many bytes as the read's reply (6.2–8.1 KB)",
        same,
    );
    row(
        "`get_bars(.., 100)`, dense 1m, against that floor",
        dense,
        same,
        "≤ 1.1× p50, ≤ 1.3× p99",
        ok(dense, same, 1.1, 1.3),
    );
    println!(
        "| diagnostic: the same `ZRANGE`, raw (no decoding) | {} | {} | {:.3}× | {:.3}× | | |",
        fmt_time(zrange.p50()),
        fmt_time(zrange.p99()),
        ratio(zrange.p50(), same.p50()),
        ratio(zrange.p99(), same.p99())
    );
    floor_row("floor: `GET` of one 52-byte bar record", record);
    row(
        "`get_latest_bar`",
        latest,
        record,
        "≤ 1.05× p50",
        ok(latest, record, 1.05, f64::MAX),
    );
    floor_row("floor: `MGET` of 100 keys of one record each", mget);
    row(
        "a pipeline of 100 `ZRANGE key 0 0 REV` (raw), the other way to it",
        tails,
        mget,
        "kept the faster",
        ratio(many.p50(), mget.p50()) < ratio(tails.p50(), mget.p50()),
    );
    row(
        "`get_latest_bars` of 100 series",
        many,
        mget,
        "≤ 1.2× p50",
        ok(many, mget, 1.2, f64::MAX),
    );
    floor_row(
        "floor: `EVALSHA` of `return 1`, the same arguments",
        evalsha,
    );
    row(
        "in-progress upsert (`set_bars` of the newest bar)",
        upsert,
        evalsha,
        "≤ 1.2× p50",
        ok(upsert, evalsha, 1.2, f64::MAX),
    );
    let rate = WRITE_BARS as f64 / writes.p50().as_secs_f64();
    let met = if rate >= 1.5e6 { "yes" } else { "**no**" };
    println!(
        "| `set_bars` of {} bars, new series | {} | {} | **{} bars/s** | | ≥ 1,500,000 bars/s | {met} |",
        thousands(WRITE_BARS as u64),
        fmt_time(writes.p50()),
        fmt_time(writes.p99()),
        thousands(rate as u64)
    );
}

async fn run(quick: bool) -> Res<()> {
    let f = Fixture::start().await?;
    let server = f.server.pid().ok_or("the server is not running")?;
    let me = std::process::id();
    let (rounds, writes) = if quick { (300, 2) } else { (6_000, 10) };
    let version: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut f.raw.clone())
        .await?;
    let version = version
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_string();
    println!(
        "redis {version}, loopback, redis-rs ConnectionManager on a current-thread tokio runtime"
    );
    for (mode, server_cpu) in [
        ("one core: client and server on core 0", "0"),
        ("two cores: server on core 1, client on core 0", "1"),
    ] {
        pin(server, server_cpu)?;
        pin(me, "0")?;
        let s = f.measure(rounds).await?;
        let w = f.writes(writes).await?;
        print(mode, &s, &w);
    }
    Ok(())
}

fn main() -> Res<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(quick))
}
