//! Replays the saved fuzz corpus (`fuzz/corpus/<target>/`, committed) through
//! the fuzz targets' own checks, so that every `cargo test` runs them, with
//! or without a fuzzer on the machine. Inputs that once crashed a target are
//! kept there too, as regression cases.

#[path = "../fuzz/src/lib.rs"]
mod checks;

use std::path::{Path, PathBuf};

/// The corpus files of `target`, in a stable order.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("no saved corpus at {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    files
}

/// Runs `check` on every saved input of `target`, naming the input that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let files = corpus(target);
    assert!(!files.is_empty(), "the saved corpus of {target} is empty");
    for path in files {
        let data = std::fs::read(&path).expect("corpus file");
        let result = std::panic::catch_unwind(|| check(&data));
        if let Err(panic) = result {
            eprintln!("{target}: input {} failed", path.display());
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn decode_bar() {
    replay("decode_bar", checks::check_decode_bar);
}

#[test]
fn decode_bar_run() {
    replay("decode_bar_run", checks::check_decode_bar_run);
}

#[test]
fn decode_ticker() {
    replay("decode_ticker", checks::check_decode_ticker);
}

#[test]
fn decode_fear_greed() {
    replay("decode_fear_greed", checks::check_decode_fear_greed);
}

#[test]
fn decode_funding_rate() {
    replay("decode_funding_rate", checks::check_decode_funding_rate);
}

#[test]
fn cache_ops() {
    replay("cache_ops", checks::check_cache_ops);
}
