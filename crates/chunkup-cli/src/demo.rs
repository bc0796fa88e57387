//! `chunkup demo`: the whole story in one command. Two reference servers
//! share a store behind a failover proxy, with faults on; a generated file is
//! uploaded with live progress; halfway, the first server is killed and loses
//! its unflushed buffer (a hole); at the end the server's sha256 must equal
//! the file's.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chunkup::{ChunkSizing, Client, RetryPolicy, RetryReason, UploadEvent, UploadOptions};
use chunkup_server::proxy::FailoverProxy;
use chunkup_server::{AdminAccess, FaultSpec, ServerConfig};
use clap::Args;
use sha2::{Digest, Sha256};

use crate::exit;
use crate::report::{FileReporter, Output};
use crate::size::parse_size;

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Size of the generated file.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    size: u64,
    /// Seed for the file's bytes and the server's faults (random if absent).
    #[arg(long)]
    seed: Option<u64>,
    /// Faults to inject (see docs/SERVER.md); `{seed}` is replaced by the seed.
    #[arg(
        long,
        default_value = "seed={seed},reset=0.08,error=0.06,busy=0.05,burst=2,retry-after=1,stall=0.03,stall-secs=30"
    )]
    faults: String,
    /// Do not kill the first server halfway.
    #[arg(long)]
    no_failover: bool,
    /// Print NDJSON events instead of progress bars.
    #[arg(long)]
    json: bool,
}

const LOOPBACK: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

pub(crate) async fn run(args: DemoArgs) -> u8 {
    match demo(args).await {
        Ok(true) => 0,
        Ok(false) => exit::FAILED,
        Err(error) => {
            eprintln!("chunkup demo: {error}");
            exit::FAILED
        }
    }
}

async fn demo(args: DemoArgs) -> anyhow::Result<bool> {
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..1_000_000));
    let faults: FaultSpec = args.faults.replace("{seed}", &seed.to_string()).parse()?;
    let work = tempfile::tempdir()?;
    let store_dir = work.path().join("store");
    let file = work.path().join("demo-video.bin");

    say(&args, &format!("chunkup demo — seed {seed}"));
    say(
        &args,
        &format!("  making a {} test file…", indicatif::HumanBytes(args.size)),
    );
    let source_sha = write_test_file(&file, args.size, seed)?;

    // The final check reads the server's sha256 through the admin API,
    // opened to this process alone with a token of its own.
    let admin_token = chunkup_server::random_token()?;
    let config = |write_behind| ServerConfig {
        dir: store_dir.clone(),
        faults: faults.clone(),
        write_behind,
        admin: AdminAccess {
            open: true,
            token: Some(admin_token.clone()),
            ..AdminAccess::default()
        },
        ..ServerConfig::default()
    };
    // Server A keeps its newest MiB in memory only, so killing it loses bytes it
    // had acknowledged: exactly what a failover to another node does.
    let first = chunkup_server::start(LOOPBACK, config(1 << 20)).await?;
    let second = chunkup_server::start(LOOPBACK, config(0)).await?;
    let proxy = FailoverProxy::start(LOOPBACK, vec![first.addr(), second.addr()]).await?;
    let endpoint = format!("{}/ranged", proxy.url());
    say(
        &args,
        &format!(
            "  servers {} and {} share one store behind {}",
            first.base_url(),
            second.base_url(),
            proxy.url()
        ),
    );
    say(&args, &format!("  faults: {faults}"));

    let first = Arc::new(Mutex::new(Some(first)));
    let crash_at = if args.no_failover {
        u64::MAX
    } else {
        args.size / 2
    };
    // Fault counts of the first server, taken just before it is killed.
    let crashed = Arc::new(Mutex::new(None));
    let holes = Arc::new(Mutex::new(0usize));

    let output = Output::new(args.json);
    let shown = file.display().to_string();
    let reporter = FileReporter::new(&output, &shown, args.size);
    let options = UploadOptions {
        content_type: Some("video/mp4".into()),
        max_attempts: 20,
        stall_timeout_ms: 3000,
        ..UploadOptions::default()
    };
    let client = Client::new()?;
    let result = client
        .upload(options)
        .to(&endpoint)
        // Engine tuning the options do not carry: small chunks and a quick
        // backoff, so the demo shows many faults in a short run.
        .tune(|settings| {
            settings.chunking = ChunkSizing::Adaptive {
                initial: 1 << 20,
                min: 256 << 10,
                // About the 2 MB chunks of the mobile clients this protocol came from.
                max: 2 << 20,
                target_duration: Duration::from_secs(1),
            };
            settings.retry = RetryPolicy {
                initial_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(2),
                ..settings.retry.clone()
            };
        })
        .on_event(|event| {
            reporter.on_event(event);
            if let UploadEvent::ServerRewound { .. } = event {
                *lock(&holes) += 1;
            }
            if let UploadEvent::ChunkAcknowledged { offset } = event
                && *offset >= crash_at
                && let Some(server) = lock(&first).take()
            {
                reporter.note("  ✂ killing the first server: its unflushed buffer is lost, traffic fails over");
                *lock(&crashed) = Some(server.fault_counts());
                server.crash();
            }
        })
        .file(&file)
        .await;
    reporter.finish(&result);
    // Close pooled keep-alive connections so the servers stop at once.
    drop(client);
    let report = result?;

    let mut counts = second.fault_counts();
    let still_running = lock(&first).take();
    let first_counts = match still_running {
        Some(server) => {
            let counts = server.fault_counts();
            server.shutdown().await;
            counts
        }
        None => lock(&crashed).unwrap_or_default(),
    };
    counts.resets += first_counts.resets;
    counts.errors += first_counts.errors;
    counts.busy += first_counts.busy;
    counts.stalls += first_counts.stalls;
    say(&args, "");
    say(
        &args,
        &format!(
            "server injected: {} connection resets, {} 5xx errors, {} 503 busy, {} stalls{}",
            counts.resets,
            counts.errors,
            counts.busy,
            counts.stalls,
            if lock(&crashed).is_some() {
                ", 1 server crash"
            } else {
                ""
            }
        ),
    );
    let holes: usize = *lock(&holes);
    say(
        &args,
        &format!(
            "client survived {} problems and {holes} holes:",
            report.retries.len()
        ),
    );
    for (kind, count) in tally(&report.retries) {
        say(&args, &format!("  {count:>4} × {kind}"));
    }

    let url = report.upload_url.as_deref().unwrap_or_default();
    let id = url.rsplit('/').next().unwrap_or_default();
    let info: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/_admin/uploads/{id}", second.base_url()))
        .bearer_auth(&admin_token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let stored_sha = info["sha256"].as_str().unwrap_or_default();
    let ok = stored_sha == source_sha && info["complete"] == serde_json::Value::Bool(true);
    if args.json {
        crate::report::emit(&serde_json::json!({
            "event": "verified",
            "source_sha256": source_sha,
            "stored_sha256": stored_sha,
            "match": ok,
            "faults": counts,
            "client_retries": report.retries.len(),
            "holes": holes,
        }));
    } else if ok {
        println!("✓ sha256 match: {stored_sha}");
    } else {
        println!("✗ sha256 MISMATCH: file {source_sha}, server {stored_sha}");
    }
    proxy.shutdown().await;
    second.shutdown().await;
    Ok(ok)
}

fn say(args: &DemoArgs, line: &str) {
    if !args.json {
        eprintln!("{line}");
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Groups retry reasons by kind for the summary.
fn tally(reasons: &[RetryReason]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for reason in reasons {
        let kind = match reason {
            RetryReason::Status(503) => "server busy (503, Retry-After honoured)",
            RetryReason::Status(_) => "server error (5xx)",
            RetryReason::Transport(_) => "broken connection",
            RetryReason::Stalled => "stalled connection",
            RetryReason::OffsetMovedBack { .. } => "hole after failover / offset moved back",
            RetryReason::NoProgress { .. } => "acknowledged nothing new",
            RetryReason::UploadGone(_) => "upload vanished",
            RetryReason::ChunkTooLarge(_) => "chunk too large",
            RetryReason::OffsetMismatch => "offset mismatch (409)",
            RetryReason::ChecksumMismatch => "checksum mismatch (460)",
            RetryReason::SignatureExpired => "signed URL expired (signed again)",
            RetryReason::CredentialsRefused(_) => "credentials refused (refreshed)",
        };
        *counts.entry(kind).or_insert(0) += 1;
    }
    counts
}

/// Writes `size` pseudo-random bytes and returns their sha256.
fn write_test_file(path: &std::path::Path, size: u64, seed: u64) -> std::io::Result<String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        rng.fill(&mut block[..n]);
        hasher.update(&block[..n]);
        out.write_all(&block[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(hex::encode(hasher.finalize()))
}
