//! Big files as parallel parts (tus concatenation): each part is an ordinary
//! engine-driven upload of a window of the file, then a final upload joins
//! them. The split itself is decided in the core ([`chunkup_core::concat`]).

use std::sync::Mutex;
use std::time::Instant as WallInstant;

use chunkup_core::protocol::discovery;
use chunkup_core::{
    ByteRange, Capabilities, Concat, Event, Progress, Protocol, RequestId, Upload, UploadConfig,
};

use crate::client::{Persister, UploadOptions, UploadReport, base_config, load_resumable};
use crate::source::{BodyStream, FileSource, Source};
use crate::store::ResumeStore;
use crate::transport::Transport;
use crate::{Error, driver};

/// Asks the endpoint what it speaks (one `OPTIONS`).
pub(crate) async fn discover<T: Transport>(
    transport: &T,
    endpoint: &str,
    options: &UploadOptions,
) -> Result<Capabilities, Error> {
    // Validate the URL the same way every upload does.
    Upload::new(UploadConfig::create(endpoint, 0))?;
    let request = discovery::options_request(RequestId(0), endpoint, options.ietf_version);
    match transport.send(request, None).await {
        Ok(response) if (200..300).contains(&response.status) => {
            Ok(discovery::capabilities(&response))
        }
        // No usable answer: let the ordinary upload discover (and retry) itself.
        _ => Ok(Capabilities {
            protocol: Protocol::Auto,
            ..Capabilities::default()
        }),
    }
}

/// A window `[offset, offset + len)` of a file, seen as a source of its own.
struct Window<'a> {
    file: &'a FileSource,
    offset: u64,
    len: u64,
}

impl Source for Window<'_> {
    fn size(&self) -> u64 {
        self.len
    }

    fn stream(&self, range: ByteRange) -> BodyStream {
        self.file.stream(ByteRange {
            start: self.offset + range.start,
            end: self.offset + range.end,
        })
    }

    fn take_failure(&self) -> Option<Error> {
        self.file.take_failure()
    }
}

/// Sums the parts' progress into one report for the whole file.
struct Totals {
    acknowledged: Vec<u64>,
    sent: Vec<u64>,
    total: u64,
    started: WallInstant,
}

impl Totals {
    fn update(&mut self, part: usize, progress: &Progress) -> Progress {
        self.acknowledged[part] = progress.acknowledged;
        self.sent[part] = progress.sent;
        let acknowledged: u64 = self.acknowledged.iter().sum();
        let secs = self.started.elapsed().as_secs_f64();
        let speed = if secs > 0.0 {
            acknowledged as f64 / secs
        } else {
            0.0
        };
        let remaining = self.total - acknowledged.min(self.total);
        Progress {
            acknowledged,
            sent: self.sent.iter().sum(),
            total: self.total,
            bytes_per_second: speed,
            eta: (speed > 0.0)
                .then(|| std::time::Duration::from_secs_f64(remaining as f64 / speed)),
        }
    }
}

/// Uploads `parts` of `file` in parallel, then the final upload that joins
/// them. Each part is remembered in `store` under its
/// [`part_fingerprint`](chunkup_core::part_fingerprint) of `key` until the
/// final upload completes, so a later run with the same split continues each
/// part where the server has it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn upload_parts<T: Transport>(
    transport: &T,
    store: Option<&dyn ResumeStore>,
    key: &str,
    file: &FileSource,
    endpoint: &str,
    options: &UploadOptions,
    capabilities: Capabilities,
    parts: Vec<ByteRange>,
    on_event: &mut (dyn FnMut(&Event) + Send),
) -> Result<UploadReport, Error> {
    let started = WallInstant::now();
    let total = file.size();
    let options = UploadOptions {
        protocol: Protocol::Tus,
        capabilities: Some(capabilities),
        ..options.clone()
    };
    let shared = Mutex::new((
        on_event,
        Totals {
            acknowledged: vec![0; parts.len()],
            sent: vec![0; parts.len()],
            total,
            started,
        },
        Vec::new(),
        None::<u64>,
    ));
    let part_keys: Vec<String> = parts
        .iter()
        .map(|range| chunkup_core::part_fingerprint(key, *range))
        .collect();
    let part_uploads = parts.iter().enumerate().map(|(index, range)| {
        let shared = &shared;
        let options = &options;
        let part_key = part_keys[index].as_str();
        async move {
            let known = match store {
                Some(store) => load_resumable(store, part_key, Protocol::Tus, range.len())?,
                None => None,
            };
            let config = UploadConfig {
                concat: Concat::Partial,
                upload_url: known.as_ref().map(|r| r.upload_url.clone()),
                ..base_config(endpoint, file, range.len(), options)
            };
            let mut upload = Upload::new(config)?;
            let mut persister = Persister::new(store, part_key, Protocol::Tus, range.len());
            persister.keep_when_complete = true;
            persister.resume_from(known);
            let window = Window {
                file,
                offset: range.start,
                len: range.len(),
            };
            let mut observe = |event: &Event| {
                persister.observe(event);
                let mut guard = shared.lock().unwrap_or_else(|e| e.into_inner());
                let (on_event, totals, retries, resumed) = &mut *guard;
                match event {
                    Event::ResumedAt { offset } => {
                        *resumed = Some(resumed.unwrap_or(0) + offset);
                    }
                    Event::Progress(progress) => {
                        let whole = totals.update(index, progress);
                        on_event(&Event::Progress(whole));
                    }
                    Event::Retrying { reason, .. } => {
                        retries.push(reason.clone());
                        on_event(event);
                    }
                    // Parts complete silently; the final upload completes the file.
                    Event::Completed { .. } | Event::Created { .. } => {}
                    _ => on_event(event),
                }
            };
            driver::drive(&mut upload, transport, &window, None, &mut observe).await
        }
    });
    let urls = futures_util::future::try_join_all(part_uploads).await?;

    let (on_event, _, retries, resumed_from) =
        shared.into_inner().unwrap_or_else(|e| e.into_inner());
    let config = UploadConfig {
        concat: Concat::Final(urls),
        ..base_config(endpoint, file, total, &options)
    };
    let mut upload = Upload::new(config)?;
    let upload_url = driver::drive(&mut upload, transport, file, None, on_event).await?;
    if let Some(store) = store {
        for part_key in &part_keys {
            if let Err(error) = store.remove(part_key) {
                tracing::warn!(%error, "the resume store failed to forget a finished part");
            }
        }
    }
    Ok(UploadReport {
        upload_url,
        size: total,
        resumed_from,
        retries,
        elapsed: started.elapsed(),
    })
}
