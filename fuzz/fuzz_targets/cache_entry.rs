//! The disk cache's entry files, as the disk tier reads them at start (the
//! index) and when a request asks for one.
//!
//! Input: the bytes of one `.entry` file. It is put in an empty cache
//! directory, the tier is opened over it and the entry asked for under
//! `PRIMARY` with no request headers. Invariants: nothing panics; an entry
//! that cannot be used is deleted, never served; an entry that is served
//! re-encodes (stored by the tier itself) to a file that decodes and
//! re-encodes to the same bytes.

#![no_main]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use veil_engine::cache::fuzzing::DiskTier;

const PRIMARY: &str = "http://fuzz.example/";
const MAX_BYTES: u64 = 1 << 30;

fuzz_target!(|data: &[u8]| {
    let (a, b) = dirs();
    let headers = HeaderMap::new();
    let Some(first) = decode(a, data, &headers) else {
        return;
    };
    let Some(second) = decode(a, &reencode(b, &first, &headers), &headers) else {
        panic!("an entry the tier wrote itself does not read back");
    };
    assert_eq!(
        reencode(b, &first, &headers),
        reencode(b, &second, &headers),
        "a decoded entry does not re-encode to the same bytes"
    );
});

/// Two scratch directories of this process.
fn dirs() -> (&'static Path, &'static Path) {
    static DIRS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    let (a, b) = DIRS.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("veil-fuzz-cache-{}", std::process::id()));
        (base.join("a"), base.join("b"))
    });
    (a, b)
}

fn empty(dir: &Path) {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).expect("scratch directory");
}

/// Stores `bytes` as the only entry file in `dir` and reads it through the
/// tier. `None` when the tier does not serve it.
fn decode(dir: &Path, bytes: &[u8], headers: &HeaderMap) -> Option<veil_engine::cache::Entry> {
    empty(dir);
    let file = dir.join("0000.entry");
    fs::write(&file, bytes).expect("write entry");
    let tier = DiskTier::open(dir, MAX_BYTES).expect("open tier");
    let indexed = tier.objects();
    assert!(indexed <= 1);
    assert_eq!(
        indexed == 1,
        file.exists(),
        "an unreadable file kept, or a kept file not indexed"
    );
    match tier.get(PRIMARY, headers) {
        Ok(Some(entry)) => Some(entry),
        Ok(None) => None,
        Err(_) => {
            assert!(!file.exists(), "a corrupt entry was not deleted");
            assert_eq!(tier.objects(), 0, "a corrupt entry is still indexed");
            None
        }
    }
}

/// The file the tier writes for `entry`.
fn reencode(dir: &Path, entry: &veil_engine::cache::Entry, headers: &HeaderMap) -> Vec<u8> {
    empty(dir);
    let tier = DiskTier::open(dir, MAX_BYTES).expect("open tier");
    tier.insert(PRIMARY, headers, entry).expect("store entry");
    let mut files: Vec<_> = fs::read_dir(dir)
        .expect("read scratch directory")
        .map(|f| f.expect("directory entry").path())
        .collect();
    assert_eq!(files.len(), 1, "one stored entry, one file: {files:?}");
    fs::read(files.remove(0)).expect("read stored entry")
}
