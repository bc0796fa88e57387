//! Where the bytes come from: ranges are read lazily and streamed, so memory
//! stays bounded by the read block, whatever the file or chunk size.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chunkup_core::ByteRange;
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::Error;

/// Size of one read from the source.
const READ_BLOCK: usize = 256 * 1024;

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
        let path = self.path.clone();
        let failure = self.failure.clone();
        let expected = self.size;
        let opened = async move {
            let mut file = tokio::fs::File::open(&path).await?;
            let len = file.metadata().await?.len();
            if len != expected {
                let changed = Error::SourceChanged {
                    path: path.clone(),
                    expected,
                };
                *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(changed);
                return Err(std::io::Error::other("the source changed size"));
            }
            file.seek(SeekFrom::Start(range.start)).await?;
            Ok(ReaderStream::with_capacity(
                file.take(range.len()),
                READ_BLOCK,
            ))
        };
        futures_util::stream::once(opened)
            .flat_map(|opened| match opened {
                Ok(stream) => stream.boxed(),
                Err(e) => futures_util::stream::once(async { Err(e) }).boxed(),
            })
            .boxed()
    }

    fn take_failure(&self) -> Option<Error> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
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
