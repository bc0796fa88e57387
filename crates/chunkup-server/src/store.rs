//! The file store: `{dir}/{id}.bin` holds an upload's bytes, `{dir}/{id}.json`
//! its metadata. Ids are validated before any path is built from them.
//!
//! Each upload has an async `io` lock that serialises writers (and the
//! write-behind buffer they manage) and a short synchronous `state` lock that
//! readers (status polls, admin) take without waiting for a writer.
//!
//! The store also keeps the books for the resource limits ([`StoreLimits`]):
//! every upload it knows counts its declared length (or its stored bytes,
//! when more or when the length is deferred) and whether it is unfinished.
//! A creation is admitted, and its share reserved, under one lock, so
//! concurrent creations cannot overshoot a limit together.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Length in hex characters of an upload id (128 bits).
const ID_LEN: usize = 32;

/// True for exactly 32 lowercase hex characters: the only ids the server
/// accepts, and therefore the only file names it ever builds.
pub(crate) fn is_valid_id(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fresh id: 128 bits from the operating system's CSPRNG.
fn new_id() -> io::Result<String> {
    let mut bytes = [0u8; ID_LEN / 2];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// The protocol an upload was created with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Protocol {
    /// `POST /ranged`.
    #[default]
    Ranged,
    /// tus 1.0.0 (`POST /tus`).
    Tus,
    /// The IETF resumable-upload draft (`POST /ietf`): complete only when a
    /// request says `Upload-Complete: ?1`, never just because the length
    /// was reached.
    Ietf,
    /// A Google-style resumable session (`POST /gcs`).
    Gcs,
}

/// Why an upload this instance deleted is answered 410.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gone {
    /// It expired (tus, IETF, GCS).
    Expired,
    /// Its GCS session was cancelled (`DELETE /gcs/{id}`).
    Cancelled,
}

/// A tus concatenation role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "role")]
pub(crate) enum Concat {
    /// `Upload-Concat: partial`.
    Partial,
    /// `Upload-Concat: final;...`: the bytes of `parts` (upload ids), in order.
    Final {
        /// Ids of the partial uploads.
        parts: Vec<String>,
    },
}

/// What `{id}.json` holds. Fields after `complete` were added with tus and
/// the IETF draft; files without them still load.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    /// Total size; `None` while a tus/IETF length is deferred.
    total: Option<u64>,
    filename: Option<String>,
    content_type: Option<String>,
    complete: bool,
    #[serde(default)]
    protocol: Protocol,
    /// Decoded tus `Upload-Metadata` (values as lossy UTF-8).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    metadata: BTreeMap<String, String>,
    /// `Upload-Metadata` exactly as received (echoed on HEAD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    raw_metadata: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    concat: Option<Concat>,
    /// Unix time in milliseconds after which an unfinished upload is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<u64>,
}

impl Meta {
    /// Whether reaching the total completes the upload by itself.
    fn auto_complete(&self) -> bool {
        self.protocol != Protocol::Ietf
    }
}

#[derive(Debug)]
struct UploadState {
    meta: Meta,
    /// Contiguous bytes in the `.bin` file.
    file_len: u64,
    /// Acknowledged bytes after `file_len` not yet written (write-behind).
    buffer: Vec<u8>,
    /// Body bytes this instance wrote for the upload, duplicates included.
    bytes_received: u64,
    deleted: bool,
    /// What this upload adds to the store's [`Usage`] right now.
    counted: Share,
}

impl UploadState {
    fn stored(&self) -> u64 {
        self.file_len + self.buffer.len() as u64
    }

    /// The share this state should count for.
    fn share(&self) -> Share {
        if self.deleted {
            Share::default()
        } else {
            Share::of(&self.meta, self.stored())
        }
    }
}

/// What one upload counts for in the store's books.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Share {
    /// Its declared length, or its stored bytes when more or deferred.
    bytes: u64,
    /// 1 while unfinished, else 0.
    unfinished: u64,
}

impl Share {
    fn of(meta: &Meta, stored: u64) -> Share {
        Share {
            bytes: meta.total.unwrap_or(0).max(stored),
            unfinished: u64::from(!meta.complete),
        }
    }
}

/// The store's books: the sum of every known upload's [`Share`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Bytes stored or promised (declared lengths of unfinished uploads).
    pub(crate) bytes: u64,
    /// Uploads not complete yet.
    pub(crate) unfinished: u64,
}

impl Usage {
    fn add(&mut self, share: Share) {
        self.bytes = self.bytes.saturating_add(share.bytes);
        self.unfinished = self.unfinished.saturating_add(share.unfinished);
    }

    fn remove(&mut self, share: Share) {
        self.bytes = self.bytes.saturating_sub(share.bytes);
        self.unfinished = self.unfinished.saturating_sub(share.unfinished);
    }
}

/// The resource limits a store enforces when uploads are created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreLimits {
    /// Largest upload.
    pub(crate) max_size: u64,
    /// Largest [`Usage::bytes`].
    pub(crate) max_total_size: u64,
    /// Most [`Usage::unfinished`].
    pub(crate) max_unfinished: u64,
    /// Free disk space that must stay free after an upload's declared length.
    pub(crate) min_free_disk: u64,
}

/// Why a creation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// As many uploads as allowed are unfinished.
    TooManyUnfinished { limit: u64 },
    /// The upload would take the store past its total size.
    OverTotal { limit: u64, used: u64, wanted: u64 },
    /// The disk would keep less than the free-space margin.
    DiskShort {
        available: u64,
        wanted: u64,
        margin: u64,
    },
}

/// Why [`Store::create`] failed.
#[derive(Debug)]
pub(crate) enum CreateError {
    /// A limit refused it; nothing was created.
    Refused(Refusal),
    /// The file system failed.
    Io(io::Error),
}

impl From<io::Error> for CreateError {
    fn from(e: io::Error) -> Self {
        CreateError::Io(e)
    }
}

/// A point-in-time view of an upload (also the admin API's JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Snapshot {
    pub(crate) id: String,
    /// `None` (JSON `null`) while the length is deferred.
    pub(crate) total: Option<u64>,
    pub(crate) stored: u64,
    pub(crate) complete: bool,
    pub(crate) filename: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) bytes_received: u64,
    pub(crate) protocol: Protocol,
    pub(crate) metadata: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) concat: Option<Concat>,
    /// The expiry as an HTTP-date, while the upload can still expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) expires: Option<String>,
    #[serde(skip)]
    pub(crate) raw_metadata: Option<String>,
    #[serde(skip)]
    pub(crate) expires_at_ms: Option<u64>,
}

impl Snapshot {
    /// The expiry, unless the upload is complete (complete uploads stay).
    pub(crate) fn live_expiry_ms(&self) -> Option<u64> {
        self.expires_at_ms.filter(|_| !self.complete)
    }

    /// True when the upload is unfinished and its expiry has passed.
    pub(crate) fn is_expired(&self, now_ms: u64) -> bool {
        self.live_expiry_ms().is_some_and(|at| at <= now_ms)
    }
}

/// One upload known to this instance.
#[derive(Debug)]
pub(crate) struct Upload {
    id: String,
    bin: PathBuf,
    json: PathBuf,
    write_behind: u64,
    /// A body that breaks off stores none of its bytes.
    atomic_appends: bool,
    /// The store's books, updated by [`Upload::recount`].
    usage: Arc<Mutex<Usage>>,
    io: tokio::sync::Mutex<()>,
    state: Mutex<UploadState>,
}

impl Upload {
    fn state(&self) -> MutexGuard<'_, UploadState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Brings the store's books up to date with this upload's state (its
    /// length, stored bytes, completion, deletion). Shares are swapped under
    /// the upload's lock and the difference applied after it, so concurrent
    /// recounts add up in any order.
    fn recount(&self) {
        let (before, now) = {
            let mut st = self.state();
            let now = st.share();
            (std::mem::replace(&mut st.counted, now), now)
        };
        if before != now {
            let mut usage = lock(&self.usage);
            usage.remove(before);
            usage.add(now);
        }
    }

    /// Current view (counts write-behind bytes as stored).
    pub(crate) fn snapshot(&self) -> Snapshot {
        let st = self.state();
        let m = &st.meta;
        Snapshot {
            id: self.id.clone(),
            total: m.total,
            stored: st.stored(),
            complete: m.complete,
            filename: m.filename.clone(),
            content_type: m.content_type.clone(),
            bytes_received: st.bytes_received,
            protocol: m.protocol,
            metadata: m.metadata.clone(),
            concat: m.concat.clone(),
            expires: m
                .expires_at_ms
                .filter(|_| !m.complete)
                .map(crate::expiry::http_date),
            raw_metadata: m.raw_metadata.clone(),
            expires_at_ms: m.expires_at_ms,
        }
    }

    /// The upload's id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Copies every stored byte (file prefix + write-behind buffer) into
    /// `dest` at `at`, in pieces. Returns the number of bytes copied.
    pub(crate) async fn copy_into(&self, dest: &mut ChunkWriter<'_>, at: u64) -> io::Result<u64> {
        let (file_len, buffer) = {
            let st = self.state();
            (st.file_len, st.buffer.clone())
        };
        let mut file = tokio::fs::File::open(&self.bin).await?;
        let mut pos = at;
        let mut left = file_len;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = file.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "upload file is shorter than recorded",
                ));
            }
            dest.write(pos, &buf[..n], false).await?;
            pos += n as u64;
            left -= n as u64;
        }
        dest.write(pos, &buffer, false).await?;
        pos += buffer.len() as u64;
        Ok(pos - at)
    }

    /// Takes the writer lock and opens the file for writing.
    pub(crate) async fn writer<'a>(
        &'a self,
        crashed: &'a AtomicBool,
    ) -> io::Result<ChunkWriter<'a>> {
        let guard = self.io.lock().await;
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(&self.bin)
            .await?;
        Ok(ChunkWriter {
            upload: self,
            _guard: guard,
            file,
            crashed,
            dirty: false,
            skip_held: false,
        })
    }

    /// Hex sha256 of the stored bytes (file prefix + write-behind buffer),
    /// streamed from disk.
    pub(crate) async fn sha256(&self) -> io::Result<String> {
        let (file_len, buffer) = {
            let st = self.state();
            (st.file_len, st.buffer.clone())
        };
        let mut hasher = Sha256::new();
        let mut file = tokio::fs::File::open(&self.bin).await?;
        let mut left = file_len;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = file.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "upload file is shorter than recorded",
                ));
            }
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
        hasher.update(&buffer);
        Ok(hex::encode(hasher.finalize()))
    }

    /// Writes the whole write-behind buffer to disk (graceful shutdown).
    async fn flush_all(&self, crashed: &AtomicBool) -> io::Result<()> {
        let _guard = self.io.lock().await;
        if self.state().buffer.is_empty() {
            return Ok(());
        }
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(&self.bin)
            .await?;
        flush_front(self, &mut file, usize::MAX, crashed).await
    }
}

/// Moves up to `max` of the oldest buffered bytes to the file. Caller holds
/// the upload's io lock.
async fn flush_front(
    upload: &Upload,
    file: &mut tokio::fs::File,
    max: usize,
    crashed: &AtomicBool,
) -> io::Result<()> {
    if crashed.load(Ordering::SeqCst) {
        return Ok(());
    }
    let (at, bytes) = {
        let st = upload.state();
        let n = st.buffer.len().min(max);
        (st.file_len, st.buffer[..n].to_vec())
    };
    if bytes.is_empty() {
        return Ok(());
    }
    file.seek(SeekFrom::Start(at)).await?;
    file.write_all(&bytes).await?;
    file.flush().await?;
    let mut st = upload.state();
    st.buffer.drain(..bytes.len());
    st.file_len += bytes.len() as u64;
    Ok(())
}

/// Exclusive writer of one upload, holding its io lock. Dropping it (which
/// `finish` does too) brings the store's books up to date.
#[derive(Debug)]
pub(crate) struct ChunkWriter<'a> {
    upload: &'a Upload,
    _guard: tokio::sync::MutexGuard<'a, ()>,
    file: tokio::fs::File,
    crashed: &'a AtomicBool,
    /// The metadata changed and must be written by `finish`.
    dirty: bool,
    /// Bytes the upload already holds are never overwritten.
    skip_held: bool,
}

impl ChunkWriter<'_> {
    /// Current view of the upload.
    pub(crate) fn snapshot(&self) -> Snapshot {
        self.upload.snapshot()
    }

    /// Writes `data` at `pos`, which must not be beyond the stored bytes.
    /// Overlapping bytes are overwritten (dropped after
    /// [`ChunkWriter::skip_held`]); stored advances past the end.
    pub(crate) async fn write_at(&mut self, pos: u64, data: &[u8]) -> io::Result<()> {
        if self.skip_held {
            let held = self.upload.state().stored();
            let skip = usize::try_from(held.saturating_sub(pos))
                .unwrap_or(usize::MAX)
                .min(data.len());
            return self.write(pos + skip as u64, &data[skip..], true).await;
        }
        self.write(pos, data, true).await
    }

    /// From now on, bytes written below what the upload holds are dropped,
    /// not written over what it holds (GCS: a chunk that overlaps the held
    /// bytes adds only the new ones). Dropped bytes are not counted in
    /// `bytes_received`.
    pub(crate) fn skip_held(&mut self) {
        self.skip_held = true;
    }

    /// Declares a deferred length. The caller checked it is acceptable.
    pub(crate) fn set_total(&mut self, total: u64) {
        self.upload.state().meta.total = Some(total);
        self.dirty = true;
    }

    /// Moves the expiry (unix milliseconds) of an upload that has one.
    pub(crate) fn refresh_expiry(&mut self, at_ms: u64) {
        let mut st = self.upload.state();
        if st.meta.expires_at_ms.is_some() {
            st.meta.expires_at_ms = Some(at_ms);
            self.dirty = true;
        }
    }

    /// `write_at`; `count` adds the bytes to `bytes_received` (body bytes do,
    /// bytes copied from other uploads do not).
    async fn write(&mut self, pos: u64, data: &[u8], count: bool) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let (file_len, stored) = {
            let st = self.upload.state();
            (st.file_len, st.stored())
        };
        if pos > stored {
            return Err(io::Error::other("write beyond the stored bytes"));
        }
        let len = data.len() as u64;
        let write_behind = self.upload.write_behind;
        // The part that lands inside the file, or all of it without write-behind.
        let to_file = if write_behind == 0 {
            data.len()
        } else {
            usize::try_from(file_len.saturating_sub(pos))
                .unwrap_or(usize::MAX)
                .min(data.len())
        };
        if to_file > 0 {
            self.file.seek(SeekFrom::Start(pos)).await?;
            self.file.write_all(&data[..to_file]).await?;
            self.file.flush().await?;
        }
        let over = {
            let mut st = self.upload.state();
            if count {
                st.bytes_received += len;
            }
            if write_behind == 0 {
                st.file_len = st.file_len.max(pos + len);
                0
            } else {
                let rest = &data[to_file..];
                if !rest.is_empty() {
                    let bpos = usize::try_from(pos + to_file as u64 - st.file_len)
                        .map_err(io::Error::other)?;
                    let overlap = st.buffer.len().saturating_sub(bpos).min(rest.len());
                    st.buffer[bpos..bpos + overlap].copy_from_slice(&rest[..overlap]);
                    st.buffer.extend_from_slice(&rest[overlap..]);
                }
                let w = usize::try_from(write_behind).unwrap_or(usize::MAX);
                st.buffer.len().saturating_sub(w)
            }
        };
        if over > 0 {
            flush_front(self.upload, &mut self.file, over, self.crashed).await?;
        }
        Ok(())
    }

    /// On a server with all-or-nothing appends, drops what a request whose
    /// body broke off wrote beyond `stored_before` (the upload's offset when
    /// the request began) and returns true; otherwise keeps it (false).
    /// `bytes_received` still counts the dropped bytes: they crossed the wire.
    pub(crate) async fn rollback_broken(&mut self, stored_before: u64) -> io::Result<bool> {
        if !self.upload.atomic_appends {
            return Ok(false);
        }
        self.truncate(stored_before).await?;
        Ok(true)
    }

    /// Cuts the stored bytes back to `len` (nothing when it holds no more),
    /// in the write-behind buffer and in the file.
    pub(crate) async fn truncate(&mut self, len: u64) -> io::Result<()> {
        let cut_file = {
            let mut st = self.upload.state();
            if len >= st.stored() {
                return Ok(());
            }
            if len >= st.file_len {
                let keep = usize::try_from(len - st.file_len).map_err(io::Error::other)?;
                st.buffer.truncate(keep);
                false
            } else {
                st.buffer.clear();
                st.file_len = len;
                true
            }
        };
        if cut_file {
            self.file.set_len(len).await?;
        }
        Ok(())
    }

    /// Records completion when every byte is stored (for IETF uploads only
    /// through [`ChunkWriter::finish_complete`]): flushes the write-behind
    /// buffer and marks the metadata complete. Writes changed metadata.
    /// Returns the final view.
    pub(crate) async fn finish(self) -> io::Result<Snapshot> {
        self.finish_inner(false).await
    }

    /// Like [`ChunkWriter::finish`], but completes an IETF upload too (the
    /// request said `Upload-Complete: ?1`). The caller set the total to the
    /// stored length.
    pub(crate) async fn finish_complete(self) -> io::Result<Snapshot> {
        self.finish_inner(true).await
    }

    async fn finish_inner(mut self, explicit: bool) -> io::Result<Snapshot> {
        let snap = self.upload.snapshot();
        let auto = self.upload.state().meta.auto_complete();
        let done = !snap.complete
            && (auto || explicit)
            && snap.total.is_some_and(|total| snap.stored >= total);
        if !done && !self.dirty {
            return Ok(snap);
        }
        if done {
            flush_front(self.upload, &mut self.file, usize::MAX, self.crashed).await?;
        }
        if self.crashed.load(Ordering::SeqCst) {
            // A crashed process answers nothing; above all not "complete"
            // for bytes it never wrote (the handler would reply success).
            if done {
                return Err(io::Error::other("the server crashed"));
            }
            return Ok(snap);
        }
        let meta = {
            let mut st = self.upload.state();
            if st.deleted {
                return Ok(snap);
            }
            st.meta.complete |= done;
            st.meta.clone()
        };
        write_meta(&self.upload.json, &meta).await?;
        if done {
            tracing::info!(id = %self.upload.id, total = ?meta.total, "upload complete");
        }
        Ok(self.upload.snapshot())
    }
}

impl Drop for ChunkWriter<'_> {
    fn drop(&mut self) {
        self.upload.recount();
    }
}

async fn write_meta(path: &Path, meta: &Meta) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(meta).map_err(io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    tokio::fs::write(&tmp, json).await?;
    tokio::fs::rename(&tmp, path).await
}

/// All uploads of one server instance, over one directory.
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
    limits: StoreLimits,
    write_behind: u64,
    atomic_appends: bool,
    /// The books: every upload in `uploads` counted once.
    usage: Arc<Mutex<Usage>>,
    uploads: Mutex<HashMap<String, Arc<Upload>>>,
    /// Ids of uploads this instance deleted because they expired or their
    /// GCS session was cancelled (-> 410), and why.
    gone: Mutex<HashMap<String, Gone>>,
    crashed: AtomicBool,
}

/// Metadata given when an upload is created.
#[derive(Debug, Clone, Default)]
pub(crate) struct NewUpload {
    /// `None` for a deferred length.
    pub(crate) total: Option<u64>,
    pub(crate) filename: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) protocol: Protocol,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) raw_metadata: Option<String>,
    pub(crate) concat: Option<Concat>,
    pub(crate) expires_at_ms: Option<u64>,
}

impl Store {
    /// Opens (and creates if missing) the store directory. Call
    /// [`Store::load_existing`] before serving, so uploads already in the
    /// directory count against the limits.
    pub(crate) fn open(dir: PathBuf, limits: StoreLimits, write_behind: u64) -> io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Store {
            dir,
            limits,
            write_behind,
            atomic_appends: false,
            usage: Arc::new(Mutex::new(Usage::default())),
            uploads: Mutex::new(HashMap::new()),
            gone: Mutex::new(HashMap::new()),
            crashed: AtomicBool::new(false),
        })
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Upload>>> {
        self.uploads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The same store with all-or-nothing appends (see
    /// [`ChunkWriter::rollback_broken`]).
    pub(crate) fn with_atomic_appends(mut self, on: bool) -> Self {
        self.atomic_appends = on;
        self
    }

    /// Whether a body that breaks off stores none of its bytes.
    pub(crate) fn atomic_appends(&self) -> bool {
        self.atomic_appends
    }

    /// Largest upload accepted.
    pub(crate) fn max_size(&self) -> u64 {
        self.limits.max_size
    }

    /// The limits this store enforces.
    pub(crate) fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// The books now.
    pub(crate) fn usage(&self) -> Usage {
        *lock(&self.usage)
    }

    /// Bytes uploads may still add before the total size is reached.
    pub(crate) fn headroom(&self) -> u64 {
        self.limits
            .max_total_size
            .saturating_sub(self.usage().bytes)
    }

    /// Free space on the store's disk, or `None` when it cannot be known
    /// (logged; the free-space margin is then not enforced).
    pub(crate) async fn available_disk(&self) -> Option<u64> {
        let dir = self.dir.clone();
        match tokio::task::spawn_blocking(move || fs4::available_space(dir)).await {
            Ok(Ok(bytes)) => Some(bytes),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the free disk space");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the free disk space");
                None
            }
        }
    }

    /// True when the disk has less free space than the margin (appends then
    /// wait: 503 + `Retry-After`).
    pub(crate) async fn disk_short(&self) -> bool {
        let margin = self.limits.min_free_disk;
        margin > 0
            && self
                .available_disk()
                .await
                .is_some_and(|free| free < margin)
    }

    /// The flag writers check before touching the disk after a crash.
    pub(crate) fn crashed(&self) -> &AtomicBool {
        &self.crashed
    }

    /// Marks the store crashed: nothing buffered is written any more.
    pub(crate) fn crash(&self) {
        self.crashed.store(true, Ordering::SeqCst);
    }

    fn paths(&self, id: &str) -> (PathBuf, PathBuf) {
        debug_assert!(is_valid_id(id));
        (
            self.dir.join(format!("{id}.bin")),
            self.dir.join(format!("{id}.json")),
        )
    }

    /// An upload entry; `counted` is the share already in the books.
    fn entry(&self, id: String, meta: Meta, file_len: u64, counted: Share) -> Upload {
        let (bin, json) = self.paths(&id);
        Upload {
            id,
            bin,
            json,
            write_behind: self.write_behind,
            atomic_appends: self.atomic_appends,
            usage: self.usage.clone(),
            io: tokio::sync::Mutex::new(()),
            state: Mutex::new(UploadState {
                meta,
                file_len,
                buffer: Vec::new(),
                bytes_received: 0,
                deleted: false,
                counted,
            }),
        }
    }

    /// Admits an upload counting `share` and reserves it in the books, or
    /// says which limit refuses it. `available` is the free disk space.
    fn admit(&self, share: Share, available: Option<u64>) -> Result<(), Refusal> {
        let limits = self.limits;
        let mut usage = lock(&self.usage);
        if share.unfinished > 0 && usage.unfinished >= limits.max_unfinished {
            return Err(Refusal::TooManyUnfinished {
                limit: limits.max_unfinished,
            });
        }
        if usage.bytes.saturating_add(share.bytes) > limits.max_total_size {
            return Err(Refusal::OverTotal {
                limit: limits.max_total_size,
                used: usage.bytes,
                wanted: share.bytes,
            });
        }
        if let Some(available) = available
            && available < share.bytes.saturating_add(limits.min_free_disk)
        {
            return Err(Refusal::DiskShort {
                available,
                wanted: share.bytes,
                margin: limits.min_free_disk,
            });
        }
        usage.add(share);
        Ok(())
    }

    /// Deletes every known upload whose expiry has passed (to make room
    /// when the unfinished-uploads limit is reached).
    async fn expire_overdue(&self) -> io::Result<()> {
        let now = crate::expiry::now_ms();
        let overdue: Vec<String> = self
            .map()
            .values()
            .filter(|u| u.snapshot().is_expired(now))
            .map(|u| u.id.clone())
            .collect();
        for id in overdue {
            self.expire(&id).await?;
        }
        Ok(())
    }

    /// Creates a new upload with a fresh id, within the limits: refused when
    /// the unfinished uploads are at their limit (after deleting expired
    /// ones), when its declared length would take the store past its total
    /// size, or when the disk would keep less than the free-space margin.
    pub(crate) async fn create(&self, new: NewUpload) -> Result<Arc<Upload>, CreateError> {
        let id = new_id()?;
        let (bin, json) = self.paths(&id);
        let meta = Meta {
            total: new.total,
            filename: new.filename,
            content_type: new.content_type,
            complete: new.total == Some(0) && new.protocol != Protocol::Ietf,
            protocol: new.protocol,
            metadata: new.metadata,
            raw_metadata: new.raw_metadata,
            concat: new.concat,
            expires_at_ms: new.expires_at_ms,
        };
        let share = Share::of(&meta, 0);
        let available = if self.limits.min_free_disk > 0 {
            self.available_disk().await
        } else {
            None
        };
        match self.admit(share, available) {
            Ok(()) => {}
            Err(Refusal::TooManyUnfinished { .. }) => {
                self.expire_overdue().await?;
                self.admit(share, available).map_err(CreateError::Refused)?;
            }
            Err(refusal) => return Err(CreateError::Refused(refusal)),
        }
        let created = async {
            tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&bin)
                .await?;
            write_meta(&json, &meta).await
        }
        .await;
        if let Err(e) = created {
            lock(&self.usage).remove(share);
            return Err(e.into());
        }
        let upload = Arc::new(self.entry(id.clone(), meta, 0, share));
        self.map().insert(id, upload.clone());
        Ok(upload)
    }

    /// The upload `id`, loading its state from disk on first touch (another
    /// instance may have created it). `None` for invalid or unknown ids.
    pub(crate) async fn get(&self, id: &str) -> io::Result<Option<Arc<Upload>>> {
        if !is_valid_id(id) {
            return Ok(None);
        }
        if let Some(u) = self.map().get(id) {
            return Ok(Some(u.clone()));
        }
        let (bin, json) = self.paths(id);
        let raw = match tokio::fs::read(&json).await {
            Ok(raw) => raw,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut meta: Meta = serde_json::from_slice(&raw)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let file_len = match tokio::fs::metadata(&bin).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        meta.complete = meta.complete
            || (meta.auto_complete() && meta.total.is_some_and(|total| file_len >= total));
        let upload = Arc::new(self.entry(id.to_owned(), meta, file_len, Share::default()));
        let (upload, fresh) = {
            let mut map = self.map();
            match map.get(id) {
                Some(known) => (known.clone(), false),
                None => {
                    map.insert(id.to_owned(), upload.clone());
                    (upload, true)
                }
            }
        };
        if fresh {
            // First sight of an upload on disk: it enters the books now.
            upload.recount();
        }
        Ok(Some(upload))
    }

    /// Removes an upload and its files. False when it does not exist.
    pub(crate) async fn delete(&self, id: &str) -> io::Result<bool> {
        let Some(upload) = self.get(id).await? else {
            return Ok(false);
        };
        upload.state().deleted = true;
        upload.recount();
        self.map().remove(id);
        for path in [&upload.bin, &upload.json] {
            match tokio::fs::remove_file(path).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Deletes an upload found expired and remembers its id, so later
    /// requests get 410 instead of 404.
    pub(crate) async fn expire(&self, id: &str) -> io::Result<()> {
        self.delete(id).await?;
        lock(&self.gone).insert(id.to_owned(), Gone::Expired);
        tracing::info!(%id, "expired upload deleted");
        Ok(())
    }

    /// Deletes an upload whose GCS session was cancelled and remembers its
    /// id, so later requests get 410 instead of 404. False when it does not
    /// exist.
    pub(crate) async fn cancel(&self, id: &str) -> io::Result<bool> {
        if !self.delete(id).await? {
            return Ok(false);
        }
        lock(&self.gone).insert(id.to_owned(), Gone::Cancelled);
        Ok(true)
    }

    /// Why this instance deleted `id`, when it expired or was cancelled.
    pub(crate) fn gone(&self, id: &str) -> Option<Gone> {
        lock(&self.gone).get(id).copied()
    }

    /// True for an id this instance deleted because it expired.
    #[cfg(test)]
    fn was_expired(&self, id: &str) -> bool {
        self.gone(id) == Some(Gone::Expired)
    }

    /// Ids of every upload in the directory, sorted.
    async fn ids_on_disk(&self) -> io::Result<Vec<String>> {
        let mut ids = Vec::new();
        let mut dir = tokio::fs::read_dir(&self.dir).await?;
        while let Some(entry) = dir.next_entry().await? {
            let name = entry.file_name();
            if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json"))
                && is_valid_id(id)
            {
                ids.push(id.to_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Loads every upload already in the directory, so it counts against
    /// the limits. An unreadable upload is logged and skipped.
    pub(crate) async fn load_existing(&self) -> io::Result<()> {
        for id in self.ids_on_disk().await? {
            if let Err(e) = self.get(&id).await {
                tracing::warn!(%id, error = %e, "cannot load an upload of the store; not counted");
            }
        }
        let usage = self.usage();
        tracing::info!(
            bytes = usage.bytes,
            unfinished = usage.unfinished,
            "store loaded"
        );
        Ok(())
    }

    /// Every upload in the directory, sorted by id.
    pub(crate) async fn list(&self) -> io::Result<Vec<Snapshot>> {
        let ids = self.ids_on_disk().await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(u) = self.get(&id).await? {
                out.push(u.snapshot());
            }
        }
        Ok(out)
    }

    /// Flushes every write-behind buffer (graceful shutdown).
    pub(crate) async fn flush_all(&self) -> io::Result<()> {
        let uploads: Vec<Arc<Upload>> = self.map().values().cloned().collect();
        for u in uploads {
            if !u.state().deleted {
                u.flush_all(&self.crashed).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        let id = new_id().expect("id");
        assert!(is_valid_id(&id), "{id}");
        assert_ne!(id, new_id().expect("id"));
        assert!(!is_valid_id(&id.to_uppercase()));
        assert!(!is_valid_id("../../etc/passwd"));
        assert!(!is_valid_id(&id[1..]));
        assert!(!is_valid_id(&format!("{id}0")));
    }

    /// Limits that refuse nothing but uploads above 1 MiB.
    fn roomy() -> StoreLimits {
        StoreLimits {
            max_size: 1 << 20,
            max_total_size: u64::MAX,
            max_unfinished: u64::MAX,
            min_free_disk: 0,
        }
    }

    fn sized(total: Option<u64>) -> NewUpload {
        NewUpload {
            total,
            ..NewUpload::default()
        }
    }

    fn usage(bytes: u64, unfinished: u64) -> Usage {
        Usage { bytes, unfinished }
    }

    #[tokio::test]
    async fn the_books_follow_every_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().to_owned(), roomy(), 0).expect("open");
        let sized_up = store.create(sized(Some(10))).await.expect("create");
        assert_eq!(
            store.usage(),
            usage(10, 1),
            "a declared length counts at once"
        );
        let deferred = store.create(sized(None)).await.expect("create");
        assert_eq!(store.usage(), usage(10, 2));
        let mut w = deferred.writer(store.crashed()).await.expect("writer");
        w.write_at(0, b"12345").await.expect("write");
        drop(w);
        assert_eq!(
            store.usage(),
            usage(15, 2),
            "a deferred upload counts what it holds"
        );
        let mut w = deferred.writer(store.crashed()).await.expect("writer");
        w.set_total(8);
        w.finish().await.expect("finish");
        assert_eq!(store.usage(), usage(18, 2), "then its declared length");
        let mut w = sized_up.writer(store.crashed()).await.expect("writer");
        w.write_at(0, b"0123456789").await.expect("write");
        assert!(w.finish().await.expect("finish").complete);
        assert_eq!(
            store.usage(),
            usage(18, 1),
            "complete: no longer unfinished"
        );
        let empty = store.create(sized(Some(0))).await.expect("create");
        assert!(empty.snapshot().complete);
        assert_eq!(
            store.usage(),
            usage(18, 1),
            "an empty upload is complete at once"
        );

        // Another instance over the same directory counts what is there.
        let again = Store::open(dir.path().to_owned(), roomy(), 0).expect("open");
        again.load_existing().await.expect("load");
        assert_eq!(again.usage(), usage(18, 1));
        again.get(sized_up.id()).await.expect("get");
        assert_eq!(again.usage(), usage(18, 1), "counted once");

        assert!(store.delete(deferred.id()).await.expect("delete"));
        assert_eq!(store.usage(), usage(10, 0));
        assert!(store.delete(sized_up.id()).await.expect("delete"));
        assert_eq!(store.usage(), usage(0, 0));
    }

    #[tokio::test]
    async fn creations_past_a_limit_are_refused_and_reserve_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = StoreLimits {
            max_total_size: 100,
            max_unfinished: 2,
            ..roomy()
        };
        let store = Store::open(dir.path().to_owned(), limits, 0).expect("open");
        store.create(sized(Some(60))).await.expect("create");
        match store.create(sized(Some(41))).await {
            Err(CreateError::Refused(Refusal::OverTotal {
                limit: 100,
                used: 60,
                wanted: 41,
            })) => {}
            other => panic!("expected OverTotal, got {other:?}"),
        }
        store
            .create(sized(Some(40)))
            .await
            .expect("exactly at the limit");
        match store.create(sized(None)).await {
            Err(CreateError::Refused(Refusal::TooManyUnfinished { limit: 2 })) => {}
            other => panic!("expected TooManyUnfinished, got {other:?}"),
        }
        assert_eq!(store.usage(), usage(100, 2), "refusals reserve nothing");
        assert_eq!(
            store.list().await.expect("list").len(),
            2,
            "nor create files"
        );

        // An expired upload makes room when the limit is reached.
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(
            dir.path().to_owned(),
            StoreLimits {
                max_unfinished: 1,
                ..roomy()
            },
            0,
        )
        .expect("open");
        let old = store
            .create(NewUpload {
                total: Some(5),
                expires_at_ms: Some(1),
                ..NewUpload::default()
            })
            .await
            .expect("create");
        store
            .create(sized(Some(5)))
            .await
            .expect("the expired one made room");
        assert!(store.was_expired(old.id()));

        // The disk margin: no disk has 2^60 bytes free.
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(
            dir.path().to_owned(),
            StoreLimits {
                min_free_disk: 1 << 60,
                ..roomy()
            },
            0,
        )
        .expect("open");
        assert!(matches!(
            store.create(sized(Some(1))).await,
            Err(CreateError::Refused(Refusal::DiskShort { wanted: 1, margin, .. })) if margin == 1 << 60
        ));
        assert!(store.disk_short().await);
    }

    #[tokio::test]
    async fn write_behind_buffers_and_flushes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().to_owned(), roomy(), 4).expect("open");
        let up = store.create(sized(Some(10))).await.expect("create");
        let mut w = up.writer(store.crashed()).await.expect("writer");
        w.write_at(0, b"abcdef").await.expect("write");
        assert_eq!(w.snapshot().stored, 6);
        assert_eq!(up.state().file_len, 2);
        // Rewrite overlapping the file and the buffer, then extend.
        w.write_at(1, b"bcdefgh").await.expect("write");
        assert_eq!(up.state().file_len, 4);
        assert_eq!(up.state().buffer, b"efgh");
        w.write_at(8, b"ij").await.expect("write");
        let snap = w.finish().await.expect("finish");
        assert!(snap.complete);
        assert_eq!(snap.bytes_received, 15);
        let on_disk = std::fs::read(dir.path().join(format!("{}.bin", snap.id))).expect("read");
        assert_eq!(on_disk, b"abcdefghij");
    }
}
