//! Traffic history: per-minute buckets of bytes up and down, per client app
//! and per destination host, in SQLite (`history.sqlite3` in the data
//! folder).
//!
//! Nothing here touches the proxy's data path. A recorder task
//! ([`spawn_recorder`]) samples the engine's cumulative counters every few
//! seconds, turns them into deltas ([`Recorder`], a pure function of the
//! counters it saw before: a counter that went down, as after an engine
//! restart, counts from zero again, so a delta is never negative), and
//! writes each sample's deltas in one transaction on a blocking thread.
//! Buckets older than the retention are deleted at open and about once an
//! hour after that.
//!
//! The table: `buckets(minute_unix, kind, key, bytes_up, bytes_down)`, where
//! `minute_unix` is the start of the minute in Unix seconds and `kind` is
//! `total` (key `""`, everything through the engine), `app` or `host`. The
//! file holds which hosts the user talked to, so it is private to the user
//! (mode 0600 on Unix).

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use veil_engine::stats::unix_ms;

use rusqlite::{Connection, OpenFlags, params};
use serde::{Deserialize, Serialize};
use veil_engine::StatsSnapshot;

/// The database's file name in the data folder.
pub const FILE_NAME: &str = "history.sqlite3";

/// Rows per kind in a [`HistoryReport`], busiest first.
pub const MAX_ROWS: usize = 50;

const PRUNE_EVERY_S: u64 = 3600;

/// The window of a [`HistoryReport`].
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HistoryRange {
    #[default]
    Hour,
    Day,
    Week,
}

impl HistoryRange {
    /// The whole window, in seconds.
    pub fn span_s(self) -> u64 {
        match self {
            HistoryRange::Hour => 3600,
            HistoryRange::Day => 86_400,
            HistoryRange::Week => 7 * 86_400,
        }
    }

    /// One point of the series: a minute for the hour, 15 minutes for the
    /// day, an hour for the week.
    pub fn bucket_s(self) -> u64 {
        match self {
            HistoryRange::Hour => 60,
            HistoryRange::Day => 900,
            HistoryRange::Week => 3600,
        }
    }

    /// `[start, end)` in Unix seconds: `end` is the end of the bucket that
    /// holds `now_s`, so the current, partial bucket is the last one.
    pub fn window(self, now_s: u64) -> (u64, u64) {
        let b = self.bucket_s();
        let end = (now_s / b + 1) * b;
        (end.saturating_sub(self.span_s()), end)
    }
}

impl FromStr for HistoryRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "hour" => Ok(HistoryRange::Hour),
            "day" => Ok(HistoryRange::Day),
            "week" => Ok(HistoryRange::Week),
            _ => Err(format!("{s:?} is not a range: use hour, day or week")),
        }
    }
}

impl std::fmt::Display for HistoryRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HistoryRange::Hour => "hour",
            HistoryRange::Day => "day",
            HistoryRange::Week => "week",
        })
    }
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPoint {
    /// Start of the bucket.
    pub unix_ms: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRow {
    pub key: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Bytes (up + down) per bucket, oldest first, one per series point.
    pub spark: Vec<u64>,
}

#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryReport {
    pub range: HistoryRange,
    pub bucket_s: u64,
    /// Every bucket of the window, oldest first, zero where nothing moved.
    pub series: Vec<HistoryPoint>,
    /// Busiest first, at most [`MAX_ROWS`].
    pub apps: Vec<HistoryRow>,
    pub hosts: Vec<HistoryRow>,
}

/// What a bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Everything through the engine (key `""`).
    Total,
    App,
    Host,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Total => "total",
            Kind::App => "app",
            Kind::Host => "host",
        }
    }
}

/// One bucket's increment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketDelta {
    pub minute_unix: u64,
    pub kind: Kind,
    pub key: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("traffic history {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("traffic history {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing the CSV: {0}")]
    Write(#[source] io::Error),
}

/// The current time in Unix milliseconds; tests pass their own.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| unix_ms(SystemTime::now()))
}

/// The history database.
pub struct History {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// 0: the history is off (nothing is written).
    retention_s: AtomicU64,
    /// The size cap of the database's used pages.
    max_bytes: AtomicU64,
    clock: Clock,
    read_only: bool,
    last_prune_s: Mutex<u64>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("path", &self.path)
            .field("retention_s", &self.retention_s)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl History {
    /// `<data_dir>/history.sqlite3`, created when missing, with old buckets
    /// deleted.
    pub fn open(data_dir: &Path, retention_days: u32) -> Result<Self, HistoryError> {
        Self::open_with_clock(&data_dir.join(FILE_NAME), retention_days, system_clock())
    }

    pub fn open_with_clock(
        path: &Path,
        retention_days: u32,
        clock: Clock,
    ) -> Result<Self, HistoryError> {
        let db = |source| HistoryError::Db {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| HistoryError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(db)?;
        private_file(path)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(db)?;
        // WAL: the recorder's writes never block a reader (`veil history`,
        // the app's Traffic page). SQLite gives -wal and -shm the file's mode.
        let _: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(db)?;
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS buckets (
                 minute_unix INTEGER NOT NULL,
                 kind TEXT NOT NULL,
                 key TEXT NOT NULL,
                 bytes_up INTEGER NOT NULL DEFAULT 0,
                 bytes_down INTEGER NOT NULL DEFAULT 0,
                 PRIMARY KEY (minute_unix, kind, key)
             ) WITHOUT ROWID;
             PRAGMA user_version = 1;",
        )
        .map_err(db)?;
        let history = Self {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            retention_s: AtomicU64::new(u64::from(retention_days) * 86_400),
            max_bytes: AtomicU64::new(u64::MAX),
            clock,
            read_only: false,
            last_prune_s: Mutex::new(0),
        };
        history.prune()?;
        Ok(history)
    }

    /// Opens an existing database for reading only (`veil history`, whether
    /// or not an engine writes to it); `None` when there is none yet.
    pub fn open_read_only(path: &Path) -> Result<Option<Self>, HistoryError> {
        Self::open_read_only_with_clock(path, system_clock())
    }

    pub fn open_read_only_with_clock(
        path: &Path,
        clock: Clock,
    ) -> Result<Option<Self>, HistoryError> {
        if !path.exists() {
            return Ok(None);
        }
        let db = |source| HistoryError::Db {
            path: path.to_path_buf(),
            source,
        };
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(db)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(db)?;
        Ok(Some(Self {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            retention_s: AtomicU64::new(0),
            max_bytes: AtomicU64::new(u64::MAX),
            clock,
            read_only: true,
            last_prune_s: Mutex::new(0),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn now_ms(&self) -> u64 {
        (self.clock)()
    }

    fn db_err(&self, source: rusqlite::Error) -> HistoryError {
        HistoryError::Db {
            path: self.path.clone(),
            source,
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `deltas` to their buckets in one transaction, and deletes
    /// expired buckets when the last pass was an hour ago. Blocking: call it
    /// from a blocking thread.
    pub fn write(&self, deltas: &[BucketDelta]) -> Result<(), HistoryError> {
        if self.is_off() {
            return Ok(());
        }
        if !deltas.is_empty() {
            let mut conn = self.conn();
            let tx = conn.transaction().map_err(|e| self.db_err(e))?;
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO buckets (minute_unix, kind, key, bytes_up, bytes_down)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (minute_unix, kind, key) DO UPDATE SET
                             bytes_up = bytes_up + excluded.bytes_up,
                             bytes_down = bytes_down + excluded.bytes_down",
                    )
                    .map_err(|e| self.db_err(e))?;
                for d in deltas {
                    insert
                        .execute(params![
                            d.minute_unix as i64,
                            d.kind.as_str(),
                            d.key,
                            d.bytes_up as i64,
                            d.bytes_down as i64
                        ])
                        .map_err(|e| self.db_err(e))?;
                }
            }
            tx.commit().map_err(|e| self.db_err(e))?;
        }
        let due = {
            let last = *self.last_prune_s.lock().unwrap_or_else(|e| e.into_inner());
            self.now_ms() / 1000 >= last + PRUNE_EVERY_S
        };
        if due {
            self.prune()?;
        } else {
            // Cheap (two PRAGMAs), so the cap holds between hourly passes.
            self.enforce_cap()?;
        }
        Ok(())
    }

    /// Whether the history is off (`retention_days = 0`).
    pub fn is_off(&self) -> bool {
        !self.read_only && self.retention_s.load(Ordering::Relaxed) == 0
    }

    /// A new retention (from the settings), applied at the next prune; 0
    /// turns the history off and deletes what was kept at once.
    pub fn set_retention_days(&self, days: u32) -> Result<(), HistoryError> {
        self.retention_s
            .store(u64::from(days) * 86_400, Ordering::Relaxed);
        if days == 0 {
            self.prune()?;
        }
        Ok(())
    }

    /// The size cap in bytes (`[history] max_mb`), enforced at once.
    pub fn set_max_bytes(&self, bytes: u64) -> Result<(), HistoryError> {
        self.max_bytes.store(bytes, Ordering::Relaxed);
        self.enforce_cap()
    }

    /// The bytes the database's live pages take (freed pages are reused,
    /// so the file stays near this).
    pub fn used_bytes(&self) -> Result<u64, HistoryError> {
        let conn = self.conn();
        let pragma = |name: &str| -> Result<u64, HistoryError> {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
                .map(|v| v.max(0) as u64)
                .map_err(|e| self.db_err(e))
        };
        let pages = pragma("page_count")?.saturating_sub(pragma("freelist_count")?);
        Ok(pages * pragma("page_size")?)
    }

    /// Past the cap, deletes the oldest tenth of the minutes kept until the
    /// database fits (at most 20 passes, so it always ends).
    fn enforce_cap(&self) -> Result<(), HistoryError> {
        if self.read_only {
            return Ok(());
        }
        let cap = self.max_bytes.load(Ordering::Relaxed);
        for _ in 0..20 {
            if self.used_bytes()? <= cap {
                return Ok(());
            }
            let conn = self.conn();
            let minutes: i64 = conn
                .query_row("SELECT COUNT(DISTINCT minute_unix) FROM buckets", [], |r| {
                    r.get(0)
                })
                .map_err(|e| self.db_err(e))?;
            if minutes == 0 {
                return Ok(());
            }
            let n = conn
                .execute(
                    "DELETE FROM buckets WHERE minute_unix IN (
                         SELECT DISTINCT minute_unix FROM buckets
                         ORDER BY minute_unix LIMIT ?1)",
                    [(minutes / 10).max(1)],
                )
                .map_err(|e| self.db_err(e))?;
            tracing::info!("traffic history over {cap} bytes: {n} oldest buckets deleted");
        }
        Ok(())
    }

    /// Deletes the buckets older than the retention; returns how many.
    pub fn prune(&self) -> Result<usize, HistoryError> {
        if self.read_only {
            return Ok(0);
        }
        let now_s = self.now_ms() / 1000;
        let cutoff = now_s.saturating_sub(self.retention_s.load(Ordering::Relaxed));
        let n = self
            .conn()
            .execute(
                "DELETE FROM buckets WHERE minute_unix < ?1",
                [cutoff as i64],
            )
            .map_err(|e| self.db_err(e))?;
        *self.last_prune_s.lock().unwrap_or_else(|e| e.into_inner()) = now_s;
        self.enforce_cap()?;
        Ok(n)
    }

    /// The series and the busiest apps and hosts of the last hour, day or
    /// week.
    pub fn query(&self, range: HistoryRange) -> Result<HistoryReport, HistoryError> {
        let (start, end) = range.window(self.now_ms() / 1000);
        let bucket_s = range.bucket_s();
        let points = ((end - start) / bucket_s) as usize;
        let mut series: Vec<HistoryPoint> = (0..points)
            .map(|i| HistoryPoint {
                unix_ms: (start + i as u64 * bucket_s) * 1000,
                bytes_up: 0,
                bytes_down: 0,
            })
            .collect();
        let mut rows: HashMap<(String, String), HistoryRow> = HashMap::new();
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT (minute_unix - ?1) / ?3 AS b, kind, key, SUM(bytes_up), SUM(bytes_down)
                 FROM buckets WHERE minute_unix >= ?1 AND minute_unix < ?2
                 GROUP BY b, kind, key",
            )
            .map_err(|e| self.db_err(e))?;
        let mut found = stmt
            .query(params![start as i64, end as i64, bucket_s as i64])
            .map_err(|e| self.db_err(e))?;
        while let Some(row) = found.next().map_err(|e| self.db_err(e))? {
            let b: i64 = row.get(0).map_err(|e| self.db_err(e))?;
            let kind: String = row.get(1).map_err(|e| self.db_err(e))?;
            let key: String = row.get(2).map_err(|e| self.db_err(e))?;
            let up = row.get::<_, i64>(3).map_err(|e| self.db_err(e))?.max(0) as u64;
            let down = row.get::<_, i64>(4).map_err(|e| self.db_err(e))?.max(0) as u64;
            let Some(i) = usize::try_from(b).ok().filter(|i| *i < points) else {
                continue;
            };
            if kind == Kind::Total.as_str() {
                series[i].bytes_up += up;
                series[i].bytes_down += down;
                continue;
            }
            let entry = rows
                .entry((kind, key.clone()))
                .or_insert_with(|| HistoryRow {
                    key,
                    bytes_up: 0,
                    bytes_down: 0,
                    spark: vec![0; points],
                });
            entry.bytes_up += up;
            entry.bytes_down += down;
            entry.spark[i] += up + down;
        }
        let mut apps = Vec::new();
        let mut hosts = Vec::new();
        for ((kind, _), row) in rows {
            if kind == Kind::App.as_str() {
                apps.push(row);
            } else if kind == Kind::Host.as_str() {
                hosts.push(row);
            }
        }
        for list in [&mut apps, &mut hosts] {
            list.sort_by(|a, b| {
                (b.bytes_up + b.bytes_down)
                    .cmp(&(a.bytes_up + a.bytes_down))
                    .then_with(|| a.key.cmp(&b.key))
            });
            list.truncate(MAX_ROWS);
        }
        Ok(HistoryReport {
            range,
            bucket_s,
            series,
            apps,
            hosts,
        })
    }

    /// Every minute bucket of the window as CSV: a header, then
    /// `minute_utc,kind,key,bytes_up,bytes_down` rows (ISO-8601 UTC, oldest
    /// first). Returns the number of data rows.
    pub fn export_csv(
        &self,
        range: HistoryRange,
        mut out: impl Write,
    ) -> Result<usize, HistoryError> {
        let (start, end) = range.window(self.now_ms() / 1000);
        out.write_all(b"minute_utc,kind,key,bytes_up,bytes_down\r\n")
            .map_err(HistoryError::Write)?;
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT minute_unix, kind, key, bytes_up, bytes_down FROM buckets
                 WHERE minute_unix >= ?1 AND minute_unix < ?2
                 ORDER BY minute_unix, kind, key",
            )
            .map_err(|e| self.db_err(e))?;
        let mut found = stmt
            .query(params![start as i64, end as i64])
            .map_err(|e| self.db_err(e))?;
        let mut n = 0;
        while let Some(row) = found.next().map_err(|e| self.db_err(e))? {
            let minute: i64 = row.get(0).map_err(|e| self.db_err(e))?;
            let kind: String = row.get(1).map_err(|e| self.db_err(e))?;
            let key: String = row.get(2).map_err(|e| self.db_err(e))?;
            let up: i64 = row.get(3).map_err(|e| self.db_err(e))?;
            let down: i64 = row.get(4).map_err(|e| self.db_err(e))?;
            writeln_crlf(
                &mut out,
                &format!(
                    "{},{},{},{up},{down}",
                    iso_utc(minute.max(0) as u64),
                    csv_field(&kind),
                    csv_field(&key)
                ),
            )
            .map_err(HistoryError::Write)?;
            n += 1;
        }
        out.flush().map_err(HistoryError::Write)?;
        Ok(n)
    }
}

fn writeln_crlf(out: &mut impl Write, line: &str) -> io::Result<()> {
    out.write_all(line.as_bytes())?;
    out.write_all(b"\r\n")
}

#[cfg(unix)]
fn private_file(path: &Path) -> Result<(), HistoryError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        HistoryError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(not(unix))]
fn private_file(_path: &Path) -> Result<(), HistoryError> {
    Ok(())
}

/// A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line
/// break (or starts or ends with a space), with quotes doubled.
pub fn csv_field(value: &str) -> String {
    // Host and app names come from other programs: one starting like a
    // formula is written as text, so a spreadsheet does not run it.
    let value = &if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    let needs_quotes =
        value.contains([',', '"', '\n', '\r']) || value.starts_with(' ') || value.ends_with(' ');
    if needs_quotes {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// `2024-05-01T12:34:00Z` for a Unix time in seconds.
pub fn iso_utc(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let secs = unix_s % 86_400;
    let (y, m, d) = civil_date(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Year, month and day of a count of days since 1970-01-01 (proleptic
/// Gregorian calendar; eras of 400 years are 146,097 days).
fn civil_date(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // days since 0000-03-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Turns cumulative `(key, up, down)` counters into increments since the
/// last call. A key seen for the first time counts from zero. A counter that
/// went down adds nothing (within one engine that is bytes moving between
/// keys, e.g. from "unknown" to the app once its lookup lands: counting it
/// again would count those bytes twice); a new engine calls [`Self::reset`].
/// A key that disappears keeps its last value, so one that comes back is not
/// counted twice.
#[derive(Debug, Default, Clone)]
pub struct DeltaTracker {
    last: HashMap<String, (u64, u64)>,
}

impl DeltaTracker {
    /// The non-zero increments, in input order.
    pub fn deltas<'a>(
        &mut self,
        current: impl IntoIterator<Item = (&'a str, u64, u64)>,
    ) -> Vec<(String, u64, u64)> {
        let mut out = Vec::new();
        for (key, up, down) in current {
            let (du, dd) = match self.last.get(key) {
                Some(&(pu, pd)) => (up.saturating_sub(pu), down.saturating_sub(pd)),
                None => (up, down),
            };
            match self.last.get_mut(key) {
                Some(v) => *v = (up, down),
                None => {
                    self.last.insert(key.to_owned(), (up, down));
                }
            }
            if du > 0 || dd > 0 {
                out.push((key.to_owned(), du, dd));
            }
        }
        out
    }

    /// Forgets every counter (a new engine counts from zero).
    pub fn reset(&mut self) {
        self.last.clear();
    }
}

/// The recorder's state: one [`DeltaTracker`] per kind.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    total: DeltaTracker,
    hosts: DeltaTracker,
    apps: DeltaTracker,
    last_uptime_s: Option<u64>,
}

/// Lists of cumulative `(key, bytes_up, bytes_down)`.
pub type CounterList<'a> = [(&'a str, u64, u64)];

impl Recorder {
    /// The increments since the last call, as buckets of the minute that
    /// holds `now_ms`. Pure: the core of the recorder, over cumulative
    /// counters.
    pub fn record(
        &mut self,
        now_ms: u64,
        total: (u64, u64),
        hosts: &CounterList<'_>,
        apps: &CounterList<'_>,
    ) -> Vec<BucketDelta> {
        let minute_unix = now_ms / 1000 / 60 * 60;
        let mut out = Vec::new();
        let lists = [
            (Kind::Total, self.total.deltas([("", total.0, total.1)])),
            (Kind::Host, self.hosts.deltas(hosts.iter().copied())),
            (Kind::App, self.apps.deltas(apps.iter().copied())),
        ];
        for (kind, deltas) in lists {
            out.extend(deltas.into_iter().map(|(key, up, down)| BucketDelta {
                minute_unix,
                kind,
                key,
                bytes_up: up,
                bytes_down: down,
            }));
        }
        out
    }

    /// [`Recorder::record`] over an engine's snapshot. A snapshot whose
    /// uptime went back comes from a new engine: every counter starts over.
    pub fn sample(&mut self, snapshot: &StatsSnapshot, now_ms: u64) -> Vec<BucketDelta> {
        if self
            .last_uptime_s
            .is_some_and(|last| snapshot.uptime_s < last)
        {
            self.reset();
        }
        self.last_uptime_s = Some(snapshot.uptime_s);
        let hosts: Vec<(&str, u64, u64)> = snapshot
            .hosts
            .iter()
            .map(|h| (h.host.as_str(), h.bytes_up, h.bytes_down))
            .collect();
        let apps: Vec<(&str, u64, u64)> = snapshot
            .apps
            .iter()
            .map(|a| (a.app.as_str(), a.bytes_up, a.bytes_down))
            .collect();
        self.record(
            now_ms,
            (snapshot.bytes_up, snapshot.bytes_down),
            &hosts,
            &apps,
        )
    }

    pub fn reset(&mut self) {
        self.total.reset();
        self.hosts.reset();
        self.apps.reset();
        self.last_uptime_s = None;
    }
}

/// A running recorder; [`RecorderHandle::stop`] records one last sample and
/// writes it before returning.
#[derive(Debug)]
pub struct RecorderHandle {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl RecorderHandle {
    /// Takes a last sample, writes it, and ends the task.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Samples `source` every `every` and writes the increments to `history`
/// on a blocking thread. `source` returns `None` while no engine runs (the
/// app between a stop and a start). Errors are logged, never fatal: the
/// history must not stop the proxy.
pub fn spawn_recorder(
    history: Arc<History>,
    every: Duration,
    mut source: impl FnMut() -> Option<StatsSnapshot> + Send + 'static,
) -> RecorderHandle {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut recorder = Recorder::default();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // A dropped handle stops the recorder the same way, with a last write.
            let last = tokio::select! {
                _ = tick.tick() => false,
                _ = &mut stopped => true,
            };
            if let Some(snapshot) = source() {
                let deltas = recorder.sample(&snapshot, history.now_ms());
                let history = history.clone();
                match tokio::task::spawn_blocking(move || history.write(&deltas)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!("traffic history not written: {e}"),
                    Err(e) => tracing::warn!("traffic history writer failed: {e}"),
                }
            }
            if last {
                break;
            }
        }
    });
    RecorderHandle { stop, task }
}

/// How often a running engine's counters are sampled and written.
pub const RECORD_EVERY: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn deltas_never_go_negative() {
        let mut t = DeltaTracker::default();
        assert_eq!(
            t.deltas([("a", 10, 100), ("b", 0, 0)]),
            vec![("a".to_string(), 10, 100)]
        );
        assert_eq!(t.deltas([("a", 15, 100)]), vec![("a".to_string(), 5, 0)]);
        // "a" disappears and comes back with the same totals: nothing new.
        assert_eq!(t.deltas([("b", 1, 1)]), vec![("b".to_string(), 1, 1)]);
        assert_eq!(t.deltas([("a", 15, 100)]), vec![]);
        // A counter that went down (bytes moved to another key) adds
        // nothing for that side; what grows still counts.
        assert_eq!(t.deltas([("a", 3, 200)]), vec![("a".to_string(), 0, 100)]);
        assert_eq!(t.deltas([("a", 4, 200)]), vec![("a".to_string(), 1, 0)]);
        t.reset();
        assert_eq!(t.deltas([("a", 4, 200)]), vec![("a".to_string(), 4, 200)]);
    }

    #[test]
    fn recorder_buckets_by_minute_and_kind() {
        let mut r = Recorder::default();
        let t0 = 1_700_000_000_000; // 22:13:20 UTC
        let d = r.record(t0, (5, 50), &[("h.example", 5, 50)], &[("firefox", 5, 50)]);
        assert_eq!(d.len(), 3);
        assert!(d.iter().all(|b| b.minute_unix == 1_700_000_000 / 60 * 60));
        assert_eq!(d[1].kind, Kind::Host);
        assert_eq!(d[2].key, "firefox");
        let d = r.record(
            t0 + 60_000,
            (5, 50),
            &[("h.example", 5, 50)],
            &[("firefox", 5, 50)],
        );
        assert!(d.is_empty());
    }

    fn clock_at(ms: &Arc<AtomicU64>) -> Clock {
        let ms = ms.clone();
        Arc::new(move || ms.load(Ordering::SeqCst))
    }

    fn host_row(minute_unix: u64, key: &str) -> BucketDelta {
        BucketDelta {
            minute_unix,
            kind: Kind::Host,
            key: key.into(),
            bytes_up: 1,
            bytes_down: 1,
        }
    }

    fn count(h: &History) -> i64 {
        h.conn()
            .query_row("SELECT COUNT(*) FROM buckets", [], |r| r.get(0))
            .expect("count")
    }

    /// `retention_days = 0`: nothing is written, and turning it off deletes
    /// what was kept.
    #[test]
    fn retention_zero_turns_the_history_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        let now = Arc::new(AtomicU64::new(1_700_000_000_000));
        let off = History::open_with_clock(&path, 0, clock_at(&now)).expect("open");
        assert!(off.is_off());
        off.write(&[host_row(1_700_000_000 / 60 * 60, "a.example")])
            .expect("write");
        assert_eq!(count(&off), 0, "nothing written");
        drop(off);

        let h = History::open_with_clock(&path, 30, clock_at(&now)).expect("open");
        assert!(!h.is_off());
        h.write(&[host_row(1_700_000_000 / 60 * 60, "a.example")])
            .expect("write");
        assert_eq!(count(&h), 1);
        h.set_retention_days(0).expect("off");
        assert_eq!(count(&h), 0, "turned off: what was kept is gone");
        h.write(&[host_row(1_700_000_000 / 60 * 60, "b.example")])
            .expect("write");
        assert_eq!(count(&h), 0);
    }

    /// Past `max_mb`, the oldest minutes go first and the newest stay.
    #[test]
    fn the_size_cap_prunes_the_oldest_minutes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        let now = Arc::new(AtomicU64::new(1_700_000_000_000));
        let h = History::open_with_clock(&path, 3650, clock_at(&now)).expect("open");
        let first = 1_700_000_000 / 60 * 60 - 2000 * 60;
        for batch in 0..20u64 {
            let rows: Vec<_> = (0..100u64)
                .flat_map(|m| {
                    let minute = first + (batch * 100 + m) * 60;
                    (0..5).map(move |k| host_row(minute, &format!("host-{k}.example.com")))
                })
                .collect();
            h.write(&rows).expect("write");
        }
        let full = h.used_bytes().expect("size");
        assert_eq!(count(&h), 10_000);
        let cap = full / 4;
        h.set_max_bytes(cap).expect("cap");
        assert!(h.used_bytes().expect("size") <= cap, "{full} → cap {cap}");
        let (oldest, newest): (i64, i64) = h
            .conn()
            .query_row(
                "SELECT MIN(minute_unix), MAX(minute_unix) FROM buckets",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("range");
        assert!(oldest > first as i64, "the oldest went");
        assert_eq!(newest as u64, first + 1999 * 60, "the newest stayed");
        // New writes keep it under the cap.
        h.write(&[host_row(first + 2000 * 60, "new.example")])
            .expect("write");
        assert!(h.used_bytes().expect("size") <= cap);
    }

    #[test]
    fn retention_query_and_csv() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        let now = Arc::new(AtomicU64::new(1_700_000_000_000));
        let h = History::open_with_clock(&path, 2, clock_at(&now)).expect("open");
        let minute = |offset_min: i64| ((1_700_000_000 / 60) as i64 + offset_min) as u64 * 60;
        let row = |m: u64, kind, key: &str, up, down| BucketDelta {
            minute_unix: m,
            kind,
            key: key.into(),
            bytes_up: up,
            bytes_down: down,
        };
        h.write(&[
            row(minute(0), Kind::Total, "", 10, 20),
            row(minute(0), Kind::Host, "a.example", 10, 20),
            row(minute(-3 * 24 * 60), Kind::Host, "old.example", 1, 1),
        ])
        .expect("write");
        h.write(&[row(minute(0), Kind::Host, "a.example", 1, 2)])
            .expect("adds up");
        let report = h.query(HistoryRange::Hour).expect("query");
        assert_eq!(report.series.len(), 60);
        assert_eq!(report.series.last().map(|p| p.bytes_down), Some(20));
        assert_eq!(report.hosts.len(), 1);
        assert_eq!(report.hosts[0].key, "a.example");
        assert_eq!(
            (report.hosts[0].bytes_up, report.hosts[0].bytes_down),
            (11, 22)
        );
        assert_eq!(report.hosts[0].spark.last(), Some(&33));

        // The 3-day-old bucket is past the 2-day retention.
        let before = h.query(HistoryRange::Week).expect("week");
        assert_eq!(before.hosts.len(), 2);
        assert_eq!(before.series.len(), 168);
        assert_eq!(h.prune().expect("prune"), 1);
        assert_eq!(h.query(HistoryRange::Week).expect("week").hosts.len(), 1);
        // Two days later the rest goes too.
        now.fetch_add(2 * 86_400_000 + 120_000, Ordering::SeqCst);
        assert_eq!(h.prune().expect("prune"), 2);

        h.write(&[row(
            minute(2 * 24 * 60 + 2),
            Kind::App,
            "say \"hi\", ok",
            3,
            4,
        )])
        .expect("write");
        let mut csv = Vec::new();
        assert_eq!(h.export_csv(HistoryRange::Hour, &mut csv).expect("csv"), 1);
        let csv = String::from_utf8(csv).expect("utf8");
        let expected = format!(
            "minute_utc,kind,key,bytes_up,bytes_down\r\n{},app,\"say \"\"hi\"\", ok\",3,4\r\n",
            iso_utc(minute(2 * 24 * 60 + 2))
        );
        assert_eq!(csv, expected);

        let ro = History::open_read_only_with_clock(&path, clock_at(&now))
            .expect("open read-only")
            .expect("exists");
        assert_eq!(ro.query(HistoryRange::Hour).expect("query").apps.len(), 1);
        assert!(ro.write(&[row(minute(0), Kind::Total, "", 1, 1)]).is_err());
        assert!(
            History::open_read_only(&dir.path().join("none.sqlite3"))
                .expect("no file is fine")
                .is_none()
        );
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("example.com"), "example.com");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field(" padded"), "\" padded\"");
        // Formulas stay text in a spreadsheet.
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("-1,2"), "\"'-1,2\"");
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(iso_utc(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn ranges() {
        assert_eq!("Day".parse::<HistoryRange>(), Ok(HistoryRange::Day));
        assert!("month".parse::<HistoryRange>().is_err());
        let (start, end) = HistoryRange::Day.window(1_700_000_000);
        assert_eq!(end - start, 86_400);
        assert_eq!(end % 900, 0);
        assert!(end > 1_700_000_000);
    }
}
