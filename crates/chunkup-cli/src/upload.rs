//! `chunkup upload` and `chunkup status`.

use std::path::PathBuf;
use std::time::Duration;

use chunkup::core::IetfVersion;
use chunkup::{
    ChunkSizing, Client, FileResumeStore, Protocol, ResumeStore, RetryPolicy, UploadControl,
    UploadOptions,
};
use clap::Args;

use crate::exit;
use crate::report::{FileReporter, Output};
use crate::size::parse_size;

#[derive(Debug, Args)]
pub(crate) struct UploadArgs {
    /// Files to upload.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Where uploads are created (for ranged: the endpoint that answers POST).
    #[arg(long)]
    to: String,
    /// Upload protocol: ranged, tus, ietf, or auto (ask the endpoint).
    #[arg(long, default_value = "ranged", value_parser = parse_protocol)]
    protocol: Protocol,
    /// IETF draft interop version: 6 (draft -05, tusd) or 8 (draft -11).
    #[arg(long, default_value_t = 8, value_parser = parse_ietf_version)]
    ietf_version: u8,
    /// Metadata for the server, `key=value` (repeatable; tus Upload-Metadata).
    #[arg(long = "metadata")]
    metadata: Vec<String>,
    /// Do not send chunk checksums even when the server supports them.
    #[arg(long)]
    no_checksum: bool,
    /// Connections per big file: it is sent as parallel parts where the
    /// server allows (tus concatenation; parts are not resumed by a later run).
    #[arg(long, default_value_t = 1)]
    parts: usize,
    /// Chunk size: `auto` (adaptive) or a size such as 8MiB.
    #[arg(long, default_value = "auto", value_parser = parse_chunk_size)]
    chunk_size: ChunkChoice,
    /// Print NDJSON events on stdout instead of progress bars.
    #[arg(long)]
    json: bool,
    /// Failed attempts allowed without progress before giving up.
    #[arg(long, default_value_t = RetryPolicy::default().max_attempts)]
    retries: u32,
    /// Seconds without progress that count as a broken connection.
    #[arg(long, default_value_t = 30)]
    stall_timeout: u64,
    /// Extra header for every request, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Content type announced for the files.
    #[arg(long)]
    content_type: Option<String>,
    /// Where resume state is kept (default $XDG_STATE_HOME/chunkup).
    #[arg(long, env = "CHUNKUP_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Do not resume earlier attempts or remember this one.
    #[arg(long)]
    no_resume: bool,
}

#[derive(Debug, Clone)]
enum ChunkChoice {
    Auto,
    Fixed(u64),
}

fn parse_chunk_size(text: &str) -> Result<ChunkChoice, String> {
    if text.eq_ignore_ascii_case("auto") {
        Ok(ChunkChoice::Auto)
    } else {
        parse_size(text).map(ChunkChoice::Fixed)
    }
}

fn parse_protocol(text: &str) -> Result<Protocol, String> {
    text.parse()
        .map_err(|e: chunkup::core::Error| e.to_string())
}

fn parse_ietf_version(text: &str) -> Result<u8, String> {
    match text.trim() {
        "6" => Ok(6),
        "8" => Ok(8),
        other => Err(format!("IETF interop version {other:?} is not 6 or 8")),
    }
}

fn parse_metadata(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("metadata {text:?} is not `key=value`")),
    }
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("header {text:?} is not `Name: value`")),
    }
}

fn store_for(state_dir: Option<PathBuf>) -> Result<FileResumeStore, chunkup::Error> {
    match state_dir {
        Some(dir) => Ok(FileResumeStore::new(dir)),
        None => FileResumeStore::default_location(),
    }
}

pub(crate) async fn run(args: UploadArgs) -> u8 {
    let headers: Result<Vec<_>, _> = args.headers.iter().map(|h| parse_header(h)).collect();
    let headers = match headers {
        Ok(headers) => headers,
        Err(error) => return usage(&error),
    };
    let metadata: Result<Vec<_>, _> = args.metadata.iter().map(|m| parse_metadata(m)).collect();
    let metadata = match metadata {
        Ok(metadata) => metadata,
        Err(error) => return usage(&error),
    };
    // Catch a bad URL once, before any file is touched.
    if let Err(error) =
        chunkup::core::Upload::new(chunkup::core::UploadConfig::create(args.to.clone(), 0))
    {
        return usage(&error.to_string());
    }
    let mut client = match Client::new() {
        Ok(client) => client,
        Err(error) => {
            eprintln!("chunkup: {error}");
            return exit::FAILED;
        }
    };
    if !args.no_resume {
        match store_for(args.state_dir.clone()) {
            Ok(store) => client = client.with_resume_store(store),
            Err(error) => eprintln!("chunkup: warning: {error}; uploads will not be resumable"),
        }
    }
    let options = UploadOptions {
        protocol: args.protocol,
        chunking: match args.chunk_size {
            ChunkChoice::Auto => ChunkSizing::default(),
            ChunkChoice::Fixed(size) => ChunkSizing::Fixed(size),
        },
        retry: RetryPolicy {
            max_attempts: args.retries,
            stall_timeout: Duration::from_secs(args.stall_timeout.max(1)),
            ..RetryPolicy::default()
        },
        headers,
        content_type: args.content_type.clone(),
        metadata,
        checksum: !args.no_checksum,
        parallel: args.parts.max(1),
        ietf_version: if args.ietf_version == 6 {
            IetfVersion::Interop6
        } else {
            IetfVersion::Interop8
        },
        ..UploadOptions::default()
    };

    let output = Output::new(args.json);
    let mut failed = 0usize;
    for file in &args.files {
        let shown = file.display().to_string();
        let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        let reporter = FileReporter::new(&output, &shown, size);
        let control = UploadControl::new();
        let options = UploadOptions {
            control: Some(control.clone()),
            ..options.clone()
        };
        let upload = client.upload_file(file, &args.to, options, |event| reporter.on_event(event));
        let result = tokio::select! {
            result = upload => result,
            _ = tokio::signal::ctrl_c() => {
                control.cancel();
                reporter.finish(&Err(chunkup::Error::Cancelled));
                eprintln!("chunkup: interrupted; run the same command again to resume");
                return exit::INTERRUPTED;
            }
        };
        reporter.finish(&result);
        if result.is_err() {
            failed += 1;
        }
    }
    if args.files.len() > 1 && !args.json {
        let done = args.files.len() - failed;
        eprintln!("{done} of {} files uploaded", args.files.len());
    }
    if failed == 0 { 0 } else { exit::FAILED }
}

fn usage(message: &str) -> u8 {
    eprintln!("chunkup upload: {message}");
    exit::USAGE
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Where resume state is kept (default $XDG_STATE_HOME/chunkup).
    #[arg(long, env = "CHUNKUP_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) fn status(args: StatusArgs) -> u8 {
    let records = match store_for(args.state_dir).and_then(|store| store.list()) {
        Ok(records) => records,
        Err(error) => {
            eprintln!("chunkup status: {error}");
            return exit::FAILED;
        }
    };
    if args.json {
        for record in &records {
            crate::report::emit(&serde_json::to_value(record).unwrap_or_default());
        }
        return 0;
    }
    if records.is_empty() {
        println!("no unfinished uploads");
    }
    for record in records {
        let percent = if record.total == 0 {
            100.0
        } else {
            record.offset as f64 * 100.0 / record.total as f64
        };
        println!(
            "{}  {:>5.1}%  {}/{}  {}  {}",
            &record.fingerprint[..12.min(record.fingerprint.len())],
            percent,
            record.offset,
            record.total,
            record.protocol,
            record.upload_url
        );
    }
    0
}
