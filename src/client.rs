//! `RedisClient`: the original's low-level calls, on whichever backend is
//! configured — Redis, or the embedded backend, where it keeps the same
//! semantics. Keys live under `{namespace}:kv:`, so they never collide with
//! the typed caches' keys and `clear_all` removes them too. Values are stored
//! as given, without this crate's header: they are the caller's own bytes.

use crate::error::{Error, Result};
use crate::limits::{check_ttl, check_value_len};
use crate::shared::Shared;
use crate::stats::Op;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

/// Low-level get/set/delete/exists, JSON and bytes, on the configured
/// backend. It keeps the original's name, but runs on the embedded backend
/// too: nothing here needs Redis.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> iftb_cache::Result<()> {
/// use iftb_cache::{CacheConfig, CacheManager};
/// use std::time::Duration;
/// let cache = CacheManager::connect(CacheConfig::embedded()).await?;
/// let client = cache.client();
/// client.set("greeting", "hello", Some(Duration::from_secs(60))).await?;
/// assert_eq!(client.get("greeting").await?.as_deref(), Some("hello"));
/// assert!(client.delete("greeting").await?);
/// assert!(!client.exists("greeting").await?);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy)]
pub struct RedisClient<'a> {
    shared: &'a Shared,
}

impl<'a> RedisClient<'a> {
    pub(crate) fn new(shared: &'a Shared) -> Self {
        Self { shared }
    }

    /// The value at `key` as text; `None` when missing.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Codec`](crate::ErrorKind::Codec) when the value is not UTF-8;
    /// backend errors as [`get_bytes`](Self::get_bytes).
    pub async fn get(&self, key: &str) -> Result<Option<String>> {
        let _call = self.shared.call(Op::Get);
        self.get_with(Op::Get, key, |bytes| {
            String::from_utf8(bytes.to_vec())
                .map_err(|e| Error::codec(format!("value at {key:?} is not UTF-8")).with_source(e))
        })
        .await
    }

    /// Reads `key`, decodes a value found with `decode`, and counts the read
    /// as a hit or a miss (fail-open mode turns a failure into a miss).
    async fn get_with<T>(
        &self,
        op: Op,
        key: &str,
        decode: impl FnOnce(Bytes) -> Result<T>,
    ) -> Result<Option<T>> {
        let full = self.shared.keys.kv(key)?;
        let fetched = self.shared.backend.get(&full).await;
        self.shared.finish_read(op, &full, fetched, decode)
    }

    /// Sets `key` to `value`, expiring after `ttl` (`None`: no expiry).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad key,
    /// a zero TTL or a value over [`MAX_VALUE_LEN`](crate::MAX_VALUE_LEN);
    /// backend errors otherwise.
    pub async fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<()> {
        let _call = self.shared.call(Op::Set);
        let value = Bytes::copy_from_slice(value.as_bytes());
        self.set_with(Op::Set, key, value, ttl).await
    }

    /// The raw bytes at `key`; `None` when missing.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for a bad key;
    /// connection, timeout or server errors from the backend.
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Bytes>> {
        let _call = self.shared.call(Op::GetBytes);
        self.get_with(Op::GetBytes, key, Ok).await
    }

    /// Sets `key` to raw bytes, expiring after `ttl` (`None`: no expiry).
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    pub async fn set_bytes(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let _call = self.shared.call(Op::SetBytes);
        self.set_with(Op::SetBytes, key, value, ttl).await
    }

    /// Checks and writes one value of a `set*` call.
    async fn set_with(&self, op: Op, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        let full = self.shared.keys.kv(key)?;
        if let Some(ttl) = ttl {
            check_ttl(ttl)?;
        }
        check_value_len("value", value.len())?;
        self.shared.write_value(op, &full, value, ttl).await
    }

    /// The values of many keys, in order, in one round trip (`MGET`).
    ///
    /// # Errors
    ///
    /// As [`get_bytes`](Self::get_bytes).
    pub async fn mget(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>> {
        let _call = self.shared.call(Op::Mget);
        let full = keys
            .iter()
            .map(|k| self.shared.keys.kv(k))
            .collect::<Result<Vec<_>>>()?;
        let fetched = self.shared.backend.mget(&full).await;
        self.shared.finish_read_many(Op::Mget, &full, fetched, Ok)
    }

    /// Deletes `key`; true when it existed.
    ///
    /// # Errors
    ///
    /// As [`get_bytes`](Self::get_bytes).
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let _call = self.shared.call(Op::Delete);
        let full = self.shared.keys.kv(key)?;
        let result = self
            .shared
            .backend
            .delete(std::slice::from_ref(&full))
            .await;
        Ok(self.shared.observe_write(Op::Delete, &full, result)? > 0)
    }

    /// True when `key` holds a value.
    ///
    /// # Errors
    ///
    /// As [`get_bytes`](Self::get_bytes).
    pub async fn exists(&self, key: &str) -> Result<bool> {
        let _call = self.shared.call(Op::Exists);
        let full = self.shared.keys.kv(key)?;
        let result = self.shared.backend.exists(&full).await;
        self.shared
            .observe_read(Op::Exists, &full, result, || false)
    }

    /// The JSON value at `key`, deserialized; `None` when missing.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Codec`](crate::ErrorKind::Codec) when the value is not JSON of
    /// type `T`; otherwise as [`get_bytes`](Self::get_bytes).
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let _call = self.shared.call(Op::GetJson);
        self.get_with(Op::GetJson, key, |bytes| {
            serde_json::from_slice(&bytes).map_err(|e| {
                Error::codec(format!("value at {key:?} is not the expected JSON")).with_source(e)
            })
        })
        .await
    }

    /// Stores `value` as JSON at `key`, expiring after `ttl` (`None`: no expiry).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when `value`
    /// cannot be serialized; otherwise as [`set`](Self::set).
    pub async fn set_json<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let _call = self.shared.call(Op::SetJson);
        let json = serde_json::to_vec(value)
            .map_err(|e| Error::invalid("value cannot be serialized to JSON").with_source(e))?;
        self.set_with(Op::SetJson, key, json.into(), ttl).await
    }
}
