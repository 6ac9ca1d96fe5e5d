//! LLM results as stored bytes: JSON behind the codec header, LZ4-compressed
//! over [`COMPRESS_THRESHOLD`] when that is smaller.

use crate::codec::{self, Kind};
use crate::error::{Error, Result};
use crate::limits::{check_value_len, MAX_VALUE_LEN};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// JSON longer than this many bytes is stored LZ4-compressed (when that is smaller).
pub const COMPRESS_THRESHOLD: usize = 10 * 1024;

/// An LZ4 block expands at most ~255 times; a length header claiming more is
/// corrupt, and is rejected before anything is allocated for it.
const MAX_LZ4_RATIO: usize = 256;

/// JSON behind the header; LZ4-compressed over the threshold when that is smaller.
pub(super) fn encode_json<T: Serialize + ?Sized>(value: &T) -> Result<Bytes> {
    let json = serde_json::to_vec(value).map_err(|e| {
        Error::invalid("analysis result cannot be serialized to JSON").with_source(e)
    })?;
    check_value_len("analysis result JSON", json.len())?;
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
pub(crate) fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
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
}
