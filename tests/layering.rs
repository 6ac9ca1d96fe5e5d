//! Imports run one way: each module of the crate uses only the modules above
//! it in `LAYERS` (the order of the map in `src/lib.rs`), so no module ever
//! imports from one that imports it back. Read from the sources, so a new
//! import against the grain fails here, with the line that made it.

use std::path::{Path, PathBuf};

/// The crate's modules, lowest first. A module in a folder (`model/`...) is
/// one entry; files inside it may use each other.
const LAYERS: &[&str] = &[
    "error",
    "limits",
    "model",
    "keys",
    "codec",
    "config",
    "options",
    "flight",
    "backend",
    "stats",
    "memory_report",
    "shared",
    "client",
    "ohlcv",
    "market",
    "llm",
    "inspect",
    "manager",
];

/// The top-level module a source file belongs to (`src/ohlcv/cache.rs` → `ohlcv`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src/");
    let first = rel.components().next().expect("a file");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_string()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src/") {
        let path = entry.expect("dir entry").path();
        // `src/bin/`: the command-line tool, a crate of its own that sees
        // only the library's public API (its `crate::` is itself).
        if path.ends_with("bin") && path.parent() == Some(&src_dir()) {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The modules `line` names as `crate::<module>`, outside comments.
fn crate_paths(line: &str) -> Vec<&str> {
    let code = line.split("//").next().unwrap_or("");
    code.match_indices("crate::")
        .map(|(i, m)| &code[i + m.len()..])
        .map(|rest| {
            rest.split(|c: char| !c.is_alphanumeric() && c != '_')
                .next()
                .unwrap_or("")
        })
        .collect()
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn every_module_imports_only_modules_below_it() {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut seen = std::collections::BTreeSet::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" {
            continue;
        }
        seen.insert(module.clone());
        let own = rank(&module).unwrap_or_else(|| panic!("{module} is not in LAYERS: add it"));
        let text = std::fs::read_to_string(file).expect("readable source");
        // Unit tests may reach anywhere; the layering is the library's.
        let library = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in library.lines().enumerate() {
            for used in crate_paths(line) {
                // `crate::Error` and the like: re-exports at the root, not a module.
                let Some(theirs) = rank(used) else { continue };
                assert!(
                    theirs <= own,
                    "{}:{}: {module} imports {used}, which sits above it: `{}`",
                    file.display(),
                    n + 1,
                    line.trim()
                );
            }
        }
    }
    let listed: std::collections::BTreeSet<String> = LAYERS.iter().map(|s| s.to_string()).collect();
    assert_eq!(seen, listed, "LAYERS and the files under src/ disagree");
}

#[test]
fn crate_paths_are_found_in_code_and_not_in_comments() {
    assert_eq!(crate_paths("use crate::shared::Shared;"), ["shared"]);
    assert_eq!(
        crate_paths("let x = crate::codec::encode(y); // crate::manager"),
        ["codec"]
    );
    assert!(crate_paths("/// See [`x`](crate::manager::X).").is_empty());
}
