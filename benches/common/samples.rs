//! Latency samples and the table helpers of the side-by-side harnesses
//! (`examples/compare.rs`, `examples/targets.rs`).

use std::future::Future;
use std::time::{Duration, Instant};

pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Latency samples of one measurement.
#[derive(Default)]
pub struct Samples(pub Vec<Duration>);

impl Samples {
    pub async fn time<T>(&mut self, fut: impl Future<Output = Res<T>>) -> Res<T> {
        let start = Instant::now();
        let out = fut.await?;
        self.0.push(start.elapsed());
        Ok(out)
    }

    /// Nearest-rank percentile, `p` in `0..=1`.
    pub fn pct(&self, p: f64) -> Duration {
        let mut v = self.0.clone();
        v.sort_unstable();
        let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1]
    }

    pub fn p50(&self) -> Duration {
        self.pct(0.50)
    }

    pub fn p99(&self) -> Duration {
        self.pct(0.99)
    }
}

pub fn fmt_time(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    match us {
        us if us >= 10_000.0 => format!("{:.1} ms", us / 1e3),
        us if us < 10.0 => format!("{us:.2} µs"),
        us => format!("{us:.1} µs"),
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

/// The load average, for the table's heading: a busy machine shows.
pub fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
