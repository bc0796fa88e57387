//! The batch journal: SQLite, one database for every batch of a state
//! directory.
//!
//! Tables: `batches` (one row per [`BatchSpec`]), `files` (one row per file a
//! walk found: state, upload URL, protocol, failure reason, tries) and
//! `resume` (the batch's [`ResumeRecord`]s, keyed by fingerprint, so the
//! engine's resume logic works unchanged).
//!
//! A file is `pending` until the server holds an upload for it, then
//! `uploading` (its URL is written in the same transaction as its resume
//! record, before any byte is sent), then `done` or `failed`. Four short
//! transactions per file: planned, created, resume record dropped, done.
//!
//! Durability: write-ahead log with `synchronous=NORMAL`. Every change is in
//! the operating system before the call returns, so a killed process
//! (`kill -9`, a crash, Ctrl-C) loses nothing; a power cut may lose the last
//! changes, which costs at most re-asking the server about those files (their
//! upload URL is written before any byte is sent). No `fsync` per file keeps
//! thousands of small files cheap; so do small pages and only the indexes
//! the per-file statements need (counts and retries scan one batch's rows).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use chunkup_core::ResumeRecord;
use rusqlite::{Connection, OptionalExtension, params};

use super::{BatchSpec, Decision, FileState, Known, decide};
use crate::Error;
use crate::store::ResumeStore;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    runs INTEGER NOT NULL DEFAULT 0,
    last_run TEXT
);
CREATE TABLE IF NOT EXISTS files (
    batch_id TEXT NOT NULL,
    path TEXT NOT NULL,
    relative TEXT NOT NULL,
    size INTEGER NOT NULL,
    modified_ms INTEGER,
    fingerprint TEXT,
    state TEXT NOT NULL,
    upload_url TEXT,
    protocol TEXT,
    reason TEXT,
    retryable INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (batch_id, path)
);
CREATE INDEX IF NOT EXISTS files_by_fingerprint ON files (batch_id, fingerprint);
CREATE TABLE IF NOT EXISTS resume (
    fingerprint TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL,
    record TEXT NOT NULL
);
";

/// A file the walk found, as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Canonical path (the journal's key within a batch).
    pub path: String,
    /// Remote name: the path relative to its input.
    pub relative: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ms since the Unix epoch.
    pub modified_ms: Option<i64>,
    /// The engine's resume fingerprint for this file and endpoint.
    pub fingerprint: String,
}

/// Files of a batch by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Complete on the server.
    pub done: u64,
    /// Gave up in the last run.
    pub failed: u64,
    /// Started, not finished.
    pub uploading: u64,
    /// Seen, not started.
    pub pending: u64,
    /// Bytes of the done files.
    pub done_bytes: u64,
}

impl Counts {
    /// Every file the batch has seen.
    pub fn total(&self) -> u64 {
        self.done + self.failed + self.uploading + self.pending
    }
}

/// One batch, as `status` lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BatchInfo {
    /// The batch id (hex).
    pub id: String,
    /// Where its uploads are created.
    pub endpoint: String,
    /// Its inputs.
    pub roots: Vec<String>,
    /// Files by state.
    pub counts: Counts,
    /// Runs so far.
    pub runs: u64,
    /// Created, ms since the Unix epoch.
    pub created_ms: i64,
    /// Last change, ms since the Unix epoch.
    pub updated_ms: i64,
    /// The last run's summary as its driver wrote it (JSON), if it ended.
    pub last_run: Option<serde_json::Value>,
}

/// A failed file and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileFailure {
    /// Remote name.
    pub relative: String,
    /// Canonical path.
    pub path: String,
    /// The error, as shown to the user.
    pub reason: String,
}

/// A failed file that may be tried again in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryItem {
    /// Canonical path.
    pub path: String,
    /// Remote name.
    pub relative: String,
    /// Tries so far in this run.
    pub attempts: u32,
}

/// The SQLite journal of every batch in a state directory.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    conn: Mutex<Connection>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or(0)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Journal {
    /// The journal's file in a state directory.
    pub fn location(state_dir: &Path) -> PathBuf {
        state_dir.join("batches.sqlite3")
    }

    /// Opens (creating if needed) the journal at `path`.
    pub fn open(path: &Path) -> Result<Self, Error> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::Store {
                path: dir.to_path_buf(),
                source: e,
            })?;
        }
        let conn = Connection::open(path).map_err(|e| store_error(path, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        let journal = Journal {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        };
        journal.with(|conn| {
            conn.busy_timeout(std::time::Duration::from_secs(10))?;
            // Small pages: a file's row change rewrites a few pages in the
            // log, so their size is the journal's write volume (only takes
            // effect when the database is created).
            conn.pragma_update(None, "page_size", 1024)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(SCHEMA)
        })?;
        Ok(journal)
    }

    /// Opens the journal at `path` only if it exists (for read-only uses:
    /// `status`, `--dry-run`).
    pub fn open_existing(path: &Path) -> Result<Option<Self>, Error> {
        if path.exists() {
            Self::open(path).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>) -> Result<R, Error> {
        let mut conn = self.lock();
        f(&mut conn).map_err(|e| store_error(&self.path, e))
    }

    /// Takes the batch for this process: a second process running the same
    /// batch at the same time is refused (it would upload files twice). The
    /// lock is an SQLite lock on a small file beside the journal, so the
    /// operating system drops it when the process dies, even by `kill -9`.
    pub fn lock_batch(&self, batch_id: &str) -> Result<BatchLock, Error> {
        let dir = self
            .path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
            .join("locks");
        std::fs::create_dir_all(&dir).map_err(|e| Error::Store {
            path: dir.clone(),
            source: e,
        })?;
        let path = dir.join(format!("{}.lock", &batch_id[..batch_id.len().min(64)]));
        let conn = Connection::open(&path).map_err(|e| store_error(&path, e))?;
        // Taken or not, at once.
        conn.busy_timeout(std::time::Duration::ZERO)
            .map_err(|e| store_error(&path, e))?;
        match conn.execute_batch("PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE;") {
            Ok(()) => Ok(BatchLock { _conn: conn }),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    || e.code == rusqlite::ErrorCode::DatabaseLocked =>
            {
                Err(Error::Store {
                    path,
                    source: std::io::Error::new(
                        std::io::ErrorKind::WouldBlock,
                        "this batch is being uploaded by another process",
                    ),
                })
            }
            Err(e) => Err(store_error(&path, e)),
        }
    }

    /// Records a run of `spec`'s batch. Returns the runs before this one
    /// (0 for a new batch).
    pub fn begin(&self, spec: &BatchSpec) -> Result<u64, Error> {
        let id = spec.id();
        let text = serde_json::to_string(spec).unwrap_or_default();
        let now = now_ms();
        self.with(|conn| {
            let tx = conn.transaction()?;
            let runs: Option<i64> = tx
                .query_row("SELECT runs FROM batches WHERE id = ?1", [&id], |r| {
                    r.get(0)
                })
                .optional()?;
            tx.execute(
                "INSERT INTO batches (id, endpoint, spec, created_ms, updated_ms, runs)
                 VALUES (?1, ?2, ?3, ?4, ?4, 1)
                 ON CONFLICT (id) DO UPDATE SET runs = runs + 1, updated_ms = ?4",
                params![id, spec.endpoint, text, now],
            )?;
            // Tries count per run.
            tx.execute(
                "UPDATE files SET attempts = 0
                 WHERE batch_id = ?1 AND state != 'done' AND attempts != 0",
                [&id],
            )?;
            tx.commit()?;
            Ok(runs.map_or(0, |r| r.max(0) as u64))
        })
    }

    /// Stores the summary of the run that just ended.
    pub fn finish(&self, batch_id: &str, summary: &serde_json::Value) -> Result<(), Error> {
        self.with(|conn| {
            conn.execute(
                "UPDATE batches SET last_run = ?2, updated_ms = ?3 WHERE id = ?1",
                params![batch_id, summary.to_string(), now_ms()],
            )
            .map(drop)
        })
    }

    /// What the journal knows of a file of the batch.
    pub fn known(&self, batch_id: &str, path: &str) -> Result<Option<Known>, Error> {
        self.with(|conn| known(conn, batch_id, path))
    }

    /// Decides what to do with a file the walk found and records it: a file
    /// to upload becomes `pending` (`uploading` when it continues an upload
    /// the server holds), and when it continues an earlier upload
    /// whose resume record is gone (a run killed between the server's last
    /// answer and the journal's), the record is written back so the engine
    /// asks the server instead of creating a second upload.
    pub fn plan(&self, batch_id: &str, file: &FileEntry) -> Result<Decision, Error> {
        let now = now_ms();
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let known = known(&tx, batch_id, &file.path)?;
            let decision = decide(known.as_ref(), file.size, file.modified_ms);
            match &decision {
                Decision::Skip { .. } => {}
                Decision::Upload { resume } => {
                    let (url, protocol) = resume
                        .as_ref()
                        .map(|(url, p)| (Some(url.clone()), Some(p.as_str())))
                        .unwrap_or((None, None));
                    let state = if url.is_some() {
                        FileState::Uploading
                    } else {
                        FileState::Pending
                    };
                    tx.execute(
                        "INSERT INTO files (batch_id, path, relative, size, modified_ms,
                             fingerprint, state, upload_url, protocol, reason, retryable,
                             attempts, updated_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, 0, 0, ?10)
                         ON CONFLICT (batch_id, path) DO UPDATE SET relative = ?3, size = ?4,
                             modified_ms = ?5, fingerprint = ?6, state = ?7, upload_url = ?8,
                             protocol = ?9, reason = NULL, retryable = 0, updated_ms = ?10",
                        params![
                            batch_id,
                            file.path,
                            file.relative,
                            to_i64(file.size),
                            file.modified_ms,
                            file.fingerprint,
                            state.as_str(),
                            url,
                            protocol,
                            now
                        ],
                    )?;
                    if let Some((url, protocol)) = resume {
                        let record = ResumeRecord::new(
                            file.fingerprint.clone(),
                            url.clone(),
                            *protocol,
                            file.size,
                            now,
                        );
                        let json = serde_json::to_string(&record).unwrap_or_default();
                        tx.execute(
                            "INSERT OR IGNORE INTO resume (fingerprint, batch_id, record)
                             VALUES (?1, ?2, ?3)",
                            params![file.fingerprint, batch_id, json],
                        )?;
                    }
                }
            }
            tx.commit()?;
            Ok(decision)
        })
    }

    /// The decision [`Journal::plan`] would make, without writing anything
    /// (`--dry-run`).
    pub fn peek(&self, batch_id: &str, file: &FileEntry) -> Result<Decision, Error> {
        let known = self.known(batch_id, &file.path)?;
        Ok(decide(known.as_ref(), file.size, file.modified_ms))
    }

    /// The file is complete on the server.
    pub fn done(&self, batch_id: &str, path: &str, upload_url: Option<&str>) -> Result<(), Error> {
        self.with(|conn| {
            conn.execute(
                "UPDATE files SET state = 'done', upload_url = ?3, reason = NULL,
                     retryable = 0, updated_ms = ?4
                 WHERE batch_id = ?1 AND path = ?2",
                params![batch_id, path, upload_url, now_ms()],
            )
            .map(drop)
        })
    }

    /// The file's upload failed (one more try counted); `retryable` when this
    /// run may try again.
    pub fn failed(
        &self,
        batch_id: &str,
        path: &str,
        reason: &str,
        retryable: bool,
    ) -> Result<(), Error> {
        self.with(|conn| {
            conn.execute(
                "UPDATE files SET state = 'failed', reason = ?3, retryable = ?4,
                     attempts = attempts + 1, updated_ms = ?5
                 WHERE batch_id = ?1 AND path = ?2",
                params![batch_id, path, reason, retryable, now_ms()],
            )
            .map(drop)
        })
    }

    /// A file that could not even be looked at (unreadable directory or
    /// file): recorded as failed so the summary and `status` show it.
    pub fn unreadable(&self, batch_id: &str, path: &str, reason: &str) -> Result<(), Error> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO files (batch_id, path, relative, size, modified_ms, state,
                     reason, retryable, attempts, updated_ms)
                 VALUES (?1, ?2, ?2, 0, NULL, 'failed', ?3, 0, 1, ?4)
                 ON CONFLICT (batch_id, path) DO UPDATE SET state = 'failed', reason = ?3,
                     retryable = 0, updated_ms = ?4",
                params![batch_id, path, reason, now_ms()],
            )
            .map(drop)
        })
    }

    /// Up to `limit` failed files, in path order after `after_path`, that
    /// this run may try again (fewer than `max_attempts` tries so far).
    pub fn retry_candidates(
        &self,
        batch_id: &str,
        max_attempts: u32,
        after_path: &str,
        limit: usize,
    ) -> Result<Vec<RetryItem>, Error> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT path, relative, attempts FROM files
                 WHERE batch_id = ?1 AND path > ?3 AND state = 'failed' AND retryable = 1
                     AND attempts < ?2
                 ORDER BY path LIMIT ?4",
            )?;
            let rows = stmt.query_map(
                params![
                    batch_id,
                    i64::from(max_attempts),
                    after_path,
                    to_i64(limit as u64)
                ],
                |r| {
                    Ok(RetryItem {
                        path: r.get(0)?,
                        relative: r.get(1)?,
                        attempts: r.get::<_, i64>(2)?.clamp(0, i64::from(u32::MAX)) as u32,
                    })
                },
            )?;
            rows.collect()
        })
    }

    /// Files of a batch by state.
    pub fn counts(&self, batch_id: &str) -> Result<Counts, Error> {
        self.with(|conn| counts(conn, batch_id))
    }

    /// Up to `limit` failed files of a batch, with reasons.
    pub fn failures(&self, batch_id: &str, limit: usize) -> Result<Vec<FileFailure>, Error> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT relative, path, COALESCE(reason, '') FROM files
                 WHERE batch_id = ?1 AND state = 'failed' ORDER BY relative LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![batch_id, to_i64(limit as u64)], |r| {
                Ok(FileFailure {
                    relative: r.get(0)?,
                    path: r.get(1)?,
                    reason: r.get(2)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Failed files of a batch grouped by reason, most frequent first.
    pub fn failure_reasons(&self, batch_id: &str) -> Result<Vec<(String, u64)>, Error> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT COALESCE(reason, ''), COUNT(*) FROM files
                 WHERE batch_id = ?1 AND state = 'failed'
                 GROUP BY reason ORDER BY COUNT(*) DESC, reason",
            )?;
            let rows = stmt.query_map([batch_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
            })?;
            rows.collect()
        })
    }

    /// Every batch, newest change first.
    pub fn batches(&self) -> Result<Vec<BatchInfo>, Error> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, endpoint, spec, runs, created_ms, updated_ms, last_run
                 FROM batches ORDER BY updated_ms DESC",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ))
            })?;
            let rows: Vec<_> = rows.collect::<rusqlite::Result<_>>()?;
            let mut out = Vec::with_capacity(rows.len());
            for (id, endpoint, spec, runs, created_ms, updated_ms, last_run) in rows {
                let roots = serde_json::from_str::<serde_json::Value>(&spec)
                    .ok()
                    .and_then(|v| {
                        v["roots"].as_array().map(|a| {
                            a.iter()
                                .filter_map(|r| r.as_str().map(str::to_string))
                                .collect()
                        })
                    })
                    .unwrap_or_default();
                out.push(BatchInfo {
                    counts: counts(conn, &id)?,
                    id,
                    endpoint,
                    roots,
                    runs: runs.max(0) as u64,
                    created_ms,
                    updated_ms,
                    last_run: last_run.and_then(|t| serde_json::from_str(&t).ok()),
                });
            }
            Ok(out)
        })
    }

    /// Unfinished uploads of every batch (their resume records).
    pub fn resume_records(&self) -> Result<Vec<(String, ResumeRecord)>, Error> {
        self.with(|conn| {
            let mut stmt = conn.prepare("SELECT batch_id, record FROM resume")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let rows: Vec<_> = rows.collect::<rusqlite::Result<_>>()?;
            Ok(rows
                .into_iter()
                .filter_map(|(batch, json)| Some((batch, serde_json::from_str(&json).ok()?)))
                .collect())
        })
    }

    /// Forgets the upload whose resume record is kept under `fingerprint`:
    /// the record goes, and a file of a batch that was continuing it goes
    /// back to pending without its URL, so the next run starts a new
    /// upload instead of writing the record back. The upload stays on the
    /// server.
    pub fn forget_upload(&self, fingerprint: &str) -> Result<(), Error> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM resume WHERE fingerprint = ?1", [fingerprint])?;
            tx.execute(
                "UPDATE files SET state = 'pending', upload_url = NULL, protocol = NULL,
                     updated_ms = ?2
                 WHERE fingerprint = ?1 AND state != 'done'",
                params![fingerprint, now_ms()],
            )?;
            tx.commit()
        })
    }

    /// The batch's [`ResumeStore`] (records kept in this journal).
    pub fn resume_store(self: &Arc<Self>, batch_id: &str) -> BatchResumeStore {
        BatchResumeStore {
            journal: Arc::clone(self),
            batch_id: batch_id.to_string(),
        }
    }
}

fn known(conn: &Connection, batch_id: &str, path: &str) -> rusqlite::Result<Option<Known>> {
    let mut stmt = conn.prepare_cached(
        "SELECT state, size, modified_ms, upload_url, protocol FROM files
         WHERE batch_id = ?1 AND path = ?2",
    )?;
    stmt.query_row(params![batch_id, path], |r| {
        let state: String = r.get(0)?;
        let protocol: Option<String> = r.get(4)?;
        Ok(Known {
            state: FileState::parse(&state).unwrap_or(FileState::Pending),
            size: r.get::<_, i64>(1)?.max(0) as u64,
            modified_ms: r.get(2)?,
            upload_url: r.get(3)?,
            protocol: protocol
                .and_then(|p| p.parse::<chunkup_core::Protocol>().ok())
                .and_then(chunkup_core::Protocol::resolved),
        })
    })
    .optional()
}

fn counts(conn: &Connection, batch_id: &str) -> rusqlite::Result<Counts> {
    let mut stmt = conn.prepare_cached(
        "SELECT state, COUNT(*), COALESCE(SUM(size), 0) FROM files
         WHERE batch_id = ?1 GROUP BY state",
    )?;
    let mut counts = Counts::default();
    let rows = stmt.query_map([batch_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?.max(0) as u64,
            r.get::<_, i64>(2)?.max(0) as u64,
        ))
    })?;
    for row in rows {
        let (state, n, bytes) = row?;
        match FileState::parse(&state) {
            Some(FileState::Done) => {
                counts.done += n;
                counts.done_bytes += bytes;
            }
            Some(FileState::Failed) => counts.failed += n,
            Some(FileState::Uploading) => counts.uploading += n,
            Some(FileState::Pending) | None => counts.pending += n,
        }
    }
    Ok(counts)
}

fn store_error(path: &Path, error: rusqlite::Error) -> Error {
    Error::Store {
        path: path.to_path_buf(),
        source: std::io::Error::other(error),
    }
}

/// Holds a batch for this process; dropping it lets another run take it.
#[derive(Debug)]
pub struct BatchLock {
    _conn: Connection,
}

/// The resume records of one batch, in its journal.
#[derive(Debug, Clone)]
pub struct BatchResumeStore {
    journal: Arc<Journal>,
    batch_id: String,
}

impl ResumeStore for BatchResumeStore {
    fn load(&self, fingerprint: &str) -> Result<Option<ResumeRecord>, Error> {
        let json: Option<String> = self.journal.with(|conn| {
            conn.prepare_cached("SELECT record FROM resume WHERE fingerprint = ?1")?
                .query_row([fingerprint], |r| r.get(0))
                .optional()
        })?;
        Ok(json.and_then(|json| {
            serde_json::from_str::<ResumeRecord>(&json)
                .ok()
                .filter(|r| r.fingerprint == fingerprint)
        }))
    }

    /// Also marks the batch's file with this fingerprint `uploading` with
    /// the record's URL, in the same transaction.
    fn save(&self, record: &ResumeRecord) -> Result<(), Error> {
        let json = serde_json::to_string(record).map_err(|e| Error::Store {
            path: self.journal.path.clone(),
            source: std::io::Error::other(e),
        })?;
        self.journal.with(|conn| {
            let tx = conn.transaction()?;
            tx.prepare_cached(
                "INSERT INTO resume (fingerprint, batch_id, record) VALUES (?1, ?2, ?3)
                 ON CONFLICT (fingerprint) DO UPDATE SET batch_id = ?2, record = ?3",
            )?
            .execute(params![record.fingerprint, self.batch_id, json])?;
            tx.prepare_cached(
                "UPDATE files SET state = 'uploading', upload_url = ?3, protocol = ?4,
                     updated_ms = ?5
                 WHERE batch_id = ?1 AND fingerprint = ?2 AND state != 'done'
                     AND (upload_url IS NOT ?3 OR state != 'uploading')",
            )?
            .execute(params![
                self.batch_id,
                record.fingerprint,
                record.upload_url,
                record.protocol.as_str(),
                record.updated_ms
            ])?;
            tx.commit()
        })
    }

    fn remove(&self, fingerprint: &str) -> Result<(), Error> {
        self.journal.with(|conn| {
            conn.prepare_cached("DELETE FROM resume WHERE fingerprint = ?1")?
                .execute([fingerprint])
                .map(drop)
        })
    }

    fn list(&self) -> Result<Vec<ResumeRecord>, Error> {
        Ok(self
            .journal
            .resume_records()?
            .into_iter()
            .filter(|(batch, _)| *batch == self.batch_id)
            .map(|(_, record)| record)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchSpec;
    use chunkup_core::{Protocol, ResolvedProtocol};

    fn spec() -> BatchSpec {
        BatchSpec {
            endpoint: "http://127.0.0.1:1/tus".into(),
            roots: vec!["/data".into()],
            protocol: Protocol::Tus,
            include: vec![],
            exclude: vec![],
            metadata: vec![],
        }
    }

    fn entry(modified_ms: i64) -> FileEntry {
        FileEntry {
            path: "/data/a.bin".into(),
            relative: "data/a.bin".into(),
            size: 10,
            modified_ms: Some(modified_ms),
            fingerprint: format!("{modified_ms:064x}"),
        }
    }

    fn record(file: &FileEntry, url: &str) -> ResumeRecord {
        ResumeRecord::new(
            file.fingerprint.clone(),
            url,
            ResolvedProtocol::Tus,
            file.size,
            1,
        )
    }

    #[test]
    fn a_file_goes_pending_uploading_done_and_is_then_skipped() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(|e| Error::Http(e.to_string()))?;
        let journal = Arc::new(Journal::open(&Journal::location(dir.path()))?);
        let id = spec().id();
        assert_eq!(journal.begin(&spec())?, 0);
        let file = entry(5);
        assert_eq!(journal.plan(&id, &file)?, Decision::Upload { resume: None });
        assert_eq!(journal.counts(&id)?.pending, 1);
        // The engine saves its resume record: the file is uploading, with URL.
        let store = journal.resume_store(&id);
        store.save(&record(&file, "http://x/1"))?;
        let known = journal.known(&id, &file.path)?.expect("known");
        assert_eq!(known.state, FileState::Uploading);
        assert_eq!(known.upload_url.as_deref(), Some("http://x/1"));
        // Killed after the engine dropped the record on completion but before
        // the journal heard of it: the next run writes the record back so the
        // engine asks the server instead of creating a second upload.
        store.remove(&file.fingerprint)?;
        assert_eq!(journal.begin(&spec())?, 1);
        assert_eq!(
            journal.plan(&id, &file)?,
            Decision::Upload {
                resume: Some(("http://x/1".into(), ResolvedProtocol::Tus))
            }
        );
        assert_eq!(
            store.load(&file.fingerprint)?.map(|r| r.upload_url),
            Some("http://x/1".into())
        );
        journal.done(&id, &file.path, Some("http://x/1"))?;
        assert_eq!(
            journal.plan(&id, &file)?,
            Decision::Skip {
                upload_url: Some("http://x/1".into())
            }
        );
        // Changed content is a new upload.
        assert_eq!(
            journal.plan(&id, &entry(6))?,
            Decision::Upload { resume: None }
        );
        let batches = journal.batches()?;
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].runs, 2);
        assert_eq!(batches[0].roots, vec!["/data".to_string()]);
        Ok(())
    }

    #[test]
    fn failures_are_retried_within_the_run_limit_then_kept_with_reasons() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(|e| Error::Http(e.to_string()))?;
        let journal = Journal::open(&Journal::location(dir.path()))?;
        let id = spec().id();
        journal.begin(&spec())?;
        let file = entry(5);
        journal.plan(&id, &file)?;
        journal.failed(&id, &file.path, "gave up", true)?;
        let again = journal.retry_candidates(&id, 2, "", 10)?;
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 1);
        journal.failed(&id, &file.path, "gave up", true)?;
        assert!(journal.retry_candidates(&id, 2, "", 10)?.is_empty());
        assert_eq!(
            journal.failure_reasons(&id)?,
            vec![("gave up".to_string(), 1)]
        );
        // A new run counts tries afresh.
        journal.begin(&spec())?;
        assert_eq!(journal.retry_candidates(&id, 2, "", 10)?.len(), 1);
        Ok(())
    }

    #[test]
    fn one_process_at_a_time_per_batch() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(|e| Error::Http(e.to_string()))?;
        let journal = Journal::open(&Journal::location(dir.path()))?;
        let held = journal.lock_batch("abc")?;
        assert!(journal.lock_batch("abc").is_err());
        assert!(journal.lock_batch("def").is_ok());
        drop(held);
        assert!(journal.lock_batch("abc").is_ok());
        Ok(())
    }
}
