//! `load FILE.csv SYMBOL TF`: backfills a series from CSV. The whole file is
//! parsed and checked first (`csv_bars`); a file with any bad row writes
//! nothing. Then the bars go in chunks through `set_bars_with`, oldest first.

use crate::csv_bars::{self, CsvError};
use crate::exit;
use crate::output::{Failure, Report};
use crate::times;
use iftb_cache::{Bar, BarWriteOptions, CacheManager, DataType, Timeframe};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

/// Bars per `set_bars_with` call: what the progress bar counts in. The
/// library pipelines each call in chunks of 2,000 bars, so a call of this
/// many is a few milliseconds of Redis' time, well inside one call deadline.
const CHUNK: usize = 10_000;

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// CSV file: a header naming timestamp (or time, or date), open, high, low, close
    /// and volume, in any case and order; times as epoch milliseconds or ISO 8601
    pub file: PathBuf,
    /// Symbol, such as BTCUSDT
    #[arg(value_parser = crate::parse::symbol)]
    pub symbol: String,
    /// Timeframe: 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M
    #[arg(value_parser = crate::parse::timeframe)]
    pub timeframe: Timeframe,
    /// Seconds the series lives after this load's last write [default: the
    /// configured bar TTL, 300 s unless set]; history usually wants much longer
    #[arg(long, value_name = "SECONDS", value_parser = crate::parse::ttl)]
    pub ttl: Option<Duration>,
}

/// Every bar of the file, oldest first; or why there are none to write.
pub fn read(args: &LoadArgs) -> Result<Vec<Bar>, Failure> {
    let path = args.file.display();
    // Read whole: the report counts lines from byte offsets into it, and a
    // file of bars is far smaller than the memory its bars take in Redis.
    let text = std::fs::read(&args.file)
        .map_err(|e| Failure::new(exit::USAGE, format!("cannot read {path}: {e}")))?;
    csv_bars::read_bars(&text).map_err(|e| refused(&path, e))
}

fn refused(path: &impl std::fmt::Display, e: CsvError) -> Failure {
    match e {
        CsvError::Header(why) => Failure::new(
            exit::BAD_DATA,
            format!("{path}: {why}; nothing was written"),
        ),
        CsvError::Rows { shown, more } => {
            let total = shown.len() + more;
            let mut failure = Failure::new(
                exit::BAD_DATA,
                format!("{path}: {total} bad rows; nothing was written"),
            );
            failure.lines = shown
                .iter()
                .map(|row| format!("line {}: {}", row.line, row.message))
                .collect();
            if more > 0 {
                failure.lines.push(format!("... and {more} more"));
            }
            failure
                .field("bad_rows", json!(shown))
                .field("more_bad_rows", json!(more))
        }
    }
}

/// Writes `bars` (oldest first, so every chunk appends: the series' cheapest
/// write), with a progress bar on stderr when it is a terminal.
pub async fn write(
    cache: &CacheManager,
    args: &LoadArgs,
    bars: &[Bar],
    json: bool,
) -> Result<Report, Failure> {
    let (symbol, tf) = (args.symbol.as_str(), args.timeframe);
    let ttl = args
        .ttl
        .unwrap_or_else(|| cache.config().ttl(DataType::Bars));
    let options = || BarWriteOptions::new().ttl(ttl);
    let progress = progress(bars.len(), json);
    let mut written = 0;
    for chunk in bars.chunks(CHUNK) {
        let landed = cache
            .ohlcv()
            .set_bars_with(symbol, tf, chunk, options())
            .await;
        if let Err(e) = landed {
            progress.abandon();
            return Err(failed_midway(&e, written, bars.len(), chunk.len()));
        }
        written += chunk.len();
        progress.set_position(written as u64);
    }
    progress.finish_and_clear();
    Ok(loaded(args, bars, ttl))
}

fn failed_midway(e: &iftb_cache::Error, written: usize, total: usize, chunk: usize) -> Failure {
    let message = format!(
        "{e}\n{written} of {total} bars were written before it failed (some of the next \
         {chunk} may have landed too). Running the same load again is safe: writes are \
         upserts by open time."
    );
    Failure::new(exit::of(e), message)
        .field("written", json!(written))
        .field("total", json!(total))
}

fn progress(total: usize, json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} bars {eta}") {
        bar.set_style(style);
    }
    bar
}

fn loaded(args: &LoadArgs, bars: &[Bar], ttl: Duration) -> Report {
    let (first, last) = (bars[0].timestamp, bars[bars.len() - 1].timestamp);
    let text = format!(
        "loaded {} bars into {} {}, {} to {}; the series expires {} s after this write\n",
        bars.len(),
        args.symbol,
        args.timeframe,
        times::format(first),
        times::format(last),
        ttl.as_secs()
    );
    let json = json!({
        "symbol": args.symbol,
        "timeframe": args.timeframe.as_str(),
        "loaded": bars.len(),
        "first": times::format(first),
        "last": times::format(last),
        "ttl_seconds": ttl.as_secs(),
    });
    Report::new(text, json)
}
