//! Where the bytes come from: ranges are read lazily and streamed, so memory
//! stays bounded by a few read blocks, whatever the file or chunk size.
//!
//! A file range is read on one blocking thread straight into the buffers that
//! go to the socket: no byte is copied in user space between the page cache
//! and the network (`tokio::fs::File` + `ReaderStream` copied every byte once
//! more, 74% of an upload's user-space instructions, docs/BENCHMARKS.md). The
//! reader runs at most [`READ_AHEAD`] blocks ahead of the socket, and the
//! blocks go back to a small process-wide spare list once the network has
//! written them, so an upload allocates (and zeroes) a few blocks, not one
//! per block or per chunk.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chunkup_core::ByteRange;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use crate::Error;

/// Size of one read from the source. Each block is one hand-over between
/// the reader thread and the socket's task (a wake-up each way): 1 MiB
/// blocks cost 10-15% less CPU per GiB than 256 KiB ones on loopback, close
/// to curl's (docs/BENCHMARKS.md).
const READ_BLOCK: usize = 1024 * 1024;

/// Blocks read ahead of the socket (queued while it writes another).
const READ_AHEAD: usize = 1;

/// A byte stream for a request body.
pub type BodyStream = futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>;

/// A source of bytes to upload.
pub trait Source: Send + Sync {
    /// Total size in bytes.
    fn size(&self) -> u64;
    /// A stream of exactly the bytes in `range`; a short source is an error.
    fn stream(&self, range: ByteRange) -> BodyStream;
    /// A failure the last stream met, if the source itself is at fault (so the
    /// driver stops instead of retrying).
    fn take_failure(&self) -> Option<Error>;
    /// Called before a body of `range` is streamed: a source whose length
    /// is learned at its end (a [`crate::StreamSource`]) reads up to
    /// `range.end` and answers where it ended if that is inside the range.
    /// Sources of known size have nothing to do.
    fn fill(
        &self,
        range: ByteRange,
    ) -> impl std::future::Future<Output = std::io::Result<Option<u64>>> + Send {
        let _ = range;
        std::future::ready(Ok(None))
    }
}

/// A file on disk, identified for resuming by canonical path, size and
/// modification time.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
    size: u64,
    modified_ms: Option<i64>,
    failure: Arc<Mutex<Option<Error>>>,
}

impl FileSource {
    /// Opens `path` to learn its size; the file is reopened for each range.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let source_error = |source| Error::Source {
            path: path.to_path_buf(),
            source,
        };
        let path = std::fs::canonicalize(path).map_err(source_error)?;
        let meta = std::fs::metadata(&path).map_err(source_error)?;
        if !meta.is_file() {
            return Err(source_error(std::io::Error::other("not a regular file")));
        }
        let modified_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_millis()).ok());
        Ok(FileSource {
            path,
            size: meta.len(),
            modified_ms,
            failure: Arc::default(),
        })
    }

    /// The canonical path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Modification time in milliseconds since the Unix epoch, if known.
    pub fn modified_ms(&self) -> Option<i64> {
        self.modified_ms
    }

    /// The file name for `Content-Disposition`.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map_or_else(|| "upload.bin".into(), |n| n.to_string_lossy().into_owned())
    }
}

impl Source for FileSource {
    fn size(&self) -> u64 {
        self.size
    }

    fn stream(&self, range: ByteRange) -> BodyStream {
        let reader = RangeReader {
            path: self.path.clone(),
            expected: self.size,
            range,
            failure: self.failure.clone(),
        };
        // The reader starts on the first poll: a body that is never sent
        // reads nothing.
        let mut reader = Some(reader);
        futures_util::stream::once(async move {
            let (tx, rx) = mpsc::channel(READ_AHEAD);
            if let Some(reader) = reader.take() {
                tokio::task::spawn_blocking(move || reader.run(&tx));
            }
            futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            })
        })
        .flatten()
        .boxed()
    }

    fn take_failure(&self) -> Option<Error> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// Reads one range of a file on a blocking thread.
struct RangeReader {
    path: PathBuf,
    expected: u64,
    range: ByteRange,
    failure: Arc<Mutex<Option<Error>>>,
}

impl RangeReader {
    /// Sends the range's bytes block by block, then ends; an error ends the
    /// stream after being sent. Stops early when the body is dropped.
    fn run(self, tx: &mpsc::Sender<std::io::Result<Bytes>>) {
        let result = self.read_into(tx);
        if let Err(error) = result {
            let _ = tx.blocking_send(Err(error));
        }
    }

    fn read_into(&self, tx: &mpsc::Sender<std::io::Result<Bytes>>) -> std::io::Result<()> {
        let mut file = std::fs::File::open(&self.path)?;
        if file.metadata()?.len() != self.expected {
            return Err(self.changed("the source changed size"));
        }
        file.seek(SeekFrom::Start(self.range.start))?;
        let block = usize::try_from(self.range.len())
            .unwrap_or(usize::MAX)
            .min(READ_BLOCK);
        let mut left = self.range.len();
        while left > 0 {
            let mut buf = take_block(block);
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
            let mut filled = 0;
            while filled < want {
                match file.read(&mut buf[filled..want]) {
                    Ok(0) => return Err(self.changed("the source ended early")),
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            left -= filled as u64;
            if tx.blocking_send(Ok(lend(buf, filled))).is_err() {
                return Ok(()); // the request was dropped
            }
        }
        Ok(())
    }

    /// Records that the file is not the one being uploaded any more.
    fn changed(&self, what: &str) -> std::io::Error {
        let changed = Error::SourceChanged {
            path: self.path.clone(),
            expected: self.expected,
        };
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(changed);
        std::io::Error::other(what.to_owned())
    }
}

/// Full-size read blocks no stream is using, kept for the next stream (the
/// next chunk): a fresh block costs its page faults and zeroing, which over
/// 1 GiB upload in 64 MiB chunks came to 10,000 page faults.
static SPARE_BLOCKS: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// Spare blocks kept at most (their memory stays with the process).
const SPARE_LIMIT: usize = 4;

/// A buffer for `len` bytes: a spare full-size block, or a new one.
fn take_block(len: usize) -> Vec<u8> {
    if len == READ_BLOCK {
        let spare = SPARE_BLOCKS.lock().unwrap_or_else(|e| e.into_inner()).pop();
        if let Some(block) = spare {
            return block;
        }
    }
    vec![0; len]
}

/// The first `len` bytes of `buf`, lent to the network as [`Bytes`]; a full
/// block goes back to the spares when the last reference is dropped. Nothing
/// waits for it to come back (a body's consumer may keep the pieces): the
/// bounded channel to the socket is what holds the reader back.
fn lend(buf: Vec<u8>, len: usize) -> Bytes {
    Bytes::from_owner(Lent { buf, len })
}

/// A read block on its way to the socket.
struct Lent {
    buf: Vec<u8>,
    len: usize,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if self.buf.len() == READ_BLOCK {
            let mut spare = SPARE_BLOCKS.lock().unwrap_or_else(|e| e.into_inner());
            if spare.len() < SPARE_LIMIT {
                spare.push(std::mem::take(&mut self.buf));
            }
        }
    }
}

/// Counts bytes as they pass, reporting the running total.
pub(crate) fn counted(
    stream: BodyStream,
    mut report: impl FnMut(u64) + Send + 'static,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let mut sent = 0u64;
    stream.inspect(move |item| {
        if let Ok(bytes) = item {
            sent += bytes.len() as u64;
            report(sent);
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::io::Write;

    use futures_util::TryStreamExt;

    use super::*;

    /// A file of `len` deterministic bytes.
    fn file_of(len: usize) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("source.bin");
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(&data))
            .expect("write the source");
        (dir, path, data)
    }

    fn range(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    async fn read(source: &FileSource, range: ByteRange) -> std::io::Result<Vec<Bytes>> {
        source.stream(range).try_collect().await
    }

    #[tokio::test]
    async fn streams_exactly_the_bytes_of_each_range() {
        let block = READ_BLOCK as u64;
        let len = 3 * block + 1234;
        let (_dir, path, data) = file_of(len as usize);
        let source = FileSource::open(&path).expect("open");
        for r in [
            range(0, len),
            range(1, 300_000),
            range(1, 2 * block + 7),
            range(block - 1, block + 1),
            range(2 * block, 3 * block),
            range(len - 5, len),
            range(7, 8),
        ] {
            let pieces = read(&source, r).await.expect("read the range");
            assert!(
                pieces
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= READ_BLOCK)
            );
            let got: Vec<u8> = pieces.concat();
            assert_eq!(got, &data[r.start as usize..r.end as usize], "{r:?}");
        }
        assert!(source.take_failure().is_none());
    }

    #[tokio::test]
    async fn a_long_range_holds_only_a_few_blocks_at_a_time() {
        let len = 12 * READ_BLOCK + 5;
        let (_dir, path, data) = file_of(len);
        let source = FileSource::open(&path).expect("open");
        let mut buffers = HashSet::new();
        let mut got = Vec::with_capacity(len);
        let mut stream = source.stream(range(0, len as u64));
        // Each piece is dropped before the next is asked for, as the socket does.
        while let Some(piece) = stream.try_next().await.expect("read") {
            buffers.insert(piece.as_ptr() as usize);
            got.extend_from_slice(&piece);
        }
        assert_eq!(got, data);
        // One being read, one queued, one the consumer is done with but has
        // not handed back yet, and the spares (shared with the other tests).
        assert!(
            buffers.len() <= READ_AHEAD + 2 + SPARE_LIMIT,
            "{} distinct buffers for {} blocks",
            buffers.len(),
            len.div_ceil(READ_BLOCK)
        );
    }

    #[tokio::test]
    async fn a_consumer_may_keep_every_piece() {
        // Nothing waits for buffers to come back: a consumer that holds the
        // whole body (as a buffering transport would) still gets all of it.
        let len = 5 * READ_BLOCK + 3;
        let (_dir, path, data) = file_of(len);
        let source = FileSource::open(&path).expect("open");
        let pieces = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            read(&source, range(0, len as u64)),
        )
        .await
        .expect("the reader never waits on the consumer's buffers")
        .expect("read");
        assert_eq!(pieces.len(), 6);
        assert_eq!(pieces.concat(), data);
    }

    #[tokio::test]
    async fn a_file_that_changed_size_is_source_changed() {
        let (_dir, path, _) = file_of(100_000);
        let source = FileSource::open(&path).expect("open");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(50_000))
            .expect("truncate");
        let error = read(&source, range(0, 10))
            .await
            .expect_err("a changed file");
        assert!(error.to_string().contains("changed size"), "{error}");
        match source.take_failure() {
            Some(Error::SourceChanged { expected, .. }) => assert_eq!(expected, 100_000),
            other => panic!("expected SourceChanged, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_file_that_ends_early_while_read_is_source_changed() {
        // The size matched when the range was opened, then the bytes ran out
        // (the file was truncated while it was being read).
        let (_dir, path, _) = file_of(1000);
        let failure = Arc::default();
        let reader = RangeReader {
            path,
            expected: 1000,
            range: range(900, 1100),
            failure: Arc::clone(&failure),
        };
        let (tx, mut rx) = mpsc::channel(READ_AHEAD);
        tokio::task::spawn_blocking(move || reader.run(&tx))
            .await
            .expect("the reader ends");
        let mut items = Vec::new();
        while let Some(item) = rx.recv().await {
            items.push(item);
        }
        assert!(
            items.last().is_some_and(|last| last
                .as_ref()
                .is_err_and(|e| e.to_string().contains("ended early"))),
            "{items:?}"
        );
        let failure = failure.lock().unwrap_or_else(|e| e.into_inner()).take();
        assert!(
            matches!(failure, Some(Error::SourceChanged { .. })),
            "{failure:?}"
        );
    }

    #[tokio::test]
    async fn a_missing_file_is_an_error_not_a_short_body() {
        let (dir, path, _) = file_of(10);
        let source = FileSource::open(&path).expect("open");
        drop(dir);
        let error = read(&source, range(0, 10))
            .await
            .expect_err("the file is gone");
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound, "{error}");
    }
}
