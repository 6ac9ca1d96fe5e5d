//! The `iftb-cache` tool end to end: the binary, run as an operator runs
//! it, against a redis-server of the test's own (values written through the
//! library, or raw as another program would), its output, exit code and
//! what it left in Redis checked. `cargo test --features cli --test cli`.
//!
//! Every run gets `REDIS_URL` (or nothing) and no other Redis variable, a
//! working directory of its own (so no `./.env` is read) and no terminal
//! on stdin.

mod support;

use iftb_cache::{
    Bar, CacheConfig, CacheManager, ComputeOptions, LlmCache, Timeframe, COMPRESS_THRESHOLD,
};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{btc_ticker, sample_fear_greed, RedisServer};

/// What the library reads from the environment: none of it inherited.
const CONFIG_VARS: [&str; 11] = [
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD",
    "REDIS_DB",
    "REDIS_USERNAME",
    "REDIS_CLUSTER_NODES",
    "REDIS_SENTINELS",
    "REDIS_SENTINEL_MASTER",
    "IFTB_CACHE_NAMESPACE",
    "IFTB_NEAR_CACHE_BYTES",
];

/// 2024-01-17T00:00:00Z.
const DAY: i64 = 1_705_449_600_000;
const HOUR: i64 = 3_600_000;

/// A finished run of the tool.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", self.stdout))
    }

    fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs the tool with `REDIS_URL` set to `url` (none: unset).
fn run(url: Option<&str>, args: &[&str]) -> Ran {
    let dir = tempfile::tempdir().expect("a working directory");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iftb-cache"));
    for var in CONFIG_VARS {
        cmd.env_remove(var);
    }
    if let Some(url) = url {
        cmd.env("REDIS_URL", url);
    }
    let out = cmd
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("the tool runs");
    Ran {
        code: out.status.code().expect("an exit code, not a signal"),
        stdout: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
    }
}

fn on(server: &RedisServer, args: &[&str]) -> Ran {
    run(Some(&server.url()), args)
}

async fn library(server: &RedisServer, namespace: &str) -> CacheManager {
    let config = CacheConfig::builder()
        .redis_url(&server.url())
        .namespace(namespace)
        .build()
        .unwrap();
    CacheManager::connect(config).await.unwrap()
}

fn dbsize(server: &RedisServer) -> u64 {
    redis::cmd("DBSIZE").query(&mut server.raw()).unwrap()
}

fn keys(server: &RedisServer) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut server.raw())
        .unwrap();
    keys.sort();
    keys
}

/// A file in a directory that lives as long as the guard.
fn csv_file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bars.csv");
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap().to_string();
    (dir, path)
}

/// Five hourly bars, one time format each, in a header of mixed case and
/// odd order with a column to ignore, CRLF line ends and a blank line.
const MIXED_CSV: &str = "Close,VOLUME,trades,Open,Timestamp,low,High\r\n\
    45200,12.5,301,45000,2024-01-17,44800,45500\r\n\
    45300,0.25,12,45200,2024-01-17T01:00:00Z,45100,45400\r\n\
    \r\n\
    45250.75,3,7,45300,2024-01-17T04:00:00+02:00,45000.5,45350\r\n\
    45100,1e3,5,45250.75,1705460400000,45050,45260\r\n\
    45150,0,1,45100,2024-01-17T04:00:00.000,45090,45160\r\n";

/// The bars of [`MIXED_CSV`], oldest first.
fn mixed_bars() -> Vec<Bar> {
    vec![
        Bar::new(DAY, 45_000.0, 45_500.0, 44_800.0, 45_200.0, 12.5),
        Bar::new(DAY + HOUR, 45_200.0, 45_400.0, 45_100.0, 45_300.0, 0.25),
        Bar::new(DAY + 2 * HOUR, 45_300.0, 45_350.0, 45_000.5, 45_250.75, 3.0),
        Bar::new(
            DAY + 3 * HOUR,
            45_250.75,
            45_260.0,
            45_050.0,
            45_100.0,
            1_000.0,
        ),
        Bar::new(DAY + 4 * HOUR, 45_100.0, 45_160.0, 45_090.0, 45_150.0, 0.0),
    ]
}

/// The bars of a `--json` answer, read back exactly.
fn bars_of(doc: &Value) -> Vec<Bar> {
    doc["bars"]
        .as_array()
        .expect("a bars array")
        .iter()
        .map(|b| {
            let f = |name: &str| b[name].as_f64().unwrap_or_else(|| panic!("{name} in {b}"));
            Bar::new(
                b["timestamp"].as_i64().unwrap(),
                f("open"),
                f("high"),
                f("low"),
                f("close"),
                f("volume"),
            )
        })
        .collect()
}

#[test]
fn load_then_bars_reads_back_what_the_csv_holds() {
    let server = RedisServer::start();
    let (_dir, path) = csv_file(MIXED_CSV);
    let loaded = on(&server, &["load", &path, "BTCUSDT", "1h", "--ttl", "86400"]).expect(0);
    assert!(
        loaded.stdout.contains("loaded 5 bars into BTCUSDT 1h"),
        "{}",
        loaded.stdout
    );
    let pttl = server.pttl("iftb:v2:ohlcv:{BTCUSDT:1h}");
    assert!(pttl > 86_000_000, "--ttl was not applied: PTTL {pttl}");

    let mut newest_first = mixed_bars();
    newest_first.reverse();
    let doc = on(&server, &["bars", "BTCUSDT", "1h", "--json"])
        .expect(0)
        .json();
    assert_eq!(doc["symbol"], "BTCUSDT");
    assert_eq!(doc["timeframe"], "1h");
    assert_eq!(doc["count"], 5);
    assert_eq!(bars_of(&doc), newest_first);
    assert_eq!(doc["bars"][0]["time"], "2024-01-17T04:00:00Z");
    assert_eq!(doc["bars"][4]["time"], "2024-01-17T00:00:00Z");

    let table = on(&server, &["bars", "BTCUSDT", "1h"]).expect(0).stdout;
    let times: Vec<&str> = table
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|t| t.starts_with("2024-"))
        .collect();
    let expected: Vec<String> = (0..5)
        .rev()
        .map(|h| format!("2024-01-17T0{h}:00:00Z"))
        .collect();
    assert_eq!(times, expected, "{table}");
    assert!(table.contains("45250.75"), "{table}");

    let two = on(
        &server,
        &["bars", "BTCUSDT", "1h", "--limit", "2", "--json"],
    )
    .expect(0);
    assert_eq!(bars_of(&two.json()), newest_first[..2]);
    let window = on(
        &server,
        &[
            "bars",
            "BTCUSDT",
            "1h",
            "--json",
            "--from",
            "2024-01-17T01:00:00Z",
            "--to",
            "1705460400000",
        ],
    )
    .expect(0);
    assert_eq!(bars_of(&window.json()), newest_first[1..4]);
}

#[test]
fn bars_of_nothing_cached_is_not_found() {
    let server = RedisServer::start();
    let ran = on(&server, &["bars", "ETHUSDT", "1h"]).expect(3);
    assert!(
        ran.stderr.contains("no bars of ETHUSDT 1h"),
        "{}",
        ran.stderr
    );
    let doc = on(&server, &["bars", "ETHUSDT", "1h", "--json"])
        .expect(3)
        .json();
    assert_eq!(doc["error"]["code"], 3);
    assert_eq!(doc["error"]["kind"], "not_found");
}

#[test]
fn a_csv_with_bad_rows_writes_nothing_and_names_every_line() {
    let server = RedisServer::start();
    let csv = "timestamp,open,high,low,close,volume\r\n\
               2024-01-17T00:00:00Z,1,2,0.5,1.5,3\r\n\
               2024-01-17T01:00:00Z,1,2,3,1.5,3\r\n\
               \r\n\
               someday,1,2,0.5,1.5,3\r\n\
               2024-01-17T03:00:00Z,1,2,0.5,1.5,3\r\n\
               2024-01-17T04:00:00Z,1,2,0.5,NaN,3\r\n";
    let (_dir, path) = csv_file(csv);
    let ran = on(&server, &["load", &path, "BTCUSDT", "1h"]).expect(4);
    assert!(
        ran.stderr.contains("3 bad rows; nothing was written"),
        "{}",
        ran.stderr
    );
    for line in ["line 3: ", "line 5: ", "line 7: "] {
        assert!(ran.stderr.contains(line), "{line} missing:\n{}", ran.stderr);
    }
    assert!(
        ran.stderr.contains("low 3 is above high 2"),
        "{}",
        ran.stderr
    );
    let doc = on(&server, &["load", &path, "BTCUSDT", "1h", "--json"])
        .expect(4)
        .json();
    let lines: Vec<i64> = doc["error"]["bad_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, [3, 5, 7]);
    assert_eq!(doc["error"]["more_bad_rows"], 0);
    assert_eq!(
        dbsize(&server),
        0,
        "a refused load wrote {:?}",
        keys(&server)
    );
    on(&server, &["inspect", "iftb:v2:ohlcv:{BTCUSDT:1h}"]).expect(3);
}

#[test]
fn a_load_redis_refuses_midway_says_what_landed_and_that_again_is_safe() {
    let server =
        RedisServer::start_with(&["--maxmemory", "3mb", "--maxmemory-policy", "noeviction"]);
    let mut csv = String::from("timestamp,open,high,low,close,volume\n");
    for i in 0..100_000i64 {
        csv.push_str(&format!("{},1,2,0.5,1.5,3\n", DAY + i * 60_000));
    }
    let (_dir, path) = csv_file(&csv);
    let ran = on(&server, &["load", &path, "BTCUSDT", "1m", "--json"]).expect(1);
    let error = &ran.json()["error"];
    assert_eq!(error["total"], 100_000);
    let written = error["written"].as_u64().unwrap();
    assert!(
        written < 100_000 && written.is_multiple_of(10_000),
        "{error}"
    );
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("OutOfMemory"), "{message}");
    assert!(message.contains("again is safe"), "{message}");
    let held = on(
        &server,
        &["inspect", "iftb:v2:ohlcv:{BTCUSDT:1m}", "--json"],
    )
    .expect(0);
    let total = held.json()["total"].as_u64().unwrap();
    assert!(
        total >= written,
        "{total} bars held, {written} reported written"
    );
}

/// The tool's `inspect --json` of `key`, expecting `code`.
fn inspect(server: &RedisServer, key: &str, code: i32) -> Value {
    let doc = on(server, &["inspect", key, "--json"]).expect(code).json();
    assert_eq!(doc["key"], key);
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_decodes_every_value_the_library_writes() {
    let server = RedisServer::start();
    let cache = library(&server, "iftb").await;
    let bars: Vec<Bar> = (0..150)
        .map(|i| Bar::new(DAY + i * HOUR, 100.0 + i as f64, 200.0, 50.0, 150.5, 0.5))
        .collect();
    cache
        .ohlcv()
        .set_bars("BTCUSDT", Timeframe::H1, &bars)
        .await
        .unwrap();
    cache
        .market()
        .set_ticker("BTCUSDT", &btc_ticker())
        .await
        .unwrap();
    cache
        .market()
        .set_funding_rate("BTCUSDT", -0.000125)
        .await
        .unwrap();
    cache
        .market()
        .set_fear_greed(&sample_fear_greed())
        .await
        .unwrap();
    let small = serde_json::json!({"sentiment": "bullish", "confidence": 0.85});
    let hash = LlmCache::hash_input("small");
    cache
        .llm()
        .set_analysis("sentiment", &hash, &small)
        .await
        .unwrap();
    let points: Vec<String> = (0..2_000)
        .map(|i| format!("point {i} of the outlook"))
        .collect();
    let big = serde_json::json!({ "points": points });
    assert!(big.to_string().len() > COMPRESS_THRESHOLD);
    let big_hash = LlmCache::hash_input("big");
    cache
        .llm()
        .set_analysis("outlook", &big_hash, &big)
        .await
        .unwrap();
    cache
        .client()
        .set("note", "hello, operator", None)
        .await
        .unwrap();

    for key in [
        "iftb:v2:ohlcv:{BTCUSDT:1h}",
        "iftb:v2:ohlcv:{BTCUSDT:1h}:head",
    ] {
        let doc = inspect(&server, key, 0);
        assert_eq!(doc["type"], "series");
        assert_eq!(
            (doc["symbol"].clone(), doc["timeframe"].clone()),
            ("BTCUSDT".into(), "1h".into())
        );
        assert_eq!(doc["total"], 150);
        let newest: Vec<Bar> = bars.iter().rev().take(100).copied().collect();
        assert_eq!(bars_of(&doc), newest);
    }
    let text = on(&server, &["inspect", "iftb:v2:ohlcv:{BTCUSDT:1h}"])
        .expect(0)
        .stdout;
    assert!(text.contains("150 bars; the newest 100"), "{text}");
    assert!(text.contains("2024-01-23T05:00:00Z"), "{text}");

    let doc = inspect(&server, "iftb:v2:ticker:{BTCUSDT}", 0);
    assert_eq!(doc["type"], "ticker");
    let ticker: iftb_cache::Ticker = serde_json::from_value(doc["ticker"].clone()).unwrap();
    assert_eq!(ticker, btc_ticker());

    let doc = inspect(&server, "iftb:v2:funding:{BTCUSDT}", 0);
    assert_eq!(
        (doc["type"].as_str(), doc["rate"].as_f64()),
        (Some("funding_rate"), Some(-0.000125))
    );
    let text = on(&server, &["inspect", "iftb:v2:funding:{BTCUSDT}"])
        .expect(0)
        .stdout;
    assert!(
        text.contains("funding rate of BTCUSDT: -0.000125"),
        "{text}"
    );

    let doc = inspect(&server, "iftb:v2:fear_greed", 0);
    assert_eq!(doc["type"], "fear_greed");
    let reading: iftb_cache::FearGreed = serde_json::from_value(doc["fear_greed"].clone()).unwrap();
    assert_eq!(reading, sample_fear_greed());
    let text = on(&server, &["inspect", "iftb:v2:fear_greed"])
        .expect(0)
        .stdout;
    assert!(
        text.contains("Fear & Greed: 45 (Fear) at 2024-01-17T08:00:00Z"),
        "{text}"
    );

    let doc = inspect(&server, &format!("iftb:v2:llm:{{sentiment}}:{hash}"), 0);
    assert_eq!(
        (doc["type"].clone(), doc["compressed"].clone()),
        ("analysis".into(), false.into())
    );
    assert_eq!(doc["result"], small);
    let key = format!("iftb:v2:llm:{{outlook}}:{big_hash}");
    let doc = inspect(&server, &key, 0);
    assert_eq!(
        (doc["compressed"].clone(), doc["analysis_type"].clone()),
        (true.into(), "outlook".into())
    );
    assert_eq!(doc["result"], big);
    let text = on(&server, &["inspect", &key]).expect(0).stdout;
    assert!(text.contains("LZ4-compressed") && text.contains("\"point 1999 of the outlook\""));

    let doc = inspect(&server, "iftb:kv:note", 0);
    assert_eq!(doc["type"], "kv");
    assert_eq!(doc["client_key"], "note");
    assert_eq!(
        (doc["len"].clone(), doc["text"].clone()),
        (15.into(), "hello, operator".into())
    );
    let text = on(&server, &["inspect", "iftb:kv:note"]).expect(0).stdout;
    assert!(
        text.contains("client value \"note\": 15 bytes, text:\nhello, operator"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_shows_the_lock_of_a_computation_in_flight() {
    let server = RedisServer::start();
    let cache = library(&server, "iftb").await;
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let (finish, finish_rx) = tokio::sync::oneshot::channel::<()>();
    let computing = {
        let cache = cache.clone();
        tokio::spawn(async move {
            let options = ComputeOptions::new().lock(Duration::from_secs(30));
            let llm = cache.llm();
            let answer = llm.get_or_compute_with("sentiment", "slow input", options, || async {
                started_tx.send(()).unwrap();
                finish_rx.await.unwrap();
                Ok::<_, std::io::Error>("bullish".to_string())
            });
            answer.await.unwrap()
        })
    };
    started.await.unwrap();
    let hash = LlmCache::hash_input("slow input");
    let key = format!("iftb:v2:llm:{{sentiment}}:{hash}:lock");
    let token = String::from_utf8(server.raw_get(&key)).unwrap();
    let doc = tokio::task::spawn_blocking({
        let (url, key) = (server.url(), key.clone());
        move || {
            run(Some(&url), &["inspect", &key, "--json"])
                .expect(0)
                .json()
        }
    })
    .await
    .unwrap();
    assert_eq!(doc["type"], "lock");
    assert_eq!(
        (doc["analysis_type"].clone(), doc["input_hash"].clone()),
        ("sentiment".into(), hash.clone().into())
    );
    assert_eq!(doc["token"], token);
    finish.send(()).unwrap();
    assert_eq!(computing.await.unwrap(), "bullish");
    on(&server, &["inspect", &key]).expect(3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_tells_foreign_corrupt_and_missing_values_apart() {
    let server = RedisServer::start();
    let cache = library(&server, "iftb").await;

    server.raw_set("iftb:v2:ticker:{BTCUSDT}", b"{\"bid\": 45100.0}");
    let doc = inspect(&server, "iftb:v2:ticker:{BTCUSDT}", 4);
    assert_eq!(doc["type"], "foreign");
    assert!(
        doc["reason"]
            .as_str()
            .unwrap()
            .contains("not an iftb-cache value"),
        "{doc}"
    );

    // Our header (a ticker, this format version), then bytes no encoder made.
    server.raw_set("iftb:v2:ticker:{ETHUSDT}", b"IF\x02\x02 not an archive");
    let doc = inspect(&server, "iftb:v2:ticker:{ETHUSDT}", 4);
    assert_eq!(doc["type"], "corrupt", "{doc}");
    let text = on(&server, &["inspect", "iftb:v2:ticker:{ETHUSDT}"])
        .expect(4)
        .stdout;
    assert!(text.contains("corrupt value: "), "{text}");

    // Another format version's value, under a key of this one.
    server.raw_set("iftb:v2:funding:{BTCUSDT}", b"IF\x04\x01\0\0\0\0\0\0\0\0");
    let doc = inspect(&server, "iftb:v2:funding:{BTCUSDT}", 4);
    assert_eq!(doc["type"], "foreign");
    assert!(
        doc["reason"].as_str().unwrap().contains("format version 1"),
        "{doc}"
    );

    // A Redis type the library never writes there.
    redis::cmd("HSET")
        .arg("iftb:v2:fear_greed")
        .arg("value")
        .arg("45")
        .exec(&mut server.raw())
        .unwrap();
    let doc = inspect(&server, "iftb:v2:fear_greed", 4);
    assert_eq!(doc["type"], "foreign");
    assert!(
        doc["reason"].as_str().unwrap().contains("Redis type"),
        "{doc}"
    );

    // A series with a member that is no run of ours: the head vouches for
    // the series, so the member is corruption of it.
    let bars: Vec<Bar> = (0..3)
        .map(|i| Bar::new(DAY + i * HOUR, 1.0, 2.0, 0.5, 1.5, 1.0))
        .collect();
    cache
        .ohlcv()
        .set_bars("BTCUSDT", Timeframe::H1, &bars)
        .await
        .unwrap();
    redis::cmd("ZADD")
        .arg("iftb:v2:ohlcv:{BTCUSDT:1h}")
        .arg(DAY + 10 * HOUR)
        .arg("garbage")
        .exec(&mut server.raw())
        .unwrap();
    let doc = inspect(&server, "iftb:v2:ohlcv:{BTCUSDT:1h}:head", 4);
    assert_eq!(doc["type"], "corrupt", "{doc}");

    let doc = inspect(&server, "iftb:v2:ticker:{XRPUSDT}", 3);
    assert_eq!(doc["type"], "missing");
    let text = on(&server, &["inspect", "iftb:v2:ticker:{XRPUSDT}"])
        .expect(3)
        .stdout;
    assert!(text.contains("no such key"), "{text}");

    let ran = on(&server, &["inspect", "bot2:v2:fear_greed"]).expect(2);
    assert!(
        ran.stderr.contains("not a key of namespace \"iftb\""),
        "{}",
        ran.stderr
    );
    let doc = on(
        &server,
        &[
            "--namespace",
            "bot2",
            "inspect",
            "bot2:v2:fear_greed",
            "--json",
        ],
    )
    .expect(3)
    .json();
    assert_eq!(doc["type"], "missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_without_yes_and_no_terminal_refuses_and_deletes_nothing() {
    let server = RedisServer::start();
    let cache = library(&server, "iftb").await;
    cache
        .market()
        .set_ticker("BTCUSDT", &btc_ticker())
        .await
        .unwrap();
    cache.client().set("note", "kept", None).await.unwrap();
    let before = keys(&server);
    let ran = on(&server, &["clear"]).expect(5);
    assert!(ran.stderr.contains("pass --yes"), "{}", ran.stderr);
    let doc = on(&server, &["clear", "--json"]).expect(5).json();
    assert_eq!(doc["error"]["kind"], "refused");
    assert_eq!(keys(&server), before);
    assert_eq!(before.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_yes_deletes_this_namespace_and_nothing_else() {
    let server = RedisServer::start();
    let ours = library(&server, "iftb").await;
    let theirs = library(&server, "bot2").await;
    ours.market()
        .set_ticker("BTCUSDT", &btc_ticker())
        .await
        .unwrap();
    ours.ohlcv()
        .set_bars("BTCUSDT", Timeframe::H1, &[support::sample_bar()])
        .await
        .unwrap();
    theirs
        .market()
        .set_ticker("BTCUSDT", &btc_ticker())
        .await
        .unwrap();
    server.raw_set("unrelated", b"another program's");
    let doc = on(&server, &["clear", "--yes", "--json"]).expect(0).json();
    assert_eq!(
        (doc["namespace"].clone(), doc["deleted"].clone()),
        ("iftb".into(), 3.into())
    );
    assert_eq!(keys(&server), ["bot2:v2:ticker:{BTCUSDT}", "unrelated"]);
    let ran = on(&server, &["clear", "--yes", "--namespace", "bot2"]).expect(0);
    assert!(
        ran.stdout.contains("deleted 1 keys of namespace bot2"),
        "{}",
        ran.stdout
    );
    assert_eq!(keys(&server), ["unrelated"]);
}

#[test]
fn stats_times_both_reads_beside_their_floors_and_leaves_nothing() {
    let server = RedisServer::start();
    server.raw_set("iftb:kv:mine", b"kept");
    let ran = on(&server, &["stats", "--rounds", "30"]).expect(0);
    for shown in [
        "get_latest_bar",
        "get_bars(.., 100)",
        "raw GET of 60 B",
        "raw GET of 4804 B",
        "30 rounds",
        "memory: ",
        "fear_greed",
    ] {
        assert!(
            ran.stdout.contains(shown),
            "{shown} missing:\n{}",
            ran.stdout
        );
    }
    let doc = on(&server, &["stats", "--rounds", "30", "--json"])
        .expect(0)
        .json();
    // The memory report runs first: it sees the one key there, not the probe.
    let memory = &doc["memory"];
    assert_eq!(memory["complete"], true, "{memory}");
    assert_eq!(memory["types"]["other"]["keys"], 1, "{memory}");
    assert_eq!(memory["types"]["series"]["keys"], 0, "{memory}");
    assert!(
        memory["used_memory"].as_u64().is_some_and(|b| b > 0),
        "{memory}"
    );
    let latency = &doc["latency"];
    assert_eq!(latency["rounds"], 30);
    let reads = latency["reads"].as_array().unwrap();
    assert_eq!(reads.len(), 2);
    for (read, (name, bytes)) in reads
        .iter()
        .zip([("get_latest_bar", 60), ("get_bars(.., 100)", 4804)])
    {
        assert_eq!(read["read"], name);
        assert_eq!(read["floor"]["bytes"], bytes);
        for at in [&read["p50_us"], &read["p99_us"], &read["floor"]["p50_us"]] {
            assert!(at.as_f64().is_some_and(|us| us > 0.0), "{read}");
        }
        assert!(read["p99_us"].as_f64() >= read["p50_us"].as_f64(), "{read}");
    }
    assert_eq!(keys(&server), ["iftb:kv:mine"], "the probe was left behind");
}

#[test]
fn stats_without_the_memory_command_still_times_the_reads() {
    let server = RedisServer::start();
    let acl = redis::cmd("ACL")
        .arg(&["SETUSER", "nomem", "on", ">pw", "~*", "+@all", "-memory"])
        .to_owned();
    acl.query::<()>(&mut server.raw()).unwrap();
    // A key to measure: the walk asks `MEMORY USAGE` of each key it finds.
    server.raw_set("iftb:kv:mine", b"kept");
    let url = server.url_with("nomem:pw");
    let doc = run(Some(&url), &["stats", "--rounds", "10", "--json"])
        .expect(0)
        .json();
    let error = doc["memory"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("memory"), "{doc}");
    assert_eq!(doc["latency"]["rounds"], 10, "{doc}");
}

#[test]
fn no_redis_configured_is_a_usage_error_that_says_so() {
    let ran = run(None, &["bars", "BTCUSDT", "1h"]).expect(2);
    assert!(
        ran.stderr.contains("no Redis is configured"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("embedded backend"), "{}", ran.stderr);
    let doc = run(None, &["inspect", "iftb:v2:fear_greed", "--json"])
        .expect(2)
        .json();
    assert_eq!(doc["error"]["kind"], "usage");
    assert!(doc["error"]["message"]
        .as_str()
        .unwrap()
        .contains("REDIS_URL"));
}

#[test]
fn redis_down_is_exit_1() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    let ran = run(Some(&url), &["bars", "BTCUSDT", "1h"]).expect(1);
    assert!(ran.stderr.contains("cannot connect"), "{}", ran.stderr);
    let doc = run(None, &["--url", &url, "stats", "--json"])
        .expect(1)
        .json();
    assert_eq!(doc["error"]["kind"], "unavailable");
}

#[test]
fn bad_arguments_are_usage_errors_in_json_too() {
    let server = RedisServer::start();
    on(&server, &["bars", "BTCUSDT", "7h"]).expect(2);
    on(&server, &["bars", "BTC:USDT", "1h"]).expect(2);
    on(&server, &["bars", "BTCUSDT", "1h", "--from", "yesterday"]).expect(2);
    on(
        &server,
        &[
            "bars",
            "BTCUSDT",
            "1h",
            "--limit",
            "5",
            "--from",
            "2024-01-17",
        ],
    )
    .expect(2);
    let doc = on(
        &server,
        &["load", "/no/such/file.csv", "BTCUSDT", "1h", "--json"],
    )
    .expect(2)
    .json();
    assert!(doc["error"]["message"]
        .as_str()
        .unwrap()
        .contains("cannot read /no/such/file.csv"));
    let doc = on(&server, &["bars", "BTCUSDT", "1h", "--ttl", "5", "--json"])
        .expect(2)
        .json();
    assert_eq!(doc["error"]["kind"], "usage");
    let help = on(&server, &["--help"]).expect(0).stdout;
    assert!(
        help.contains("Exit codes:") && help.contains("5  clear not confirmed"),
        "{help}"
    );
    assert_eq!(dbsize(&server), 0);
}

#[test]
fn a_wrong_password_is_a_usage_error_and_never_shown() {
    let server = RedisServer::start_with(&["--requirepass", "right-secret"]);
    let wrong = server.url_with(":wrong-secret");
    let ran = run(Some(&wrong), &["bars", "BTCUSDT", "1h"]).expect(2);
    assert!(ran.stderr.contains("Authentication"), "{}", ran.stderr);
    let doc = run(
        None,
        &["--url", &wrong, "inspect", "iftb:v2:fear_greed", "--json"],
    )
    .expect(2);
    for out in [&ran.stdout, &ran.stderr, &doc.stdout, &doc.stderr] {
        assert!(!out.contains("secret"), "a password was shown: {out}");
    }
    let right = server.url_with(":right-secret");
    run(Some(&right), &["bars", "BTCUSDT", "1h"]).expect(3);
}
