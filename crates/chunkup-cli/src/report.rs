//! What the user sees: progress bars on a terminal, NDJSON with `--json`,
//! plain lines otherwise.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use chunkup::{UploadEvent, UploadReport};
use indicatif::{HumanBytes, HumanDuration, MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;

/// How events are shown.
#[derive(Debug, Clone)]
pub(crate) enum Output {
    /// Progress bars (only drawn when stderr is a terminal).
    Human(MultiProgress),
    /// One JSON object per line on stdout.
    Json,
}

impl Output {
    pub(crate) fn new(json: bool) -> Self {
        if json {
            Output::Json
        } else {
            Output::Human(MultiProgress::new())
        }
    }
}

/// Reports one file's upload.
#[derive(Debug)]
pub(crate) struct FileReporter {
    output: Output,
    file: String,
    bar: Option<ProgressBar>,
}

impl FileReporter {
    pub(crate) fn new(output: &Output, file: &str, size: u64) -> Self {
        let bar = match output {
            Output::Human(multi) if std::io::stderr().is_terminal() => {
                let bar = multi.add(ProgressBar::new(size));
                let style = ProgressStyle::with_template(
                    "{prefix:.bold} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_prefix(short_name(file));
                bar.enable_steady_tick(Duration::from_millis(200));
                Some(bar)
            }
            _ => None,
        };
        FileReporter {
            output: output.clone(),
            file: file.to_string(),
            bar,
        }
    }

    /// A line for the user, above the bars.
    pub(crate) fn note(&self, line: &str) {
        match (&self.bar, &self.output) {
            (Some(bar), _) => bar.println(line),
            (None, Output::Human(_)) => eprintln!("{line}"),
            (None, Output::Json) => {}
        }
    }

    pub(crate) fn on_event(&self, event: &UploadEvent) {
        if let Output::Json = self.output {
            if let Some(value) = event_json(&self.file, event) {
                emit(&value);
            }
            return;
        }
        match event {
            UploadEvent::Progress { progress } => {
                if let Some(bar) = &self.bar {
                    // A stream's total grows as it is read.
                    if bar.length() != Some(progress.total) {
                        bar.set_length(progress.total);
                    }
                    bar.set_position(progress.acknowledged);
                }
            }
            UploadEvent::Created { upload_url } => self.note(&format!("  created {upload_url}")),
            UploadEvent::Resumed { offset } => self.note(&format!(
                "  resuming {}: the server already holds {}",
                self.file,
                HumanBytes(*offset)
            )),
            UploadEvent::Retrying {
                attempt,
                delay_ms,
                message,
                ..
            } => self.note(&format!(
                "  ! {message} — retry {attempt} in {:.1}s",
                *delay_ms as f64 / 1000.0
            )),
            UploadEvent::ServerRewound { from, to } => self.note(&format!(
                "  ! the server lost {} it had acknowledged (failover?): resending from {to}",
                HumanBytes(from - to)
            )),
            UploadEvent::Paused => self.note("  paused"),
            UploadEvent::Discovered {
                protocol,
                extensions,
                ..
            } => {
                let extensions = if extensions.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", extensions.join(", "))
                };
                self.note(&format!(
                    "  protocol: {}{extensions}",
                    protocol_name(*protocol)
                ));
            }
            _ => {}
        }
    }

    pub(crate) fn finish(&self, result: &Result<UploadReport, chunkup::Error>) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        match (&self.output, result) {
            (Output::Json, Ok(report)) => emit(&json!({
                "event": "completed",
                "file": self.file,
                "upload_url": report.upload_url,
                "size": report.size,
                "resumed_from": report.resumed_from,
                "retries": report.retries.len(),
                "elapsed_ms": report.elapsed.as_millis() as u64,
            })),
            (Output::Json, Err(error)) => emit(&json!({
                "event": "failed",
                "file": self.file,
                "error": error.to_string(),
                "kind": error.kind().as_str(),
            })),
            (Output::Human(_), Ok(report)) => {
                let secs = report.elapsed.as_secs_f64().max(1e-9);
                let survived = match report.retries.len() {
                    0 => String::new(),
                    n => format!(", survived {n} problems"),
                };
                eprintln!(
                    "✓ {} → {} ({} in {}, {}/s{survived})",
                    self.file,
                    shown_url(report.upload_url.as_deref()),
                    HumanBytes(report.size),
                    HumanDuration(report.elapsed),
                    HumanBytes((report.size as f64 / secs) as u64),
                );
            }
            (Output::Human(_), Err(error)) => eprintln!("✗ {}: {error}", self.file),
        }
    }
}

/// The protocol's name, as the command line spells it.
pub(crate) fn protocol_name(protocol: chunkup::Protocol) -> &'static str {
    chunkup::core::Protocol::from(protocol).as_str()
}

pub(crate) fn event_json(file: &str, event: &UploadEvent) -> Option<serde_json::Value> {
    Some(match event {
        UploadEvent::Created { upload_url } => {
            json!({"event": "created", "file": file, "upload_url": upload_url})
        }
        UploadEvent::Resumed { offset } => {
            json!({"event": "resumed", "file": file, "offset": offset})
        }
        UploadEvent::ChunkAcknowledged { offset } => {
            json!({"event": "chunk_acknowledged", "file": file, "offset": offset})
        }
        UploadEvent::Progress { progress: p } => json!({
            "event": "progress",
            "file": file,
            "acknowledged": p.acknowledged,
            "sent": p.sent,
            "total": p.total,
            "bytes_per_second": p.bytes_per_second.round() as u64,
            "eta_ms": p.eta_ms,
        }),
        UploadEvent::Retrying {
            attempt,
            delay_ms,
            reason,
            status,
            message,
        } => json!({
            "event": "retrying",
            "file": file,
            "attempt": attempt,
            "delay_ms": delay_ms,
            "kind": reason,
            "status": status,
            "reason": message,
        }),
        UploadEvent::ServerRewound { from, to } => {
            json!({"event": "server_rewound", "file": file, "from": from, "to": to})
        }
        UploadEvent::Paused => json!({"event": "paused", "file": file}),
        UploadEvent::Discovered {
            protocol,
            assumed,
            extensions,
            max_size,
        } => json!({
            "event": "discovered",
            "file": file,
            "protocol": protocol_name(*protocol),
            "assumed": assumed,
            "extensions": extensions,
            "max_size": max_size,
        }),
        UploadEvent::Expires { at_unix_ms } => {
            json!({"event": "expires", "file": file, "at_unix_ms": at_unix_ms})
        }
        UploadEvent::StoreFailed { message } => {
            json!({"event": "store_failed", "file": file, "message": message})
        }
        // Endings are reported by `finish` with the summary.
        UploadEvent::Completed { .. }
        | UploadEvent::Failed { .. }
        | UploadEvent::Stopped
        | UploadEvent::Terminated => {
            return None;
        }
    })
}

/// An upload URL for people: the server may complete an upload without
/// naming it (IETF, in the creation request).
pub(crate) fn shown_url(upload_url: Option<&str>) -> &str {
    upload_url.unwrap_or("(completed at creation, no URL)")
}

/// Writes one NDJSON line; a closed stdout (e.g. `| head`) is not an error.
pub(crate) fn emit(value: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

pub(crate) fn short_name(file: &str) -> String {
    let name = std::path::Path::new(file)
        .file_name()
        .map_or_else(|| file.to_string(), |n| n.to_string_lossy().into_owned());
    if name.chars().count() > 24 {
        let head: String = name.chars().take(23).collect();
        format!("{head}…")
    } else {
        name
    }
}
