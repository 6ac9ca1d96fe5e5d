//! `bars SYMBOL TF`: the newest bars of a series, or those of a window, as a
//! table newest first; and the bar table and JSON `inspect` shows too.

use crate::exit;
use crate::output::{table, Failure, Report};
use crate::times;
use iftb_cache::{Bar, CacheManager, Timeframe, MAX_TIMESTAMP_MS};
use serde_json::{json, Value};

/// Bars read when neither `--limit` nor a window is given.
const DEFAULT_LIMIT: usize = 100;

#[derive(Debug, clap::Args)]
pub struct BarsArgs {
    /// Symbol, such as BTCUSDT
    #[arg(value_parser = crate::parse::symbol)]
    pub symbol: String,
    /// Timeframe: 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M
    #[arg(value_parser = crate::parse::timeframe)]
    pub timeframe: Timeframe,
    /// The newest N bars, 1 to 50000 [default: 100]
    #[arg(long, value_name = "N", conflicts_with_all = ["from", "to"],
          value_parser = crate::parse::bar_limit)]
    pub limit: Option<usize>,
    /// Bars opened at or after T: epoch ms or ISO 8601 (2024-01-17, 2024-01-17T08:00:00Z, ..)
    #[arg(long, value_name = "T", value_parser = crate::parse::time)]
    pub from: Option<i64>,
    /// Bars opened at or before T (same formats)
    #[arg(long, value_name = "T", value_parser = crate::parse::time)]
    pub to: Option<i64>,
}

pub async fn run(cache: &CacheManager, args: &BarsArgs) -> Result<Report, Failure> {
    let ohlcv = cache.ohlcv();
    let (symbol, tf) = (args.symbol.as_str(), args.timeframe);
    let window = args.from.is_some() || args.to.is_some();
    let read = if window {
        let (from, to) = (args.from.unwrap_or(0), args.to.unwrap_or(MAX_TIMESTAMP_MS));
        let oldest_first = ohlcv.get_range(symbol, tf, from, to).await;
        oldest_first.map(|found| found.map(|bars| bars.into_iter().rev().collect()))
    } else {
        let limit = args.limit.unwrap_or(DEFAULT_LIMIT);
        ohlcv.get_bars(symbol, tf, limit).await
    };
    let what = format!("{symbol} {tf}");
    let bars: Vec<Bar> = read
        .map_err(|e| Failure::of(format!("reading {what}"), &e))?
        .ok_or_else(|| {
            let scope = if window { " in that window" } else { "" };
            let ns = cache.config().namespace();
            Failure::new(
                exit::NOT_FOUND,
                format!("no bars of {what}{scope} are cached (namespace {ns})"),
            )
        })?;
    let text = format!(
        "{what}: {} bars, newest first\n{}",
        bars.len(),
        bar_table(&bars)
    );
    let json = json!({
        "symbol": symbol,
        "timeframe": tf.as_str(),
        "count": bars.len(),
        "bars": bars_json(&bars),
    });
    Ok(Report::new(text, json))
}

/// Bars as a table, in the order given, times in UTC.
pub fn bar_table(bars: &[Bar]) -> String {
    let rows: Vec<Vec<String>> = bars
        .iter()
        .map(|b| {
            let mut row = vec![times::format(b.timestamp)];
            row.extend([b.open, b.high, b.low, b.close, b.volume].map(|v| v.to_string()));
            row
        })
        .collect();
    let header = ["time (UTC)", "open", "high", "low", "close", "volume"];
    table(&header, &rows)
}

/// Bars as JSON: each field, and the open time as ISO 8601 beside its ms.
pub fn bars_json(bars: &[Bar]) -> Value {
    bars.iter()
        .map(|b| {
            json!({
                "timestamp": b.timestamp,
                "time": times::format(b.timestamp),
                "open": b.open,
                "high": b.high,
                "low": b.low,
                "close": b.close,
                "volume": b.volume,
            })
        })
        .collect()
}
