//! `clear`: every key of this namespace, and nothing else
//! (`CacheManager::clear_all`), once confirmed.

use crate::exit;
use crate::output::{Failure, Report};
use iftb_cache::{CacheConfig, CacheManager};
use serde_json::json;
use std::io::{BufRead, IsTerminal, Write};

/// Confirmation before anything connects: `--yes`, or on a terminal the
/// namespace typed back. Without a terminal and without `--yes`, refused:
/// a script that meant to clear says so.
pub fn confirm(yes: bool, config: &CacheConfig) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    let ns = config.namespace();
    let what = format!(
        "clear deletes every key of namespace {ns} on {}",
        config.backend_description()
    );
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            exit::REFUSED,
            format!(
                "{what}; stdin is not a terminal, so pass --yes to confirm. Nothing was deleted."
            ),
        ));
    }
    eprint!("{what}.\nType the namespace ({ns}) to confirm: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let read = std::io::stdin().lock().read_line(&mut answer);
    if read.is_ok() && confirmed(&answer, ns) {
        Ok(())
    } else {
        Err(Failure::new(
            exit::REFUSED,
            "not confirmed: nothing was deleted",
        ))
    }
}

fn confirmed(answer: &str, namespace: &str) -> bool {
    answer.trim() == namespace
}

pub async fn run(cache: &CacheManager) -> Result<Report, Failure> {
    let ns = cache.config().namespace();
    let deleted = cache
        .clear_all()
        .await
        .map_err(|e| Failure::of(format!("clearing namespace {ns}"), &e))?;
    let text = format!("deleted {deleted} keys of namespace {ns}\n");
    Ok(Report::new(
        text,
        json!({ "namespace": ns, "deleted": deleted }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_namespace_itself_confirms() {
        assert!(confirmed("bot1\n", "bot1"));
        assert!(confirmed("  bot1 \r\n", "bot1"));
        for no in ["", "\n", "y\n", "yes\n", "Bot1\n", "bot\n", "bot1x\n"] {
            assert!(!confirmed(no, "bot1"), "{no:?}");
        }
    }
}
