//! A `ReadableStream` of bytes as the source: read once, its length learned
//! at its end (as the native `StreamSource`).
//!
//! Only the bytes the server may still ask for are kept: from the start of
//! the last body the session asked for (a chunk starts at the server's
//! offset, so everything before it was acknowledged) to what was read
//! ahead, about one chunk. A body asked for before that (a server that lost
//! bytes it had acknowledged) ends the upload with
//! [`crate::Error::StreamRewound`]. The end is found while a body is
//! prepared ([`StreamWindow::fill`]): the driver then reports
//! `SessionInput::SourceEnded` instead of sending.

use std::cell::RefCell;
use std::collections::VecDeque;

use chunkup_core::ByteRange;
use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, ReadableStream, ReadableStreamDefaultReader};

use super::js;
use crate::Error;

/// The kept bytes of a stream and its reader.
pub(crate) struct StreamWindow {
    reader: ReadableStreamDefaultReader,
    kept: RefCell<Kept>,
}

impl std::fmt::Debug for StreamWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamWindow")
    }
}

/// `pieces` hold the stream's bytes `[base, read_to)`, in order.
#[derive(Default)]
struct Kept {
    base: u64,
    read_to: u64,
    pieces: VecDeque<Uint8Array>,
    /// The stream's length, once its end was read.
    end: Option<u64>,
}

impl Kept {
    /// Lets go of the bytes before `offset` (at most those read).
    fn release_before(&mut self, offset: u64) {
        while self.base < offset {
            let Some(front) = self.pieces.front_mut() else {
                break;
            };
            let length = u64::from(front.length());
            let drop = (offset - self.base).min(length);
            if drop == length {
                self.pieces.pop_front();
            } else {
                *front = front.subarray(drop as u32, length as u32);
            }
            self.base += drop;
        }
    }
}

impl StreamWindow {
    /// Locks `stream` to a reader of its own. A stream that is already
    /// locked (being read elsewhere) or is not a `ReadableStream` is an
    /// [`Error::Environment`].
    pub(crate) fn new(stream: &ReadableStream) -> Result<Self, Error> {
        if stream.locked() {
            return Err(Error::Environment(
                "the ReadableStream is locked: another reader is reading it".into(),
            ));
        }
        let reader = stream
            .get_reader()
            .dyn_into::<ReadableStreamDefaultReader>()
            .map_err(|_| Error::Environment("the ReadableStream gave no default reader".into()))?;
        Ok(StreamWindow {
            reader,
            kept: RefCell::new(Kept::default()),
        })
    }

    /// Reads until `range` is kept, or the end: `Some(length)` when the
    /// stream ends before `range.end` (the body is not sent), `None` when
    /// the whole range is there.
    pub(crate) async fn fill(&self, range: ByteRange) -> Result<Option<u64>, Error> {
        loop {
            {
                let mut kept = self.kept.borrow_mut();
                if range.start < kept.base {
                    return Err(Error::StreamRewound {
                        needed: range.start,
                        kept_from: kept.base,
                    });
                }
                let read_to = kept.read_to;
                kept.release_before(range.start.min(read_to));
                if let Some(end) = kept.end {
                    return Ok((end < range.end).then_some(end));
                }
                if kept.read_to >= range.end {
                    return Ok(None);
                }
            }
            // One read at a time (JS queues a reader's reads in order and
            // each is applied when it resolves, in that order).
            let result = JsFuture::from(self.reader.read())
                .await
                .map_err(|error| source_error(&js::describe(&error)))?;
            let done = Reflect::get(&result, &"done".into())
                .map(|v| v.is_truthy())
                .unwrap_or(true);
            let mut kept = self.kept.borrow_mut();
            if done {
                kept.end = Some(kept.read_to);
                continue;
            }
            let value = Reflect::get(&result, &"value".into()).unwrap_or(JsValue::UNDEFINED);
            let bytes: Uint8Array = value.dyn_into().map_err(|_| {
                source_error("the ReadableStream gave a chunk that is not a Uint8Array")
            })?;
            if bytes.length() > 0 {
                kept.read_to += u64::from(bytes.length());
                kept.pieces.push_back(bytes);
            }
        }
    }

    /// The kept bytes of `range` as a Blob (after [`StreamWindow::fill`]).
    pub(crate) fn body(&self, range: ByteRange) -> Result<Blob, JsValue> {
        let kept = self.kept.borrow();
        if range.start < kept.base || range.end > kept.read_to {
            return Err(JsValue::from_str(&format!(
                "bytes {}..{} of the stream are not kept (kept {}..{})",
                range.start, range.end, kept.base, kept.read_to
            )));
        }
        let parts = js_sys::Array::new();
        let mut at = kept.base;
        for piece in &kept.pieces {
            let piece_end = at + u64::from(piece.length());
            if piece_end > range.start && at < range.end {
                let from = range.start.saturating_sub(at) as u32;
                let to = (range.end.min(piece_end) - at) as u32;
                parts.push(&piece.subarray(from, to));
            }
            at = piece_end;
            if at >= range.end {
                break;
            }
        }
        Blob::new_with_u8_array_sequence(&parts)
    }

    /// Lets go of the reader (the stream is cancelled: nobody reads it).
    pub(crate) fn cancel(&self) {
        // Rejects for a stream that had errored: nothing to report then.
        let cancelled = JsFuture::from(self.reader.cancel());
        wasm_bindgen_futures::spawn_local(async move {
            let _ = cancelled.await;
        });
    }
}

fn source_error(message: &str) -> Error {
    Error::Source {
        path: "ReadableStream".into(),
        source: std::io::Error::other(message.to_string()),
    }
}
