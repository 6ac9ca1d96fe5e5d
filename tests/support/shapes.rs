//! Series of the shapes real market data has, for the tests and benchmarks
//! that must hold whatever the data: gaps, sparse candles, clocks off the
//! candle grid. Every bar's close is its index, so a read can be checked
//! against the series it came from.

use super::fixtures::bar_at;
use iftb_cache::{Bar, Timeframe};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// Monday 2024-01-15 00:00 UTC.
const MONDAY: i64 = 1_705_276_800_000;

/// One named shape: its bars and the timeframe they are stored under.
pub struct Shape {
    pub name: &'static str,
    pub tf: Timeframe,
    pub bars: Vec<Bar>,
}

/// Bars at the given open times, closing at 1, 2, 3, ...
fn at(times: impl Iterator<Item = i64>) -> Vec<Bar> {
    times
        .enumerate()
        .map(|(i, ts)| bar_at(ts, 1.0 + i as f64))
        .collect()
}

fn is_weekend(ts: i64) -> bool {
    // MONDAY is day 0 of the week: Saturday and Sunday are days 5 and 6.
    (ts - MONDAY).div_euclid(DAY).rem_euclid(7) >= 5
}

/// `n` one-minute bars, no gaps.
pub fn dense(n: usize) -> Shape {
    let bars = at((0..n as i64).map(|i| MONDAY + i * MINUTE));
    Shape {
        name: "dense 1m",
        tf: Timeframe::M1,
        bars,
    }
}

/// `n` hourly bars of a forex pair: nothing from Friday 22:00 to Sunday 22:00.
pub fn weekend_hourly(n: usize) -> Shape {
    let open = |ts: &i64| {
        let in_week = (ts - MONDAY).rem_euclid(7 * DAY);
        !(4 * DAY + 22 * HOUR..6 * DAY + 22 * HOUR).contains(&in_week)
    };
    let bars = at((0..).map(|i| MONDAY + i * HOUR).filter(open).take(n));
    Shape {
        name: "hourly, weekend gaps",
        tf: Timeframe::H1,
        bars,
    }
}

/// `n` daily bars of a stock: weekdays only, and a holiday every 20 weekdays.
pub fn daily_stock(n: usize) -> Shape {
    let weekdays = (0..)
        .map(|i| MONDAY + i * DAY)
        .filter(|ts| !is_weekend(*ts));
    let open = weekdays
        .enumerate()
        .filter(|(i, _)| i % 20 != 19)
        .map(|(_, ts)| ts);
    Shape {
        name: "daily, weekends and holidays",
        tf: Timeframe::D1,
        bars: at(open.take(n)),
    }
}

/// `n` one-minute bars of an illiquid symbol: one every `every` minutes.
pub fn sparse(n: usize, every: i64) -> Shape {
    let bars = at((0..n as i64).map(|i| MONDAY + i * every * MINUTE));
    Shape {
        name: "sparse 1m",
        tf: Timeframe::M1,
        bars,
    }
}

/// `n` bars stored under `1m` on a feed's own clock: a bar every 1 to 3
/// seconds, nowhere near the minute grid.
pub fn off_grid(n: usize) -> Shape {
    let times = (0..n as i64).scan(MONDAY + 317, |ts, i| {
        *ts += 1_000 + (i * 7_919) % 2_000;
        Some(*ts)
    });
    Shape {
        name: "off-grid seconds under 1m",
        tf: Timeframe::M1,
        bars: at(times),
    }
}

/// Every shape above, `n` bars each.
pub fn all(n: usize) -> Vec<Shape> {
    vec![
        dense(n),
        weekend_hourly(n),
        daily_stock(n),
        sparse(n, 60),
        off_grid(n),
    ]
}
