//! One error type for every call, with a kind the caller can match on.
//!
//! A cache miss is never an error: reads return `Option`.

use std::fmt;
use std::sync::Arc;

/// What went wrong, coarsely enough to decide what to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The call's arguments were rejected before anything was sent or written.
    InvalidInput,
    /// Redis could not be reached, the connection dropped, or Redis is not
    /// serving yet (`LOADING` its data set after a restart).
    Connection,
    /// Redis did not answer within the configured response timeout.
    Timeout,
    /// Redis refused the credentials.
    Authentication,
    /// Redis answered with an error (wrong type, out of memory, script error...).
    Server,
    /// A stored value is corrupt, foreign (another program's, or of another
    /// Redis type: `WRONGTYPE`), truncated or of another format version.
    Codec,
    /// The configuration is invalid (bad URL, bad variable in the environment).
    Config,
    /// The value-producing closure given to a loading helper failed.
    Compute,
    /// The circuit breaker is open: Redis was unavailable on the last calls,
    /// so this one failed at once, without reaching Redis, while a probe in
    /// the background waits for Redis to answer again (see
    /// [`breaker_threshold`](crate::CacheConfigBuilder::breaker_threshold)).
    CircuitOpen,
    /// Redis is at its `maxmemory` and its policy (`noeviction`) refuses
    /// writes: this write stored nothing. Reads keep working.
    OutOfMemory,
}

impl ErrorKind {
    /// Every kind, in declaration order: the columns of per-kind error counts.
    pub(crate) const ALL: [ErrorKind; 10] = [
        ErrorKind::InvalidInput,
        ErrorKind::Connection,
        ErrorKind::Timeout,
        ErrorKind::Authentication,
        ErrorKind::Server,
        ErrorKind::Codec,
        ErrorKind::Config,
        ErrorKind::Compute,
        ErrorKind::CircuitOpen,
        ErrorKind::OutOfMemory,
    ];

    /// How many kinds there are.
    pub(crate) const COUNT: usize = Self::ALL.len();

    /// This kind's column in per-kind tables.
    pub(crate) const fn index(self) -> usize {
        self as usize
    }

    /// The kind in snake case (`circuit_open`), as the `kind` label of
    /// exported metrics names it.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Connection => "connection",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Authentication => "authentication",
            ErrorKind::Server => "server",
            ErrorKind::Codec => "codec",
            ErrorKind::Config => "config",
            ErrorKind::Compute => "compute",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::OutOfMemory => "out_of_memory",
        }
    }
}

/// The error of every fallible call in this crate.
///
/// Cheap to clone, so one failure can be handed to every waiter of a shared load.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with a message for humans.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Keeps `source` as the cause.
    pub(crate) fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    pub(crate) fn codec(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Codec, message)
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// True for arguments rejected before anything was written.
    pub fn is_invalid_input(&self) -> bool {
        self.kind == ErrorKind::InvalidInput
    }

    /// True when Redis did not answer in time.
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    /// True when Redis could not be reached or the connection dropped.
    pub fn is_connection(&self) -> bool {
        self.kind == ErrorKind::Connection
    }

    /// True when a stored value could not be decoded.
    pub fn is_codec(&self) -> bool {
        self.kind == ErrorKind::Codec
    }

    /// True for failures that say Redis is unavailable right now (connection,
    /// timeout, or the circuit breaker open after those), as opposed to a
    /// problem with the call or the data.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::CircuitOpen
        )
    }

    /// True when the call failed fast because the circuit breaker is open.
    pub fn is_circuit_open(&self) -> bool {
        self.kind == ErrorKind::CircuitOpen
    }

    /// True when Redis refused a write for want of memory (`OOM`).
    pub fn is_out_of_memory(&self) -> bool {
        self.kind == ErrorKind::OutOfMemory
    }

    /// True for a codec error that says the key holds another Redis type
    /// than the call reads (`WRONGTYPE`, from Redis or as the embedded
    /// backend words it): not our bytes at all, where other codec errors
    /// are about bytes that were read.
    pub(crate) fn is_wrong_type(&self) -> bool {
        let source = self.source.as_deref();
        let redis = source.and_then(|s| s.downcast_ref::<redis::RedisError>());
        let from_redis = redis.is_some_and(|e| answered_codes(e).iter().any(|c| c == "WRONGTYPE"));
        self.is_codec() && (from_redis || self.message.starts_with("WRONGTYPE"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        let codes = answered_codes(&e);
        let has_code = |code: &str| codes.iter().any(|c| c == code);
        let kind = if e.is_timeout() {
            ErrorKind::Timeout
        } else if e.kind() == redis::ErrorKind::AuthenticationFailed
            || ["NOPERM", "NOAUTH", "WRONGPASS"].into_iter().any(has_code)
        {
            ErrorKind::Authentication
        } else if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || matches!(
                e.kind(),
                redis::ErrorKind::ClusterConnectionNotFound
                    | redis::ErrorKind::MasterNameNotFoundBySentinel
            )
            || UNAVAILABLE_CODES.into_iter().any(has_code)
        {
            ErrorKind::Connection
        } else if e.kind() == redis::ErrorKind::InvalidClientConfig {
            ErrorKind::Config
        } else if has_code("WRONGTYPE") || has_code("CORRUPT") {
            ErrorKind::Codec
        } else if has_code("OOM") || is_oom_in_script(&e) {
            ErrorKind::OutOfMemory
        } else {
            ErrorKind::Server
        };
        Error::new(kind, "redis").with_source(e)
    }
}

/// What Redis answers while it cannot serve a key for now: loading its data
/// set, a cluster with slots uncovered or moving (a redirect still met once
/// the client's retries are spent), a demoted or cut-off primary.
const UNAVAILABLE_CODES: [&str; 8] = [
    "LOADING",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "MOVED",
    "ASK",
    "READONLY",
    "MASTERDOWN",
    "NOREPLICAS",
];

/// A script (the series upsert) whose write Redis refused for memory:
/// Redis reports it as the script's error, the `OOM` text inside it.
fn is_oom_in_script(e: &redis::RedisError) -> bool {
    e.to_string().contains("OOM command not allowed")
}

/// The codes Redis answered (`WRONGTYPE`: one of our keys holds a value of
/// another Redis type, foreign data as a foreign string would be;
/// `CORRUPT`: the series script met a member or head that is not ours;
/// `LOADING`: the server is not serving yet): to the command, to any
/// command of a pipeline, or of a transaction it aborted. Collected once:
/// the error is classified against a dozen codes.
fn answered_codes(e: &redis::RedisError) -> Vec<String> {
    let mut codes: Vec<String> = e.code().map(str::to_string).into_iter().collect();
    if let Some(errors) = e.clone().into_server_errors() {
        codes.extend(errors.iter().map(|(_, s)| s.code().to_string()));
    }
    codes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_kind_and_message() {
        let e = Error::invalid("symbol is empty");
        assert_eq!(e.to_string(), "InvalidInput: symbol is empty");
        assert!(e.is_invalid_input() && !e.is_unavailable());
    }

    #[test]
    fn wrong_type_is_told_from_other_codec_errors() {
        let reply = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
        let redis::Value::ServerError(server) = redis::parse_redis_value(reply).unwrap() else {
            panic!("not parsed as a server error");
        };
        let e = Error::from(redis::RedisError::from(server));
        assert!(e.is_codec() && e.is_wrong_type(), "{e}");
        assert!(Error::codec("WRONGTYPE: k holds another kind of value").is_wrong_type());
        assert!(!Error::codec("not an iftb-cache value").is_wrong_type());
        assert!(!Error::invalid("WRONGTYPE").is_wrong_type());
    }

    #[test]
    fn io_errors_map_to_connection() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e: Error = redis::RedisError::from(io).into();
        assert_eq!(e.kind(), ErrorKind::Connection);
        assert!(e.is_unavailable());
    }

    #[test]
    fn every_kind_has_its_own_column_and_name() {
        let mut names = std::collections::HashSet::new();
        for (i, kind) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i, "{kind:?}");
            assert!(names.insert(kind.as_str()), "{kind:?} named twice");
        }
        // A kind added to the enum but not to ALL would share a column.
        let last = ErrorKind::OutOfMemory;
        assert_eq!(last.index() + 1, ErrorKind::COUNT);
    }
}
