//! The fuzz targets' checks on stable: every input under
//! `fuzz/regressions/<target>/` (inputs that once crashed a target, or made
//! Helios allocate what a length prefix asked for) and each seed corpus
//! `fuzz/corpus/<target>/` goes through the same harness the fuzzer runs.

#[path = "../../fuzz/harness/frontend.rs"]
mod frontend;

#[path = "../../fuzz/harness/auth.rs"]
mod auth;

use std::path::{Path, PathBuf};

// So that the harness's allocation budget is checked here too.
#[global_allocator]
static ALLOC: frontend::TrackingAlloc = frontend::TrackingAlloc;

fn inputs(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    files
}

fn replay(dir: &str, decode: fn(&[u8])) {
    let files = inputs(dir);
    assert!(!files.is_empty(), "no inputs in {dir}");
    for path in files {
        let data = std::fs::read(&path).unwrap();
        let name = path.display().to_string();
        let r = std::panic::catch_unwind(|| decode(&data));
        assert!(r.is_ok(), "{name} fails the frontend harness");
    }
}

#[test]
fn frontend_regressions_pass() {
    replay("fuzz/regressions/frontend", frontend::decode_frontend);
}

#[test]
fn frontend_seed_corpus_passes() {
    replay("fuzz/corpus/frontend", frontend::decode_frontend);
}

#[test]
fn auth_seed_corpus_passes() {
    replay("fuzz/corpus/auth", auth::decode_auth);
}
