//! The disk tier: one file per stored response under the cache directory,
//! bounded in bytes, evicting the least recently used, and kept across
//! restarts (the index is rebuilt from the files at start, oldest first by
//! modification time).
//!
//! A file is `MAGIC`, the lengths of its metadata and body, a SHA-256 of
//! both, the metadata (JSON: key, `Vary` names, the cache policy with the
//! stored head) and the body. A file whose digest or metadata does not check
//! out is deleted and reported as corrupt, never served. Files are written
//! to a temporary name and renamed, so no reader sees one half-written; one
//! torn by a crash (there is no fsync) fails those checks.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use http::{HeaderMap, HeaderName};
use http_cache_semantics::CachePolicy;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Entry, key};

const MAGIC: &[u8; 8] = b"VEILHC1\n";
/// Magic, metadata length (u32), body length (u64), SHA-256.
const HEADER_LEN: usize = 8 + 4 + 8 + 32;
const MAX_META: u32 = 1 << 20;
/// Memory the in-memory index of the disk tier may use (its keys, paths and
/// bookkeeping); past it the least recently used entries are evicted, as
/// past the byte bound on disk.
const MAX_INDEX_BYTES: u64 = 16 << 20;
/// Bookkeeping charged per indexed entry besides its strings (two map
/// slots, the use order, the `Vary` record).
const SLOT_OVERHEAD: u64 = 192;

/// The file holding the installation's salt of secret-header digests.
const SALT_FILE: &str = "salt";

/// Numbers temporary files, so two fills of one URL (in this process or in
/// two) never write the same one.
static TMP_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The salt stored in `dir`, created (randomly, once) when there is none or
/// it is damaged. Blocking.
pub fn salt(dir: &Path) -> io::Result<key::Salt> {
    fs::create_dir_all(dir)?;
    let path = dir.join(SALT_FILE);
    if let Ok(bytes) = fs::read(&path)
        && let Ok(salt) = key::Salt::try_from(bytes.as_slice())
    {
        return Ok(salt);
    }
    let salt = key::random_salt();
    let tmp = dir.join(format!("{SALT_FILE}.{}.tmp", std::process::id()));
    fs::write(&tmp, salt)?;
    fs::rename(&tmp, &path)?;
    Ok(salt)
}

#[derive(Serialize, Deserialize)]
struct Meta {
    key: String,
    primary: String,
    vary: Vec<String>,
    policy: CachePolicy,
    /// The origin's `Date` (entries written before it was kept have none,
    /// and serve the time they are read instead).
    #[serde(default)]
    date: Option<String>,
    /// The origin's status (older entries: the policy's).
    #[serde(default)]
    status: Option<u16>,
    /// The route it came through (older entries: none).
    #[serde(default)]
    route: Option<String>,
}

struct Slot {
    file: PathBuf,
    primary: String,
    size: u64,
    tick: u64,
}

#[derive(Default)]
struct Index {
    slots: HashMap<String, Slot>,
    vary: HashMap<String, Vec<HeaderName>>,
    /// Use order: the smallest tick is the least recently used.
    order: BTreeMap<u64, String>,
    tick: u64,
    bytes: u64,
    /// Memory the index uses, estimated (see [`Index::cost`]).
    mem: u64,
}

impl Index {
    /// The key twice (map and use order), the primary, the path.
    fn cost(key: &str, slot: &Slot) -> u64 {
        (2 * key.len() + slot.primary.len() + slot.file.as_os_str().len()) as u64 + SLOT_OVERHEAD
    }

    fn touch(&mut self, key: &str) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(slot) = self.slots.get_mut(key) {
            self.order.remove(&slot.tick);
            slot.tick = tick;
            self.order.insert(tick, key.to_owned());
        }
    }

    fn add(&mut self, key: String, slot: Slot) -> Option<Slot> {
        let old = self.take(&key);
        self.bytes += slot.size;
        self.mem += Self::cost(&key, &slot);
        self.order.insert(slot.tick, key.clone());
        self.slots.insert(key, slot);
        old
    }

    fn take(&mut self, key: &str) -> Option<Slot> {
        let slot = self.slots.remove(key)?;
        self.order.remove(&slot.tick);
        self.bytes -= slot.size;
        self.mem -= Self::cost(key, &slot);
        Some(slot)
    }

    /// Takes least recently used slots until the total fits `max` and the
    /// index fits [`MAX_INDEX_BYTES`].
    fn evict(&mut self, max: u64) -> Vec<Slot> {
        let mut gone = Vec::new();
        while self.bytes > max || self.mem > MAX_INDEX_BYTES {
            let Some((_, key)) = self.order.first_key_value() else {
                break;
            };
            let key = key.clone();
            match self.take(&key) {
                Some(slot) => gone.push(slot),
                None => {
                    self.order.pop_first();
                }
            }
        }
        gone
    }
}

/// Why a stored entry could not be used.
#[derive(Debug)]
pub struct Corrupt;

pub struct DiskTier {
    dir: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
}

impl std::fmt::Debug for DiskTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskTier")
            .field("dir", &self.dir)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl DiskTier {
    /// Opens (creating) `dir` and indexes the entries already there.
    /// Blocking: call it off the async runtime.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let mut found = Vec::new();
        for item in fs::read_dir(dir)? {
            let path = item?.path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("entry") => {}
                Some("tmp") => {
                    let _ = fs::remove_file(&path);
                    continue;
                }
                _ => continue,
            }
            match read_meta(&path) {
                Ok((meta, size, modified)) => found.push((modified, path, meta, size)),
                Err(e) => {
                    tracing::debug!(path = %path.display(), "dropping unreadable cache entry: {e}");
                    let _ = fs::remove_file(&path);
                }
            }
        }
        found.sort_by_key(|(modified, ..)| *modified);
        let mut index = Index::default();
        for (_, file, meta, size) in found {
            index.tick += 1;
            let vary = meta
                .vary
                .iter()
                .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                .collect();
            index.vary.insert(meta.primary.clone(), vary);
            let slot = Slot {
                file,
                primary: meta.primary,
                size,
                tick: index.tick,
            };
            index.add(meta.key, slot);
        }
        remove_files(index.evict(max_bytes));
        Ok(Self {
            dir: dir.to_owned(),
            max_bytes,
            index: Mutex::new(index),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stored variant of `primary` that `headers` select. Blocking.
    pub fn get(&self, primary: &str, headers: &HeaderMap) -> Result<Option<Entry>, Corrupt> {
        let (key, file) = {
            let mut index = self.lock();
            let key = match index.vary.get(primary) {
                Some(names) => key::variant(primary, names, headers),
                None => primary.to_owned(),
            };
            let Some(slot) = index.slots.get(&key) else {
                return Ok(None);
            };
            let file = slot.file.clone();
            index.touch(&key);
            (key, file)
        };
        match read_entry(&file, &key) {
            Ok(entry) => Ok(Some(entry)),
            Err(e) => {
                tracing::warn!(path = %file.display(), "corrupt cache entry dropped: {e}");
                let slot = self.lock().take(&key);
                remove_files(slot);
                Err(Corrupt)
            }
        }
    }

    /// Writes `entry` as the variant of `primary` that `request` selected.
    /// Blocking.
    pub fn insert(&self, primary: &str, request: &HeaderMap, entry: &Entry) -> io::Result<()> {
        let key = key::variant(primary, &entry.vary, request);
        let meta = Meta {
            key: key.clone(),
            primary: primary.to_owned(),
            vary: entry.vary.iter().map(|n| n.as_str().to_owned()).collect(),
            policy: entry.policy.clone(),
            date: entry.date.to_str().ok().map(str::to_owned),
            status: entry.status.map(|s| s.as_u16()),
            route: entry.route.clone(),
        };
        let meta = serde_json::to_vec(&meta).map_err(io::Error::other)?;
        let size = (HEADER_LEN + meta.len() + entry.body.len()) as u64;
        if size > self.max_bytes || meta.len() as u64 > u64::from(MAX_META) {
            return Ok(());
        }
        let name = hex(&Sha256::digest(key.as_bytes()));
        let file = self.dir.join(format!("{name}.entry"));
        let seq = TMP_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!("{name}.{}.{seq}.tmp", std::process::id()));
        let digest = {
            let mut h = Sha256::new();
            h.update(&meta);
            h.update(&entry.body);
            h.finalize()
        };
        let write = || -> io::Result<()> {
            let mut out = io::BufWriter::new(fs::File::create(&tmp)?);
            out.write_all(MAGIC)?;
            out.write_all(&(meta.len() as u32).to_le_bytes())?;
            out.write_all(&(entry.body.len() as u64).to_le_bytes())?;
            out.write_all(&digest)?;
            out.write_all(&meta)?;
            out.write_all(&entry.body)?;
            // No fsync: a copy torn by a crash fails its length check at the
            // next start, or its digest check when read, and is dropped;
            // that is all a cache needs, and syncing every stored response
            // would cost far more.
            out.flush()
        };
        if let Err(e) = write().and_then(|()| fs::rename(&tmp, &file)) {
            // A full disk leaves a partial copy: it would hold the space
            // every later write needs until the next start.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let mut index = self.lock();
        index.tick += 1;
        let tick = index.tick;
        if entry.vary.is_empty() {
            index.vary.remove(primary);
        } else {
            index.vary.insert(primary.to_owned(), entry.vary.clone());
        }
        index.add(
            key,
            Slot {
                file,
                primary: primary.to_owned(),
                size,
                tick,
            },
        );
        let gone = index.evict(self.max_bytes);
        drop(index);
        remove_files(gone);
        Ok(())
    }

    /// Deletes every variant of `primary`. Blocking.
    pub fn remove(&self, primary: &str) {
        let mut index = self.lock();
        index.vary.remove(primary);
        let keys: Vec<String> = index
            .slots
            .iter()
            .filter(|(_, s)| s.primary == primary)
            .map(|(k, _)| k.clone())
            .collect();
        let gone: Vec<Slot> = keys.iter().filter_map(|k| index.take(k)).collect();
        drop(index);
        remove_files(gone);
    }

    /// Deletes everything. Blocking.
    pub fn clear(&self) {
        let mut index = self.lock();
        let gone: Vec<Slot> = index.slots.drain().map(|(_, s)| s).collect();
        *index = Index::default();
        drop(index);
        remove_files(gone);
    }

    pub fn objects(&self) -> u64 {
        self.lock().slots.len() as u64
    }

    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Memory of the in-memory index, estimated.
    pub fn index_bytes(&self) -> u64 {
        self.lock().mem
    }
}

fn remove_files(slots: impl IntoIterator<Item = Slot>) {
    for slot in slots {
        let _ = fs::remove_file(&slot.file);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_header(file: &mut fs::File) -> io::Result<(u32, u64, [u8; 32])> {
    let mut header = [0u8; HEADER_LEN];
    file.read_exact(&mut header)?;
    if &header[..8] != MAGIC {
        return Err(io::Error::other("not a Veil cache entry"));
    }
    let meta_len = u32::from_le_bytes(header[8..12].try_into().map_err(io::Error::other)?);
    let body_len = u64::from_le_bytes(header[12..20].try_into().map_err(io::Error::other)?);
    let digest: [u8; 32] = header[20..52].try_into().map_err(io::Error::other)?;
    if meta_len > MAX_META {
        return Err(io::Error::other("metadata too large"));
    }
    Ok((meta_len, body_len, digest))
}

/// Reads the metadata only (for the index at start), with the file's size
/// and modification time. The digest is checked when the entry is used.
fn read_meta(path: &Path) -> io::Result<(Meta, u64, std::time::SystemTime)> {
    let mut file = fs::File::open(path)?;
    let info = file.metadata()?;
    let (meta_len, body_len, _) = read_header(&mut file)?;
    // Checked: the lengths come from the file (a huge one would overflow).
    let expected = (HEADER_LEN as u64)
        .checked_add(u64::from(meta_len))
        .and_then(|n| n.checked_add(body_len));
    if expected != Some(info.len()) {
        return Err(io::Error::other("length does not match the header"));
    }
    let mut meta = vec![0u8; meta_len as usize];
    file.read_exact(&mut meta)?;
    let meta: Meta = serde_json::from_slice(&meta).map_err(io::Error::other)?;
    Ok((meta, info.len(), info.modified()?))
}

fn read_entry(path: &Path, key: &str) -> io::Result<Entry> {
    let mut file = fs::File::open(path)?;
    let (meta_len, body_len, digest) = read_header(&mut file)?;
    let mut rest = Vec::new();
    file.read_to_end(&mut rest)?;
    if u64::from(meta_len).checked_add(body_len) != Some(rest.len() as u64) {
        return Err(io::Error::other("length does not match the header"));
    }
    if Sha256::digest(&rest).as_slice() != digest {
        return Err(io::Error::other("checksum mismatch"));
    }
    let rest = Bytes::from(rest);
    let meta: Meta =
        serde_json::from_slice(&rest[..meta_len as usize]).map_err(io::Error::other)?;
    let body = rest.slice(meta_len as usize..);
    if meta.key != key {
        return Err(io::Error::other("entry belongs to another key"));
    }
    let vary = meta
        .vary
        .iter()
        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
        .collect();
    let date = meta
        .date
        .and_then(|d| http::HeaderValue::from_str(&d).ok())
        .unwrap_or_else(|| super::date_of(&http::HeaderMap::new()));
    let status = meta.status.and_then(|s| http::StatusCode::from_u16(s).ok());
    Ok(Entry {
        policy: meta.policy,
        vary,
        body,
        date,
        status,
        route: meta.route,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_cache_semantics::CachePolicy;

    fn entry(body: &'static [u8]) -> Entry {
        let req = http::Request::get("http://example.test/same")
            .body(())
            .expect("request");
        let resp = http::Response::builder()
            .header("cache-control", "max-age=60")
            .body(())
            .expect("response");
        Entry {
            policy: CachePolicy::new(&req, &resp),
            vary: Vec::new(),
            body: Bytes::from_static(body),
            date: http::HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
            status: Some(http::StatusCode::OK),
            route: None,
        }
    }

    // Two fills of one URL at once each write their own temporary file: with
    // a shared name one would truncate or rename away the other's.
    #[test]
    fn concurrent_fills_of_one_url_never_share_a_temporary_file() {
        let dir = std::env::temp_dir().join(format!("veil-disk-tmp-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let disk = std::sync::Arc::new(DiskTier::open(&dir, 1 << 30).expect("open"));
        let bodies: [&'static [u8]; 4] = [b"aaaa", b"bbbbbbbb", b"cc", b"dddddddddddd"];
        let threads: Vec<_> = bodies
            .iter()
            .map(|body| {
                let (disk, body) = (disk.clone(), *body);
                std::thread::spawn(move || {
                    (0..200)
                        .map(|_| {
                            disk.insert("http://example.test/same", &HeaderMap::new(), &entry(body))
                        })
                        .filter(Result::is_err)
                        .count()
                })
            })
            .collect();
        let failed: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        if cfg!(windows) {
            // Windows refuses to replace a file that another thread is
            // replacing at that moment (MoveFileEx): such a store fails
            // cleanly, as on a full disk, and the others land.
            assert!(failed < 800, "some stores landed: {failed} failed");
        } else {
            assert_eq!(failed, 0, "every store wrote its own file");
        }
        let left = fs::read_dir(&dir)
            .expect("read dir")
            .filter_map(|f| f.ok())
            .filter(|f| f.path().extension().is_some_and(|e| e == "tmp"))
            .count();
        assert_eq!(left, 0, "no temporary file is left behind");
        let got = disk
            .get("http://example.test/same", &HeaderMap::new())
            .expect("not corrupt")
            .expect("stored");
        assert!(bodies.contains(&&got.body[..]));
        assert_eq!(disk.objects(), 1);
        let _ = fs::remove_dir_all(&dir);
    }

    // The salt is made once and then read back, the same, by every start.
    #[test]
    fn the_salt_is_created_once() {
        let dir = std::env::temp_dir().join(format!("veil-disk-salt-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let first = salt(&dir).expect("salt");
        assert_eq!(salt(&dir).expect("salt again"), first);
        assert_ne!(first, [0u8; 32]);
        let _ = fs::remove_dir_all(&dir);
    }

    /// Found by the cache_entry fuzz target: a body length near `u64::MAX`
    /// overflowed the length check while the index was built at start.
    #[test]
    fn a_file_with_a_huge_body_length_is_dropped_at_start() {
        let dir = std::env::temp_dir().join(format!("veil-disk-huge-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("x.entry");
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&2u32.to_le_bytes());
        bytes.extend_from_slice(&(u64::MAX - 10).to_le_bytes());
        bytes.extend_from_slice(&[0; 32]);
        bytes.extend_from_slice(b"{}");
        fs::write(&file, &bytes).expect("write entry");
        let tier = DiskTier::open(&dir, 1 << 20).expect("open");
        assert_eq!(tier.objects(), 0);
        assert!(!file.exists(), "the unreadable file is deleted");
        let _ = fs::remove_dir_all(&dir);
    }

    /// A write that fails (here the rename, as on a full disk the write
    /// itself) leaves no partial copy behind holding the space.
    #[test]
    fn a_failed_write_leaves_no_partial_file() {
        let dir = std::env::temp_dir().join(format!("veil-disk-fail-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let tier = DiskTier::open(&dir, 1 << 20).expect("open");
        let primary = "http://example.com/";
        // The entry's file name taken by a non-empty directory: the rename fails.
        let blocker = dir.join(format!(
            "{}.entry",
            hex(&Sha256::digest(primary.as_bytes()))
        ));
        fs::create_dir_all(blocker.join("x")).expect("blocker");
        let req = http::Request::get(primary).body(()).expect("request");
        let res = http::Response::builder()
            .header("cache-control", "max-age=60")
            .body(())
            .expect("response");
        let entry = Entry {
            policy: CachePolicy::new(&req, &res),
            vary: Vec::new(),
            body: Bytes::from_static(b"body"),
            date: http::HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
            status: None,
            route: None,
        };
        assert!(tier.insert(primary, &HeaderMap::new(), &entry).is_err());
        let left: Vec<_> = fs::read_dir(&dir)
            .expect("read dir")
            .filter_map(|f| f.ok())
            .filter(|f| f.path().extension().is_some_and(|e| e == "tmp"))
            .collect();
        assert!(left.is_empty(), "partial files left: {left:?}");
        assert_eq!(tier.objects(), 0);
        let _ = fs::remove_dir_all(&dir);
    }
}
