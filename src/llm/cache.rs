//! `LlmCache`: get and set analysis results, and `get_or_compute`, which
//! pays for one LLM call per input however many callers ask at once.

use super::json::{decode_json, encode_json};
use crate::config::DataType;
use crate::error::{Error, ErrorKind, Result};
use crate::keys::Keys;
use crate::options::{ComputeOptions, WriteOptions};
use crate::shared::Shared;
use crate::stats::Op;
use bytes::Bytes;
use futures_util::future::Either;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Bounds a waiter's polling for the value while another process holds the lock.
const MIN_POLL: Duration = Duration::from_millis(10);
const MAX_POLL: Duration = Duration::from_millis(250);

/// The LLM analysis cache, from [`CacheManager::llm`](crate::CacheManager::llm).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> iftb_cache::Result<()> {
/// use iftb_cache::{CacheConfig, CacheManager, LlmCache};
/// let cache = CacheManager::connect(CacheConfig::embedded()).await?;
/// let h = LlmCache::hash_input("BTC market analysis for 2024-01-17");
/// let result = serde_json::json!({"sentiment": "bullish", "confidence": 0.85});
/// cache.llm().set_analysis("sentiment", &h, &result).await?;
/// let hit: Option<serde_json::Value> = cache.llm().get_analysis("sentiment", &h).await?;
/// assert_eq!(hit, Some(result));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy)]
pub struct LlmCache<'a> {
    /// An `Arc`: a lock left held by a cancelled or panicking call is
    /// released by a task of its own, which outlives the borrow.
    shared: &'a Arc<Shared>,
}

impl<'a> LlmCache<'a> {
    pub(crate) fn new(shared: &'a Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The key hash of an LLM input: xxh3-128 of its UTF-8 bytes as 32
    /// lowercase hex characters, the same on every platform and version.
    ///
    /// # Examples
    ///
    /// ```
    /// use iftb_cache::LlmCache;
    /// assert_eq!(LlmCache::hash_input(""), "99aa06d3014798d86001c324468d497f");
    /// ```
    pub fn hash_input(input: &str) -> String {
        format!("{:032x}", xxhash_rust::xxh3::xxh3_128(input.as_bytes()))
    }

    /// Stores `result` as JSON with the default LLM TTL (300 s), compressed
    /// when its JSON is over [`COMPRESS_THRESHOLD`](crate::COMPRESS_THRESHOLD) bytes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput), and nothing is
    /// written, for a bad analysis type (the symbol rules) or hash (1 to 128 hex
    /// digits), a result that cannot be serialized or is over
    /// [`MAX_VALUE_LEN`](crate::MAX_VALUE_LEN) bytes of JSON; connection, timeout
    /// or server errors otherwise.
    ///
    /// # Examples
    ///
    /// See [`LlmCache`].
    pub async fn set_analysis<T: Serialize + ?Sized>(
        &self,
        analysis_type: &str,
        input_hash: &str,
        result: &T,
    ) -> Result<()> {
        let options = WriteOptions::new();
        self.set_analysis_with(analysis_type, input_hash, result, options)
            .await
    }

    /// As [`set_analysis`](Self::set_analysis), with options: a TTL of its own.
    ///
    /// # Errors
    ///
    /// As [`set_analysis`](Self::set_analysis); a TTL under 1 ms or over
    /// [`MAX_TTL`](crate::MAX_TTL) is invalid input.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> iftb_cache::Result<()> {
    /// # use iftb_cache::*;
    /// # let cache = CacheManager::connect(CacheConfig::embedded()).await?;
    /// let h = LlmCache::hash_input("BTC daily outlook");
    /// let a_day = WriteOptions::new().ttl(std::time::Duration::from_secs(24 * 3_600));
    /// cache.llm().set_analysis_with("outlook", &h, &["range-bound"], a_day).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_analysis_with<T: Serialize + ?Sized>(
        &self,
        analysis_type: &str,
        input_hash: &str,
        result: &T,
        options: WriteOptions,
    ) -> Result<()> {
        let _call = self.shared.call(Op::SetAnalysis);
        let key = self.shared.keys.llm(analysis_type, input_hash)?;
        let ttl = options.ttl_for(&self.shared.config, DataType::Llm)?;
        let value = encode_json(result)?;
        self.shared
            .write_value(Op::SetAnalysis, &key, value, Some(ttl))
            .await
    }

    /// The cached result, deserialized from JSON; `None` when nothing is cached.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad analysis
    /// type or hash; [`ErrorKind::Codec`](crate::ErrorKind::Codec) for a corrupt or
    /// foreign value, or JSON that is not a `T`; connection, timeout or server errors.
    ///
    /// # Examples
    ///
    /// See [`LlmCache`].
    pub async fn get_analysis<T: DeserializeOwned>(
        &self,
        analysis_type: &str,
        input_hash: &str,
    ) -> Result<Option<T>> {
        let _call = self.shared.call(Op::GetAnalysis);
        let key = self.shared.keys.llm(analysis_type, input_hash)?;
        let fetched = self.shared.backend.get(&key).await;
        self.shared
            .finish_read(Op::GetAnalysis, &key, fetched, |v| decode_json(&v))
    }

    /// The cached result for `input` (hashed with [`hash_input`](Self::hash_input)),
    /// or else `f`'s, which is stored with the default LLM TTL and returned.
    ///
    /// Callers of this process that miss on the same key at once share one
    /// call of `f`: they all get its result, or all get its error (and nothing
    /// is stored, so a later call tries again). A cached value that cannot be
    /// decoded as a `T` is reported, counted as a codec error, and recomputed.
    /// If storing the result fails, that is reported and counted too, and the
    /// result is still returned: it has been paid for.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Compute`](crate::ErrorKind::Compute) with `f`'s error as its
    /// source; [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad
    /// analysis type, or a result that cannot be serialized; connection, timeout
    /// or server errors of the reads before `f` (in fail-open mode these are
    /// misses, and `f` runs).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> iftb_cache::Result<()> {
    /// use iftb_cache::{CacheConfig, CacheManager};
    /// let cache = CacheManager::connect(CacheConfig::embedded()).await?;
    /// let ask_llm = || async { Ok::<_, std::io::Error>(serde_json::json!({"sentiment": "bullish"})) };
    /// let first: serde_json::Value = cache.llm().get_or_compute("sentiment", "BTC news", ask_llm).await?;
    /// let never_called = || async { Err(std::io::Error::other("not called: cached")) };
    /// let again: serde_json::Value = cache.llm().get_or_compute("sentiment", "BTC news", never_called).await?;
    /// assert_eq!(first, again);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_or_compute<T, F, Fut, E>(
        &self,
        analysis_type: &str,
        input: &str,
        f: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let options = ComputeOptions::new();
        self.get_or_compute_with(analysis_type, input, options, f)
            .await
    }

    /// As [`get_or_compute`](Self::get_or_compute), with a TTL and, across
    /// processes, an optional lock (see [`ComputeOptions::lock`]). A process that
    /// finds the lock taken polls for the value until it appears, or until the
    /// lock is gone and it can take the lock and compute itself: released by
    /// its holder on any way out, or, when the holder's process died, ended
    /// by its lease. The holder renews the lease while its closure runs, so
    /// waiters wait as long as the computation takes: give the closure a
    /// timeout of its own if the LLM call can hang.
    ///
    /// # Errors
    ///
    /// As [`get_or_compute`](Self::get_or_compute); a TTL or lease under 1 ms is
    /// invalid input. A backend error while taking the lock is reported and
    /// the computation goes ahead without it.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> iftb_cache::Result<()> {
    /// use iftb_cache::{CacheConfig, CacheManager, ComputeOptions};
    /// use std::time::Duration;
    /// let cache = CacheManager::connect(CacheConfig::embedded()).await?;
    /// let opts = ComputeOptions::new().lock(Duration::from_secs(30));
    /// let ask_llm = || async { Ok::<_, std::io::Error>(vec!["Strong momentum".to_string()]) };
    /// let points: Vec<String> = cache.llm().get_or_compute_with("key_points", "BTC 1h", opts, ask_llm).await?;
    /// assert_eq!(points.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_or_compute_with<T, F, Fut, E>(
        &self,
        analysis_type: &str,
        input: &str,
        options: ComputeOptions,
        f: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let _call = self.shared.call(Op::GetOrCompute);
        let key = self
            .shared
            .keys
            .llm(analysis_type, &Self::hash_input(input))?;
        let ttl = options.ttl_for(&self.shared.config)?;
        let lease = options.checked_lease()?;
        let cached = self.usable::<T>(&key, true).await?;
        self.shared
            .record_read(Op::GetOrCompute, &key, cached.is_some());
        if let Some((_, value)) = cached {
            return Ok(value);
        }
        // `f` runs only if this caller leads the flight and the value is
        // still missing then: the future is lazy until `lead` awaits it.
        let compute = async {
            let value = f().await.map_err(|e| {
                Error::new(ErrorKind::Compute, format!("computing {key} failed")).with_source(e)
            })?;
            encode_json(&value)
        };
        let flight = self.shared.flights.join(key.clone());
        let lead = || self.lead::<T>(&key, ttl, lease, compute);
        let shared = flight.cell().get_or_init(lead).await.clone();
        drop(flight);
        // `f`'s error is not the cache's: handed out as is, not counted.
        let decoded = decode_json(&shared?);
        self.shared.observe(Op::GetOrCompute, &key, decoded)
    }

    /// The cached value at `key` if it decodes as a `T`. One that does not is
    /// treated as missing, so that the computation replaces it, and reported
    /// when `report` is set: by a call's first read only, as the later reads
    /// of the same call meet the same value.
    async fn usable<T: DeserializeOwned>(
        &self,
        key: &str,
        report: bool,
    ) -> Result<Option<(Bytes, T)>> {
        let result = self.shared.backend.get(key).await;
        let found = self
            .shared
            .observe_read(Op::GetOrCompute, key, result, || None)?;
        let Some(bytes) = found else {
            return Ok(None);
        };
        match decode_json::<T>(&bytes) {
            Ok(value) => Ok(Some((bytes, value))),
            Err(e) if report => {
                let _ = self.shared.observe(Op::GetOrCompute, key, Err::<(), _>(e));
                Ok(None)
            }
            Err(_) => Ok(None),
        }
    }

    /// The one computation of a flight: the value if another flight stored it
    /// meanwhile, else `compute`'s, under the lock when there is a lease.
    async fn lead<T: DeserializeOwned>(
        &self,
        key: &str,
        ttl: Duration,
        lease: Option<Duration>,
        compute: impl Future<Output = Result<Bytes>>,
    ) -> Result<Bytes> {
        let Some(lease) = lease else {
            if let Some((bytes, _)) = self.usable::<T>(key, false).await? {
                return Ok(bytes);
            }
            return self.compute_and_store(key, ttl, compute).await;
        };
        let held = match self.lock_or_value::<T>(key, lease).await? {
            Locked::Value(stored_meanwhile) => return Ok(stored_meanwhile),
            Locked::Held(held) => held,
        };
        let result = held
            .renewed(self.compute_and_store(key, ttl, compute))
            .await;
        held.release().await;
        result
    }

    /// Takes the lock, polling while another process holds it: the lock
    /// once it is ours and the value still missing, the value once it is
    /// stored. The value is read after each attempt, taken or not: the last
    /// holder may have stored it just before releasing.
    async fn lock_or_value<T: DeserializeOwned>(
        &self,
        value_key: &str,
        lease: Duration,
    ) -> Result<Locked> {
        let key = Keys::llm_lock(value_key);
        let poll = (lease / 20).clamp(MIN_POLL, MAX_POLL);
        loop {
            // Guarded from here on: a call cancelled during the read below
            // still releases what it took.
            let held = self.try_lock(&key, lease).await;
            let found = self.usable::<T>(value_key, false).await;
            match (held, found) {
                (Some(held), Ok(None)) => return Ok(Locked::Held(held)),
                (held, found) => {
                    if let Some(held) = held {
                        held.release().await;
                    }
                    if let Some((bytes, _)) = found? {
                        return Ok(Locked::Value(bytes));
                    }
                }
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// The lock when it is ours, or when the backend failed to say: that is
    /// reported, and the caller computes without the lock's guarantee. The
    /// guard exists before `SET NX` is sent: a call cancelled while it is in
    /// flight still releases what may have landed.
    async fn try_lock(&self, key: &str, lease: Duration) -> Option<Held> {
        let mut held = Held {
            shared: Arc::clone(self.shared),
            key: key.to_string(),
            token: Bytes::from(random_token()),
            lease,
            confirmed: false,
            released: false,
        };
        let call = self.shared.call(Op::LlmLock);
        let taken = self
            .shared
            .backend
            .set_nx(key, held.token.clone(), lease)
            .await;
        drop(call);
        match self.shared.observe(Op::LlmLock, key, taken) {
            Ok(false) => {
                held.released = true;
                None
            }
            Ok(true) => {
                held.confirmed = true;
                Some(held)
            }
            Err(_) => Some(held),
        }
    }

    /// Runs the computation, stores its encoded result and returns it.
    async fn compute_and_store(
        &self,
        key: &str,
        ttl: Duration,
        compute: impl Future<Output = Result<Bytes>>,
    ) -> Result<Bytes> {
        let bytes = compute.await?;
        let stored = self
            .shared
            .write_value(Op::GetOrCompute, key, bytes.clone(), Some(ttl));
        // The result was paid for: hand it out even when it could not be stored.
        let _ = stored.await;
        Ok(bytes)
    }
}

/// What taking the lock ended with.
enum Locked {
    /// Ours: compute the value.
    Held(Held),
    /// Another holder stored the value meanwhile.
    Value(Bytes),
}

/// A cross-process lock this caller holds, with a token unique to this
/// attempt. Renewed while the computation runs ([`renewed`](Self::renewed)),
/// so a computation longer than the lease is never paid twice; released on
/// every way out: awaited on return or error, and from a task of its own
/// (on the runtime that connected) when dropped otherwise: a panic, a
/// cancelled call, a release the circuit breaker refused. A holder whose
/// process dies stops renewing, and the lock ends with its lease.
struct Held {
    shared: Arc<Shared>,
    key: String,
    token: Bytes,
    lease: Duration,
    /// False when the backend failed to say whether the lock was taken:
    /// renewed and released all the same (both compare the token), but
    /// not reported lost when it turns out not to be ours.
    confirmed: bool,
    released: bool,
}

impl Held {
    /// Runs `work`, renewing the lease every third of it meanwhile. A lost
    /// lock (expired while Redis was unreachable, or deleted by hand) is
    /// reported, and `work` goes on without it.
    async fn renewed<F: Future>(&self, work: F) -> F::Output {
        let work = std::pin::pin!(work);
        let renew = std::pin::pin!(self.keep_renewed());
        match futures_util::future::select(work, renew).await {
            Either::Left((done, _)) => done,
            Either::Right(((), work)) => work.await,
        }
    }

    /// Returns only when the lock is no longer ours.
    async fn keep_renewed(&self) {
        let every = self.lease / 3;
        loop {
            tokio::time::sleep(every).await;
            let call = self.shared.call(Op::LlmLockRenew);
            let backend = &self.shared.backend;
            let renewed = backend.renew_if_equals(&self.key, &self.token, self.lease);
            let renewed = renewed.await;
            drop(call);
            match self.shared.observe(Op::LlmLockRenew, &self.key, renewed) {
                Ok(true) | Err(_) => {}
                Ok(false) => {
                    if self.confirmed {
                        tracing::warn!(key = %self.key, "llm_lock_lost");
                    }
                    return;
                }
            }
        }
    }

    /// Releases the lock if it is still ours. A release the circuit
    /// breaker refuses is left to `drop`, which retries it in the
    /// background; any other failure is reported, and only makes the other
    /// processes wait out the lease.
    async fn release(mut self) {
        let refused = release_once(&self.shared, &self.key, &self.token).await;
        // Only now: a release cancelled halfway is sent again by `drop`.
        self.released = !refused;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (shared, key) = (Arc::clone(&self.shared), std::mem::take(&mut self.key));
        let (token, lease) = (self.token.clone(), self.lease);
        let release = async move { release_within(&shared, &key, &token, lease).await };
        self.shared.runtime.spawn(release);
    }
}

/// Pause between releases the open circuit breaker refused.
const RELEASE_RETRY: Duration = Duration::from_millis(50);

/// One compare-and-delete, reported if it failed; true when the open
/// circuit breaker refused it (fail-open mode or not).
async fn release_once(shared: &Shared, key: &str, token: &[u8]) -> bool {
    let call = shared.call(Op::LlmUnlock);
    let released = shared.backend.delete_if_equals(key, token).await;
    drop(call);
    let refused = matches!(&released, Err(e) if e.is_circuit_open());
    let _ = shared.observe_write(Op::LlmUnlock, key, released);
    refused
}

/// Releases, retrying while the circuit breaker refuses, until the lease
/// would have ended the lock anyway.
async fn release_within(shared: &Shared, key: &str, token: &[u8], lease: Duration) {
    let until = tokio::time::Instant::now() + lease;
    while release_once(shared, key, token).await
        && tokio::time::Instant::now() + RELEASE_RETRY < until
    {
        tokio::time::sleep(RELEASE_RETRY).await;
    }
}

/// 128 bits from the OS, as 32 hex characters: no two attempts share one,
/// on any host. Should the OS have none to give, the process id, the clock
/// and a counter, as before.
fn random_token() -> String {
    let mut bits = [0u8; 16];
    if getrandom::fill(&mut bits).is_err() {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        return format!("{}:{nanos}:{seq}", std::process::id());
    }
    bits.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::random_token;
    use std::collections::HashSet;

    #[test]
    fn lock_tokens_are_128_random_bits_and_never_repeat() {
        let tokens: HashSet<String> = (0..10_000).map(|_| random_token()).collect();
        assert_eq!(tokens.len(), 10_000);
        assert!(tokens.iter().all(|t| t.len() == 32));
        assert!(tokens
            .iter()
            .all(|t| t.bytes().all(|b| b.is_ascii_hexdigit())));
        // No fixed part: every hex position takes many values.
        let first: HashSet<char> = tokens.iter().map(|t| t.chars().next().unwrap()).collect();
        assert_eq!(first.len(), 16);
    }
}
