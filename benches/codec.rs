//! The codec, phase by phase: serialize, validated access and deserialize
//! measured separately for one bar, a 100-bar series and a ticker, with
//! `serde_json` of the same data (one JSON document per bar, as the Python
//! original stored them) as the reference.
//!
//! `cargo bench --bench codec`

#[path = "common/mod.rs"]
mod common;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use iftb_cache::{codec, Bar, Ticker};
use rkyv::rancor;
use std::hint::black_box;
use std::time::Duration;

fn group<'a>(c: &'a mut Criterion, name: &str, elements: u64) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(elements))
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g
}

fn one_bar(c: &mut Criterion) {
    let bar = common::bars(1, 60_000, common::SEED)[0];
    let bytes = codec::encode(&bar);
    let json = serde_json::to_vec(&bar).expect("json");
    let archived = codec::access::<Bar>(&bytes).expect("valid");
    let mut g = group(c, "codec/bar", 1);
    g.bench_function("rkyv/serialize", |b| {
        b.iter(|| codec::encode(black_box(&bar)))
    });
    g.bench_function("rkyv/access", |b| {
        b.iter(|| codec::access::<Bar>(black_box(&bytes)).map(|a| a.close.to_native()))
    });
    g.bench_function("rkyv/deserialize", |b| {
        b.iter(|| black_box(archived).to_bar())
    });
    g.bench_function("rkyv/decode", |b| {
        b.iter(|| codec::decode::<Bar>(black_box(&bytes)))
    });
    g.bench_function("serde_json/serialize", |b| {
        b.iter(|| serde_json::to_vec(black_box(&bar)))
    });
    g.bench_function("serde_json/deserialize", |b| {
        b.iter(|| serde_json::from_slice::<Bar>(black_box(&json)))
    });
    g.finish();
}

fn series_100(c: &mut Criterion) {
    let bars = common::bars(100, 60_000, common::SEED);
    let records = codec::encode_bars(&bars);
    let json: Vec<Vec<u8>> = bars
        .iter()
        .map(|b| serde_json::to_vec(b).expect("json"))
        .collect();
    let archived: Vec<_> = records
        .iter()
        .map(|r| codec::access::<Bar>(r).expect("valid"))
        .collect();
    let mut g = group(c, "codec/series_100", 100);
    g.bench_function("rkyv/serialize", |b| {
        b.iter(|| codec::encode_bars(black_box(&bars)))
    });
    g.bench_function("rkyv/access", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for r in black_box(&records) {
                sum += codec::access::<Bar>(r).map_or(0.0, |a| a.close.to_native());
            }
            sum
        })
    });
    g.bench_function("rkyv/deserialize", |b| {
        b.iter(|| {
            black_box(&archived)
                .iter()
                .map(|a| a.to_bar())
                .collect::<Vec<Bar>>()
        })
    });
    g.bench_function("rkyv/decode", |b| {
        b.iter(|| {
            let decoded: iftb_cache::Result<Vec<Bar>> = black_box(&records)
                .iter()
                .map(|r| codec::decode::<Bar>(r))
                .collect();
            decoded
        })
    });
    g.bench_function("serde_json/serialize", |b| {
        b.iter(|| {
            let out: Vec<Vec<u8>> = black_box(&bars)
                .iter()
                .map(|bar| serde_json::to_vec(bar).expect("json"))
                .collect();
            out
        })
    });
    g.bench_function("serde_json/deserialize", |b| {
        b.iter(|| {
            let out: serde_json::Result<Vec<Bar>> = black_box(&json)
                .iter()
                .map(|j| serde_json::from_slice(j))
                .collect();
            out
        })
    });
    g.finish();
}

fn ticker(c: &mut Criterion) {
    let ticker = common::ticker("BTCUSDT", common::SEED);
    let bytes = codec::encode(&ticker);
    let json = serde_json::to_vec(&ticker).expect("json");
    let archived = codec::access::<Ticker>(&bytes).expect("valid");
    let mut g = group(c, "codec/ticker", 1);
    g.bench_function("rkyv/serialize", |b| {
        b.iter(|| codec::encode(black_box(&ticker)))
    });
    g.bench_function("rkyv/access", |b| {
        b.iter(|| codec::access::<Ticker>(black_box(&bytes)).map(|a| a.last.to_native()))
    });
    g.bench_function("rkyv/deserialize", |b| {
        b.iter(|| rkyv::deserialize::<Ticker, rancor::Error>(black_box(archived)))
    });
    g.bench_function("rkyv/decode", |b| {
        b.iter(|| codec::decode::<Ticker>(black_box(&bytes)))
    });
    g.bench_function("serde_json/serialize", |b| {
        b.iter(|| serde_json::to_vec(black_box(&ticker)))
    });
    g.bench_function("serde_json/deserialize", |b| {
        b.iter(|| serde_json::from_slice::<Ticker>(black_box(&json)))
    });
    g.finish();
}

criterion_group!(benches, one_bar, series_100, ticker);
criterion_main!(benches);
