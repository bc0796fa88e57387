//! `chunkup upload` of any number of files as one resumable batch.
//!
//! A blocking thread walks the inputs lazily and asks the journal what to do
//! with each file (skip it, continue it, upload it); files to send flow
//! through a bounded channel to at most `--parallel` uploads at once. A
//! second walk only counts, for the aggregate bar's total. Failures another
//! try may cure are tried again after the walk, from the journal. Every
//! decision is [`chunkup::batch`]'s; this module only does the IO.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chunkup::batch::{
    AfterFailure, BatchPolicy, BatchSpec, Decision, DiscoveryCache, FileEntry, Journal,
    RELATIVE_PATH_KEY, after_failure, file_fingerprint,
};
use chunkup::{
    Client, FileSource, Hooks, KeyValue, ReqwestTransport, Source, UploadEvent, UploadOptions,
};
use futures_util::StreamExt;
use indicatif::{HumanBytes, HumanDuration};
use serde_json::json;
use tokio::sync::mpsc;

use crate::exit;
use crate::throttle::Throttled;
use crate::view::BatchView;
use crate::walk::{self, Filters, Found, Root};

/// Failures listed in the summary (the journal keeps all of them).
const SHOWN_FAILURES: usize = 20;

/// Everything `chunkup upload` was asked to do.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) inputs: Vec<PathBuf>,
    pub(crate) endpoint: String,
    /// The endpoint is an S3 key prefix: each file's object URL is the
    /// prefix plus its relative path.
    pub(crate) key_prefix: bool,
    pub(crate) options: UploadOptions,
    pub(crate) hooks: Hooks,
    pub(crate) parallel: usize,
    pub(crate) include: Vec<String>,
    pub(crate) exclude: Vec<String>,
    pub(crate) dry_run: bool,
    pub(crate) json: bool,
    /// Keep batch state (and resume earlier runs).
    pub(crate) resume: bool,
    pub(crate) state_dir: Option<PathBuf>,
    pub(crate) bwlimit: Option<u64>,
    pub(crate) policy: BatchPolicy,
}

/// What the walk hands to the uploaders.
#[derive(Debug)]
enum Item {
    Upload(Job),
    Skip {
        name: String,
        path: String,
        upload_url: Option<String>,
        size: u64,
    },
    Unreadable {
        name: String,
        reason: String,
    },
}

#[derive(Debug)]
struct Job {
    path: String,
    name: String,
    size: u64,
    /// Tries this run already made.
    tries: u32,
}

/// This run's numbers.
#[derive(Debug, Default)]
struct Tally {
    uploaded: AtomicU64,
    uploaded_bytes: AtomicU64,
    skipped: AtomicU64,
    skipped_bytes: AtomicU64,
    failed: AtomicU64,
    /// The first failures, with reasons (the journal has every one).
    failures: Mutex<Vec<(String, String)>>,
}

impl Tally {
    fn fail(&self, name: &str, reason: &str) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.len() < SHOWN_FAILURES {
            failures.push((name.to_string(), reason.to_string()));
        }
    }
}

/// What every upload of the run shares.
struct Run {
    client: Client<Throttled>,
    endpoint: String,
    key_prefix: bool,
    options: UploadOptions,
    hooks: Hooks,
    batch_id: String,
    journal: Option<Arc<Journal>>,
    discovery: DiscoveryCache,
    /// Whether the shared discovery was reported yet.
    announced: AtomicBool,
    view: Arc<BatchView>,
    policy: BatchPolicy,
    tally: Tally,
}

fn state_dir(given: Option<PathBuf>) -> Result<PathBuf, chunkup::Error> {
    match given {
        Some(dir) => Ok(dir),
        None => chunkup::FileResumeStore::default_location().map(|s| s.dir().to_path_buf()),
    }
}

pub(crate) fn journal_path(given: Option<PathBuf>) -> Result<PathBuf, chunkup::Error> {
    state_dir(given).map(|dir| Journal::location(&dir))
}

fn usage(message: &str) -> u8 {
    eprintln!("chunkup upload: {message}");
    exit::USAGE
}

pub(crate) async fn run(settings: Settings) -> u8 {
    let roots = match walk::resolve(&settings.inputs) {
        Ok(roots) => roots,
        Err(error) => return usage(&error),
    };
    let filters = match Filters::new(&settings.include, &settings.exclude) {
        Ok(filters) => filters,
        Err(error) => return usage(&error),
    };
    let spec = BatchSpec {
        endpoint: settings.endpoint.clone(),
        roots: roots.iter().map(Root::canonical).collect(),
        protocol: settings.options.protocol(),
        include: settings.include.clone(),
        exclude: settings.exclude.clone(),
        metadata: settings
            .options
            .metadata
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect(),
    };
    let batch_id = spec.id();
    let view = BatchView::new(settings.json);

    // The journal: batch state and the batch's resume records.
    let mut journal = None;
    let mut _lock = None;
    let mut runs_before = 0;
    if settings.resume {
        let opened = journal_path(settings.state_dir.clone()).and_then(|path| {
            if settings.dry_run {
                Journal::open_existing(&path)
            } else {
                Journal::open(&path).map(Some)
            }
        });
        match opened {
            Ok(Some(opened)) => {
                let opened = Arc::new(opened);
                if !settings.dry_run {
                    match opened.lock_batch(&batch_id) {
                        Ok(lock) => _lock = Some(lock),
                        Err(error) => {
                            eprintln!("chunkup upload: {error}");
                            return exit::FAILED;
                        }
                    }
                    match opened.begin(&spec) {
                        Ok(runs) => runs_before = runs,
                        Err(error) => {
                            eprintln!("chunkup upload: {error}");
                            return exit::FAILED;
                        }
                    }
                }
                journal = Some(opened);
            }
            Ok(None) => {}
            Err(error) => {
                eprintln!("chunkup: warning: {error}; this batch cannot be resumed if interrupted")
            }
        }
    }

    let transport = match ReqwestTransport::new() {
        Ok(inner) => Throttled::new(inner, settings.bwlimit),
        Err(error) => {
            eprintln!("chunkup: {error}");
            return exit::FAILED;
        }
    };
    let mut client = Client::with_transport(transport);
    if let Some(journal) = &journal {
        client = client.with_resume_store(journal.resume_store(&batch_id));
    }
    let parallel = settings.parallel.max(1);
    let started = Instant::now();
    view.event(json!({
        "event": "batch_started",
        "batch_id": batch_id,
        "endpoint": settings.endpoint,
        "roots": spec.roots,
        "resumed": runs_before > 0,
        "runs_before": runs_before,
        "parallel": parallel,
        "dry_run": settings.dry_run,
    }));
    if !settings.json {
        let run = if runs_before > 0 {
            format!("run {}, continuing", runs_before + 1)
        } else {
            "new".to_string()
        };
        let action = if settings.dry_run {
            "dry run"
        } else {
            "uploading"
        };
        view.note(&format!(
            "chunkup: batch {} ({run}), {action} to {} with {parallel} at a time",
            &batch_id[..12],
            settings.endpoint
        ));
    }

    // The counting walk, for the aggregate total.
    let stop = Arc::new(AtomicBool::new(false));
    let counter = {
        let (roots, filters, view, stop) = (
            roots.clone(),
            filters.clone(),
            Arc::clone(&view),
            Arc::clone(&stop),
        );
        tokio::task::spawn_blocking(move || {
            let flow = walk::walk(&roots, &filters, |found| {
                if stop.load(Ordering::Relaxed) {
                    return ControlFlow::Break(());
                }
                if let Found::File { path, .. } = found {
                    view.counted(std::fs::metadata(&path).map_or(0, |m| m.len()));
                }
                ControlFlow::Continue(())
            });
            if flow.is_continue() {
                view.scanned();
            }
        })
    };

    let run = Arc::new(Run {
        client,
        endpoint: settings.endpoint.clone(),
        key_prefix: settings.key_prefix,
        options: settings.options.clone(),
        hooks: settings.hooks.clone(),
        batch_id: batch_id.clone(),
        journal,
        discovery: DiscoveryCache::new(),
        announced: AtomicBool::new(false),
        view: Arc::clone(&view),
        policy: settings.policy.clone(),
        tally: Tally::default(),
    });

    let interrupted = if settings.dry_run {
        dry_run(&run, roots, filters).await;
        false
    } else {
        let work = async {
            let (tx, rx) = mpsc::channel::<Item>(parallel * 4);
            let walker = {
                let run = Arc::clone(&run);
                tokio::task::spawn_blocking(move || produce(&run, &roots, &filters, &tx))
            };
            let items = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            items
                .map(|item| {
                    let run = Arc::clone(&run);
                    async move { run.handle(item).await }
                })
                .buffer_unordered(parallel)
                .for_each(|()| async {})
                .await;
            let _ = walker.await;
            run.retry_failed(parallel).await;
        };
        tokio::select! {
            () = work => false,
            _ = tokio::signal::ctrl_c() => true,
        }
    };
    stop.store(true, Ordering::Relaxed);
    if !interrupted {
        let _ = counter.await;
    }
    view.clear();
    run.summarize(started, interrupted, settings.dry_run)
}

/// The walk (blocking thread): each file found is opened, planned in the
/// journal and handed on; a closed channel (interrupted run) stops it.
fn produce(run: &Run, roots: &[Root], filters: &Filters, tx: &mpsc::Sender<Item>) {
    let _ = walk::walk(roots, filters, |found| {
        let item = run.plan(found);
        match tx.blocking_send(item) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }
    });
}

impl Run {
    /// Where the file named `relative` is created: the endpoint, or for an
    /// S3 key prefix the object under it.
    fn endpoint_for(&self, relative: &str) -> String {
        if !self.key_prefix {
            return self.endpoint.clone();
        }
        let mut url = self.endpoint.clone();
        if !url.ends_with('/') {
            url.push('/');
        }
        let key: Vec<String> = relative.split('/').map(percent_encode_segment).collect();
        url.push_str(&key.join("/"));
        url
    }

    fn plan(&self, found: Found) -> Item {
        let (path, name) = match found {
            Found::File { path, name } => (path, name),
            Found::Unreadable { path, reason } => {
                return self.unreadable(&path.to_string_lossy(), reason);
            }
        };
        let source = match FileSource::open(&path) {
            Ok(source) => source,
            Err(error) => return self.unreadable(&name, error.to_string()),
        };
        let entry = FileEntry {
            path: source.path().to_string_lossy().into_owned(),
            relative: name.clone(),
            size: source.size(),
            modified_ms: source.modified_ms(),
            fingerprint: file_fingerprint(&self.endpoint_for(&name), &source),
        };
        let decision = match &self.journal {
            Some(journal) => match journal.plan(&self.batch_id, &entry) {
                Ok(decision) => decision,
                // Without its journal entry the file could not be resumed
                // safely: better to report it than to risk a second copy.
                Err(error) => return self.unreadable(&entry.relative, error.to_string()),
            },
            None => Decision::Upload { resume: None },
        };
        match decision {
            Decision::Skip { upload_url } => Item::Skip {
                name: entry.relative,
                path: entry.path,
                upload_url,
                size: entry.size,
            },
            Decision::Upload { .. } => Item::Upload(Job {
                path: entry.path,
                name: entry.relative,
                size: entry.size,
                tries: 0,
            }),
        }
    }

    fn unreadable(&self, name: &str, reason: String) -> Item {
        if let Some(journal) = &self.journal {
            if let Err(error) = journal.unreadable(&self.batch_id, name, &reason) {
                tracing::warn!(%error, "the batch journal failed");
            }
        }
        Item::Unreadable {
            name: name.to_string(),
            reason,
        }
    }

    async fn handle(&self, item: Item) {
        match item {
            Item::Upload(job) => self.upload(&job).await,
            Item::Skip {
                name,
                path,
                upload_url,
                size,
            } => {
                self.tally.skipped.fetch_add(1, Ordering::Relaxed);
                self.tally.skipped_bytes.fetch_add(size, Ordering::Relaxed);
                self.view.skipped(&name, &path, upload_url.as_deref(), size);
            }
            Item::Unreadable { name, reason } => {
                self.tally.fail(&name, &reason);
                self.view.unreadable(&name, &reason);
            }
        }
    }

    fn journal_warn(result: Result<(), chunkup::Error>) {
        if let Err(error) = result {
            tracing::warn!(%error, "the batch journal failed; this file may not resume");
        }
    }

    /// One file, tried until it completes or the batch policy gives up
    /// (later tries come from [`Run::retry_failed`] when there is a
    /// journal, at once otherwise).
    async fn upload(&self, job: &Job) {
        let mut attempt = job.tries;
        loop {
            attempt += 1;
            match self.try_upload(job, attempt).await {
                None => return,
                Some(AfterFailure::RetryLater) if self.journal.is_none() => continue,
                Some(_) => return,
            }
        }
    }

    /// Reports the endpoint's protocol once per run.
    fn announce(&self, event: &UploadEvent) {
        if let UploadEvent::Discovered {
            protocol,
            assumed,
            extensions,
            max_size,
        } = event
            && !self.announced.swap(true, Ordering::Relaxed)
        {
            self.view.event(json!({
                "event": "endpoint_discovered",
                "endpoint": self.endpoint,
                "protocol": crate::report::protocol_name(*protocol),
                "extensions": extensions,
                "max_size": max_size,
                "assumed": assumed,
            }));
        }
    }

    async fn try_upload(&self, job: &Job, attempt: u32) -> Option<AfterFailure> {
        let file = self.view.file(&job.name, &job.path, job.size);
        file.started(attempt);
        let mut metadata = self.options.metadata.clone();
        if !metadata.iter().any(|kv| kv.key == RELATIVE_PATH_KEY) {
            metadata.push(KeyValue::new(RELATIVE_PATH_KEY, &job.name));
        }
        let options = UploadOptions {
            metadata,
            ..self.options.clone()
        };
        let journal = self.journal.as_deref();
        // The journal learns the upload URL through the resume store.
        let request = self
            .client
            .upload(options)
            .to(self.endpoint_for(&job.name))
            .hooks(self.hooks.clone())
            .on_event(|event| {
                self.announce(event);
                file.on_event(event)
            });
        // One discovery for the batch: the first file's session asks.
        let result = self
            .discovery
            .upload_file(request, Path::new(&job.path))
            .await;
        match result {
            Ok(report) => {
                if let Some(journal) = journal {
                    let url = report.upload_url.as_deref();
                    Self::journal_warn(journal.done(&self.batch_id, &job.path, url));
                }
                self.tally.uploaded.fetch_add(1, Ordering::Relaxed);
                self.tally
                    .uploaded_bytes
                    .fetch_add(report.size, Ordering::Relaxed);
                file.completed(&report);
                None
            }
            Err(error) => {
                let next = after_failure(&self.policy, attempt, &error);
                let retry = next == AfterFailure::RetryLater;
                let reason = error.to_string();
                if let Some(journal) = journal {
                    Self::journal_warn(journal.failed(&self.batch_id, &job.path, &reason, retry));
                }
                if !retry {
                    self.tally.fail(&job.name, &reason);
                }
                file.failed(&error, retry);
                Some(next)
            }
        }
    }

    /// Files whose failure another try may cure, from the journal, until
    /// none is left (each try counts towards the policy's limit).
    async fn retry_failed(&self, parallel: usize) {
        let Some(journal) = &self.journal else { return };
        loop {
            let items = match journal.retry_candidates(
                &self.batch_id,
                self.policy.file_attempts,
                "",
                256,
            ) {
                Ok(items) if !items.is_empty() => items,
                Ok(_) => return,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the batch journal");
                    return;
                }
            };
            futures_util::stream::iter(items)
                .map(|item| async move {
                    let found = Found::File {
                        path: PathBuf::from(&item.path),
                        name: item.relative,
                    };
                    match self.plan(found) {
                        Item::Upload(job) => {
                            let job = Job {
                                tries: item.attempts,
                                ..job
                            };
                            self.upload(&job).await;
                        }
                        other => self.handle(other).await,
                    }
                })
                .buffer_unordered(parallel)
                .for_each(|()| async {})
                .await;
        }
    }

    /// The end of the run: a summary for people (stderr) or a
    /// `batch_finished` event, the journal's note of the run, the exit code.
    fn summarize(&self, started: Instant, interrupted: bool, dry_run: bool) -> u8 {
        let elapsed = started.elapsed();
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let (uploaded, uploaded_bytes) =
            (load(&self.tally.uploaded), load(&self.tally.uploaded_bytes));
        let (skipped, skipped_bytes) = (load(&self.tally.skipped), load(&self.tally.skipped_bytes));
        let failed = load(&self.tally.failed);
        let failures = self
            .tally
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let reasons = self
            .journal
            .as_ref()
            .and_then(|j| j.failure_reasons(&self.batch_id).ok())
            .unwrap_or_default();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let summary = json!({
            "event": "batch_finished",
            "batch_id": self.batch_id,
            "dry_run": dry_run,
            "interrupted": interrupted,
            "uploaded": uploaded,
            "uploaded_bytes": uploaded_bytes,
            "skipped": skipped,
            "skipped_bytes": skipped_bytes,
            "failed": failed,
            "failures": failures
                .iter()
                .map(|(file, error)| json!({"file": file, "error": error}))
                .collect::<Vec<_>>(),
            "failure_reasons": reasons
                .iter()
                .take(SHOWN_FAILURES)
                .map(|(reason, count)| json!({"reason": reason, "count": count}))
                .collect::<Vec<_>>(),
            "elapsed_ms": elapsed.as_millis() as u64,
            "files_per_second": (uploaded as f64 / secs * 10.0).round() / 10.0,
        });
        if let (Some(journal), false) = (&self.journal, dry_run) {
            let _ = journal.finish(&self.batch_id, &summary);
        }
        if self.view.json() {
            crate::report::emit(&summary);
        } else if dry_run {
            eprintln!(
                "dry run: {uploaded} files ({}) would be uploaded, {skipped} ({}) are already done; nothing was sent",
                HumanBytes(uploaded_bytes),
                HumanBytes(skipped_bytes)
            );
        } else {
            eprintln!(
                "{} {uploaded} uploaded ({}) in {} — {:.0} files/s, {}/s; {skipped} already done (skipped); {failed} failed",
                if interrupted { "interrupted:" } else { "done:" },
                HumanBytes(uploaded_bytes),
                HumanDuration(elapsed),
                uploaded as f64 / secs,
                HumanBytes((uploaded_bytes as f64 / secs) as u64),
            );
            for (file, error) in &failures {
                eprintln!("  ✗ {file}: {error}");
            }
            if failed as usize > failures.len() {
                eprintln!(
                    "  … and {} more (chunkup status --batch {})",
                    failed as usize - failures.len(),
                    &self.batch_id[..12]
                );
            }
            if interrupted || failed > 0 {
                eprintln!(
                    "run the same command again to {}",
                    if interrupted {
                        "resume the batch"
                    } else {
                        "try the failed files again"
                    }
                );
            }
        }
        if interrupted {
            exit::INTERRUPTED
        } else if failed > 0 {
            exit::FAILED
        } else {
            0
        }
    }
}

/// `--dry-run`: what a run would do, from the same walk and journal, with
/// no request and no write.
async fn dry_run(run: &Arc<Run>, roots: Vec<Root>, filters: Filters) {
    let run = Arc::clone(run);
    let _ = tokio::task::spawn_blocking(move || {
        let _ = walk::walk(&roots, &filters, |found| {
            let (path, name) = match found {
                Found::File { path, name } => (path, name),
                Found::Unreadable { path, reason } => {
                    let name = path.to_string_lossy().into_owned();
                    run.tally.fail(&name, &reason);
                    run.view.unreadable(&name, &reason);
                    return ControlFlow::Continue(());
                }
            };
            let source = match FileSource::open(&path) {
                Ok(source) => source,
                Err(error) => {
                    run.tally.fail(&name, &error.to_string());
                    run.view.unreadable(&name, &error.to_string());
                    return ControlFlow::Continue(());
                }
            };
            let entry = FileEntry {
                path: source.path().to_string_lossy().into_owned(),
                relative: name.clone(),
                size: source.size(),
                modified_ms: source.modified_ms(),
                fingerprint: file_fingerprint(&run.endpoint_for(&name), &source),
            };
            let decision = run
                .journal
                .as_ref()
                .and_then(|j| j.peek(&run.batch_id, &entry).ok())
                .unwrap_or(Decision::Upload { resume: None });
            let (event, counter, bytes) = match &decision {
                Decision::Skip { .. } => {
                    ("would_skip", &run.tally.skipped, &run.tally.skipped_bytes)
                }
                Decision::Upload { .. } => (
                    "would_upload",
                    &run.tally.uploaded,
                    &run.tally.uploaded_bytes,
                ),
            };
            counter.fetch_add(1, Ordering::Relaxed);
            bytes.fetch_add(entry.size, Ordering::Relaxed);
            if run.view.json() {
                run.view.event(json!({
                    "event": event,
                    "file": entry.relative,
                    "path": entry.path,
                    "size": entry.size,
                    "resume": matches!(decision, Decision::Upload { resume: Some(_) }),
                }));
            } else {
                let what = match decision {
                    Decision::Skip { .. } => "skip  ",
                    Decision::Upload { resume: Some(_) } => "resume",
                    Decision::Upload { resume: None } => "upload",
                };
                println!("{what}  {}  ({})", entry.relative, HumanBytes(entry.size));
            }
            ControlFlow::Continue(())
        });
    })
    .await;
}

/// A path segment of an S3 key, percent-encoded where a URL needs it.
pub(crate) fn percent_encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
