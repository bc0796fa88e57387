//! tus chunk checksums against the reference server, which verifies every
//! `Upload-Checksum` and answers 460 on a mismatch: the header is computed
//! over exactly the bytes sent (chunk and read-block boundaries apart), and a
//! chunk damaged on its way is refused and sent again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use chunkup::core::{Method, RequestSpec, Response, TransportError};
use chunkup::{Client, Protocol, ReqwestTransport, RetryReason, Transport, UploadEvent as Event};
use chunkup_e2e::*;
use futures_util::StreamExt;

/// A request body, as [`Transport::send`] takes it.
type BodyStream = futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>;

/// Fixed chunks over tus with checksums on.
fn checksummed(chunk: u64) -> chunkup::UploadOptions {
    chunkup::UploadOptions {
        protocol: Some(Protocol::Tus),
        checksum: true,
        ..fixed_options(chunk)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_chunk_carries_the_checksum_of_its_bytes() {
    // Chunks of 300 KiB + 7 cross the 256 KiB read blocks at varying points.
    let source = random_file(2 * MIB + 12_345, 41);
    let dir = tempfile::tempdir().expect("server dir");
    let server = start_server(dir.path(), "none").await;
    let transport = Recording::new(ReqwestTransport::new().expect("transport"), None);
    let checksums = Arc::clone(&transport.checksums);
    let mut events = Vec::new();
    let report = Client::with_transport(transport)
        .upload_file(
            &source.path,
            &server.tus_endpoint(),
            checksummed(300 * KIB + 7),
            |e| events.push(e.clone()),
        )
        .await
        .expect("a checksummed upload completes");
    assert!(report.retries.is_empty(), "{:?}", report.retries);
    assert_stored_exactly(&server.base_url(), report.url(), &source).await;
    // One checksum per PATCH, and SHA-256 is the one picked from
    // "sha1,sha256,sha512".
    let checksums = checksums.lock().expect("not poisoned").clone();
    let chunks = source.size.div_ceil(300 * KIB + 7) as usize;
    assert_eq!(checksums.len(), chunks, "{checksums:?}");
    assert!(
        checksums.iter().all(|c| c.starts_with("sha256 ")),
        "{checksums:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_damaged_in_transit_is_refused_and_sent_again() {
    let source = random_file(MIB + 100, 42);
    let dir = tempfile::tempdir().expect("server dir");
    let server = start_server(dir.path(), "none").await;
    // Flip one byte of the second PATCH body: the server must refuse it (460)
    // and store nothing of it, and the client must send that chunk again.
    let transport = Recording::new(ReqwestTransport::new().expect("transport"), Some(2));
    let patches = Arc::clone(&transport.patches);
    let mut events = Vec::new();
    let report = Client::with_transport(transport)
        .upload_file(
            &source.path,
            &server.tus_endpoint(),
            checksummed(256 * KIB),
            |e| events.push(e.clone()),
        )
        .await
        .expect("the upload completes after resending the damaged chunk");
    assert_eq!(report.retries, [RetryReason::ChecksumMismatch]);
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Retrying { reason, status: Some(460), .. } if reason == "checksumMismatch"
    )));
    // Five chunks, one of them twice.
    assert_eq!(patches.load(Ordering::SeqCst), 6);
    let stored = assert_stored_exactly(&server.base_url(), report.url(), &source).await;
    // The damaged body reached the server whole and was dropped.
    assert_eq!(
        stored.bytes_received(),
        source.size,
        "only verified bodies are written: {}",
        stored.json
    );
    server.shutdown().await;
}

/// A transport that records the `Upload-Checksum` of every PATCH and can
/// damage one PATCH body on its way to the server.
struct Recording<T> {
    inner: T,
    checksums: Arc<std::sync::Mutex<Vec<String>>>,
    patches: Arc<AtomicUsize>,
    /// The PATCH (counted from 1) whose body gets one byte flipped.
    damage: Option<usize>,
}

impl<T> Recording<T> {
    fn new(inner: T, damage: Option<usize>) -> Self {
        Recording {
            inner,
            checksums: Arc::default(),
            patches: Arc::default(),
            damage,
        }
    }
}

impl<T: Transport> Transport for Recording<T> {
    async fn send(
        &self,
        spec: RequestSpec,
        body: Option<BodyStream>,
    ) -> Result<Response, TransportError> {
        if spec.method != Method::Patch {
            return self.inner.send(spec, body).await;
        }
        let number = self.patches.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(value) = spec.header("Upload-Checksum") {
            self.checksums
                .lock()
                .expect("not poisoned")
                .push(value.to_owned());
        }
        let body = match body {
            Some(body) if self.damage == Some(number) => {
                let mut first = true;
                Some(
                    body.map(move |piece| {
                        piece.map(|bytes| {
                            if !std::mem::take(&mut first) {
                                return bytes;
                            }
                            let mut damaged = BytesMut::from(&bytes[..]);
                            damaged[0] ^= 0x5a;
                            Bytes::from(damaged)
                        })
                    })
                    .boxed(),
                )
            }
            other => other,
        };
        self.inner.send(spec, body).await
    }
}
