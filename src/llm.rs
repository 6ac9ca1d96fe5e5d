//! `LlmCache`: LLM analysis results as JSON behind the codec header, LZ4
//! compressed over [`COMPRESS_THRESHOLD`], and a loader that pays for one LLM
//! call per input however many callers ask at once.
//!
//! ```text
//! Kind::Json            | JSON text |
//! Kind::JsonCompressed  | JSON length: u32 LE | LZ4 block of the JSON |
//! ```
//!
//! Single flight: the callers of one process that miss on one key share one
//! `tokio::sync::OnceCell`; the first runs the computation, the others await
//! its encoded result (or its error). If that caller is cancelled, the next
//! waiter runs its own computation instead. Across processes, an optional lock
//! (`SET NX PX`, released by compare-and-delete) at `<value key>:lock` makes
//! the other processes poll for the value; a lock whose holder died expires
//! after its lease, and a waiter then takes it and computes.

use crate::client::{check_ttl, MAX_VALUE_LEN};
use crate::codec::{self, Kind};
use crate::config::DataType;
use crate::error::{Error, ErrorKind, Result};
use crate::manager::Shared;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;

/// JSON longer than this many bytes is stored LZ4-compressed (when that is smaller).
pub const COMPRESS_THRESHOLD: usize = 10 * 1024;

/// Bounds a waiter's polling for the value while another process holds the lock.
const MIN_POLL: Duration = Duration::from_millis(10);
const MAX_POLL: Duration = Duration::from_millis(250);

/// An LZ4 block expands at most ~255 times; a length header claiming more is
/// corrupt, and is rejected before anything is allocated for it.
const MAX_LZ4_RATIO: usize = 256;

/// Options of [`LlmCache::get_or_compute_with`].
///
/// # Examples
///
/// ```
/// use iftb_cache::ComputeOptions;
/// use std::time::Duration;
/// let opts = ComputeOptions::new()
///     .ttl(Duration::from_secs(3_600))
///     .lock(Duration::from_secs(30)); // longer than the LLM call usually takes
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct ComputeOptions {
    ttl: Option<Duration>,
    lease: Option<Duration>,
}

impl ComputeOptions {
    /// The config's LLM TTL, no cross-process lock.
    pub fn new() -> Self {
        Self::default()
    }

    /// The result expires `ttl` after it is stored (at least 1 ms).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Takes a lock in the backend for at most `lease` (at least 1 ms) while
    /// computing, so that other processes wait for this one's result instead
    /// of paying for the same call. Choose a lease longer than the call
    /// usually takes: past it, a waiter computes too.
    pub fn lock(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }
}

type Flight = OnceCell<Result<Bytes>>;

/// The computations in progress in this process, by value key.
#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<String, Arc<Flight>>>,
}

impl Flights {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Flight>>> {
        // Nothing panics while the map is locked; if it did, the map is still valid.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the flight of `key`, starting one if there is none.
    fn join(&self, key: &str) -> FlightGuard<'_> {
        let cell = self.lock().entry(key.to_string()).or_default().clone();
        FlightGuard {
            flights: self,
            key: key.to_string(),
            cell,
        }
    }
}

/// One caller's place in a flight; the last one out removes the flight, so
/// that a finished flight (an error above all) is not reused.
struct FlightGuard<'a> {
    flights: &'a Flights,
    key: String,
    cell: Arc<Flight>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.flights.lock();
        // Clones are made and dropped under the lock: 2 means the map and us.
        let last = map
            .get(&self.key)
            .is_some_and(|c| Arc::ptr_eq(c, &self.cell) && Arc::strong_count(c) == 2);
        if last {
            map.remove(&self.key);
        }
    }
}

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
    shared: &'a Shared,
}

impl<'a> LlmCache<'a> {
    pub(crate) fn new(shared: &'a Shared) -> Self {
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
    /// when its JSON is over [`COMPRESS_THRESHOLD`] bytes.
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
        let ttl = self.shared.config.ttl(DataType::Llm);
        self.set_analysis_with_ttl(analysis_type, input_hash, result, ttl)
            .await
    }

    /// As [`set_analysis`](Self::set_analysis), expiring after `ttl`.
    ///
    /// # Errors
    ///
    /// As [`set_analysis`](Self::set_analysis); a TTL under 1 ms is invalid input.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> iftb_cache::Result<()> {
    /// # use iftb_cache::*;
    /// # let cache = CacheManager::connect(CacheConfig::embedded()).await?;
    /// let h = LlmCache::hash_input("BTC daily outlook");
    /// let ttl = std::time::Duration::from_secs(24 * 3_600);
    /// cache.llm().set_analysis_with_ttl("outlook", &h, &["range-bound"], ttl).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set_analysis_with_ttl<T: Serialize + ?Sized>(
        &self,
        analysis_type: &str,
        input_hash: &str,
        result: &T,
        ttl: Duration,
    ) -> Result<()> {
        let key = self.shared.keys.llm(analysis_type, input_hash)?;
        check_ttl(ttl)?;
        let value = encode_json(result)?;
        let stored = self.shared.backend.set(&key, value, Some(ttl)).await;
        self.shared.observe_write("set_analysis", &key, stored)
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
        let key = self.shared.keys.llm(analysis_type, input_hash)?;
        let result = self.shared.backend.get(&key).await;
        let value = self
            .shared
            .observe_read("get_analysis", &key, result, || None)?;
        let decoded = value.map(|v| decode_json(&v)).transpose();
        let decoded = self
            .shared
            .observe_read("get_analysis", &key, decoded, || None)?;
        self.shared.record_read(&key, decoded.is_some());
        Ok(decoded)
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
    /// lock is gone (its holder failed or died and the lease ran out) and it can
    /// take the lock and compute itself.
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
        let key = self
            .shared
            .keys
            .llm(analysis_type, &Self::hash_input(input))?;
        let ttl = options.ttl.unwrap_or(self.shared.config.ttl(DataType::Llm));
        check_ttl(ttl)?;
        options.lease.map(check_ttl).transpose()?;
        let cached = self.usable::<T>(&key, true).await?;
        self.shared.record_read(&key, cached.is_some());
        if let Some((_, value)) = cached {
            return Ok(value);
        }
        let flight = self.shared.flights.join(&key);
        let lead = || self.lead(&key, ttl, options.lease, f);
        let shared = flight.cell.get_or_init(lead).await.clone();
        drop(flight);
        // `f`'s error is not the cache's: handed out as is, not counted.
        let decoded = decode_json(&shared?);
        self.shared.observe("get_or_compute", &key, decoded)
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
            .observe_read("get_or_compute", key, result, || None)?;
        let Some(bytes) = found else {
            return Ok(None);
        };
        match decode_json::<T>(&bytes) {
            Ok(value) => Ok(Some((bytes, value))),
            Err(e) if report => {
                let _ = self.shared.observe("get_or_compute", key, Err::<(), _>(e));
                Ok(None)
            }
            Err(_) => Ok(None),
        }
    }

    /// The one computation of a flight: the value if another flight stored it
    /// meanwhile, else `f`'s, under the lock when there is a lease.
    async fn lead<T, F, Fut, E>(
        &self,
        key: &str,
        ttl: Duration,
        lease: Option<Duration>,
        f: F,
    ) -> Result<Bytes>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let Some(lease) = lease else {
            if let Some((bytes, _)) = self.usable::<T>(key, false).await? {
                return Ok(bytes);
            }
            return self.compute_and_store(key, ttl, f).await;
        };
        let lock = Lock::new(key);
        if let Some(stored_meanwhile) = self.lock_or_value::<T>(&lock, lease).await? {
            return Ok(stored_meanwhile);
        }
        let result = self.compute_and_store(key, ttl, f).await;
        self.release(&lock).await;
        result
    }

    /// Takes the lock, polling while another process holds it: `None` once
    /// the lock is ours and the value still missing, the value once it is
    /// stored. The value is read after each attempt, taken or not: the last
    /// holder may have stored it just before releasing.
    async fn lock_or_value<T: DeserializeOwned>(
        &self,
        lock: &Lock,
        lease: Duration,
    ) -> Result<Option<Bytes>> {
        let poll = (lease / 20).clamp(MIN_POLL, MAX_POLL);
        loop {
            let locked = self.try_lock(lock, lease).await;
            let found = self.usable::<T>(&lock.value_key, false).await;
            if locked && !matches!(found, Ok(None)) {
                self.release(lock).await;
            }
            if let Some((bytes, _)) = found? {
                return Ok(Some(bytes));
            }
            if locked {
                return Ok(None);
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// True when the lock is ours, or when the backend failed to say: that is
    /// reported, and the caller computes without the lock.
    async fn try_lock(&self, lock: &Lock, lease: Duration) -> bool {
        let token = lock.token.clone();
        let taken = self.shared.backend.set_nx(&lock.key, token, lease).await;
        self.shared
            .observe("llm_lock", &lock.key, taken)
            .unwrap_or(true)
    }

    /// Releases the lock if it is still ours. A failed release is reported;
    /// it only makes the other processes wait out the lease.
    async fn release(&self, lock: &Lock) {
        let released = self.shared.backend.delete_if_equals(&lock.key, &lock.token);
        let _ = self
            .shared
            .observe_write("llm_unlock", &lock.key, released.await);
    }

    /// Runs `f`, stores its encoded result and returns it.
    async fn compute_and_store<T, F, Fut, E>(&self, key: &str, ttl: Duration, f: F) -> Result<Bytes>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let value = f().await.map_err(|e| {
            Error::new(ErrorKind::Compute, format!("computing {key} failed")).with_source(e)
        })?;
        let bytes = encode_json(&value)?;
        let stored = self.shared.backend.set(key, bytes.clone(), Some(ttl)).await;
        // The result was paid for: hand it out even when it could not be stored.
        let _ = self.shared.observe_write("set_analysis", key, stored);
        Ok(bytes)
    }
}

/// A cross-process lock on one value key, with a token unique to this attempt.
struct Lock {
    value_key: String,
    key: String,
    token: Bytes,
}

impl Lock {
    fn new(value_key: &str) -> Self {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let token = format!("{}:{nanos}:{seq}", std::process::id());
        Self {
            value_key: value_key.to_string(),
            key: format!("{value_key}:lock"),
            token: Bytes::from(token),
        }
    }
}

/// JSON behind the header; LZ4-compressed over the threshold when that is smaller.
fn encode_json<T: Serialize + ?Sized>(value: &T) -> Result<Bytes> {
    let json = serde_json::to_vec(value).map_err(|e| {
        Error::invalid("analysis result cannot be serialized to JSON").with_source(e)
    })?;
    if json.len() > MAX_VALUE_LEN {
        return Err(Error::invalid(format!(
            "analysis result is {} bytes of JSON, over the {MAX_VALUE_LEN}-byte limit",
            json.len()
        )));
    }
    if json.len() > COMPRESS_THRESHOLD {
        let block = lz4_flex::block::compress(&json);
        if block.len() + 4 < json.len() {
            let mut payload = Vec::with_capacity(4 + block.len());
            // Fits: MAX_VALUE_LEN is far below u32::MAX.
            payload.extend_from_slice(&(json.len() as u32).to_le_bytes());
            payload.extend_from_slice(&block);
            return Ok(codec::frame(Kind::JsonCompressed, &payload));
        }
    }
    Ok(codec::frame(Kind::Json, &json))
}

/// Checks the header, decompresses if needed, and parses the JSON as a `T`.
fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let (kind, payload) = codec::unframe(bytes)?;
    let inflated;
    let json = match kind {
        Kind::Json => payload,
        Kind::JsonCompressed => {
            inflated = decompress(payload)?;
            &inflated[..]
        }
        other => {
            return Err(Error::codec(format!(
                "value holds a {other:?}, expected an LLM result (JSON)"
            )))
        }
    };
    serde_json::from_slice(json)
        .map_err(|e| Error::codec("LLM result is not the expected JSON").with_source(e))
}

/// The JSON of a compressed payload, its length checked against the header.
fn decompress(payload: &[u8]) -> Result<Vec<u8>> {
    let Some((len, block)) = payload.split_first_chunk::<4>() else {
        return Err(Error::codec("compressed LLM result is truncated"));
    };
    let len = u32::from_le_bytes(*len) as usize;
    if len > MAX_VALUE_LEN || len > block.len().saturating_mul(MAX_LZ4_RATIO) {
        return Err(Error::codec(format!(
            "compressed LLM result claims {len} bytes from a {}-byte block: corrupt",
            block.len()
        )));
    }
    let json = lz4_flex::block::decompress(block, len)
        .map_err(|e| Error::codec("compressed LLM result is corrupt").with_source(e))?;
    if json.len() != len {
        return Err(Error::codec(format!(
            "compressed LLM result inflates to {} bytes, its header says {len}: corrupt",
            json.len()
        )));
    }
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn big_json() -> Value {
        let points: Vec<String> = (0..400)
            .map(|i| format!("point {i}: momentum holds above the {i}-period average"))
            .collect();
        json!({"sentiment": "bullish", "key_points": points})
    }

    #[test]
    fn small_values_are_plain_json_and_large_ones_compressed() {
        let small = encode_json(&json!({"sentiment": "bullish"})).unwrap();
        assert_eq!(codec::unframe(&small).unwrap().0, Kind::Json);
        let big = big_json();
        let json_len = serde_json::to_vec(&big).unwrap().len();
        let stored = encode_json(&big).unwrap();
        assert_eq!(codec::unframe(&stored).unwrap().0, Kind::JsonCompressed);
        assert!(
            stored.len() < json_len / 2,
            "{} of {json_len}",
            stored.len()
        );
        assert_eq!(decode_json::<Value>(&stored).unwrap(), big);
    }

    #[test]
    fn incompressible_large_json_is_stored_plain() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: String = (0..20_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'!' + (x % 90) as u8)
            })
            .filter(|c| *c != '"' && *c != '\\')
            .collect();
        let stored = encode_json(&noise).unwrap();
        assert_eq!(codec::unframe(&stored).unwrap().0, Kind::Json);
        assert_eq!(decode_json::<String>(&stored).unwrap(), noise);
    }

    #[test]
    fn corrupt_compressed_values_are_codec_errors() {
        let stored = encode_json(&big_json()).unwrap().to_vec();
        let mut bad_len = stored.clone();
        bad_len[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut garbage = stored[..12].to_vec();
        garbage.extend_from_slice(&[0xff; 64]);
        let truncated = stored[..stored.len() / 2].to_vec();
        for (what, bytes) in [
            ("length", bad_len),
            ("garbage", garbage),
            ("truncated", truncated),
        ] {
            let err = decode_json::<Value>(&bytes).unwrap_err();
            assert!(err.is_codec(), "{what}: {err}");
            assert!(
                err.to_string().contains("compressed LLM result"),
                "{what}: {err}"
            );
        }
        assert!(decode_json::<Value>(&stored[..6]).unwrap_err().is_codec());
    }

    #[test]
    fn every_single_byte_corruption_is_an_error_or_a_value_never_a_panic() {
        let stored = encode_json(&big_json()).unwrap().to_vec();
        for i in codec::HEADER_LEN..stored.len() {
            let mut bytes = stored.clone();
            bytes[i] ^= 0x5a;
            // A flipped literal may still inflate to valid JSON: no checksum,
            // as for uncompressed values. What must never happen is a panic.
            let _ = decode_json::<Value>(&bytes);
        }
    }

    #[test]
    fn other_kinds_are_not_llm_results() {
        let ticker_rate = codec::encode(&0.0001f64);
        let err = decode_json::<Value>(&ticker_rate).unwrap_err();
        assert!(
            err.is_codec() && err.to_string().contains("FundingRate"),
            "{err}"
        );
    }

    #[test]
    fn a_flight_is_removed_by_its_last_member_only() {
        let flights = Flights::default();
        let a = flights.join("k");
        let b = flights.join("k");
        assert!(Arc::ptr_eq(&a.cell, &b.cell));
        drop(a);
        assert!(flights.lock().contains_key("k"));
        drop(b);
        assert!(flights.lock().is_empty());
    }
}
