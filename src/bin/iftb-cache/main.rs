//! `iftb-cache`: look at what the cache holds in Redis, load history into
//! it, check its latency, clear a namespace. rkyv values are unreadable in
//! `redis-cli`; this tool decodes them with the library's own decoders.
//!
//! Each command is a module; the library does the reading and decoding,
//! the modules here render. `exit.rs` holds the exit codes.
#![forbid(unsafe_code)]

mod bars;
mod clear;
mod csv_bars;
mod exit;
mod inspect;
mod latency;
mod load;
mod memory;
mod output;
mod parse;
mod stats;
mod target;
mod times;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use output::{Failure, Report};
use std::process::ExitCode;

/// Look at, load and check an iftb-cache in Redis.
#[derive(Debug, Parser)]
#[command(name = "iftb-cache", version)]
struct Cli {
    #[command(flatten)]
    global: target::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode what one key holds (a full key, as redis-cli lists it)
    Inspect {
        /// Such as iftb:v2:ohlcv:{BTCUSDT:1h} or iftb:v2:ticker:{BTCUSDT}
        key: String,
    },
    /// The newest bars of a series, or those of a window, newest first
    Bars(bars::BarsArgs),
    /// Backfill a series from a CSV file: all rows checked first, nothing written if any is bad
    Load(load::LoadArgs),
    /// Round-trip latency of the cache's reads beside a raw GET of the same size
    Stats(stats::StatsArgs),
    /// Delete every key of this namespace (and nothing else)
    Clear {
        /// Do not ask: needed when stdin is not a terminal
        #[arg(long, short)]
        yes: bool,
    },
}

/// What `--help` says above the commands: configuration and exit codes.
fn long_about() -> String {
    format!(
        "Look at, load and check an iftb-cache in Redis: decodes the rkyv values \
         redis-cli shows as bytes.\n\n\
         Redis and the namespace come from the environment, as the library reads them: \
         REDIS_URL, or REDIS_HOST (REDIS_PORT, REDIS_PASSWORD, REDIS_DB), \
         REDIS_CLUSTER_NODES, REDIS_SENTINELS with REDIS_SENTINEL_MASTER, \
         IFTB_CACHE_NAMESPACE; ./.env is read too, real variables win. --url and \
         --namespace override them.\n\n{}",
        exit::help()
    )
}

fn main() -> ExitCode {
    let json = std::env::args_os().any(|a| a == "--json");
    let command = Cli::command().long_about(long_about());
    let cli = match command
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) => return usage(e, json),
    };
    let json = cli.global.json;
    output::finish(json, run(cli))
}

/// clap's own errors and `--help`: as clap prints them, or a JSON error.
fn usage(e: clap::Error, json: bool) -> ExitCode {
    let code = u8::try_from(e.exit_code()).unwrap_or(exit::USAGE);
    if !json || code == exit::SUCCESS {
        let _ = e.print();
        return ExitCode::from(code);
    }
    let rendered = e.render().to_string();
    let message = rendered.trim().trim_start_matches("error: ");
    output::finish(true, Err(Failure::new(code, message)))
}

fn run(cli: Cli) -> Result<Report, Failure> {
    let config = target::config(&cli.global)?;
    // Asked before connecting: a refusal needs no Redis.
    if let Command::Clear { yes } = &cli.command {
        clear::confirm(*yes, &config)?;
    }
    // Parsed and checked before connecting: a bad file needs no Redis either.
    let bars = match &cli.command {
        Command::Load(args) => load::read(args)?,
        _ => Vec::new(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(exit::UNAVAILABLE, format!("cannot start a runtime: {e}")))?;
    runtime.block_on(async {
        let cache = target::connect(config).await?;
        match &cli.command {
            Command::Inspect { key } => inspect::run(&cache, key).await,
            Command::Bars(args) => bars::run(&cache, args).await,
            Command::Load(args) => load::write(&cache, args, &bars, cli.global.json).await,
            Command::Stats(args) => stats::run(&cache, args).await,
            Command::Clear { .. } => clear::run(&cache).await,
        }
    })
}
