//! `chunkup upload`: the command line, turned into a batch (see `bulk`),
//! or into one upload for standard input and a known upload URL (see
//! `single`).

use std::path::PathBuf;

use chunkup::batch::BatchPolicy;
use chunkup::{FileResumeStore, Hooks, KeyValue, Protocol, SigV4Signer, UploadOptions};
use clap::Args;

use crate::exit;
use crate::single::{Input, Single};
use crate::size::parse_size;

#[derive(Debug, Args)]
pub(crate) struct UploadArgs {
    /// Files, directories (walked recursively) or glob patterns (quote them:
    /// 'photos/**/*.jpg') to upload as one resumable batch; `-` reads
    /// standard input (its length is learned at its end: tus
    /// creation-defer-length, IETF or Google-style sessions).
    #[arg(required = true, value_name = "DIR|GLOB|FILE|-")]
    files: Vec<PathBuf>,
    /// Where uploads are created: the endpoint that answers POST (ranged,
    /// tus, IETF), a Google-style initiation URL (gcs), or for s3
    /// `http(s)://HOST:PORT/BUCKET/KEY` (a key prefix ending in `/` for
    /// several files: each file's key is the prefix plus its relative path).
    #[arg(long, required_unless_present = "upload_url")]
    to: Option<String>,
    /// Continue this known upload (an upload URL, a Google-style session
    /// URI, an S3 multipart upload's URL) with the one file given; the
    /// server is asked how much it holds first.
    #[arg(long, value_name = "URL", conflicts_with = "upload_id")]
    upload_url: Option<String>,
    /// With `--protocol s3`: continue this multipart upload (its
    /// `UploadId`) of the object `--to` names, with the one file given;
    /// the parts it holds are listed first (ListParts).
    #[arg(long, value_name = "ID", requires = "to")]
    upload_id: Option<String>,
    /// Upload protocol: auto (ask the endpoint), tus, ietf, ranged, gcs
    /// (Google-style resumable sessions) or s3 (multipart, signed with SigV4
    /// from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN/
    /// AWS_REGION or the AWS_PROFILE of ~/.aws/credentials).
    #[arg(long, default_value = "auto", value_parser = parse_protocol)]
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
    #[arg(long, default_value_t = UploadOptions::default().max_attempts)]
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
    /// Explicit waits before the 1st, 2nd, … retry in a row, in
    /// milliseconds, e.g. `0,1000,3000` (the last repeats; default: a
    /// jittered exponential backoff). A server's Retry-After still wins.
    #[arg(long, value_delimiter = ',', value_name = "MS,MS,…")]
    retry_delays: Vec<u64>,
    /// Give up on a file's try after this many seconds.
    #[arg(long, value_name = "SECS")]
    deadline: Option<u64>,
    /// The file name announced to the server (default: the file's; `stdin`
    /// for `-`).
    #[arg(long)]
    file_name: Option<String>,
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
    text.parse::<chunkup::core::Protocol>()
        .map(Protocol::from)
        .map_err(|e| e.to_string())
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

pub(crate) async fn run(mut args: UploadArgs) -> u8 {
    if let Some(id) = args.upload_id.take() {
        if args.protocol != Protocol::S3 {
            return usage("--upload-id names an S3 multipart upload: add --protocol s3");
        }
        let object = args.to.clone().unwrap_or_default();
        let object = object.split(['?', '#']).next().unwrap_or_default();
        args.upload_url = Some(format!(
            "{object}?uploadId={}",
            crate::bulk::percent_encode_segment(&id)
        ));
    }
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
    let probe = chunkup::core::SessionConfig {
        endpoint: args.to.clone(),
        upload_url: args.upload_url.clone(),
        ..chunkup::core::SessionConfig::new(
            String::new(),
            args.protocol.into(),
            chunkup::SourceInfo::anonymous(Some(0)),
        )
    };
    if let Err(error) = chunkup::core::Session::new(probe) {
        return usage(&error.to_string());
    }
    let stdin = args.files.iter().any(|f| f.as_os_str() == "-");
    if stdin && args.files.len() > 1 {
        return usage("`-` (standard input) is uploaded on its own, not with other files");
    }
    if stdin && args.upload_url.is_some() {
        return usage("standard input cannot continue an upload: its earlier bytes are gone");
    }
    if args.upload_url.is_some() && (args.files.len() > 1 || !args.files[0].is_file()) {
        return usage("--upload-url/--upload-id continue one upload: give exactly one file");
    }
    let options = UploadOptions {
        protocol: Some(args.protocol),
        ietf_version: Some(args.ietf_version),
        chunk_size: match args.chunk_size {
            ChunkChoice::Auto => None,
            ChunkChoice::Fixed(size) => Some(size),
        },
        headers: pairs(headers),
        metadata: pairs(metadata),
        content_type: args.content_type.clone(),
        file_name: args.file_name.clone(),
        upload_url: args.upload_url.clone(),
        resume: !args.no_resume,
        parallel: u32::try_from(args.parts.max(1)).unwrap_or(u32::MAX),
        checksum: args.checksum,
        // A batch creates before it sends (see BatchPolicy).
        creation_with_upload: args.creation_with_upload,
        max_attempts: args.retries,
        retry_delays_ms: args.retry_delays.clone(),
        stall_timeout_ms: args.stall_timeout.max(1).saturating_mul(1000),
        deadline_ms: args.deadline.map(|secs| secs.saturating_mul(1000)),
        ..UploadOptions::default()
    };
    let mut hooks = Hooks::new();
    if args.protocol == Protocol::S3 {
        match SigV4Signer::from_env() {
            Ok(signer) => hooks = hooks.signer(signer),
            Err(error) => return usage(&format!("--protocol s3: {error}")),
        }
    }
    if stdin || args.upload_url.is_some() {
        let store = if args.no_resume {
            None
        } else {
            match &args.state_dir {
                Some(dir) => Some(FileResumeStore::new(dir)),
                None => FileResumeStore::default_location().ok(),
            }
        };
        let input = if stdin {
            Input::Stdin
        } else {
            Input::File(args.files[0].clone())
        };
        return crate::single::run(Single {
            input,
            endpoint: args.to,
            options: UploadOptions {
                // One upload: the small-file shortcut is safe here.
                creation_with_upload: true,
                ..options
            },
            hooks,
            json: args.json,
            store,
        })
        .await;
    }
    let endpoint = args.to.unwrap_or_default();
    // An S3 key prefix: each file's object is the prefix plus its path
    // relative to its input (a single file without a trailing `/` is the
    // object itself).
    let single_file = args.files.len() == 1 && args.files[0].is_file();
    let key_prefix = args.protocol == Protocol::S3 && (endpoint.ends_with('/') || !single_file);
    crate::bulk::run(crate::bulk::Settings {
        inputs: args.files,
        endpoint,
        key_prefix,
        options,
        hooks,
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

fn pairs(list: Vec<(String, String)>) -> Vec<KeyValue> {
    list.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect()
}

fn usage(message: &str) -> u8 {
    eprintln!("chunkup upload: {message}");
    exit::USAGE
}
