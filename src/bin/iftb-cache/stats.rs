//! `stats`: what the cache costs against this Redis, in sections: the
//! memory report (`memory.rs`) and latency (`latency.rs`).

use crate::output::{Failure, Report};
use crate::{latency, memory};
use iftb_cache::CacheManager;
use serde_json::{Map, Value};

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Rounds of the latency probe, each one call of every read timed
    #[arg(long, value_name = "N", default_value_t = 1_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rounds: u32,

    /// Seconds the memory report may walk the namespace's keys before it
    /// reports what it saw (it says so when it stopped early)
    #[arg(long, value_name = "SECONDS", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub memory_secs: u64,
}

/// One part of the report: its name (its key in the JSON), text and JSON.
pub struct Section {
    pub name: &'static str,
    pub text: String,
    pub json: Value,
}

pub async fn run(cache: &CacheManager, args: &StatsArgs) -> Result<Report, Failure> {
    let within = std::time::Duration::from_secs(args.memory_secs);
    let sections = vec![
        memory::measure(cache, within).await?,
        latency::measure(cache, args.rounds).await?,
    ];
    Ok(report(sections))
}

fn report(sections: Vec<Section>) -> Report {
    let text = sections
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let json: Map<String, Value> = sections
        .into_iter()
        .map(|s| (s.name.to_string(), s.json))
        .collect();
    Report::new(text, Value::Object(json))
}
