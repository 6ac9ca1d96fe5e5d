//! `inspect KEY`: what one key holds, decoded by the library
//! (`CacheManager::inspect`), rendered here. The inspection is the answer
//! whatever it found; the exit code says missing (3) or foreign or corrupt (4).

use crate::bars::bar_table;
use crate::exit;
use crate::output::{Failure, Report};
use crate::times;
use iftb_cache::{CacheManager, Inspection};
use serde_json::{json, Value};

pub async fn run(cache: &CacheManager, key: &str) -> Result<Report, Failure> {
    let found = cache
        .inspect(key)
        .await
        .map_err(|e| Failure::of(format!("inspecting {key}"), &e))?;
    let code = match &found {
        Inspection::Missing => exit::NOT_FOUND,
        Inspection::Foreign { .. } | Inspection::Corrupt { .. } => exit::BAD_DATA,
        _ => exit::SUCCESS,
    };
    // Serializing an inspection cannot fail (string keys, no maps of others).
    let mut json = serde_json::to_value(&found).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut json {
        fields.insert("key".into(), json!(key));
    }
    let text = format!("{key}\n{}", describe(&found));
    Ok(Report { text, json, code })
}

/// What was found, for people.
fn describe(found: &Inspection) -> String {
    match found {
        Inspection::Missing => "no such key\n".into(),
        Inspection::Foreign { reason } => format!("foreign value: {reason}\n"),
        Inspection::Corrupt { reason } => format!("corrupt value: {reason}\n"),
        Inspection::Series {
            symbol,
            timeframe,
            total,
            bars,
        } => format!(
            "series {symbol} {timeframe}: {total} bars; the newest {} here, newest first\n{}",
            bars.len(),
            bar_table(bars)
        ),
        Inspection::Ticker { symbol, ticker } => fields(
            &format!("ticker of {symbol}"),
            &[
                ("symbol", ticker.symbol.clone()),
                ("bid", ticker.bid.to_string()),
                ("ask", ticker.ask.to_string()),
                ("last", ticker.last.to_string()),
                ("volume_24h", ticker.volume_24h.to_string()),
                ("change_24h", format!("{} %", ticker.change_24h)),
                ("high_24h", ticker.high_24h.to_string()),
                ("low_24h", ticker.low_24h.to_string()),
                ("time", times::format(ticker.timestamp)),
            ],
        ),
        Inspection::FundingRate { symbol, rate } => {
            format!("funding rate of {symbol}: {rate} ({} %)\n", rate * 100.0)
        }
        Inspection::FearGreed { fear_greed } => format!(
            "Fear & Greed: {} ({}) at {}\n",
            fear_greed.value,
            fear_greed.classification.as_str(),
            times::format(fear_greed.timestamp)
        ),
        Inspection::Analysis {
            analysis_type,
            input_hash,
            compressed,
            result,
        } => format!(
            "LLM result {analysis_type} {input_hash}{}\n{}\n",
            if *compressed {
                " (stored LZ4-compressed)"
            } else {
                ""
            },
            serde_json::to_string_pretty(result).unwrap_or_else(|_| result.to_string())
        ),
        Inspection::Lock {
            analysis_type,
            input_hash,
            token,
        } => format!("LLM lock of {analysis_type} {input_hash}: held by token {token}\n"),
        Inspection::Kv {
            client_key,
            len,
            text,
        } => kv(client_key, *len, text.as_deref()),
        // Kinds a later library adds: its JSON says what they are.
        other => format!("{other:?}\n"),
    }
}

fn fields(title: &str, rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut out = format!("{title}\n");
    for (name, value) in rows {
        out.push_str(&format!("  {name:<width$}  {value}\n"));
    }
    out
}

fn kv(key: &str, len: usize, text: Option<&str>) -> String {
    let head = format!("client value {key:?}: {len} bytes");
    match text {
        Some(text) => format!("{head}, text:\n{text}\n"),
        None => format!("{head}, not UTF-8 text\n"),
    }
}
