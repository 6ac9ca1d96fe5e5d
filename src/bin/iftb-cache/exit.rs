//! The exit codes scripts can rely on, in one place: the constants, the
//! table `--help` prints, the names `--json` errors carry, and which code
//! each library error kind gets.

use iftb_cache::{Error, ErrorKind};

/// The command did what it was asked.
pub const SUCCESS: u8 = 0;
/// Redis could not be reached, timed out, or answered with an error:
/// running the same command later may succeed.
pub const UNAVAILABLE: u8 = 1;
/// Bad arguments or configuration. clap's own usage errors exit with 2
/// too (a unit test holds the two equal).
pub const USAGE: u8 = 2;
/// Nothing there: the key does not exist, or no bars are cached.
pub const NOT_FOUND: u8 = 3;
/// Bad data: a foreign or corrupt value, or a CSV file with bad rows.
pub const BAD_DATA: u8 = 4;
/// `clear` was not confirmed: nothing was deleted.
pub const REFUSED: u8 = 5;

/// Every code, its name in `--json` errors (`"kind"`), and what it means.
pub const CODES: [(u8, &str, &str); 6] = [
    (SUCCESS, "ok", "success"),
    (
        UNAVAILABLE,
        "unavailable",
        "Redis unreachable, timed out, or answering with an error (try again later)",
    ),
    (
        USAGE,
        "usage",
        "bad arguments or configuration: no Redis configured, a bad URL, namespace, \
         symbol, timeframe, time or key, a wrong password, an unreadable file",
    ),
    (
        NOT_FOUND,
        "not_found",
        "nothing there: the key does not exist, or no bars are cached",
    ),
    (
        BAD_DATA,
        "bad_data",
        "a foreign or corrupt value, or a CSV file with bad rows (nothing was written)",
    ),
    (
        REFUSED,
        "refused",
        "clear not confirmed (no --yes and stdin not a terminal, or another answer \
         than the namespace): nothing was deleted",
    ),
];

/// The name of `code` in `--json` errors.
pub fn name(code: u8) -> &'static str {
    CODES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map_or("error", |(_, name, _)| name)
}

/// The exit code of a library error.
pub fn of(e: &Error) -> u8 {
    match e.kind() {
        // A wrong password is a configuration to fix, not an outage to wait out.
        ErrorKind::InvalidInput | ErrorKind::Config | ErrorKind::Authentication => USAGE,
        ErrorKind::Codec => BAD_DATA,
        // Connection, Timeout, CircuitOpen, Server, OutOfMemory, and any kind
        // a later library adds: Redis did not do it, and may later.
        _ => UNAVAILABLE,
    }
}

/// The exit-code table of `--help`.
pub fn help() -> String {
    let mut out = String::from("Exit codes:\n");
    for (code, _, meaning) in CODES {
        out.push_str(&format!("  {code}  {meaning}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_claps_own_code() {
        let err = clap::Error::new(clap::error::ErrorKind::InvalidValue);
        assert_eq!(err.exit_code(), i32::from(USAGE));
    }

    #[test]
    fn codes_are_distinct_and_named() {
        for (i, (code, name, _)) in CODES.iter().enumerate() {
            assert_eq!(usize::from(*code), i);
            assert_eq!(super::name(*code), *name);
        }
        assert!(help().contains("  5  clear not confirmed"));
    }
}
