//! The memory section of `stats`: [`CacheManager::memory_report`], what the
//! namespace's keys take by data type, as a table and as the report's own
//! JSON.

use crate::output::{table, Failure};
use crate::stats::Section;
use iftb_cache::{CacheManager, ErrorKind, MemoryReport};
use std::time::Duration;

pub async fn measure(cache: &CacheManager, within: Duration) -> Result<Section, Failure> {
    let report = match cache.memory_report_within(within).await {
        Ok(report) => report,
        // Redis refusing a command of the walk (an ACL without `MEMORY` or
        // `SCAN`: `NOPERM`, an authentication error) leaves the rest of
        // `stats` worth having.
        Err(e) if matches!(e.kind(), ErrorKind::Server | ErrorKind::Authentication) => {
            return Ok(not_reported(&e))
        }
        Err(e) => return Err(Failure::of("memory report", &e)),
    };
    // A struct of numbers and string-keyed maps: serializing it cannot fail.
    let json = serde_json::to_value(&report).unwrap_or_default();
    Ok(Section {
        name: "memory",
        text: text(&report),
        json,
    })
}

fn not_reported(e: &iftb_cache::Error) -> Section {
    Section {
        name: "memory",
        text: format!("memory: not reported: {e}\n"),
        json: serde_json::json!({ "error": e.to_string() }),
    }
}

fn text(report: &MemoryReport) -> String {
    let limit = report
        .max_memory
        .map_or("no limit".to_string(), |m| format!("limit {}", bytes(m)));
    let mut text = format!(
        "memory: {} in use ({limit}) on {}; this namespace's keys, walked in {} ms{}\n",
        bytes(report.used_memory),
        report.backend,
        report.elapsed.as_millis(),
        if report.complete {
            ""
        } else {
            " (stopped at the time bound: not every key was seen)"
        },
    );
    let header = ["type", "keys", "bytes", "avg TTL s", "no TTL"];
    let all = report.types().chain([("total", report.total())]);
    let rows: Vec<Vec<String>> = all
        .map(|(name, usage)| {
            let ttl = usage
                .avg_ttl
                .map_or("-".to_string(), |t| format!("{:.1}", t.as_secs_f64()));
            let row = [name.to_string(), usage.keys.to_string(), bytes(usage.bytes)];
            row.into_iter()
                .chain([ttl, usage.no_ttl.to_string()])
                .collect()
        })
        .collect();
    text.push_str(&table(&header, &rows));
    text
}

/// `1234567` as `1.2 MB`.
fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1_536), "1.5 KiB");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
    }
}
