//! The operation-sequence target's market data (tickers, funding rates,
//! Fear & Greed) and LLM steps.

use super::model::*;
use super::ticker_bits;
use iftb_cache::{CacheManager, FearGreed, FearGreedClass, Ticker, WriteOptions};
use std::time::Duration;

const ANALYSIS_TYPES: [&str; 2] = ["sentiment", "bad type"];
const HASHES: [&str; 2] = ["99aa06d3014798d86001c324468d497f", "not-hex"];

/// A TTL choice shared by the market and LLM writes: the default, an invalid
/// zero, or some milliseconds. `None` when the write must be rejected.
fn ttl_choice(input: &mut Input<'_>, default_ms: u64) -> (Option<Duration>, Option<u64>) {
    match input.pick(3) {
        0 => (None, Some(default_ms)),
        1 => (Some(Duration::ZERO), None),
        _ => {
            let ms = 1 + u64::from(input.byte()) * 40;
            (Some(Duration::from_millis(ms)), Some(ms))
        }
    }
}

/// The classification bands of `FearGreed::validate`, written out again.
fn fear_greed_ok(fg: &FearGreed) -> bool {
    let band = match fg.classification {
        FearGreedClass::ExtremeFear => 0..=25,
        FearGreedClass::Fear => 20..=49,
        FearGreedClass::Neutral => 40..=60,
        FearGreedClass::Greed => 50..=80,
        _ => 75..=100,
    };
    band.contains(&fg.value) && (0..=iftb_cache::MAX_TIMESTAMP_MS).contains(&fg.timestamp)
}

fn valid_ticker(t: &Ticker) -> bool {
    let prices = [
        t.bid,
        t.ask,
        t.last,
        t.volume_24h,
        t.change_24h,
        t.high_24h,
        t.low_24h,
    ];
    valid_symbol(&t.symbol)
        && (0..=iftb_cache::MAX_TIMESTAMP_MS).contains(&t.timestamp)
        && prices.iter().all(|p| p.is_finite())
}

/// Symbols of a batch read: 1 to 3 indexes.
fn batch(input: &mut Input<'_>) -> Vec<usize> {
    let n = 1 + input.pick(3);
    (0..n).map(|_| input.pick(SYMBOLS.len())).collect()
}

/// Ticker, funding-rate, Fear & Greed and LLM writes and reads.
pub(crate) async fn market_and_llm(
    op: usize,
    input: &mut Input<'_>,
    cache: &CacheManager,
    model: &mut Model,
    si: usize,
) -> (Outcome, Outcome) {
    let m = cache.market();
    let now = model.now;
    match op {
        14 => {
            let [bid, ask, last, volume_24h, change_24h, high_24h, low_24h] =
                [(); 7].map(|_| input.price());
            let symbol = SYMBOLS[si].to_string();
            let timestamp = input.timestamp();
            let t = Ticker {
                symbol,
                bid,
                ask,
                last,
                volume_24h,
                change_24h,
                high_24h,
                low_24h,
                timestamp,
            };
            let (ttl, ttl_ms) = ttl_choice(input, 10_000);
            let set = match ttl {
                None => m.set_ticker(SYMBOLS[si], &t).await,
                Some(ttl) => {
                    m.set_ticker_with(SYMBOLS[si], &t, WriteOptions::new().ttl(ttl))
                        .await
                }
            };
            let got = outcome(set, |()| Outcome::Done);
            match ttl_ms.filter(|_| valid_ticker(&t)) {
                Some(ms) => {
                    model.tickers.insert(si, (t, now + ms));
                    (got, Outcome::Done)
                }
                None => (got, Outcome::Invalid),
            }
        }
        15 => {
            let keys = batch(input);
            let names: Vec<&str> = keys.iter().map(|k| SYMBOLS[*k]).collect();
            let got = outcome(m.get_tickers(&names).await, |v| {
                Outcome::Tickers(v.iter().map(|t| t.as_ref().map(ticker_bits)).collect())
            });
            if !names.iter().all(|s| valid_symbol(s)) {
                return (got, Outcome::Invalid);
            }
            let mut want = Vec::new();
            for k in keys {
                let t = live(model.tickers.get(&k), now).map(ticker_bits);
                model.read(t.is_some());
                want.push(t);
            }
            (got, Outcome::Tickers(want))
        }
        16 => {
            let rate = input.price();
            let (ttl, ttl_ms) = ttl_choice(input, 60_000);
            let set = match ttl {
                None => m.set_funding_rate(SYMBOLS[si], rate).await,
                Some(ttl) => {
                    m.set_funding_rate_with(SYMBOLS[si], rate, WriteOptions::new().ttl(ttl))
                        .await
                }
            };
            let got = outcome(set, |()| Outcome::Done);
            match ttl_ms.filter(|_| valid_symbol(SYMBOLS[si]) && rate.is_finite()) {
                Some(ms) => {
                    model.rates.insert(si, (rate, now + ms));
                    (got, Outcome::Done)
                }
                None => (got, Outcome::Invalid),
            }
        }
        17 => {
            let keys = batch(input);
            let names: Vec<&str> = keys.iter().map(|k| SYMBOLS[*k]).collect();
            let got = outcome(m.get_funding_rates(&names).await, |v| {
                Outcome::Rates(v.iter().map(|r| r.map(f64::to_bits)).collect())
            });
            if !names.iter().all(|s| valid_symbol(s)) {
                return (got, Outcome::Invalid);
            }
            let mut want = Vec::new();
            for k in keys {
                let rate = live(model.rates.get(&k), now).map(|r| r.to_bits());
                model.read(rate.is_some());
                want.push(rate);
            }
            (got, Outcome::Rates(want))
        }
        18 => {
            if input.pick(2) == 0 {
                let got = outcome(m.get_fear_greed().await, Outcome::FearGreed);
                let want = live(model.fear_greed.as_ref(), now).cloned();
                model.read(want.is_some());
                return (got, Outcome::FearGreed(want));
            }
            const CLASSES: [FearGreedClass; 5] = [
                FearGreedClass::ExtremeFear,
                FearGreedClass::Fear,
                FearGreedClass::Neutral,
                FearGreedClass::Greed,
                FearGreedClass::ExtremeGreed,
            ];
            let fg = FearGreed {
                value: input.byte(),
                classification: CLASSES[input.pick(5)],
                timestamp: input.timestamp(),
            };
            let (ttl, ttl_ms) = ttl_choice(input, 300_000);
            let set = match ttl {
                None => m.set_fear_greed(&fg).await,
                Some(ttl) => {
                    m.set_fear_greed_with(&fg, WriteOptions::new().ttl(ttl))
                        .await
                }
            };
            let got = outcome(set, |()| Outcome::Done);
            match ttl_ms.filter(|_| fear_greed_ok(&fg)) {
                Some(ms) => {
                    model.fear_greed = Some((fg, now + ms));
                    (got, Outcome::Done)
                }
                None => (got, Outcome::Invalid),
            }
        }
        _ => analysis(input, cache, model).await,
    }
}

/// An LLM result written (small, or large enough to be compressed) or read.
async fn analysis(
    input: &mut Input<'_>,
    cache: &CacheManager,
    model: &mut Model,
) -> (Outcome, Outcome) {
    let (ti, hi) = (input.pick(2), input.pick(2));
    let (kind, hash) = (ANALYSIS_TYPES[ti], HASHES[hi]);
    let valid = ti == 0 && hi == 0;
    let llm = cache.llm();
    if input.pick(2) == 0 {
        let got = llm.get_analysis::<String>(kind, hash).await;
        let got = outcome(got, Outcome::Analysis);
        if !valid {
            return (got, Outcome::Invalid);
        }
        let want = live(model.analyses.get(&(ti, hi)), model.now).cloned();
        model.read(want.is_some());
        return (got, Outcome::Analysis(want));
    }
    let len = [0, 12, 300, 20_000][input.pick(4)];
    let text: String = (0..len).map(|i| (b'a' + (i % 7) as u8) as char).collect();
    let (ttl, ttl_ms) = ttl_choice(input, 300_000);
    let set = match ttl {
        None => llm.set_analysis(kind, hash, &text).await,
        Some(ttl) => {
            llm.set_analysis_with(kind, hash, &text, WriteOptions::new().ttl(ttl))
                .await
        }
    };
    let got = outcome(set, |()| Outcome::Done);
    match ttl_ms.filter(|_| valid) {
        Some(ms) => {
            model.analyses.insert((ti, hi), (text, model.now + ms));
            (got, Outcome::Done)
        }
        None => (got, Outcome::Invalid),
    }
}
