//! Where resume records live between runs.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chunkup_core::ResumeRecord;

use crate::Error;

/// Keeps [`ResumeRecord`]s keyed by fingerprint. Implement it to keep state
/// wherever an application likes.
pub trait ResumeStore: Send + Sync {
    /// The record for `fingerprint`, if any.
    fn load(&self, fingerprint: &str) -> Result<Option<ResumeRecord>, Error>;
    /// Adds or replaces a record.
    fn save(&self, record: &ResumeRecord) -> Result<(), Error>;
    /// Forgets a record (absent records are fine).
    fn remove(&self, fingerprint: &str) -> Result<(), Error>;
    /// Every record.
    fn list(&self) -> Result<Vec<ResumeRecord>, Error>;
}

/// A resume store in memory: for tests and short-lived processes.
#[derive(Debug, Default)]
pub struct MemoryResumeStore {
    records: Mutex<HashMap<String, ResumeRecord>>,
}

impl ResumeStore for MemoryResumeStore {
    fn load(&self, fingerprint: &str) -> Result<Option<ResumeRecord>, Error> {
        Ok(self.lock().get(fingerprint).cloned())
    }

    fn save(&self, record: &ResumeRecord) -> Result<(), Error> {
        self.lock()
            .insert(record.fingerprint.clone(), record.clone());
        Ok(())
    }

    fn remove(&self, fingerprint: &str) -> Result<(), Error> {
        self.lock().remove(fingerprint);
        Ok(())
    }

    fn list(&self) -> Result<Vec<ResumeRecord>, Error> {
        Ok(self.lock().values().cloned().collect())
    }
}

impl MemoryResumeStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ResumeRecord>> {
        // A panic while holding the lock cannot leave a half-written map.
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A resume store on disk: one JSON file per upload in a directory, written
/// atomically (temporary file, fsync, rename) and readable only by the user.
#[derive(Debug, Clone)]
pub struct FileResumeStore {
    dir: PathBuf,
}

impl FileResumeStore {
    /// A store in `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileResumeStore { dir: dir.into() }
    }

    /// `$CHUNKUP_STATE_DIR`, else `$XDG_STATE_HOME/chunkup`, else
    /// `~/.local/state/chunkup`.
    pub fn default_location() -> Result<Self, Error> {
        let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let dir = if let Some(dir) = env("CHUNKUP_STATE_DIR") {
            PathBuf::from(dir)
        } else if let Some(state) = env("XDG_STATE_HOME") {
            PathBuf::from(state).join("chunkup")
        } else if let Some(home) = env("HOME") {
            PathBuf::from(home).join(".local/state/chunkup")
        } else {
            return Err(Error::Store {
                path: PathBuf::from("~"),
                source: std::io::Error::other(
                    "no CHUNKUP_STATE_DIR, XDG_STATE_HOME or HOME to keep resume state in",
                ),
            });
        };
        Ok(FileResumeStore::new(dir))
    }

    /// The directory records are kept in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_for(&self, fingerprint: &str) -> Option<PathBuf> {
        // Fingerprints are hex digests; anything else never names a file.
        let safe = !fingerprint.is_empty()
            && fingerprint.len() <= 128
            && fingerprint.bytes().all(|b| b.is_ascii_hexdigit());
        safe.then(|| self.dir.join(format!("{fingerprint}.json")))
    }

    fn store_error(&self, path: &Path, source: std::io::Error) -> Error {
        let _ = self;
        Error::Store {
            path: path.to_path_buf(),
            source,
        }
    }

    fn write_atomically(&self, path: &Path, contents: &[u8]) -> Result<(), Error> {
        std::fs::create_dir_all(&self.dir).map_err(|e| self.store_error(&self.dir, e))?;
        let tmp = path.with_extension(format!("json.tmp-{}", std::process::id()));
        let result = (|| {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&tmp)?;
            file.write_all(contents)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(|e| self.store_error(path, e))
    }
}

impl ResumeStore for FileResumeStore {
    fn load(&self, fingerprint: &str) -> Result<Option<ResumeRecord>, Error> {
        let Some(path) = self.path_for(fingerprint) else {
            return Ok(None);
        };
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<ResumeRecord>(&bytes) {
                Ok(record) if record.fingerprint == fingerprint => Ok(Some(record)),
                _ => {
                    // A damaged record only costs the resume, never the upload.
                    tracing::warn!(path = %path.display(), "ignoring an unreadable resume record");
                    Ok(None)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.store_error(&path, e)),
        }
    }

    fn save(&self, record: &ResumeRecord) -> Result<(), Error> {
        let Some(path) = self.path_for(&record.fingerprint) else {
            return Err(self.store_error(
                &self.dir,
                std::io::Error::other("a fingerprint must be a hex digest"),
            ));
        };
        let json = serde_json::to_vec_pretty(record)
            .map_err(|e| self.store_error(&path, std::io::Error::other(e)))?;
        self.write_atomically(&path, &json)
    }

    fn remove(&self, fingerprint: &str) -> Result<(), Error> {
        let Some(path) = self.path_for(fingerprint) else {
            return Ok(());
        };
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.store_error(&path, e)),
        }
    }

    fn list(&self) -> Result<Vec<ResumeRecord>, Error> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.store_error(&self.dir, e)),
        };
        let mut records = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(fingerprint) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if let Some(record) = self.load(fingerprint)? {
                records.push(record);
            }
        }
        records.sort_by_key(|r| std::cmp::Reverse(r.updated_ms));
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chunkup_core::ResolvedProtocol;

    fn record(fingerprint: &str) -> ResumeRecord {
        ResumeRecord {
            offset: 5,
            file_name: Some("x".into()),
            ..ResumeRecord::new(
                fingerprint,
                "http://127.0.0.1:1/ranged/x",
                ResolvedProtocol::Ranged,
                10,
                1,
            )
        }
    }

    #[test]
    fn file_store_round_trip_is_private_and_atomic() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(|e| Error::Http(e.to_string()))?;
        let store = FileResumeStore::new(dir.path().join("state"));
        assert_eq!(store.load("abc")?, None);
        store.save(&record("abc"))?;
        assert_eq!(store.load("abc")?, Some(record("abc")));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(dir.path().join("state/abc.json"))
                .map_err(|e| Error::Http(e.to_string()))?;
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("state"))
            .map_err(|e| Error::Http(e.to_string()))?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("tmp"))
            .collect();
        assert!(leftovers.is_empty());
        assert_eq!(store.list()?.len(), 1);
        store.remove("abc")?;
        store.remove("abc")?;
        assert_eq!(store.load("abc")?, None);
        Ok(())
    }

    #[test]
    fn file_store_refuses_path_like_fingerprints_and_survives_garbage() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(|e| Error::Http(e.to_string()))?;
        let store = FileResumeStore::new(dir.path());
        assert!(store.save(&record("../../etc/passwd")).is_err());
        assert_eq!(store.load("../x")?, None);
        std::fs::write(dir.path().join("abcd.json"), b"{not json")
            .map_err(|e| Error::Http(e.to_string()))?;
        assert_eq!(store.load("abcd")?, None);
        Ok(())
    }

    #[test]
    fn memory_store_round_trip() -> Result<(), Error> {
        let store = MemoryResumeStore::default();
        store.save(&record("ab"))?;
        assert_eq!(store.list()?, vec![record("ab")]);
        store.remove("ab")?;
        assert_eq!(store.load("ab")?, None);
        Ok(())
    }
}
