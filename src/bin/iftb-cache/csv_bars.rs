//! Bars from a CSV file, the whole file parsed and checked before anything
//! is written: a header naming `timestamp` (or `time`, or `date`), `open`,
//! `high`, `low`, `close` and `volume` in any case and order (other columns
//! ignored); one bar a row.
//!
//! The `csv` crate reads it rather than a split on commas: quoted fields
//! (`"45,000.5"`, a newline inside quotes), CRLF line ends, a UTF-8 BOM
//! before the header and blank lines are all real in exchange and
//! spreadsheet exports, and it handles each of them (the tests below hold
//! it to that). Its record positions, though, are where the reader stood
//! when the record began, before the previous line's end and any blank
//! lines: so lines are counted here, from those byte offsets ([`Lines`]).

use crate::times;
use csv::{ReaderBuilder, StringRecord, Trim};
use iftb_cache::Bar;

/// Bad rows listed in a report; past it, only how many more.
pub const MAX_REPORTED: usize = 20;

/// One row that is no bar, by its line in the file (1 is the header).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BadRow {
    pub line: u64,
    pub message: String,
}

/// Why a file gives no bars.
#[derive(Debug, PartialEq, Eq)]
pub enum CsvError {
    /// The header (or the file as a whole) is not one of bars.
    Header(String),
    /// Rows that are no bars: the first [`MAX_REPORTED`] by line, and how
    /// many more there are.
    Rows { shown: Vec<BadRow>, more: usize },
}

/// Where each needed field is in a row.
struct Columns {
    time: usize,
    /// open, high, low, close, volume.
    prices: [usize; 5],
    width: usize,
}

const PRICES: [&str; 5] = ["open", "high", "low", "close", "volume"];

/// Every bar of the file, sorted by open time; or every bad row.
pub fn read_bars(input: &[u8]) -> Result<Vec<Bar>, CsvError> {
    let mut lines = Lines::new(input);
    let mut reader = ReaderBuilder::new()
        .trim(Trim::All)
        // Rows of another width are reported by line below, not refused
        // by the reader with no line of their own.
        .flexible(true)
        .from_reader(input);
    let header = reader
        .headers()
        .map_err(|e| CsvError::Header(format!("cannot read the header: {e}")))?
        .clone();
    let columns = columns(&header).map_err(CsvError::Header)?;
    let mut rows: Vec<(u64, Bar)> = Vec::new();
    let mut bad: Vec<BadRow> = Vec::new();
    for record in reader.records() {
        match record {
            Ok(record) if is_blank(&record) => {}
            Ok(record) => {
                let line = lines.of(record.position().map_or(0, |p| p.byte()));
                match bar(&record, &columns) {
                    Ok(bar) => rows.push((line, bar)),
                    Err(message) => bad.push(BadRow { line, message }),
                }
            }
            Err(e) => match e.position() {
                // Bad UTF-8 and the like: a row the reader read past.
                Some(p) => bad.push(BadRow {
                    line: lines.of(p.byte()),
                    message: e.to_string(),
                }),
                None => return Err(CsvError::Header(format!("cannot read the file: {e}"))),
            },
        }
    }
    if rows.is_empty() && bad.is_empty() {
        return Err(CsvError::Header("the file has a header but no rows".into()));
    }
    rows.sort_by_key(|(line, bar)| (bar.timestamp, *line));
    bad.extend(repeats(&rows));
    if bad.is_empty() {
        return Ok(rows.into_iter().map(|(_, bar)| bar).collect());
    }
    bad.sort_by_key(|row| row.line);
    let more = bad.len().saturating_sub(MAX_REPORTED);
    bad.truncate(MAX_REPORTED);
    Err(CsvError::Rows { shown: bad, more })
}

/// Line numbers of records from the byte offsets the reader gives, which
/// point before the previous record's line end: a record starts at the
/// first byte past them. Asked in increasing order, so the whole file is
/// counted once. `\r\n`, `\n` and a lone `\r` each end a line, as for the reader.
struct Lines<'a> {
    input: &'a [u8],
    /// Where counting stopped, and the line there.
    at: usize,
    line: u64,
}

impl<'a> Lines<'a> {
    fn new(input: &'a [u8]) -> Self {
        Lines {
            input,
            at: 0,
            line: 1,
        }
    }

    fn of(&mut self, byte: u64) -> u64 {
        let ends = |b: &u8| *b == b'\r' || *b == b'\n';
        let from = usize::try_from(byte).map_or(self.input.len(), |b| b.min(self.input.len()));
        let start = from + self.input[from..].iter().take_while(|b| ends(b)).count();
        let counted = &self.input[self.at.min(start)..start];
        let breaks = counted
            .iter()
            .enumerate()
            .filter(|(i, b)| **b == b'\n' || (**b == b'\r' && counted.get(i + 1) != Some(&b'\n')))
            .count();
        self.line += breaks as u64;
        self.at = self.at.max(start);
        self.line
    }
}

/// The header's columns, named in any case; `timestamp` wins over `time`,
/// which wins over `date`.
fn columns(header: &StringRecord) -> Result<Columns, String> {
    let names: Vec<String> = header.iter().map(str::to_ascii_lowercase).collect();
    let find = |name: &str| -> Result<Option<usize>, String> {
        let mut at = names.iter().enumerate().filter(|(_, n)| *n == name);
        match (at.next(), at.next()) {
            (Some((i, _)), None) => Ok(Some(i)),
            (None, _) => Ok(None),
            (Some(_), Some(_)) => Err(format!("the header names {name:?} twice")),
        }
    };
    let (timestamp, time, date) = (find("timestamp")?, find("time")?, find("date")?);
    let time = match (timestamp, time, date) {
        (Some(i), _, _) => i,
        (None, Some(_), Some(_)) => {
            return Err(
                "the header names both \"time\" and \"date\": name the bars' open \
                        time \"timestamp\""
                    .into(),
            )
        }
        (None, Some(i), None) | (None, None, Some(i)) => i,
        (None, None, None) => return Err(missing(&names, "timestamp (or time, or date)")),
    };
    let mut prices = [0; 5];
    for (slot, name) in prices.iter_mut().zip(PRICES) {
        *slot = find(name)?.ok_or_else(|| missing(&names, name))?;
    }
    Ok(Columns {
        time,
        prices,
        width: names.len(),
    })
}

fn missing(names: &[String], what: &str) -> String {
    format!(
        "the header has no {what} column (it has: {}); it needs timestamp, open, high, \
         low, close and volume",
        names.join(", ")
    )
}

/// A line of nothing but separators or whitespace, as spreadsheets leave
/// at the end of a sheet.
fn is_blank(record: &StringRecord) -> bool {
    record.iter().all(str::is_empty)
}

/// One row's bar, checked as every write checks it (`Bar::validate`).
fn bar(record: &StringRecord, columns: &Columns) -> Result<Bar, String> {
    if record.len() != columns.width {
        // An unquoted thousands separator (45,000.5) shifts every column.
        return Err(format!(
            "{} fields where the header has {} (quote values holding commas)",
            record.len(),
            columns.width
        ));
    }
    let timestamp = times::parse(&record[columns.time])?;
    let mut values = [0.0; 5];
    for ((value, at), name) in values.iter_mut().zip(columns.prices).zip(PRICES) {
        *value = number(name, &record[at])?;
    }
    let [open, high, low, close, volume] = values;
    let bar = Bar::new(timestamp, open, high, low, close, volume);
    bar.validate().map_err(|e| {
        let e = e.to_string();
        e.strip_prefix("InvalidInput: ").unwrap_or(&e).to_string()
    })?;
    Ok(bar)
}

fn number(name: &str, text: &str) -> Result<f64, String> {
    if text.is_empty() {
        return Err(format!("{name} is empty"));
    }
    text.parse()
        .map_err(|_| format!("{name} {text:?} is not a number"))
}

/// A second row with the open time of another: which of the two a series
/// should keep is not the tool's to guess. `rows` is sorted by time, then line.
fn repeats(rows: &[(u64, Bar)]) -> Vec<BadRow> {
    rows.windows(2)
        .filter(|w| w[0].1.timestamp == w[1].1.timestamp)
        .map(|w| BadRow {
            line: w[1].0,
            message: format!(
                "open time {} repeats line {}",
                times::format(w[1].1.timestamp),
                w[0].0
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_705_478_400_000; // 2024-01-17T08:00:00Z

    fn read(text: &str) -> Result<Vec<Bar>, CsvError> {
        read_bars(text.as_bytes())
    }

    fn lines(text: &str) -> Vec<u64> {
        rows(text).iter().map(|r| r.line).collect()
    }

    fn rows(text: &str) -> Vec<BadRow> {
        match read(text) {
            Err(CsvError::Rows { shown, more: 0 }) => shown,
            other => panic!("expected bad rows, got {other:?}"),
        }
    }

    fn header_error(text: &str) -> String {
        match read(text) {
            Err(CsvError::Header(e)) => e,
            other => panic!("expected a header error, got {other:?}"),
        }
    }

    #[test]
    fn a_header_in_any_case_and_order_with_extra_columns() {
        let bars = read(
            "Volume,CLOSE,trades,Low,High,Open,TimeStamp\n\
             10.5,45200,77,44800,45500,45000,1705478400000\n",
        )
        .unwrap();
        assert_eq!(
            bars,
            [Bar::new(T0, 45_000.0, 45_500.0, 44_800.0, 45_200.0, 10.5)]
        );
    }

    #[test]
    fn time_or_date_name_the_open_time_and_timestamp_wins() {
        let row = "2024-01-17T08:00:00Z,1,2,0.5,1.5,3";
        for name in ["time", "Date", "TIMESTAMP"] {
            let text = format!("{name},open,high,low,close,volume\n{row}\n");
            assert_eq!(read(&text).unwrap()[0].timestamp, T0, "{name}");
        }
        let both =
            "date,timestamp,open,high,low,close,volume\n2000-01-01,1705478400000,1,2,0.5,1.5,3\n";
        assert_eq!(read(both).unwrap()[0].timestamp, T0);
        let split = header_error("date,time,open,high,low,close,volume\n");
        assert!(split.contains("both"), "{split}");
    }

    #[test]
    fn crlf_bom_quotes_blank_lines_and_whitespace_are_read() {
        let text = "\u{feff}timestamp , open,high,low,close,volume,note\r\n\
                    \r\n\
                    2024-01-17T08:00:00Z,\"45000.5\", 45500 ,44800,45200,1,\"gap, then \"\"fill\"\"\"\r\n\
                    \r\n\
                    \"1705482000000\",45200,45600,45100,45300,2,\"two\r\nlines\"\r\n\
                    ,,,,,,\r\n\
                    \x20  \r\n";
        let bars = read(text).unwrap();
        assert_eq!(
            bars,
            [
                Bar::new(T0, 45_000.5, 45_500.0, 44_800.0, 45_200.0, 1.0),
                Bar::new(T0 + 3_600_000, 45_200.0, 45_600.0, 45_100.0, 45_300.0, 2.0),
            ]
        );
    }

    #[test]
    fn bad_rows_are_counted_in_lines_of_the_file_whatever_ends_them() {
        let bad = "x,1,2,0.5,1.5,3";
        let header = "timestamp,open,high,low,close,volume";
        let good = "1705478400000,1,2,0.5,1.5,3";
        assert_eq!(lines(&format!("{header}\n{bad}\n")), [2]);
        assert_eq!(lines(&format!("{header}\r\n{bad}\r\n")), [2]);
        assert_eq!(lines(&format!("\u{feff}{header}\r\n{bad}")), [2]);
        assert_eq!(
            lines(&format!(
                "{header}\r\n\r\n{good}\r\n\r\n\r\n{bad}\r\n{bad}\r\n"
            )),
            [6, 7]
        );
        assert_eq!(lines(&format!("{header}\n\n{bad}\n\n{bad}\n")), [3, 5]);
        assert_eq!(lines(&format!("{header}\r{bad}\r\r{bad}\r")), [2, 4]);
        // A newline inside quotes is one record: the next row is a line further down.
        let quoted = format!("{header},note\n{good},\"two\nlines\"\n{bad},x\n");
        assert_eq!(lines(&quoted), [4]);
    }

    #[test]
    fn bars_come_back_sorted_by_time() {
        let text = "timestamp,open,high,low,close,volume\n\
                    1705482000000,1,2,0.5,1.5,3\n\
                    2024-01-17T08:00:00Z,1,2,0.5,1.5,3\n";
        let times: Vec<i64> = read(text).unwrap().iter().map(|b| b.timestamp).collect();
        assert_eq!(times, [T0, T0 + 3_600_000]);
    }

    #[test]
    fn numbers_with_a_thousands_or_decimal_comma_are_refused_not_guessed() {
        let text = "timestamp,open,high,low,close,volume\n\
                    1705478400000,\"45,000.5\",45500,44800,45200,1\n\
                    1705482000000,\"45000,5\",45500,44800,45200,1\n";
        let bad = rows(text);
        assert_eq!(bad.len(), 2);
        assert!(
            bad.iter().all(|r| r.message.contains("is not a number")),
            "{bad:?}"
        );
    }

    #[test]
    fn every_bad_row_is_reported_by_line() {
        let text = "timestamp,open,high,low,close,volume\n\
                    2024-01-17T08:00:00Z,1,2,0.5,1.5,3\n\
                    yesterday,1,2,0.5,1.5,3\n\
                    2024-01-17T09:00:00Z,1,2,3,1.5,3\n\
                    2024-01-17T10:00:00Z,abc,2,0.5,1.5,3\n\
                    2024-01-17T11:00:00Z,1,2,0.5,1.5\n\
                    2024-01-17T12:00:00Z,NaN,2,0.5,1.5,3\n\
                    2024-01-17T13:00:00Z,1,2,0.5,1.5,-1\n\
                    2024-01-17T14:00:00Z,1,2,0.5,,3\n\
                    2024-01-17T08:00:00+00:00,1,2,0.5,1.5,3\n";
        let bad = rows(text);
        let lines: Vec<u64> = bad.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7, 8, 9, 10]);
        let said = |line: u64, what: &str| {
            let row = bad.iter().find(|r| r.line == line).unwrap();
            assert!(row.message.contains(what), "line {line}: {}", row.message);
        };
        said(3, "ISO 8601");
        said(4, "low 3 is above high 2");
        said(5, "open \"abc\" is not a number");
        said(6, "5 fields where the header has 6");
        said(7, "not finite");
        said(8, "negative volume");
        said(9, "close is empty");
        said(10, "repeats line 2");
        assert!(
            !bad[1].message.starts_with("InvalidInput"),
            "{}",
            bad[1].message
        );
    }

    #[test]
    fn past_the_cap_only_the_count_of_bad_rows() {
        let mut text = String::from("timestamp,open,high,low,close,volume\n");
        for i in 0..(MAX_REPORTED + 7) {
            text.push_str(&format!("{i},x,2,0.5,1.5,3\n"));
        }
        let Err(CsvError::Rows { shown, more }) = read(&text) else {
            panic!("not refused");
        };
        assert_eq!(shown.len(), MAX_REPORTED);
        assert_eq!(more, 7);
        assert_eq!(shown[0].line, 2);
    }

    #[test]
    fn a_header_without_every_column_or_rows_is_refused() {
        let e = header_error("timestamp,open,high,low,close\n1,1,2,0.5,1.5\n");
        assert!(e.contains("no volume column"), "{e}");
        let e = header_error("open,high,low,close,volume\n");
        assert!(e.contains("timestamp (or time, or date)"), "{e}");
        let e = header_error("timestamp,open,open,high,low,close,volume\n");
        assert!(e.contains("\"open\" twice"), "{e}");
        let e = header_error("timestamp,open,high,low,close,volume\r\n\r\n");
        assert!(e.contains("no rows"), "{e}");
        assert!(header_error("").contains("no timestamp"));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_a_bad_row() {
        let mut text = b"timestamp,open,high,low,close,volume\n".to_vec();
        text.extend_from_slice(b"1705478400000,1,2,0.5,1.5,3\n1705482000000,\xff,2,0.5,1.5,3\n");
        let Err(CsvError::Rows { shown, .. }) = read_bars(&text[..]) else {
            panic!("not refused");
        };
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].line, 3);
    }
}
