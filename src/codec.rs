//! What stored bytes mean: a 4-byte header, then an rkyv archive.
//!
//! ```text
//! 0      2      3        4
//! | "IF" | kind | version | rkyv archive (little-endian, unaligned, 32-bit offsets) |
//! ```
//!
//! A series stores its bars as *runs* ([`Kind::BarRun`]): one header, then
//! the archived bars back to back, [`ARCHIVED_BAR_LEN`] bytes each, oldest
//! first. Its head ([`Kind::SeriesHead`]) is one header, the newest archived
//! bar and the series' bar count (`u64`, little-endian).
//!
//! Bytes read back are untrusted (another program, an older build or a bit flip
//! may have written them): they go through the header check and rkyv's validated
//! [`access`](rkyv::access), never `access_unchecked`. Any mismatch is an
//! [`ErrorKind::Codec`](crate::ErrorKind::Codec) error, never a panic.
//!
//! # Examples
//!
//! ```
//! use iftb_cache::{codec, Bar};
//! let bar = Bar::new(1_705_478_400_000, 1.0, 2.0, 0.5, 1.5, 10.0);
//! let bytes = codec::encode(&bar);
//! assert_eq!(codec::access::<Bar>(&bytes)?.close.to_native(), 1.5);
//! assert_eq!(codec::decode::<Bar>(&bytes)?, bar);
//! assert!(codec::decode::<Bar>(b"{\"close\": 1.5}").unwrap_err().is_codec());
//! # Ok::<(), iftb_cache::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::model::{ArchivedBar, Bar, FearGreed, Ticker, Validated};
use bytes::Bytes;
use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;

/// The format version every value is written with. Bump it, with a test, when
/// what the bytes mean changes (a field, a type, an rkyv format feature).
///
/// Version 2 (series v2): bars of a series are stored as headed runs of
/// archived bars and a head; keys carry the version (`{ns}:v2:..`), so that a
/// version-1 process beside this one reads misses, not codec errors.
pub const FORMAT_VERSION: u8 = 2;

/// Magic bytes at the start of every value this crate writes.
pub const MAGIC: [u8; 2] = *b"IF";

/// Length of the header in front of every value.
pub const HEADER_LEN: usize = 4;

/// What a stored value holds, written in the header so that one type is never
/// read as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum Kind {
    /// An OHLCV [`Bar`].
    Bar = 1,
    /// A [`Ticker`].
    Ticker = 2,
    /// A [`FearGreed`] reading.
    FearGreed = 3,
    /// A funding rate (`f64`).
    FundingRate = 4,
    /// A JSON document (LLM results).
    Json = 5,
    /// A JSON document, compressed.
    JsonCompressed = 6,
    /// A run of consecutive bars of one series (a sorted-set member).
    BarRun = 7,
    /// The head of a series: its newest bar and its bar count.
    SeriesHead = 8,
}

/// A value type with an rkyv archive and a [`Kind`] of its own.
pub trait Record:
    Sized
    + rkyv::Archive
    + for<'a> rkyv::Serialize<HighSerializer<Vec<u8>, ArenaHandle<'a>, rancor::Error>>
    + private::Sealed
where
    Self::Archived: for<'a> rkyv::bytecheck::CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<Self, HighDeserializer<rancor::Error>>,
{
    /// The header's kind byte.
    const KIND: Kind;
    /// The archive's exact length, for types without out-of-line data: a value
    /// of any other length is rejected rather than read from its tail.
    const EXACT_LEN: Option<usize>;
}

mod private {
    pub trait Sealed {}
    impl Sealed for super::Bar {}
    impl Sealed for super::Ticker {}
    impl Sealed for super::FearGreed {}
    impl Sealed for f64 {}
}

macro_rules! record {
    ($ty:ty, $kind:expr, $exact:expr) => {
        impl Record for $ty {
            const KIND: Kind = $kind;
            const EXACT_LEN: Option<usize> = $exact;
        }
    };
}

record!(
    Bar,
    Kind::Bar,
    Some(std::mem::size_of::<crate::model::ArchivedBar>())
);
record!(Ticker, Kind::Ticker, None);
record!(FearGreed, Kind::FearGreed, None);
record!(f64, Kind::FundingRate, Some(8));

/// Length in bytes of one archived bar, without a header: what a run holds per bar.
pub const ARCHIVED_BAR_LEN: usize = std::mem::size_of::<crate::model::ArchivedBar>();

/// Length in bytes of one encoded bar (header included).
pub const BAR_LEN: usize = HEADER_LEN + ARCHIVED_BAR_LEN;

/// Length in bytes of a series head: header, newest bar, bar count.
pub const SERIES_HEAD_LEN: usize = HEADER_LEN + ARCHIVED_BAR_LEN + 8;

/// The open time of an encoded bar, read straight from its record (the
/// timestamp is the archive's first field): for filtering without decoding.
///
/// # Errors
///
/// [`ErrorKind::Codec`](crate::ErrorKind::Codec) when `record` is not a bar record.
pub fn bar_timestamp(record: &[u8]) -> Result<i64> {
    Ok(access::<Bar>(record)?.timestamp.to_native())
}

/// Writes the header of `kind` into an empty buffer with room for `payload` bytes.
pub(crate) fn header(kind: Kind, payload: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload);
    out.extend_from_slice(&header_bytes(kind));
    out
}

/// Prepends the header of `kind` to an opaque payload (JSON, compressed JSON).
pub(crate) fn frame(kind: Kind, payload: &[u8]) -> Bytes {
    let mut out = header(kind, payload.len());
    out.extend_from_slice(payload);
    out.into()
}

/// Checks the header and returns the payload behind it, and the kind found.
pub(crate) fn unframe(bytes: &[u8]) -> Result<(Kind, &[u8])> {
    check_ours(bytes)?;
    let kind = kind_from_byte(bytes[2])?;
    Ok((kind, &bytes[HEADER_LEN..]))
}

/// The first half of the header check: `Err` when `bytes` are not in this
/// build's format at all (another program's value, or another format
/// version's). Past it, a value that fails to decode is ours and corrupt,
/// which is how `inspect` tells the two apart.
pub(crate) fn check_ours(bytes: &[u8]) -> Result<()> {
    if bytes.len() < HEADER_LEN || bytes[..2] != MAGIC {
        return Err(Error::codec(format!(
            "not an iftb-cache value ({} bytes starting {:?})",
            bytes.len(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(8)])
        )));
    }
    if bytes[3] != FORMAT_VERSION {
        return Err(Error::codec(format!(
            "value has format version {}, this build reads version {FORMAT_VERSION}",
            bytes[3]
        )));
    }
    Ok(())
}

fn kind_from_byte(b: u8) -> Result<Kind> {
    Ok(match b {
        1 => Kind::Bar,
        2 => Kind::Ticker,
        3 => Kind::FearGreed,
        4 => Kind::FundingRate,
        5 => Kind::Json,
        6 => Kind::JsonCompressed,
        7 => Kind::BarRun,
        8 => Kind::SeriesHead,
        other => return Err(Error::codec(format!("unknown value kind {other}"))),
    })
}

/// Checks the header for `expected` and returns the payload behind it.
pub(crate) fn payload(expected: Kind, bytes: &[u8]) -> Result<&[u8]> {
    let (kind, payload) = unframe(bytes)?;
    if kind != expected {
        return Err(Error::codec(format!(
            "value holds a {kind:?}, expected a {expected:?}"
        )));
    }
    Ok(payload)
}

/// Encodes `value` behind its header.
pub fn encode<R: Record>(value: &R) -> Bytes
where
    R::Archived: for<'a> rkyv::bytecheck::CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<R, HighDeserializer<rancor::Error>>,
{
    let out = header(R::KIND, R::EXACT_LEN.unwrap_or(64));
    // The archive is appended after the header; rkyv's offsets are relative, so
    // the payload slice is a self-contained archive. Serializing into a Vec
    // cannot fail for these types: there is no fallible step in them.
    match rkyv::api::high::to_bytes_in::<_, rancor::Error>(value, out) {
        Ok(bytes) => bytes.into(),
        Err(e) => unreachable_encode(e),
    }
}

#[cold]
fn unreachable_encode(e: rancor::Error) -> ! {
    // Only an allocator failure can get here, and that aborts before this.
    panic!("rkyv serialization into a Vec failed: {e}")
}

/// Encodes many bars into one buffer and hands out a record per bar, sliced
/// from it: one allocation for a whole batch instead of one per bar.
pub fn encode_bars(bars: &[Bar]) -> Vec<Bytes> {
    let mut buf = Vec::with_capacity(bars.len() * BAR_LEN);
    for bar in bars {
        buf.extend_from_slice(&header_bytes(Kind::Bar));
        // Unaligned archives need no padding: each record is exactly BAR_LEN.
        buf = match rkyv::api::high::to_bytes_in::<_, rancor::Error>(bar, buf) {
            Ok(buf) => buf,
            Err(e) => unreachable_encode(e),
        };
    }
    debug_assert_eq!(buf.len(), bars.len() * BAR_LEN);
    let all = Bytes::from(buf);
    (0..bars.len())
        .map(|i| all.slice(i * BAR_LEN..(i + 1) * BAR_LEN))
        .collect()
}

/// The archived bars back to back, no header: what the backends store per bar
/// and what the series script packs into runs.
pub(crate) fn archive_bars(bars: &[Bar]) -> Bytes {
    let mut buf = Vec::with_capacity(bars.len() * ARCHIVED_BAR_LEN);
    for bar in bars {
        buf = match rkyv::api::high::to_bytes_in::<_, rancor::Error>(bar, buf) {
            Ok(buf) => buf,
            Err(e) => unreachable_encode(e),
        };
    }
    debug_assert_eq!(buf.len(), bars.len() * ARCHIVED_BAR_LEN);
    buf.into()
}

/// The header every stored value of `kind` starts with, in this format version.
pub fn header_bytes(kind: Kind) -> [u8; HEADER_LEN] {
    [MAGIC[0], MAGIC[1], kind as u8, FORMAT_VERSION]
}

/// Encodes bars, oldest first, as one run: the value a series member holds.
///
/// # Examples
///
/// ```
/// use iftb_cache::{codec, Bar};
/// let bars = [Bar::new(0, 1.0, 2.0, 0.5, 1.5, 1.0), Bar::new(60_000, 1.5, 2.0, 1.0, 1.2, 2.0)];
/// let run = codec::encode_bar_run(&bars);
/// assert_eq!(run.len(), codec::HEADER_LEN + 2 * codec::ARCHIVED_BAR_LEN);
/// assert_eq!(codec::decode_bar_run(&run)?, bars);
/// # Ok::<(), iftb_cache::Error>(())
/// ```
pub fn encode_bar_run(bars: &[Bar]) -> Bytes {
    let mut out = header(Kind::BarRun, bars.len() * ARCHIVED_BAR_LEN);
    out.extend_from_slice(&archive_bars(bars));
    out.into()
}

/// Checks a run's header and length and returns its archived bars, each
/// [`ARCHIVED_BAR_LEN`] bytes, not yet validated one by one.
pub(crate) fn run_bars(run: &[u8]) -> Result<&[u8]> {
    let bars = payload(Kind::BarRun, run)?;
    if bars.is_empty() || !bars.len().is_multiple_of(ARCHIVED_BAR_LEN) {
        return Err(Error::codec(format!(
            "bar run of {} bytes is not whole {ARCHIVED_BAR_LEN}-byte bars",
            bars.len()
        )));
    }
    Ok(bars)
}

/// Validates a run and every bar in it, and copies the bars out, oldest first.
///
/// # Errors
///
/// [`ErrorKind::Codec`](crate::ErrorKind::Codec) for a value that is not a
/// whole run of valid bars in strictly increasing time order.
pub fn decode_bar_run(run: &[u8]) -> Result<Vec<Bar>> {
    let mut out: Vec<Bar> = Vec::new();
    for bar in run_bars(run)?.chunks_exact(ARCHIVED_BAR_LEN) {
        let bar = access_valid_archived_bar(bar)?.to_bar();
        if out
            .last()
            .is_some_and(|last| last.timestamp >= bar.timestamp)
        {
            return Err(Error::codec(
                "bar run is not in strictly increasing time order",
            ));
        }
        out.push(bar);
    }
    Ok(out)
}

/// Checks a series head and returns its newest archived bar (not yet validated).
pub(crate) fn head_bar(head: &[u8]) -> Result<&[u8]> {
    let rest = payload(Kind::SeriesHead, head)?;
    if head.len() != SERIES_HEAD_LEN {
        return Err(Error::codec(format!(
            "series head is {} bytes, expected {SERIES_HEAD_LEN}",
            head.len()
        )));
    }
    Ok(&rest[..ARCHIVED_BAR_LEN])
}

/// The bar count a series head holds, after the checks of [`head_bar`].
pub(crate) fn head_count(head: &[u8]) -> Result<u64> {
    head_bar(head)?;
    let mut count = [0u8; 8];
    count.copy_from_slice(&head[HEADER_LEN + ARCHIVED_BAR_LEN..]);
    Ok(u64::from_le_bytes(count))
}

/// An archived bar without a header (a run's element), validated as an
/// archive (its length and rkyv's checks), read in place.
pub(crate) fn access_archived_bar(bytes: &[u8]) -> Result<&ArchivedBar> {
    if bytes.len() != ARCHIVED_BAR_LEN {
        return Err(Error::codec(format!(
            "archived bar is {} bytes, expected {ARCHIVED_BAR_LEN}",
            bytes.len()
        )));
    }
    rkyv::access::<ArchivedBar, rancor::Error>(bytes)
        .map_err(|e| Error::codec(format!("Bar archive is invalid: {e}")))
}

/// A bar validated as it was stored (the embedded engine and the near
/// cache keep only such bars), copied out field by field: the
/// little-endian, unaligned layout `Cargo.toml` pins for rkyv, read without
/// rkyv's checks of bytes already checked (a test holds the two equal).
#[inline]
pub(crate) fn validated_bar(bytes: &[u8]) -> Result<Bar> {
    let Ok(bar) = <&[u8; ARCHIVED_BAR_LEN]>::try_from(bytes) else {
        // Not a bar's length: the error access gives.
        return access_archived_bar(bytes).map(ArchivedBar::to_bar);
    };
    let field = |i: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bar[i * 8..i * 8 + 8]);
        word
    };
    Ok(Bar {
        timestamp: i64::from_le_bytes(field(0)),
        open: f64::from_le_bytes(field(1)),
        high: f64::from_le_bytes(field(2)),
        low: f64::from_le_bytes(field(3)),
        close: f64::from_le_bytes(field(4)),
        volume: f64::from_le_bytes(field(5)),
    })
}

/// As [`access_archived_bar`], and checked as a bar too (the write checks).
pub(crate) fn access_valid_archived_bar(bytes: &[u8]) -> Result<&ArchivedBar> {
    let bar = access_archived_bar(bytes)?;
    bar.to_bar().validate().map_err(|e| corrupt(Kind::Bar, e))?;
    Ok(bar)
}

/// The open time of an archived bar, its first field (an `i64`,
/// little-endian), read without validating the rest: for filtering only.
/// The series script reads it at the same place.
pub(crate) fn archived_bar_timestamp(bar: &[u8; ARCHIVED_BAR_LEN]) -> i64 {
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&bar[..8]);
    i64::from_le_bytes(ts)
}

/// The order the bars of a series read must come in; a read out of it is
/// corrupt, never handed out (a duplicate or a bar out of place would
/// mislead every indicator).
pub(crate) struct Order {
    newest_first: bool,
    last: Option<i64>,
}

impl Order {
    pub(crate) fn newest_first() -> Self {
        Order {
            newest_first: true,
            last: None,
        }
    }

    pub(crate) fn oldest_first() -> Self {
        Order {
            newest_first: false,
            last: None,
        }
    }

    #[inline]
    pub(crate) fn check(&mut self, ts: i64) -> Result<()> {
        let in_order = |prev: i64| (ts < prev) == self.newest_first && ts != prev;
        if !self.last.is_none_or(in_order) {
            return Err(out_of_order(ts));
        }
        self.last = Some(ts);
        Ok(())
    }
}

#[cold]
fn out_of_order(ts: i64) -> Error {
    Error::codec(format!("series read is out of order at bar {ts}"))
}

/// The bars of a run (whole archived bars, oldest first), newest first.
#[inline]
pub(crate) fn run_newest_first(
    run: &[u8],
) -> Result<std::iter::Rev<std::slice::ChunksExact<'_, u8>>> {
    if run.is_empty() || !run.len().is_multiple_of(ARCHIVED_BAR_LEN) {
        return Err(Error::codec(format!(
            "a run of {} bytes is not whole {ARCHIVED_BAR_LEN}-byte bars",
            run.len(),
        )));
    }
    Ok(run.chunks_exact(ARCHIVED_BAR_LEN).rev())
}

/// Checks every bar of a series read, as bars and in order: runs newest
/// first when `newest_first` (a read of the newest bars), oldest first
/// otherwise (a window), each run oldest first.
pub(crate) fn check_runs(runs: &[Bytes], newest_first: bool) -> Result<()> {
    let mut order = if newest_first {
        Order::newest_first()
    } else {
        Order::oldest_first()
    };
    for run in runs {
        let bars = run_newest_first(run)?;
        let mut check =
            |bar: &[u8]| order.check(access_valid_archived_bar(bar)?.timestamp.to_native());
        if newest_first {
            bars.into_iter().try_for_each(&mut check)?;
        } else {
            bars.rev().try_for_each(&mut check)?;
        }
    }
    Ok(())
}

/// Validates `bytes` and returns a zero-copy view of the archived value.
///
/// # Errors
///
/// [`ErrorKind::Codec`](crate::ErrorKind::Codec) for a missing or foreign header,
/// another kind or format version, a wrong length, or an archive that fails validation.
pub fn access<R: Record>(bytes: &[u8]) -> Result<&R::Archived>
where
    R::Archived: for<'a> rkyv::bytecheck::CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<R, HighDeserializer<rancor::Error>>,
{
    let payload = payload(R::KIND, bytes)?;
    if let Some(len) = R::EXACT_LEN {
        if payload.len() != len {
            return Err(Error::codec(format!(
                "{:?} payload is {} bytes, expected {len}",
                R::KIND,
                payload.len()
            )));
        }
    }
    rkyv::access::<R::Archived, rancor::Error>(payload)
        .map_err(|e| Error::codec(format!("{:?} archive is invalid: {e}", R::KIND)))
}

/// Validates `bytes` and deserializes the value.
///
/// # Errors
///
/// As [`access`].
pub fn decode<R: Record>(bytes: &[u8]) -> Result<R>
where
    R::Archived: for<'a> rkyv::bytecheck::CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<R, HighDeserializer<rancor::Error>>,
{
    let archived = access::<R>(bytes)?;
    rkyv::deserialize::<R, rancor::Error>(archived)
        .map_err(|e| Error::codec(format!("{:?} archive failed to deserialize: {e}", R::KIND)))
}

/// A record type read back through the write checks: a value that decodes
/// but holds what no write accepts (a NaN price, a value over 100) is corrupt,
/// and handing it out would poison everything downstream.
pub(crate) trait DecodeValid: Sized {
    /// Decodes `bytes`, then runs the write checks on the value.
    fn decode_valid(bytes: &[u8]) -> Result<Self>;
}

impl<R: Record + Validated> DecodeValid for R
where
    R::Archived: for<'a> rkyv::bytecheck::CheckBytes<HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<R, HighDeserializer<rancor::Error>>,
{
    fn decode_valid(bytes: &[u8]) -> Result<R> {
        let value = decode::<R>(bytes)?;
        value.check().map_err(|e| corrupt(R::KIND, e))?;
        Ok(value)
    }
}

fn corrupt(kind: Kind, e: Error) -> Error {
    Error::codec(format!("stored {kind:?} is corrupt: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FearGreedClass;

    #[test]
    fn a_validated_bar_reads_as_rkyv_reads_it() {
        let bars = [
            Bar::new(
                1_705_478_400_000,
                45_000.25,
                45_500.0,
                44_800.5,
                45_200.0,
                1_234.5,
            ),
            Bar::new(0, -0.0, f64::MIN_POSITIVE, -1e300, 1e-300, 0.0),
            Bar::new(i64::MAX, 1.0, 2.0, 0.5, 1.5, f64::MAX),
        ];
        let archived = archive_bars(&bars);
        for (bar, bytes) in bars.iter().zip(archived.chunks_exact(ARCHIVED_BAR_LEN)) {
            let by_rkyv = access_archived_bar(bytes).unwrap().to_bar();
            assert_eq!(validated_bar(bytes).unwrap(), by_rkyv);
            assert_eq!(by_rkyv, *bar);
        }
        assert!(validated_bar(&archived[..ARCHIVED_BAR_LEN - 1]).is_err());
        assert!(validated_bar(&archived[..ARCHIVED_BAR_LEN + 1]).is_err());
    }

    #[test]
    fn bar_record_has_a_fixed_length() {
        let bytes = encode(&Bar::new(1, 1.0, 2.0, 0.5, 1.5, 3.0));
        assert_eq!(bytes.len(), BAR_LEN);
        assert_eq!(BAR_LEN, 52);
    }

    #[test]
    fn batch_encoding_matches_one_by_one() {
        let bars: Vec<Bar> = (0..5)
            .map(|i| Bar::new(i, 1.0, 2.0, 0.5, i as f64, 3.0))
            .collect();
        let batch = encode_bars(&bars);
        assert_eq!(batch.len(), bars.len());
        for (bar, record) in bars.iter().zip(&batch) {
            assert_eq!(record, &encode(bar));
        }
    }

    #[test]
    fn every_kind_round_trips() {
        let t = Ticker {
            symbol: "BTCUSDT".into(),
            bid: 1.0,
            ask: 2.0,
            last: 1.5,
            volume_24h: 10.0,
            change_24h: -2.5,
            high_24h: 3.0,
            low_24h: 0.5,
            timestamp: 7,
        };
        assert_eq!(decode::<Ticker>(&encode(&t)).unwrap(), t);
        let fg = FearGreed {
            value: 45,
            classification: FearGreedClass::Fear,
            timestamp: 9,
        };
        assert_eq!(decode::<FearGreed>(&encode(&fg)).unwrap(), fg);
        assert_eq!(decode::<f64>(&encode(&0.0001f64)).unwrap(), 0.0001);
    }

    #[test]
    fn wrong_kind_version_and_length_are_codec_errors() {
        let bar = encode(&Bar::new(1, 1.0, 2.0, 0.5, 1.5, 3.0));
        assert!(decode::<Ticker>(&bar).unwrap_err().is_codec());
        let mut v2 = bar.to_vec();
        v2[3] = FORMAT_VERSION + 1;
        let err = decode::<Bar>(&v2).unwrap_err();
        assert!(err.is_codec() && err.to_string().contains("format version"));
        let mut longer = bar.to_vec();
        longer.push(0);
        assert!(decode::<Bar>(&longer).unwrap_err().is_codec());
        assert!(decode::<Bar>(&bar[..bar.len() - 1]).unwrap_err().is_codec());
        assert!(decode::<Bar>(b"").unwrap_err().is_codec());
    }

    #[test]
    fn python_json_is_a_foreign_value() {
        let json = br#"{"timestamp": 1705478400000, "open": 45000.0}"#;
        let err = decode::<Bar>(json).unwrap_err();
        assert!(err.to_string().contains("not an iftb-cache value"), "{err}");
    }

    fn archived(ts: i64, prices: [f64; 5]) -> Vec<u8> {
        let mut out = ts.to_le_bytes().to_vec();
        for v in prices {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    #[test]
    fn version_two_layout_is_pinned() {
        // A format change must bump FORMAT_VERSION: this pins version 2's bytes.
        assert_eq!(FORMAT_VERSION, 2);
        let bar = Bar::new(1, 2.0, 3.0, 1.0, 2.5, 4.0);
        let mut expected = vec![b'I', b'F', 1, 2];
        expected.extend(archived(1, [2.0, 3.0, 1.0, 2.5, 4.0]));
        assert_eq!(&encode(&bar)[..], &expected[..]);

        let next = Bar::new(7, 2.5, 3.0, 2.0, 2.0, 1.0);
        let mut run = vec![b'I', b'F', 7, 2];
        run.extend(archived(1, [2.0, 3.0, 1.0, 2.5, 4.0]));
        run.extend(archived(7, [2.5, 3.0, 2.0, 2.0, 1.0]));
        assert_eq!(&encode_bar_run(&[bar, next])[..], &run[..]);
        assert_eq!(header_bytes(Kind::SeriesHead), [b'I', b'F', 8, 2]);
        assert_eq!(SERIES_HEAD_LEN, 60);
        assert_eq!(crate::keys::VERSION, format!("v{FORMAT_VERSION}"));
    }

    #[test]
    fn foreign_values_are_told_from_ours() {
        assert!(check_ours(&encode(&0.5f64)).is_ok());
        // Ours, whatever follows the header: corrupt, not foreign.
        assert!(check_ours(&[b'I', b'F', 99, FORMAT_VERSION, 1]).is_ok());
        for foreign in [&b"hello world"[..], b"IF", b"IF\x01\x01rest", b""] {
            assert!(check_ours(foreign).unwrap_err().is_codec(), "{foreign:?}");
        }
    }

    #[test]
    fn a_head_holds_its_newest_bar_and_the_count() {
        let bar = Bar::new(7, 2.5, 3.0, 2.0, 2.0, 1.0);
        let mut head = header_bytes(Kind::SeriesHead).to_vec();
        head.extend_from_slice(&archive_bars(&[bar]));
        head.extend_from_slice(&1_234u64.to_le_bytes());
        assert_eq!(head_count(&head).unwrap(), 1_234);
        assert_eq!(
            access_archived_bar(head_bar(&head).unwrap())
                .unwrap()
                .to_bar(),
            bar
        );
        assert!(head_count(&head[..head.len() - 1]).unwrap_err().is_codec());
        let mut run = head.clone();
        run[2] = Kind::BarRun as u8;
        assert!(head_count(&run).unwrap_err().is_codec());
    }

    #[test]
    fn runs_round_trip_and_reject_what_no_write_makes() {
        let bars: Vec<Bar> = (0..3)
            .map(|i| Bar::new(i * 60, 1.0, 2.0, 0.5, 1.5, 1.0))
            .collect();
        let run = encode_bar_run(&bars);
        assert_eq!(decode_bar_run(&run).unwrap(), bars);
        assert!(decode_bar_run(&run[..run.len() - 1])
            .unwrap_err()
            .is_codec());
        assert!(decode_bar_run(&encode_bar_run(&[])).unwrap_err().is_codec());
        let backwards = encode_bar_run(&[bars[1], bars[0]]);
        assert!(decode_bar_run(&backwards).unwrap_err().is_codec());
        let mut v1 = run.to_vec();
        v1[3] = 1;
        assert!(decode_bar_run(&v1).unwrap_err().is_codec());
        assert!(decode_bar_run(&encode(&bars[0])).unwrap_err().is_codec());
    }
}
