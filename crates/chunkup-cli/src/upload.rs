//! `chunkup upload`: the command line, turned into a batch (see `bulk`).

use std::path::PathBuf;
use std::time::Duration;

use chunkup::batch::BatchPolicy;
use chunkup::core::IetfVersion;
use chunkup::{ChunkSizing, Protocol, RetryPolicy, UploadOptions};
use clap::Args;

use crate::exit;
use crate::size::parse_size;

#[derive(Debug, Args)]
pub(crate) struct UploadArgs {
    /// Files, directories (walked recursively) or glob patterns (quote them:
    /// 'photos/**/*.jpg') to upload as one resumable batch.
    #[arg(required = true, value_name = "DIR|GLOB|FILE")]
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
    /// Metadata for the server, `key=value` (repeatable; tus Upload-Metadata,
    /// which also carries each file's `relativePath`).
    #[arg(long = "metadata")]
    metadata: Vec<String>,
    /// Files uploaded at once.
    #[arg(long, short = 'P', default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    parallel: u16,
    /// Only files whose remote name (e.g. `dir/sub/a.jpg`) matches this glob
    /// (repeatable; `*` also matches `/`).
    #[arg(long)]
    include: Vec<String>,
    /// Leave out files and directories whose remote name matches this glob
    /// (repeatable; wins over --include).
    #[arg(long)]
    exclude: Vec<String>,
    /// Show what would be uploaded or skipped; send nothing, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Upload bandwidth for the whole run, per second, e.g. 10MiB (all files
    /// together).
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    bwlimit: Option<u64>,
    /// Send a checksum with every chunk when the server supports it (tus
    /// checksum). Off by default: each chunk is then read and hashed before
    /// it is sent, and TCP/TLS already protect the bytes in transit.
    #[arg(long)]
    checksum: bool,
    /// Connections per big file: it is sent as parallel parts where the
    /// server allows (tus concatenation; a later run with the same split
    /// continues each part).
    #[arg(long, default_value_t = 1)]
    parts: usize,
    /// Chunk size: `auto` (adaptive) or a size such as 8MiB.
    #[arg(long, default_value = "auto", value_parser = parse_chunk_size)]
    chunk_size: ChunkChoice,
    /// Print NDJSON events on stdout instead of progress bars.
    #[arg(long)]
    json: bool,
    /// Failed requests in a row, without the server's offset advancing,
    /// before a file's try is given up.
    #[arg(long, default_value_t = RetryPolicy::default().max_attempts)]
    retries: u32,
    /// Tries per file in one run: a file whose try ran out of retries goes
    /// back to the queue until it had this many.
    #[arg(long, default_value_t = BatchPolicy::default().file_attempts, value_parser = clap::value_parser!(u32).range(1..))]
    file_tries: u32,
    /// Send small files inside their creation request (tus
    /// creation-with-upload): one request per file instead of two, but a run
    /// killed while such a request is in flight may leave a second copy of
    /// that file on the server.
    #[arg(long)]
    creation_with_upload: bool,
    /// Seconds without progress that count as a broken connection.
    #[arg(long, default_value_t = 30)]
    stall_timeout: u64,
    /// Extra header for every request, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Content type announced for the files.
    #[arg(long)]
    content_type: Option<String>,
    /// Where resume and batch state is kept (default $XDG_STATE_HOME/chunkup).
    #[arg(long, env = "CHUNKUP_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Do not resume earlier runs or remember this one (every file is sent).
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
    let probe = chunkup::core::SessionConfig::new(
        args.to.clone(),
        args.protocol,
        chunkup::SourceInfo::anonymous(Some(0)),
    );
    if let Err(error) = chunkup::core::Session::new(probe) {
        return usage(&error.to_string());
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
        checksum: args.checksum,
        parallel: args.parts.max(1),
        // A batch creates before it sends (see BatchPolicy).
        creation_with_upload: args.creation_with_upload,
        ietf_version: if args.ietf_version == 6 {
            IetfVersion::Interop6
        } else {
            IetfVersion::Interop8
        },
        ..UploadOptions::default()
    };
    crate::bulk::run(crate::bulk::Settings {
        inputs: args.files,
        endpoint: args.to,
        options,
        parallel: usize::from(args.parallel),
        include: args.include,
        exclude: args.exclude,
        dry_run: args.dry_run,
        json: args.json,
        resume: !args.no_resume,
        state_dir: args.state_dir,
        bwlimit: args.bwlimit,
        policy: BatchPolicy {
            file_attempts: args.file_tries,
            creation_with_upload: args.creation_with_upload,
        },
    })
    .await
}

fn usage(message: &str) -> u8 {
    eprintln!("chunkup upload: {message}");
    exit::USAGE
}
