//! How a batch looks: an aggregate progress bar (files, bytes, speed, ETA)
//! plus one bar per active file on a terminal, NDJSON with `--json`, plain
//! lines otherwise.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chunkup::{UploadEvent, UploadReport};
use indicatif::{HumanBytes, HumanDuration, MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;

use crate::report::{emit, event_json, short_name};

/// How a batch is shown.
#[derive(Debug)]
pub(crate) struct BatchView {
    json: bool,
    multi: Option<MultiProgress>,
    aggregate: Option<ProgressBar>,
    files_total: AtomicU64,
    bytes_total: AtomicU64,
    scanned: AtomicBool,
    files_finished: AtomicU64,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl BatchView {
    /// Bars only when stderr is a terminal and `--json` is off.
    pub(crate) fn new(json: bool) -> Arc<Self> {
        let (multi, aggregate) = if !json && std::io::stderr().is_terminal() {
            let multi = MultiProgress::new();
            let bar = multi.add(ProgressBar::new(0));
            bar.set_style(style(
                "{spinner:.green} {elapsed_precise} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
            ));
            bar.enable_steady_tick(Duration::from_millis(200));
            (Some(multi), Some(bar))
        } else {
            (None, None)
        };
        Arc::new(BatchView {
            json,
            multi,
            aggregate,
            files_total: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
            scanned: AtomicBool::new(false),
            files_finished: AtomicU64::new(0),
        })
    }

    pub(crate) fn json(&self) -> bool {
        self.json
    }

    /// An NDJSON event (only with `--json`).
    pub(crate) fn event(&self, value: serde_json::Value) {
        if self.json {
            emit(&value);
        }
    }

    /// A line for a person (not with `--json`), above the bars if any.
    pub(crate) fn note(&self, line: &str) {
        if self.json {
            return;
        }
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    /// The counting walk found another file.
    pub(crate) fn counted(&self, size: u64) {
        self.files_total.fetch_add(1, Ordering::Relaxed);
        let bytes = self.bytes_total.fetch_add(size, Ordering::Relaxed) + size;
        if let Some(bar) = &self.aggregate {
            bar.set_length(bytes);
            self.refresh_message();
        }
    }

    /// The counting walk is over.
    pub(crate) fn scanned(&self) {
        self.scanned.store(true, Ordering::Relaxed);
        self.refresh_message();
        self.event(json!({
            "event": "batch_scanned",
            "files": self.files_total.load(Ordering::Relaxed),
            "bytes": self.bytes_total.load(Ordering::Relaxed),
        }));
    }

    fn refresh_message(&self) {
        if let Some(bar) = &self.aggregate {
            let more = if self.scanned.load(Ordering::Relaxed) {
                ""
            } else {
                "+ (scanning)"
            };
            bar.set_message(format!(
                "{}/{}{more} files",
                self.files_finished.load(Ordering::Relaxed),
                self.files_total.load(Ordering::Relaxed),
            ));
        }
    }

    fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.aggregate {
            bar.inc(bytes);
        }
    }

    fn finished_one(&self) {
        self.files_finished.fetch_add(1, Ordering::Relaxed);
        self.refresh_message();
    }

    /// A file finished by an earlier run: not sent again.
    pub(crate) fn skipped(&self, name: &str, path: &str, upload_url: Option<&str>, size: u64) {
        self.advance(size);
        self.finished_one();
        self.event(json!({
            "event": "skipped",
            "file": name,
            "path": path,
            "size": size,
            "upload_url": upload_url,
            "reason": "already uploaded",
        }));
    }

    /// Something that could not be read at all.
    pub(crate) fn unreadable(&self, name: &str, reason: &str) {
        self.finished_one();
        self.event(json!({"event": "failed", "file": name, "path": name, "error": reason, "will_retry": false}));
        self.note(&format!("✗ {name}: {reason}"));
    }

    /// A file's upload starts.
    pub(crate) fn file(self: &Arc<Self>, name: &str, path: &str, size: u64) -> FileView {
        let bar = self.multi.as_ref().map(|multi| {
            let bar = multi.add(ProgressBar::new(size));
            bar.set_style(style(
                "  {prefix:24} [{bar:20.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec}",
            ));
            bar.set_prefix(short_name(name));
            bar
        });
        FileView {
            view: Arc::clone(self),
            name: name.to_string(),
            path: path.to_string(),
            size,
            bar,
            acknowledged: AtomicU64::new(0),
        }
    }

    /// Takes the bars off the screen.
    pub(crate) fn clear(&self) {
        if let Some(bar) = &self.aggregate {
            bar.finish_and_clear();
        }
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }
}

/// One file's upload within a batch.
#[derive(Debug)]
pub(crate) struct FileView {
    view: Arc<BatchView>,
    name: String,
    path: String,
    size: u64,
    bar: Option<ProgressBar>,
    acknowledged: AtomicU64,
}

impl FileView {
    pub(crate) fn started(&self, attempt: u32) {
        self.view.event(json!({
            "event": "started",
            "file": self.name,
            "path": self.path,
            "size": self.size,
            "attempt": attempt,
        }));
    }

    fn acknowledge(&self, acknowledged: u64) {
        let before = self.acknowledged.fetch_max(acknowledged, Ordering::Relaxed);
        if acknowledged > before {
            self.view.advance(acknowledged - before);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(acknowledged);
        }
    }

    pub(crate) fn on_event(&self, event: &UploadEvent) {
        if self.view.json {
            if let Some(value) = event_json(&self.name, event) {
                emit(&value);
            }
        }
        match event {
            UploadEvent::Progress { progress } => self.acknowledge(progress.acknowledged),
            UploadEvent::Retrying {
                attempt,
                delay_ms,
                message,
                ..
            } if self.view.multi.is_some() => self.view.note(&format!(
                "  ! {}: {message} — retry {attempt} in {:.1}s",
                self.name,
                *delay_ms as f64 / 1000.0
            )),
            UploadEvent::ServerRewound { from, to } => self.view.note(&format!(
                "  ! {}: the server lost {} it had acknowledged (failover?): resending from {to}",
                self.name,
                HumanBytes(from - to)
            )),
            _ => {}
        }
    }

    fn close(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            if let Some(multi) = &self.view.multi {
                multi.remove(bar);
            }
        }
    }

    pub(crate) fn completed(&self, report: &UploadReport) {
        self.acknowledge(self.size);
        self.close();
        self.view.finished_one();
        if self.view.json {
            emit(&json!({
                "event": "completed",
                "file": self.name,
                "path": self.path,
                "upload_url": report.upload_url,
                "size": report.size,
                "resumed_from": report.resumed_from,
                "retries": report.retries.len(),
                "elapsed_ms": report.elapsed.as_millis() as u64,
            }));
        } else if self.view.multi.is_none() {
            let survived = match report.retries.len() {
                0 => String::new(),
                n => format!(", survived {n} problems"),
            };
            let resumed = report
                .resumed_from
                .map(|at| format!(", resumed at {}", HumanBytes(at)))
                .unwrap_or_default();
            eprintln!(
                "✓ {} → {} ({} in {}{resumed}{survived})",
                self.name,
                crate::report::shown_url(report.upload_url.as_deref()),
                HumanBytes(report.size),
                HumanDuration(report.elapsed),
            );
        }
    }

    /// The upload failed; `will_retry` when the batch tries it again later.
    pub(crate) fn failed(&self, error: &chunkup::Error, will_retry: bool) {
        self.close();
        if !will_retry {
            self.view.finished_one();
        }
        self.view.event(json!({
            "event": "failed",
            "file": self.name,
            "path": self.path,
            "error": error.to_string(),
            "kind": error.kind().as_str(),
            "will_retry": will_retry,
        }));
        if will_retry {
            self.view
                .note(&format!("  ! {}: {error} — trying again later", self.name));
        } else {
            self.view.note(&format!("✗ {}: {error}", self.name));
        }
    }
}
