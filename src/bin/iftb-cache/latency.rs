//! The latency section of `stats`: round-trip p50/p99 of `get_latest_bar`
//! and `get_bars(.., 100)` on a probe series, each beside its floor, a raw
//! redis-rs `GET` of a value as large as what it reads, on a connection of
//! its own to the same server; the four interleaved round by round, so
//! that whatever else the machine does falls on all of them alike.
//!
//! The probe lives under this namespace (a series of its own symbol, two
//! client keys), expires within a minute should the tool die, and is
//! deleted when the measurement ends, however it ends.

use crate::output::Failure;
use crate::stats::Section;
use hdrhistogram::Histogram;
use iftb_cache::{codec, Bar, BarWriteOptions, CacheConfig, CacheManager, Timeframe};
use serde_json::{json, Value};
use std::future::Future;
use std::time::{Duration, Instant};

/// Bars of the probe series: more than the largest read timed.
const PROBE_BARS: i64 = 200;
/// The `get_bars` read timed.
const READ_BARS: usize = 100;
/// Rounds run before timing: scripts loaded, connections warm.
const WARMUP: u32 = 20;
/// How long the probe outlives a tool that dies before deleting it.
const PROBE_TTL: Duration = Duration::from_secs(60);
const TF: Timeframe = Timeframe::M1;

/// The probe's names, this process' own: two `stats` at once do not meet.
struct Probe {
    symbol: String,
    /// Client keys (under `{namespace}:kv:`) of the two floors' values.
    head_floor: String,
    bars_floor: String,
}

/// What one read cost, and its floor's.
struct Timed {
    read: &'static str,
    hist: Histogram<u64>,
    floor: Option<(usize, Histogram<u64>)>,
}

pub async fn measure(cache: &CacheManager, rounds: u32) -> Result<Section, Failure> {
    let probe = Probe::new();
    let measured = probe.measure(cache, rounds).await;
    probe.remove(cache).await;
    let timed = measured?;
    Ok(section(cache.config(), rounds, &timed))
}

impl Probe {
    fn new() -> Self {
        let pid = std::process::id();
        Probe {
            symbol: format!("IFTB-CLI-STATS-PROBE-{pid}"),
            head_floor: format!("iftb-cli-stats-probe-{pid}-head"),
            bars_floor: format!("iftb-cli-stats-probe-{pid}-bars"),
        }
    }

    async fn measure(&self, cache: &CacheManager, rounds: u32) -> Result<[Timed; 2], Failure> {
        let floors = self.write(cache).await?;
        let mut raw = raw_connection(cache.config()).await?;
        if let Some(conn) = &mut raw {
            self.check_floors(cache, conn, &floors).await?;
        }
        let mut timed = [
            Timed::new("get_latest_bar", raw.is_some().then_some(floors[0].len()))?,
            Timed::new(
                "get_bars(.., 100)",
                raw.is_some().then_some(floors[1].len()),
            )?,
        ];
        let mut written = Instant::now();
        for round in 0..WARMUP + rounds {
            // Written again (untimed) well before it expires: a long run, or
            // one against a distant Redis, outlives one TTL.
            if written.elapsed() > PROBE_TTL / 3 {
                self.write(cache).await?;
                written = Instant::now();
            }
            let keep = round >= WARMUP;
            self.round(cache, raw.as_mut(), &mut timed, keep).await?;
        }
        Ok(timed)
    }

    /// The probe series, and the floors' values: a value of a head's size,
    /// and the 100 bars `get_bars` reads as one value (a run of them).
    async fn write(&self, cache: &CacheManager) -> Result<[Vec<u8>; 2], Failure> {
        let bars = probe_bars();
        let options = BarWriteOptions::new().ttl(PROBE_TTL);
        let ohlcv = cache.ohlcv();
        ohlcv
            .set_bars_with(&self.symbol, TF, &bars, options)
            .await
            .map_err(|e| Failure::of("writing the probe series", &e))?;
        let newest = &bars[bars.len() - READ_BARS..];
        let floors = [
            vec![0x5a; codec::SERIES_HEAD_LEN],
            codec::encode_bar_run(newest).to_vec(),
        ];
        let client = cache.client();
        for (key, value) in [&self.head_floor, &self.bars_floor].iter().zip(&floors) {
            let stored = client.set_bytes(key, value.clone().into(), Some(PROBE_TTL));
            stored
                .await
                .map_err(|e| Failure::of("writing the probe's floor values", &e))?;
        }
        Ok(floors)
    }

    /// The raw connection reads what the cache wrote: the same server.
    async fn check_floors(
        &self,
        cache: &CacheManager,
        conn: &mut Raw,
        floors: &[Vec<u8>; 2],
    ) -> Result<(), Failure> {
        for (key, value) in [&self.head_floor, &self.bars_floor].iter().zip(floors) {
            let full = full_kv_key(cache, key);
            let got = raw_get(conn, &full).await?;
            if got.as_deref() != Some(value.as_slice()) {
                return Err(Failure::new(
                    crate::exit::UNAVAILABLE,
                    format!("the raw connection does not read {full} as the cache wrote it"),
                ));
            }
        }
        Ok(())
    }

    /// One call of each read, in a fixed order, each checked to have found
    /// the probe (a read of nothing would time a miss).
    async fn round(
        &self,
        cache: &CacheManager,
        mut raw: Option<&mut Raw>,
        timed: &mut [Timed; 2],
        keep: bool,
    ) -> Result<(), Failure> {
        let ohlcv = cache.ohlcv();
        let (ns, latest) = timed_call(ohlcv.get_latest_bar(&self.symbol, TF)).await;
        found(latest.map(|b| b.is_some()), "get_latest_bar")?;
        timed[0].record(keep, ns);
        if let Some(conn) = raw.as_deref_mut() {
            let key = full_kv_key(cache, &self.head_floor);
            let (ns, got) = timed_call(raw_get(conn, &key)).await;
            timed[0].record_floor(keep, ns, got?)?;
        }
        let (ns, bars) = timed_call(ohlcv.get_bars(&self.symbol, TF, READ_BARS)).await;
        found(
            bars.map(|b| b.is_some_and(|b| b.len() == READ_BARS)),
            "get_bars",
        )?;
        timed[1].record(keep, ns);
        if let Some(conn) = raw {
            let key = full_kv_key(cache, &self.bars_floor);
            let (ns, got) = timed_call(raw_get(conn, &key)).await;
            timed[1].record_floor(keep, ns, got?)?;
        }
        Ok(())
    }

    /// Best effort: what is left expires with `PROBE_TTL`.
    async fn remove(&self, cache: &CacheManager) {
        let _ = cache.ohlcv().invalidate(&self.symbol, TF).await;
        for key in [&self.head_floor, &self.bars_floor] {
            let _ = cache.client().delete(key).await;
        }
    }
}

/// 1-minute bars from 2024-01-01, oldest first.
fn probe_bars() -> Vec<Bar> {
    const T0: i64 = 1_704_067_200_000;
    (0..PROBE_BARS)
        .map(|i| {
            let close = 42_000.0 + (i % 17) as f64 * 3.5;
            Bar::new(
                T0 + i * 60_000,
                close - 2.0,
                close + 5.0,
                close - 6.0,
                close,
                1.5,
            )
        })
        .collect()
}

fn found(read: iftb_cache::Result<bool>, what: &str) -> Result<(), Failure> {
    match read {
        Ok(true) => Ok(()),
        Ok(false) => Err(Failure::new(
            crate::exit::UNAVAILABLE,
            format!("{what} no longer finds the probe series: was the namespace cleared?"),
        )),
        Err(e) => Err(Failure::of(format!("timing {what}"), &e)),
    }
}

async fn timed_call<T>(call: impl Future<Output = T>) -> (u64, T) {
    let started = Instant::now();
    let out = call.await;
    let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    (ns, out)
}

impl Timed {
    fn new(read: &'static str, floor_bytes: Option<usize>) -> Result<Self, Failure> {
        let hist = || {
            Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .map_err(|e| Failure::new(crate::exit::USAGE, format!("histogram: {e}")))
        };
        let floor = match floor_bytes {
            Some(bytes) => Some((bytes, hist()?)),
            None => None,
        };
        Ok(Timed {
            read,
            hist: hist()?,
            floor,
        })
    }

    fn record(&mut self, keep: bool, ns: u64) {
        if keep {
            self.hist.saturating_record(ns);
        }
    }

    fn record_floor(&mut self, keep: bool, ns: u64, got: Option<Vec<u8>>) -> Result<(), Failure> {
        let Some((bytes, hist)) = &mut self.floor else {
            return Ok(());
        };
        if got.map(|v| v.len()) != Some(*bytes) {
            return Err(Failure::new(
                crate::exit::UNAVAILABLE,
                "the probe's floor value is gone: was the namespace cleared?",
            ));
        }
        if keep {
            hist.saturating_record(ns);
        }
        Ok(())
    }
}

type Raw = redis::aio::MultiplexedConnection;

/// A connection of its own to the one server the cache uses; none for a
/// cluster or Sentinel, where no one server holds every key.
async fn raw_connection(config: &CacheConfig) -> Result<Option<Raw>, Failure> {
    let Some(info) = config.redis_server() else {
        return Ok(None);
    };
    let failed = |e: redis::RedisError| {
        Failure::of(
            "connecting the raw redis-rs client",
            &iftb_cache::Error::from(e),
        )
    };
    let client = redis::Client::open(info.clone()).map_err(failed)?;
    let connect = client.get_multiplexed_async_connection();
    match tokio::time::timeout(config.connect_deadline(), connect).await {
        Ok(conn) => conn.map(Some).map_err(failed),
        Err(_) => Err(Failure::new(
            crate::exit::UNAVAILABLE,
            "connecting the raw redis-rs client timed out",
        )),
    }
}

async fn raw_get(conn: &mut Raw, key: &str) -> Result<Option<Vec<u8>>, Failure> {
    redis::cmd("GET")
        .arg(key)
        .query_async(conn)
        .await
        .map_err(|e| Failure::of("raw GET", &iftb_cache::Error::from(e)))
}

/// A client key as Redis names it: the README's `{namespace}:kv:<key>`.
fn full_kv_key(cache: &CacheManager, key: &str) -> String {
    format!("{}:kv:{key}", cache.config().namespace())
}

fn micros(hist: &Histogram<u64>, q: f64) -> f64 {
    (hist.value_at_quantile(q) as f64 / 100.0).round() / 10.0
}

fn section(config: &CacheConfig, rounds: u32, timed: &[Timed; 2]) -> Section {
    let near = config.near_cache().is_some();
    let mut text = format!(
        "latency: {rounds} rounds, interleaved, against {}{}\n",
        config.backend_description(),
        if near { " (near cache on)" } else { "" }
    );
    let header = ["read", "p50 µs", "p99 µs", "p50 ÷ floor"];
    text.push_str(&crate::output::table(&header, &rows(timed)));
    if timed[0].floor.is_none() {
        text.push_str(
            "floors not measured: a raw GET is timed on one server, and this is a cluster or Sentinel\n",
        );
    }
    let reads: Vec<Value> = timed.iter().map(read_json).collect();
    let json = json!({
        "rounds": rounds,
        "backend": config.backend_description(),
        "near_cache": near,
        "reads": reads,
    });
    Section {
        name: "latency",
        text,
        json,
    }
}

/// A row per read, and one per floor under it.
fn rows(timed: &[Timed; 2]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for t in timed {
        let p50 = micros(&t.hist, 0.5);
        let ratio = t.floor.as_ref().map_or("-".to_string(), |(_, floor)| {
            format!("{:.2}×", p50 / micros(floor, 0.5).max(0.1))
        });
        rows.push(vec![
            t.read.to_string(),
            format!("{p50:.1}"),
            format!("{:.1}", micros(&t.hist, 0.99)),
            ratio,
        ]);
        if let Some((bytes, floor)) = &t.floor {
            let (p50, p99) = (micros(floor, 0.5), micros(floor, 0.99));
            rows.push(vec![
                format!("  raw GET of {bytes} B"),
                format!("{p50:.1}"),
                format!("{p99:.1}"),
                String::new(),
            ]);
        }
    }
    rows
}

fn read_json(t: &Timed) -> Value {
    let floor = t.floor.as_ref().map(|(bytes, floor)| {
        json!({
            "read": "raw GET",
            "bytes": bytes,
            "p50_us": micros(floor, 0.5),
            "p99_us": micros(floor, 0.99),
        })
    });
    json!({
        "read": t.read,
        "p50_us": micros(&t.hist, 0.5),
        "p99_us": micros(&t.hist, 0.99),
        "floor": floor,
    })
}
