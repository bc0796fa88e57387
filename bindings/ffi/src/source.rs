//! Bytes the app reads itself (an Android `content://` Uri, an
//! `InputStream`, a Swift `InputStream`, a Python file object): the
//! [`UploadSource`] foreign trait and its adapters to the client's
//! [`chunkup::Source`].
//!
//! Every call into the app happens while a body is prepared
//! ([`chunkup::Source::fill`]), inside a poll of the caller's executor
//! (see [`crate::polled`]); the bytes are then kept for the body's stream,
//! which the HTTP client may poll on the bindings' own threads. So a body
//! is read whole before it is sent: memory is about a chunk per request in
//! flight (two chunks for one upload), as for the client's
//! [`chunkup::StreamSource`].
//!
//! - A source that can read at any offset (`seekable`) and knows its length
//!   is read range by range ([`ReadAtSource`]): it survives a server that
//!   lost bytes, and with a fingerprint it is resumed after a restart from
//!   the server's offset.
//! - Any other source is read once, in order, by the client's
//!   [`chunkup::StreamSource`]: only the bytes the server has not
//!   acknowledged are kept, and a server that asks for older ones ends the
//!   upload ([`chunkup::Error::StreamRewound`], kind `Source`). It is never
//!   resumed after a restart (it cannot be read from an offset).

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use chunkup::core::{ByteRange, SourceInfo};
use chunkup::{BodyStream, StreamSource};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, ReadBuf};

/// Bytes asked of the app at a time.
const READ_BLOCK: u32 = 1024 * 1024;

/// What an [`UploadSource`] says about itself, asked once when the upload
/// starts (on the caller's executor: no IO on the thread that built the
/// `Upload`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SourceDescription {
    /// The size in bytes, if known before reading. `None` is a deferred
    /// length, learned at the end: only protocols that can announce it
    /// with the last chunk take it (tus creation-defer-length, IETF,
    /// Google-style sessions); ranged and S3 refuse it before sending.
    pub length: Option<u64>,
    /// The name announced to the server and kept in the resume record
    /// (`Content-Disposition`, tus `filename`); the options' `file_name`
    /// replaces it.
    pub file_name: String,
    /// The app's identity for these bytes, for resuming after a restart:
    /// stable for the same content and different for different content —
    /// e.g. the Uri with its size and last-modified time. With the length
    /// and the endpoint it is the resume key, so two sources with different
    /// fingerprints never continue each other's upload. `None`: never
    /// remembered, never matched to another upload. Only a `seekable`
    /// source of known length can be resumed.
    #[uniffi(default = None)]
    pub fingerprint: Option<String>,
    /// `read` takes any offset (a Uri reopened at an offset, a file
    /// channel). `false`: reads come in order from 0, each where the last
    /// ended (an `InputStream`).
    #[uniffi(default = false)]
    pub seekable: bool,
}

/// An error a foreign [`UploadSource`] throws. It ends the upload with the
/// typed `UploadError` (kind `Source`, or `SourceChanged`); it is not
/// retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum SourceError {
    /// The bytes could not be read.
    #[error("{detail}")]
    Failed { detail: String },
    /// The content is not the one being uploaded any more (another size, a
    /// newer modification); continuing would store bytes that never
    /// existed together.
    #[error("{detail}")]
    Changed { detail: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for SourceError {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        SourceError::Failed {
            detail: error.reason,
        }
    }
}

/// Where the bytes of an upload come from when they are not a file at a
/// path (`Upload::from_source`). Called on the thread that awaits
/// `start()`; `read` is async (a Kotlin `suspend fun`, a Swift `async`
/// function, a Python coroutine): move blocking IO off the caller's
/// executor yourself.
#[uniffi::export(with_foreign)]
#[async_trait::async_trait]
pub trait UploadSource: Send + Sync {
    /// Its length, name, identity and whether it can read at any offset.
    fn describe(&self) -> Result<SourceDescription, SourceError>;

    /// Up to `max_length` bytes from `offset` (fewer only at the end); an
    /// empty answer is the end of the source. A source that is not
    /// `seekable` is asked in order from 0, each `offset` where the last
    /// read ended.
    async fn read(&self, offset: u64, max_length: u32) -> Result<Vec<u8>, SourceError>;
}

/// The client's error for a failed foreign read of `name`.
fn source_error(name: &str, expected: Option<u64>, error: SourceError) -> chunkup::Error {
    match (error, expected) {
        (SourceError::Changed { .. }, Some(expected)) => chunkup::Error::SourceChanged {
            path: PathBuf::from(name),
            expected,
        },
        (SourceError::Changed { detail } | SourceError::Failed { detail }, _) => {
            chunkup::Error::Source {
                path: PathBuf::from(name),
                source: io::Error::other(detail),
            }
        }
    }
}

/// An [`UploadSource`] as the client's [`chunkup::Source`], described.
pub(crate) struct ForeignSource {
    /// What the session is told: size and identity.
    pub(crate) info: SourceInfo,
    /// The name announced to the server.
    pub(crate) file_name: String,
    reader: Reader,
}

enum Reader {
    Ranges(ReadAtSource),
    Stream(Box<SequentialSource>),
}

impl ForeignSource {
    /// Asks `source` to describe itself and picks how to read it. Requests
    /// in flight at once: `parallel` (parallel parts).
    pub(crate) fn describe(
        source: Arc<dyn UploadSource>,
        parallel: u32,
    ) -> Result<Self, chunkup::Error> {
        let description = source
            .describe()
            .map_err(|e| source_error("the upload source", None, e))?;
        let name = description.file_name.clone();
        let reader = match description.length {
            Some(length) if description.seekable => Reader::Ranges(ReadAtSource {
                source,
                name: name.clone(),
                length,
                kept: Mutex::new(VecDeque::new()),
                keep: usize::try_from(parallel.max(1)).unwrap_or(1) + 1,
                failure: Mutex::new(None),
            }),
            length => Reader::Stream(Box::new(SequentialSource {
                inner: StreamSource::new(ForeignReader::new(source), name.clone()),
                length,
                name: name.clone(),
                failure: Mutex::new(None),
            })),
        };
        // Only bytes that can be read again from an offset may continue an
        // upload a restart left behind: a stream would have to be read
        // through (and held) up to the server's offset.
        let resumable = matches!(reader, Reader::Ranges(_));
        Ok(ForeignSource {
            info: SourceInfo {
                size: description.length,
                name: None,
                modified_ms: None,
                fingerprint: description.fingerprint.filter(|_| resumable),
            },
            file_name: name,
            reader,
        })
    }

    /// Whether an app fingerprint may name this source (see
    /// [`ForeignSource::describe`]).
    pub(crate) fn resumable(&self) -> bool {
        matches!(self.reader, Reader::Ranges(_))
    }
}

impl chunkup::Source for ForeignSource {
    fn size(&self) -> u64 {
        match &self.reader {
            Reader::Ranges(source) => source.length,
            Reader::Stream(source) => source.size(),
        }
    }

    fn stream(&self, range: ByteRange) -> BodyStream {
        match &self.reader {
            Reader::Ranges(source) => source.stream(range),
            Reader::Stream(source) => source.inner.stream(range),
        }
    }

    fn take_failure(&self) -> Option<chunkup::Error> {
        match &self.reader {
            Reader::Ranges(source) => take(&source.failure),
            Reader::Stream(source) => take(&source.failure).or_else(|| source.inner.take_failure()),
        }
    }

    async fn fill(&self, range: ByteRange) -> io::Result<Option<u64>> {
        match &self.reader {
            Reader::Ranges(source) => source.fill(range).await.map(|()| None),
            Reader::Stream(source) => source.fill(range).await,
        }
    }
}

fn take(failure: &Mutex<Option<chunkup::Error>>) -> Option<chunkup::Error> {
    failure.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// Records the failure that ends the upload; returns the error that fails
/// the request.
fn fail(failure: &Mutex<Option<chunkup::Error>>, error: chunkup::Error) -> io::Error {
    let message = error.to_string();
    *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    io::Error::other(message)
}

/// A seekable source of known length, read range by range. The ranges of
/// the last few bodies are kept (one per request that can be in flight,
/// and one more) so a body read for its checksum and then sent is read
/// from the app once.
struct ReadAtSource {
    source: Arc<dyn UploadSource>,
    name: String,
    length: u64,
    kept: Mutex<VecDeque<(ByteRange, Vec<Bytes>)>>,
    keep: usize,
    failure: Mutex<Option<chunkup::Error>>,
}

impl ReadAtSource {
    fn kept(&self) -> std::sync::MutexGuard<'_, VecDeque<(ByteRange, Vec<Bytes>)>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The kept bytes of `range`, if a kept body holds all of it.
    fn slices(&self, range: ByteRange) -> Option<Vec<Bytes>> {
        let kept = self.kept();
        let (held, pieces) = kept
            .iter()
            .rev()
            .find(|(held, _)| held.start <= range.start && range.end <= held.end)?;
        let mut at = held.start;
        let mut out = Vec::new();
        for piece in pieces {
            let piece_end = at + piece.len() as u64;
            if piece_end > range.start && at < range.end {
                let from = usize::try_from(range.start.saturating_sub(at)).ok()?;
                let to = usize::try_from(range.end.min(piece_end) - at).ok()?;
                out.push(piece.slice(from..to));
            }
            at = piece_end;
        }
        Some(out)
    }

    async fn fill(&self, range: ByteRange) -> io::Result<()> {
        if self.slices(range).is_some() {
            return Ok(()); // the same body again (a resend after a break)
        }
        if range.end > self.length {
            return Err(fail(
                &self.failure,
                chunkup::Error::SourceChanged {
                    path: PathBuf::from(&self.name),
                    expected: self.length,
                },
            ));
        }
        let mut pieces = Vec::new();
        let mut at = range.start;
        while at < range.end {
            let want = u32::try_from(range.end - at)
                .unwrap_or(u32::MAX)
                .min(READ_BLOCK);
            let bytes = self.source.read(at, want).await.map_err(|e| {
                fail(
                    &self.failure,
                    source_error(&self.name, Some(self.length), e),
                )
            })?;
            if bytes.is_empty() {
                // Shorter than it said: not the content being uploaded.
                return Err(fail(
                    &self.failure,
                    chunkup::Error::SourceChanged {
                        path: PathBuf::from(&self.name),
                        expected: self.length,
                    },
                ));
            }
            let mut bytes = Bytes::from(bytes);
            bytes.truncate(usize::try_from(range.end - at).unwrap_or(usize::MAX));
            at += bytes.len() as u64;
            pieces.push(bytes);
        }
        let mut kept = self.kept();
        kept.push_back((range, pieces));
        while kept.len() > self.keep {
            kept.pop_front();
        }
        Ok(())
    }

    fn stream(&self, range: ByteRange) -> BodyStream {
        match self.slices(range) {
            Some(pieces) => futures_util::stream::iter(pieces.into_iter().map(Ok)).boxed(),
            None => {
                let error = io::Error::other(format!(
                    "bytes {}..{} of {} were not read before sending",
                    range.start, range.end, self.name
                ));
                futures_util::stream::once(async move { Err(error) }).boxed()
            }
        }
    }
}

/// A source read once, in order, through the client's [`StreamSource`];
/// a length given up front is held to.
struct SequentialSource {
    inner: StreamSource<ForeignReader>,
    length: Option<u64>,
    name: String,
    failure: Mutex<Option<chunkup::Error>>,
}

impl SequentialSource {
    fn size(&self) -> u64 {
        self.length
            .unwrap_or_else(|| chunkup::Source::size(&self.inner))
    }

    async fn fill(&self, range: ByteRange) -> io::Result<Option<u64>> {
        let ended = chunkup::Source::fill(&self.inner, range).await?;
        match (ended, self.length) {
            // It ended before the length it announced.
            (Some(_), Some(expected)) => Err(fail(
                &self.failure,
                chunkup::Error::SourceChanged {
                    path: PathBuf::from(&self.name),
                    expected,
                },
            )),
            (ended, _) => Ok(ended),
        }
    }
}

type ReadFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, SourceError>> + Send>>;

/// An [`UploadSource`] as an [`AsyncRead`], read in order from 0.
struct ForeignReader {
    source: Arc<dyn UploadSource>,
    offset: u64,
    pending: Option<ReadFuture>,
    /// Bytes the app gave beyond what the last `poll_read` could take.
    leftover: Bytes,
}

impl ForeignReader {
    fn new(source: Arc<dyn UploadSource>) -> Self {
        ForeignReader {
            source,
            offset: 0,
            pending: None,
            leftover: Bytes::new(),
        }
    }
}

impl AsyncRead for ForeignReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.leftover.is_empty() {
            let pending = this.pending.get_or_insert_with(|| {
                let source = this.source.clone();
                let (offset, max) = (
                    this.offset,
                    u32::try_from(buf.remaining())
                        .unwrap_or(u32::MAX)
                        .min(READ_BLOCK),
                );
                Box::pin(async move { source.read(offset, max).await })
            });
            let read = ready!(pending.as_mut().poll(cx));
            this.pending = None;
            let bytes = read.map_err(io::Error::other)?;
            this.offset += bytes.len() as u64;
            this.leftover = Bytes::from(bytes);
        }
        let n = this.leftover.len().min(buf.remaining());
        buf.put_slice(&this.leftover.split_to(n));
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chunkup::Source;
    use futures_util::TryStreamExt;

    use super::*;

    /// An app's source over `data`, failing reads from `fail_at` on.
    struct AppSource {
        data: Vec<u8>,
        length: Option<u64>,
        seekable: bool,
        fingerprint: Option<String>,
        fail_at: Option<u64>,
        reads: AtomicUsize,
        last_end: Mutex<u64>,
    }

    fn app(data: Vec<u8>, length: Option<u64>, seekable: bool) -> AppSource {
        AppSource {
            data,
            length,
            seekable,
            fingerprint: Some("app".into()),
            fail_at: None,
            reads: AtomicUsize::new(0),
            last_end: Mutex::new(0),
        }
    }

    #[async_trait::async_trait]
    impl UploadSource for AppSource {
        fn describe(&self) -> Result<SourceDescription, SourceError> {
            Ok(SourceDescription {
                length: self.length,
                file_name: "app.bin".into(),
                fingerprint: self.fingerprint.clone(),
                seekable: self.seekable,
            })
        }

        async fn read(&self, offset: u64, max_length: u32) -> Result<Vec<u8>, SourceError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let mut last_end = self.last_end.lock().expect("not poisoned");
            assert!(
                self.seekable || offset == *last_end,
                "a one-shot source was asked for {offset}, it is at {last_end}"
            );
            if self.fail_at.is_some_and(|at| offset >= at) {
                return Err(SourceError::Failed {
                    detail: "the disk went away".into(),
                });
            }
            let start = usize::try_from(offset)
                .expect("a test offset")
                .min(self.data.len());
            // Reads stop at the failure, as a stream's would.
            let readable = self.fail_at.map_or(self.data.len(), |at| at as usize);
            let end = (start + max_length as usize)
                .min(self.data.len())
                .min(readable);
            *last_end = end as u64;
            Ok(self.data[start..end].to_vec())
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 997) as u8).collect()
    }

    fn range(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    async fn body(source: &ForeignSource, r: ByteRange) -> Vec<u8> {
        assert_eq!(source.fill(r).await.expect("fill"), None);
        let pieces: Vec<Bytes> = source.stream(r).try_collect().await.expect("stream");
        pieces.concat()
    }

    #[tokio::test]
    async fn a_seekable_source_is_read_range_by_range_and_kept_for_a_resend() {
        let bytes = data(3 * READ_BLOCK as usize + 17);
        let len = bytes.len() as u64;
        let app = Arc::new(app(bytes.clone(), Some(len), true));
        let source = ForeignSource::describe(app.clone(), 1).expect("describe");
        assert!(source.resumable());
        assert_eq!(source.info.size, Some(len));
        assert_eq!(source.info.fingerprint.as_deref(), Some("app"));
        // Any offset: the server's, after a restart.
        for r in [range(2_000_000, len), range(5, 1_500_000), range(0, 1)] {
            assert_eq!(
                body(&source, r).await,
                bytes[r.start as usize..r.end as usize]
            );
        }
        // The same body again, and part of it, come from what was kept.
        let reads = app.reads.load(Ordering::SeqCst);
        assert_eq!(
            body(&source, range(5, 1_500_000)).await,
            bytes[5..1_500_000]
        );
        assert_eq!(body(&source, range(10, 20)).await, bytes[10..20]);
        assert_eq!(app.reads.load(Ordering::SeqCst), reads);
        assert!(source.take_failure().is_none());
    }

    #[tokio::test]
    async fn a_seekable_source_shorter_than_it_said_is_source_changed() {
        let app = Arc::new(app(data(1000), Some(2000), true));
        let source = ForeignSource::describe(app, 1).expect("describe");
        assert!(source.fill(range(500, 1500)).await.is_err());
        let failure = source.take_failure().expect("a failure");
        assert_eq!(
            failure.kind(),
            chunkup::ErrorKind::SourceChanged,
            "{failure}"
        );
    }

    #[tokio::test]
    async fn a_read_error_is_a_source_error_not_a_retry() {
        for seekable in [true, false] {
            let mut app = app(data(100_000), Some(100_000), seekable);
            app.fail_at = Some(50_000);
            let source = ForeignSource::describe(Arc::new(app), 1).expect("describe");
            assert_eq!(body(&source, range(0, 40_000)).await.len(), 40_000);
            assert!(source.fill(range(40_000, 100_000)).await.is_err());
            let failure = source.take_failure().expect("a failure");
            assert_eq!(failure.kind(), chunkup::ErrorKind::Source, "{failure}");
            assert!(
                failure.to_string().contains("the disk went away"),
                "{failure}"
            );
        }
    }

    #[tokio::test]
    async fn a_one_shot_source_is_read_in_order_and_never_resumable() {
        let bytes = data(700_000);
        // Known length, not seekable: no identity, bodies resent from memory.
        let source = ForeignSource::describe(Arc::new(app(bytes.clone(), Some(700_000), false)), 1)
            .expect("describe");
        assert!(!source.resumable());
        assert_eq!(source.info.fingerprint, None);
        assert_eq!(source.info.size, Some(700_000));
        assert_eq!(body(&source, range(0, 300_000)).await, bytes[..300_000]);
        assert_eq!(body(&source, range(0, 300_000)).await, bytes[..300_000]);
        assert_eq!(
            body(&source, range(300_000, 700_000)).await,
            bytes[300_000..]
        );
        // Deferred length: learned at the end.
        let source =
            ForeignSource::describe(Arc::new(app(bytes.clone(), None, true)), 1).expect("describe");
        assert_eq!(source.info.size, None);
        assert_eq!(body(&source, range(0, 500_000)).await, bytes[..500_000]);
        assert_eq!(
            source.fill(range(500_000, 1_000_000)).await.expect("fill"),
            Some(700_000)
        );
        // A known length the stream does not reach: not the content announced.
        let source = ForeignSource::describe(Arc::new(app(bytes, Some(900_000), false)), 1)
            .expect("describe");
        assert!(source.fill(range(0, 900_000)).await.is_err());
        let failure = source.take_failure().expect("a failure");
        assert_eq!(
            failure.kind(),
            chunkup::ErrorKind::SourceChanged,
            "{failure}"
        );
    }
}
