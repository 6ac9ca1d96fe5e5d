//! Times as operators write them (CSV cells, `--from`/`--to`) and as tables
//! show them: unix milliseconds in, ISO 8601 UTC out.

use time::format_description::well_known::Iso8601;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

/// Unix milliseconds from epoch milliseconds (digits only) or ISO 8601: a
/// date (`2024-01-17`, midnight UTC) or a date-time (`2024-01-17T08:00:00`,
/// `...Z`, `...+02:00`, fractional seconds allowed; no offset means UTC; a
/// space may stand for the `T`, as many exports write it). Precision below
/// a millisecond is dropped (floored). Nine to eleven digits are refused:
/// as milliseconds they would be 1970 to 1973, and they are what epoch
/// *seconds* of 1973 to 5138 look like, which many exports write.
pub fn parse(text: &str) -> Result<i64, String> {
    let s = text.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        if (9..=11).contains(&s.len()) {
            return Err(format!(
                "{s:?} looks like epoch seconds; times are epoch milliseconds ({s}000) or ISO 8601"
            ));
        }
        return s
            .parse()
            .map_err(|_| format!("{s:?} is too large for epoch milliseconds"));
    }
    let iso = with_t(s);
    let parsed = OffsetDateTime::parse(&iso, &Iso8601::DEFAULT)
        .or_else(|_| PrimitiveDateTime::parse(&iso, &Iso8601::DEFAULT).map(|t| t.assume_utc()))
        .or_else(|_| Date::parse(&iso, &Iso8601::DEFAULT).map(|d| d.midnight().assume_utc()));
    let t = parsed.map_err(|_| {
        format!(
            "{s:?} is neither epoch milliseconds nor an ISO 8601 date (2024-01-17) or \
             date-time (2024-01-17T08:00:00, ...Z, ...+02:00)"
        )
    })?;
    let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
    i64::try_from(ms).map_err(|_| format!("{s:?} is out of range"))
}

/// `2024-01-17 08:00:00` as ISO 8601 has it: `2024-01-17T08:00:00`.
fn with_t(s: &str) -> std::borrow::Cow<'_, str> {
    match (s.get(..10), s.get(10..11), s.get(11..)) {
        (Some(date), Some(" "), Some(rest)) if !rest.is_empty() => format!("{date}T{rest}").into(),
        _ => s.into(),
    }
}

/// `2024-01-17T08:00:00Z`, with `.mmm` when the milliseconds are not 0;
/// a time out of the calendar's range is shown as its milliseconds.
pub fn format(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
        return format!("{ms} ms");
    };
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if t.millisecond() != 0 {
        out.push_str(&format!(".{:03}", t.millisecond()));
    }
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-01-17T00:00:00Z.
    const DAY: i64 = 1_705_449_600_000;
    const HOUR: i64 = 3_600_000;

    #[test]
    fn epoch_milliseconds_are_read_as_they_are() {
        assert_eq!(parse("1705478400000"), Ok(1_705_478_400_000));
        assert_eq!(parse(" 0 "), Ok(0));
        assert!(parse("99999999999999999999").is_err());
        assert!(parse("-5").is_err());
        assert!(parse("1.7e12").is_err());
    }

    #[test]
    fn epoch_seconds_are_refused_not_read_as_1970() {
        let err = parse("1705478400").unwrap_err();
        assert!(
            err.contains("epoch seconds") && err.contains("1705478400000"),
            "{err}"
        );
        assert!(parse("100000000").is_err() && parse("99999999999").is_err());
        assert_eq!(parse("100000000000"), Ok(100_000_000_000));
    }

    #[test]
    fn iso_dates_and_date_times_read_as_utc_unless_they_say_otherwise() {
        let cases = [
            ("2024-01-17", DAY),
            ("2024-01-17T08:00:00", DAY + 8 * HOUR),
            ("2024-01-17 08:00:00", DAY + 8 * HOUR),
            ("2024-01-17T08:00:00Z", DAY + 8 * HOUR),
            ("2024-01-17T08:00:00.250Z", DAY + 8 * HOUR + 250),
            ("2024-01-17T08:00:00.2509Z", DAY + 8 * HOUR + 250),
            ("2024-01-17T08:00:00.5", DAY + 8 * HOUR + 500),
            ("2024-01-17T08:00:00+02:00", DAY + 6 * HOUR),
            ("2024-01-17T08:00:00-05:30", DAY + 13 * HOUR + 30 * 60_000),
            ("2024-01-17T08:00:00.125+02:00", DAY + 6 * HOUR + 125),
        ];
        for (text, ms) in cases {
            assert_eq!(parse(text), Ok(ms), "{text}");
        }
    }

    #[test]
    fn what_is_no_time_is_refused_with_the_formats() {
        for text in [
            "",
            "yesterday",
            "2024-13-01",
            "2024-01-32",
            "17/01/2024",
            "2024-01-17T25:00:00",
            "2024-01-17T08:00:00+02:00 junk",
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains("ISO 8601"), "{text}: {err}");
        }
    }

    #[test]
    fn times_show_as_iso_utc_and_read_back() {
        assert_eq!(format(DAY + 8 * HOUR), "2024-01-17T08:00:00Z");
        assert_eq!(format(DAY + 8 * HOUR + 5), "2024-01-17T08:00:00.005Z");
        assert_eq!(format(0), "1970-01-01T00:00:00Z");
        for ms in [0, DAY, DAY + 1, DAY + 8 * HOUR + 999, 253_402_300_799_999] {
            assert_eq!(parse(&format(ms)), Ok(ms), "{ms}");
        }
        assert_eq!(format(i64::MAX), format!("{} ms", i64::MAX));
    }
}
