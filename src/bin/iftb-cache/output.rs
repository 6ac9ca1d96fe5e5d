//! What a command hands back, and how it reaches the terminal: text for
//! people, or one JSON document on stdout (`--json`), errors included.

use crate::exit;
use serde_json::{json, Map, Value};
use std::io::Write;
use std::process::ExitCode;

/// A command's answer: its text, its JSON, and its exit code (0, or the
/// code of what `inspect` found).
pub struct Report {
    pub text: String,
    pub json: Value,
    pub code: u8,
}

impl Report {
    pub fn new(text: String, json: Value) -> Self {
        Report {
            text,
            json,
            code: exit::SUCCESS,
        }
    }
}

/// A command that failed: its exit code, a message, lines of detail for
/// people (bad CSV rows) and fields for the JSON error object.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
    pub lines: Vec<String>,
    pub fields: Map<String, Value>,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            lines: Vec::new(),
            fields: Map::new(),
        }
    }

    /// A library error, after what was being done.
    pub fn of(context: impl std::fmt::Display, e: &iftb_cache::Error) -> Self {
        Failure::new(exit::of(e), format!("{context}: {e}"))
    }

    pub fn field(mut self, name: &str, value: Value) -> Self {
        self.fields.insert(name.to_string(), value);
        self
    }

    fn json(&self) -> Value {
        let mut error = Map::new();
        error.insert("code".into(), json!(self.code));
        error.insert("kind".into(), json!(exit::name(self.code)));
        error.insert("message".into(), json!(self.message));
        error.extend(self.fields.clone());
        json!({ "error": error })
    }
}

/// Prints the outcome and gives the process its exit code. Output to a
/// closed pipe (`| head`) is dropped, not a panic.
pub fn finish(json: bool, outcome: Result<Report, Failure>) -> ExitCode {
    let code = match &outcome {
        Ok(report) => report.code,
        Err(failure) => failure.code,
    };
    let (stdout, stderr) = match (&outcome, json) {
        (Ok(report), false) => (report.text.clone(), String::new()),
        (Ok(report), true) => (pretty(&report.json), String::new()),
        (Err(failure), true) => (pretty(&failure.json()), String::new()),
        (Err(failure), false) => (String::new(), human(failure)),
    };
    let _ = std::io::stdout().lock().write_all(stdout.as_bytes());
    let _ = std::io::stderr().lock().write_all(stderr.as_bytes());
    ExitCode::from(code)
}

fn pretty(doc: &Value) -> String {
    let mut text = serde_json::to_string_pretty(doc).unwrap_or_else(|e| {
        // Only a map with non-string keys fails, and none is built here.
        format!(
            "{{\"error\": {{\"code\": 1, \"message\": {:?}}}}}",
            e.to_string()
        )
    });
    text.push('\n');
    text
}

fn human(failure: &Failure) -> String {
    let mut text = format!("iftb-cache: {}\n", failure.message);
    for line in &failure.lines {
        text.push_str(&format!("  {line}\n"));
    }
    text
}

/// A table: a header row, then rows, numbers right-aligned, the first
/// column left-aligned.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            match i {
                0 => out.push_str(&format!("{cell:<w$}")),
                _ => out.push_str(&format!("  {cell:>w$}")),
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    rows.iter().for_each(|row| out.push_str(&line(row)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_numbers_right() {
        let rows = vec![
            vec!["a".to_string(), "1".to_string()],
            vec!["bbb".to_string(), "22.5".to_string()],
        ];
        assert_eq!(
            table(&["name", "n"], &rows),
            "name     n\na        1\nbbb   22.5\n"
        );
    }

    #[test]
    fn a_failure_in_json_carries_its_code_kind_and_fields() {
        let f = Failure::new(exit::BAD_DATA, "2 bad rows").field("rows", json!([1, 2]));
        assert_eq!(
            f.json(),
            json!({"error": {"code": 4, "kind": "bad_data", "message": "2 bad rows", "rows": [1, 2]}})
        );
    }
}
