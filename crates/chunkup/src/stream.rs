//! A source read once from an [`AsyncRead`] (standard input, a pipe, a
//! socket, a decoder) whose length is learned at its end.
//!
//! A stream cannot be read twice, so the source keeps the bytes the server
//! may still ask for: from the start of the last body the engine asked for
//! (a chunk starts at the server's offset, so everything before it was
//! acknowledged) to what was read ahead. Memory is bounded by about two
//! chunks, never by the stream. When the engine asks for bytes before that
//! — a server that lost bytes it had acknowledged — the upload ends with
//! [`Error::StreamRewound`]: nothing can repair it.
//!
//! The end is found while a body is prepared ([`Source::fill`]): the driver
//! then tells the engine (`SessionInput::SourceEnded`) instead of sending,
//! and the engine announces the length with the last chunk (tus
//! creation-defer-length, IETF, Google-style sessions). Protocols that need
//! the length up front (ranged, S3) refuse a stream before anything is sent.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use chunkup_core::ByteRange;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::Error;
use crate::source::{BodyStream, Source};

/// Bytes asked of the reader at a time.
const READ_BLOCK: usize = 256 * 1024;

/// A stream of unknown length as a [`Source`].
#[derive(Debug)]
pub struct StreamSource<R> {
    /// Named in errors (`stdin`, a URL, …).
    name: String,
    reader: tokio::sync::Mutex<R>,
    window: Mutex<Window>,
    failure: Mutex<Option<Error>>,
}

/// The bytes kept: `pieces` hold `[base, read_to)`, in order.
#[derive(Debug, Default)]
struct Window {
    base: u64,
    read_to: u64,
    pieces: VecDeque<Bytes>,
    /// The stream's length, once its end was read.
    end: Option<u64>,
    /// The most bytes held at once (for tests of the memory bound).
    peak: u64,
}

impl Window {
    /// Lets go of the bytes before `offset`.
    fn release_before(&mut self, offset: u64) {
        while self.base < offset {
            let Some(front) = self.pieces.front_mut() else {
                break;
            };
            let drop = (offset - self.base).min(front.len() as u64);
            if drop == front.len() as u64 {
                self.pieces.pop_front();
            } else {
                *front = front.slice(drop as usize..);
            }
            self.base += drop;
        }
    }

    /// The kept bytes of `range` (which must be kept), as slices.
    fn slices(&self, range: ByteRange) -> Vec<Bytes> {
        let mut at = self.base;
        let mut out = Vec::new();
        for piece in &self.pieces {
            let piece_end = at + piece.len() as u64;
            if piece_end > range.start && at < range.end {
                let from = range.start.saturating_sub(at) as usize;
                let to = (range.end.min(piece_end) - at) as usize;
                out.push(piece.slice(from..to));
            }
            at = piece_end;
            if at >= range.end {
                break;
            }
        }
        out
    }
}

impl<R: AsyncRead + Send + Unpin> StreamSource<R> {
    /// A source over `reader`, named `name` in errors.
    pub fn new(reader: R, name: impl Into<String>) -> Self {
        StreamSource {
            name: name.into(),
            reader: tokio::sync::Mutex::new(reader),
            window: Mutex::new(Window::default()),
            failure: Mutex::new(None),
        }
    }

    /// The most bytes the source held at once so far.
    pub fn peak_held(&self) -> u64 {
        self.lock().peak
    }

    /// The stream's length, once its end was read.
    pub fn length(&self) -> Option<u64> {
        self.lock().end
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the failure that ends the upload and returns the error that
    /// fails the request.
    fn fail(&self, error: Error) -> std::io::Error {
        let message = error.to_string();
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
        std::io::Error::other(message)
    }

    async fn fill_range(&self, range: ByteRange) -> std::io::Result<Option<u64>> {
        let mut reader = self.reader.lock().await;
        {
            let mut window = self.lock();
            if range.start < window.base {
                let kept_from = window.base;
                drop(window);
                return Err(self.fail(Error::StreamRewound {
                    needed: range.start,
                    kept_from,
                }));
            }
            window.release_before(range.start);
        }
        loop {
            {
                let window = self.lock();
                if let Some(end) = window.end {
                    return Ok((end < range.end).then_some(end));
                }
                if window.read_to >= range.end {
                    return Ok(None);
                }
            }
            let mut block = BytesMut::with_capacity(READ_BLOCK);
            let read = match reader.read_buf(&mut block).await {
                Ok(read) => read,
                Err(error) => {
                    return Err(self.fail(Error::Source {
                        path: PathBuf::from(&self.name),
                        source: error,
                    }));
                }
            };
            let mut window = self.lock();
            if read == 0 {
                window.end = Some(window.read_to);
            } else {
                window.read_to += read as u64;
                window.pieces.push_back(block.freeze());
                window.peak = window.peak.max(window.read_to - window.base);
            }
        }
    }
}

impl<R: AsyncRead + Send + Unpin> Source for StreamSource<R> {
    /// The bytes read so far (the length once the end was read).
    fn size(&self) -> u64 {
        self.lock().read_to
    }

    fn stream(&self, range: ByteRange) -> BodyStream {
        let window = self.lock();
        if range.start < window.base || range.end > window.read_to {
            let (base, read_to) = (window.base, window.read_to);
            drop(window);
            let error = if range.start < base {
                self.fail(Error::StreamRewound {
                    needed: range.start,
                    kept_from: base,
                })
            } else {
                std::io::Error::other(format!(
                    "bytes {}..{} of the stream were not read yet (read to {read_to})",
                    range.start, range.end
                ))
            };
            return futures_util::stream::once(async move { Err(error) }).boxed();
        }
        let slices = window.slices(range);
        futures_util::stream::iter(slices.into_iter().map(Ok)).boxed()
    }

    fn take_failure(&self) -> Option<Error> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    fn fill(
        &self,
        range: ByteRange,
    ) -> impl std::future::Future<Output = std::io::Result<Option<u64>>> + Send {
        self.fill_range(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;

    fn range(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    async fn body(source: &impl Source, r: ByteRange) -> std::io::Result<Vec<u8>> {
        source
            .stream(r)
            .try_fold(Vec::new(), |mut all, piece| async move {
                all.extend_from_slice(&piece);
                Ok(all)
            })
            .await
    }

    #[tokio::test]
    async fn ranges_are_read_once_the_end_is_found_and_old_bytes_are_let_go() {
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let source = StreamSource::new(&data[..], "test");
        assert_eq!(source.fill(range(0, 300_000)).await.expect("fill"), None);
        assert_eq!(
            body(&source, range(0, 300_000)).await.expect("read"),
            data[..300_000]
        );
        // The same chunk again (a resend after a break) is still there.
        assert_eq!(source.fill(range(0, 300_000)).await.expect("fill"), None);
        assert_eq!(
            source.fill(range(300_000, 700_000)).await.expect("fill"),
            None
        );
        assert_eq!(
            body(&source, range(300_000, 700_000)).await.expect("read"),
            data[300_000..700_000]
        );
        assert!(source.peak_held() < 700_000, "held {}", source.peak_held());
        // The end is inside the next range.
        assert_eq!(
            source.fill(range(700_000, 1_200_000)).await.expect("fill"),
            Some(1_000_000)
        );
        assert_eq!(source.length(), Some(1_000_000));
        assert_eq!(
            body(&source, range(700_000, 1_000_000))
                .await
                .expect("read"),
            data[700_000..]
        );
        assert_eq!(
            source
                .fill(range(1_000_000, 1_000_000))
                .await
                .expect("fill"),
            None
        );
        // Bytes before the last chunk's start are gone: a typed failure.
        assert!(source.fill(range(100, 5000)).await.is_err());
        match source.take_failure() {
            Some(Error::StreamRewound {
                needed: 100,
                kept_from: 1_000_000,
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_empty_stream_ends_at_zero() {
        let source = StreamSource::new(&b""[..], "empty");
        assert_eq!(source.fill(range(0, 1024)).await.expect("fill"), Some(0));
    }
}
