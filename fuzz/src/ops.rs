//! The operation-sequence target: OHLCV and low-level client calls, time
//! and clearing, each answer checked against the model.

use super::bar_bits;
use super::market::market_and_llm;
use super::model::*;
use iftb_cache::{Bar, BarWriteOptions, CacheConfig, CacheManager, CacheStats, Timeframe};
use std::num::NonZeroUsize;
use std::time::Duration;

/// Runs a sequence of cache operations read from `data` on the embedded
/// backend, with tokio's clock paused, and checks every answer and the hit
/// and miss counters against [`Model`] after each step.
pub fn check_cache_ops(data: &[u8]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(run_ops(Input { data }));
}

async fn run_ops(mut input: Input<'_>) {
    let cache = CacheManager::connect(CacheConfig::embedded())
        .await
        .expect("embedded");
    let mut model = Model::default();
    for step in 0..64 {
        if input.data.is_empty() {
            break;
        }
        let op = input.pick(20);
        let (got, want) = step_once(op, &mut input, &cache, &mut model).await;
        assert_eq!(got, want, "step {step}, op {op}");
        let stats: CacheStats = cache.stats();
        assert_eq!(
            (stats.hits, stats.misses),
            (model.hits, model.misses),
            "step {step}"
        );
        assert_eq!(stats.errors, 0, "step {step}");
    }
}

pub(crate) async fn step_once(
    op: usize,
    input: &mut Input<'_>,
    cache: &CacheManager,
    model: &mut Model,
) -> (Outcome, Outcome) {
    let (si, ti) = (input.pick(SYMBOLS.len()), input.pick(TIMEFRAMES.len()));
    let (sym, tf) = (SYMBOLS[si], TIMEFRAMES[ti]);
    let o = cache.ohlcv();
    let c = cache.client();
    match op {
        0 | 1 => set_bars(input, cache, model, (si, ti)).await,
        2 | 3 => {
            let limit = input.pick(8);
            let archived = op == 3;
            let got = if archived {
                let view = o.get_bars_archived(sym, tf, limit).await;
                outcome(view, |v| bars_outcome(v.map(|v| v.to_vec())))
            } else {
                outcome(o.get_bars(sym, tf, limit).await, bars_outcome)
            };
            if !valid_symbol(sym) || limit == 0 {
                return (got, Outcome::Invalid);
            }
            let newest = model.live_series((si, ti)).map(|s| s.newest(limit));
            let newest = newest.unwrap_or_default();
            (got, Outcome::Bars(model.bars_read(newest)))
        }
        4 => {
            let from = input.pick(20) as i64 * 60_000 - 60_000;
            let to = input.pick(20) as i64 * 60_000 - 60_000;
            let got = outcome(o.get_range(sym, tf, from, to).await, bars_outcome);
            if !valid_symbol(sym) || from > to {
                return (got, Outcome::Invalid);
            }
            let window = model.live_series((si, ti)).map(|s| s.range(from, to));
            let window = window.unwrap_or_default();
            (got, Outcome::Bars(model.bars_read(window)))
        }
        5 => {
            let got = outcome(o.get_latest_bar(sym, tf).await, |b| {
                bars_outcome(b.map(|b| vec![b]))
            });
            if !valid_symbol(sym) {
                return (got, Outcome::Invalid);
            }
            let latest = model.live_series((si, ti)).and_then(|s| s.latest());
            let latest: Vec<Bar> = latest.into_iter().collect();
            (got, Outcome::Bars(model.bars_read(latest)))
        }
        6 => {
            let n = 1 + input.pick(3);
            let keys: Vec<(usize, usize)> = (0..n)
                .map(|_| (input.pick(SYMBOLS.len()), input.pick(TIMEFRAMES.len())))
                .collect();
            let series: Vec<(&str, Timeframe)> = keys
                .iter()
                .map(|(s, t)| (SYMBOLS[*s], TIMEFRAMES[*t]))
                .collect();
            let got = outcome(o.get_latest_bars(&series).await, |v| {
                Outcome::Many(v.iter().map(|b| b.as_ref().map(bar_bits)).collect())
            });
            if keys.iter().any(|(s, _)| !valid_symbol(SYMBOLS[*s])) {
                return (got, Outcome::Invalid);
            }
            let mut want = Vec::new();
            for key in keys {
                let latest = model.live_series(key).and_then(|s| s.latest());
                let latest = latest.as_ref().map(bar_bits);
                model.read(latest.is_some());
                want.push(latest);
            }
            (got, Outcome::Many(want))
        }
        7 => {
            let got = outcome(o.invalidate(sym, tf).await, Outcome::Flag);
            if !valid_symbol(sym) {
                return (got, Outcome::Invalid);
            }
            let existed = model.live_series((si, ti)).is_some();
            model.series.remove(&(si, ti));
            (got, Outcome::Flag(existed))
        }
        8 => client_set(input, cache, model).await,
        9 => {
            let k = input.pick(KEYS.len());
            let got = outcome(c.get_bytes(KEYS[k]).await, |v| {
                Outcome::Value(v.map(|v| v.to_vec()))
            });
            if KEYS[k].is_empty() {
                return (got, Outcome::Invalid);
            }
            let value = model.live_value(k).cloned();
            model.read(value.is_some());
            (got, Outcome::Value(value))
        }
        10 => {
            let k = input.pick(KEYS.len());
            let (exists, delete) = (c.exists(KEYS[k]).await, c.delete(KEYS[k]).await);
            let (exists, delete) = (
                outcome(exists, Outcome::Flag),
                outcome(delete, Outcome::Flag),
            );
            let got = Outcome::Pair(Box::new(exists), Box::new(delete));
            let (exists, delete) = if KEYS[k].is_empty() {
                (Outcome::Invalid, Outcome::Invalid)
            } else {
                let live = model.live_value(k).is_some();
                model.kv.remove(&k);
                (Outcome::Flag(live), Outcome::Flag(live))
            };
            (got, Outcome::Pair(Box::new(exists), Box::new(delete)))
        }
        11 => {
            let n = input.pick(4);
            let ks: Vec<usize> = (0..n).map(|_| input.pick(KEYS.len())).collect();
            let names: Vec<&str> = ks.iter().map(|k| KEYS[*k]).collect();
            let got = outcome(c.mget(&names).await, |v| {
                Outcome::Values(v.into_iter().map(|v| v.map(|v| v.to_vec())).collect())
            });
            if names.iter().any(|k| k.is_empty()) {
                return (got, Outcome::Invalid);
            }
            let mut want = Vec::new();
            for k in ks {
                let value = model.live_value(k).cloned();
                model.read(value.is_some());
                want.push(value);
            }
            (got, Outcome::Values(want))
        }
        14..=19 => market_and_llm(op, input, cache, model, si).await,
        12 => {
            let ms = u64::from(input.byte()) * 50;
            tokio::time::advance(Duration::from_millis(ms)).await;
            model.now += ms;
            (Outcome::Done, Outcome::Done)
        }
        _ => {
            let got = outcome(cache.clear_all().await, Outcome::Count);
            let live = model.live_keys();
            *model = Model {
                now: model.now,
                hits: model.hits,
                misses: model.misses,
                ..Model::default()
            };
            (got, Outcome::Count(live))
        }
    }
}

async fn set_bars(
    input: &mut Input<'_>,
    cache: &CacheManager,
    model: &mut Model,
    key: (usize, usize),
) -> (Outcome, Outcome) {
    let n = input.pick(6);
    let bars: Vec<Bar> = (0..n)
        .map(|_| {
            let ts = input.timestamp();
            let [o, h, l, c, v] = [(); 5].map(|_| input.price());
            Bar::new(ts, o, h, l, c, v)
        })
        .collect();
    let (ttl, ttl_ms) = match input.pick(4) {
        0 => (None, Some(DEFAULT_BAR_TTL_MS)),
        1 => (Some(Duration::ZERO), None),
        2 => {
            let ms = 1 + u64::from(input.byte()) * 40;
            (Some(Duration::from_millis(ms)), Some(ms))
        }
        _ => (Some(Duration::from_micros(500)), None),
    };
    let cap = (input.pick(3) == 0).then(|| 1 + input.pick(4));
    let mut opts = BarWriteOptions::new();
    if let Some(ttl) = ttl {
        opts = opts.ttl(ttl);
    }
    if let Some(cap) = cap {
        opts = opts.max_bars(NonZeroUsize::new(cap).expect("non-zero"));
    }
    let (sym, tf) = (SYMBOLS[key.0], TIMEFRAMES[key.1]);
    let got = outcome(
        cache.ohlcv().set_bars_with(sym, tf, &bars, opts).await,
        |()| Outcome::Done,
    );
    let Some(ttl_ms) = ttl_ms.filter(|_| valid_symbol(sym) && bars.iter().all(valid_bar)) else {
        return (got, Outcome::Invalid);
    };
    if bars.is_empty() {
        return (got, Outcome::Done);
    }
    let mut series = model.live_series(key).cloned().unwrap_or_default();
    series.upsert(&bars, cap);
    model.series.insert(key, (series, model.now + ttl_ms));
    (got, Outcome::Done)
}

async fn client_set(
    input: &mut Input<'_>,
    cache: &CacheManager,
    model: &mut Model,
) -> (Outcome, Outcome) {
    let k = input.pick(KEYS.len());
    let len = input.pick(9);
    let value: Vec<u8> = (0..len).map(|_| input.byte()).collect();
    let (ttl, ttl_ms, ttl_ok) = match input.pick(3) {
        0 => (None, None, true),
        1 => (Some(Duration::ZERO), None, false),
        _ => {
            let ms = 1 + u64::from(input.byte()) * 40;
            (Some(Duration::from_millis(ms)), Some(ms), true)
        }
    };
    let client = cache.client();
    let set = client.set_bytes(KEYS[k], value.clone().into(), ttl).await;
    let got = outcome(set, |()| Outcome::Done);
    if KEYS[k].is_empty() || !ttl_ok {
        return (got, Outcome::Invalid);
    }
    let expires = ttl_ms.map(|ms| model.now + ms);
    model.kv.insert(k, (value, expires));
    (got, Outcome::Done)
}
