//! Replays the fuzz targets' inputs under a plain `cargo test`, without
//! libFuzzer or nightly: every crash the fuzzers found (kept in
//! `fuzz/regressions/<target>/`) and the committed corpus
//! (`fuzz/corpus/<target>/`). The properties are the fuzz targets' own
//! (`fuzz/src/<target>.rs`, compiled into this test), so a regression fails
//! here exactly as it failed under the fuzzer.

use std::path::{Path, PathBuf};

#[path = "../../fuzz/src/config_file.rs"]
mod config_file;
#[path = "../../fuzz/src/frame_decoder.rs"]
mod frame_decoder;
#[path = "../../fuzz/src/place_order_rules.rs"]
mod place_order_rules;
#[path = "../../fuzz/src/protobuf_handlers.rs"]
mod protobuf_handlers;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `dir`, sorted; none when `dir` does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `check` on every regression and corpus input of `target`; returns
/// (regressions, corpus inputs) replayed.
fn replay(target: &str, check: fn(&[u8])) -> (usize, usize) {
    let regressions = inputs(&fuzz_dir().join("regressions").join(target));
    let corpus = inputs(&fuzz_dir().join("corpus").join(target));
    assert!(!corpus.is_empty(), "no corpus for {target}");
    for path in regressions.iter().chain(&corpus) {
        let data = std::fs::read(path).expect("readable input");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{target} fails on {}", path.display());
    }
    (regressions.len(), corpus.len())
}

#[test]
fn frame_decoder_inputs() {
    let (r, c) = replay("frame_decoder", frame_decoder::check);
    println!("frame_decoder: {r} regressions, {c} corpus inputs");
}

#[test]
fn protobuf_handlers_inputs() {
    let (r, c) = replay("protobuf_handlers", protobuf_handlers::check);
    println!("protobuf_handlers: {r} regressions, {c} corpus inputs");
}

#[test]
fn config_file_inputs() {
    let (r, c) = replay("config_file", config_file::check);
    println!("config_file: {r} regressions, {c} corpus inputs");
}

#[test]
fn place_order_rules_inputs() {
    let (r, c) = replay("place_order_rules", place_order_rules::check);
    println!("place_order_rules: {r} regressions, {c} corpus inputs");
}
