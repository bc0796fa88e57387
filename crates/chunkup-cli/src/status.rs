//! `chunkup status`: batches (files by state) and unfinished uploads.

use std::path::PathBuf;

use chunkup::batch::{BatchInfo, Journal};
use chunkup::{FileResumeStore, ResumeRecord, ResumeStore};
use clap::Args;
use indicatif::HumanBytes;
use serde_json::json;

use crate::exit;
use crate::report::emit;

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Where resume and batch state is kept (default $XDG_STATE_HOME/chunkup).
    #[arg(long, env = "CHUNKUP_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Show one batch (an id or its first characters) with its failed files.
    #[arg(long)]
    batch: Option<String>,
    /// Print NDJSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn when(ms: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let secs = (now - ms).max(0) / 1000;
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

pub(crate) fn status(args: StatusArgs) -> u8 {
    let store = match &args.state_dir {
        Some(dir) => Ok(FileResumeStore::new(dir)),
        None => FileResumeStore::default_location(),
    };
    let store = match store {
        Ok(store) => store,
        Err(error) => {
            eprintln!("chunkup status: {error}");
            return exit::FAILED;
        }
    };
    let journal = match Journal::open_existing(&Journal::location(store.dir())) {
        Ok(journal) => journal,
        Err(error) => {
            eprintln!("chunkup status: {error}");
            return exit::FAILED;
        }
    };
    let mut batches = match journal.as_ref().map(Journal::batches).transpose() {
        Ok(batches) => batches.unwrap_or_default(),
        Err(error) => {
            eprintln!("chunkup status: {error}");
            return exit::FAILED;
        }
    };
    if let Some(prefix) = &args.batch {
        batches.retain(|b| b.id.starts_with(prefix.as_str()));
        if batches.is_empty() {
            eprintln!("chunkup status: no batch {prefix:?}");
            return exit::FAILED;
        }
    }
    // Unfinished uploads: single uploads of the library's file store, and
    // the batches' own records.
    let mut records: Vec<(Option<String>, ResumeRecord)> = match store.list() {
        Ok(records) => records.into_iter().map(|r| (None, r)).collect(),
        Err(error) => {
            eprintln!("chunkup status: {error}");
            return exit::FAILED;
        }
    };
    if let Some(journal) = &journal {
        match journal.resume_records() {
            Ok(more) => records.extend(more.into_iter().map(|(b, r)| (Some(b), r))),
            Err(error) => eprintln!("chunkup status: {error}"),
        }
    }
    if let Some(prefix) = &args.batch {
        records.retain(|(b, _)| b.as_deref().is_some_and(|b| b.starts_with(prefix.as_str())));
    }
    records.sort_by_key(|(_, r)| std::cmp::Reverse(r.updated_ms));

    if args.json {
        for batch in &batches {
            emit(&json!({"kind": "batch", "batch": batch}));
        }
        for (batch, record) in &records {
            emit(&json!({"kind": "upload", "batch_id": batch, "record": record}));
        }
        return 0;
    }
    if !batches.is_empty() {
        println!("batches:");
    }
    for batch in &batches {
        print_batch(batch);
        if args.batch.is_some()
            && let Some(journal) = &journal
        {
            for failure in journal.failures(&batch.id, 1000).unwrap_or_default() {
                println!("    ✗ {}: {}", failure.relative, failure.reason);
            }
        }
    }
    if records.is_empty() {
        println!("no unfinished uploads");
    } else {
        println!("unfinished uploads:");
    }
    for (batch, record) in records {
        let percent = if record.total == 0 {
            100.0
        } else {
            record.offset as f64 * 100.0 / record.total as f64
        };
        let batch = batch.map(|b| format!("  batch {}", &b[..12.min(b.len())]));
        println!(
            "  {}  {:>5.1}%  {}/{}  {}  {}{}",
            &record.fingerprint[..12.min(record.fingerprint.len())],
            percent,
            record.offset,
            record.total,
            record.protocol,
            record.upload_url,
            batch.unwrap_or_default()
        );
    }
    0
}

fn print_batch(batch: &BatchInfo) {
    let c = &batch.counts;
    let roots = match batch.roots.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} (+{} more)", rest.len()),
    };
    println!(
        "  {}  {}  → {}",
        &batch.id[..12.min(batch.id.len())],
        roots,
        batch.endpoint
    );
    println!(
        "      {} files: {} done ({}), {} failed, {} uploading, {} pending; runs: {}, updated {}",
        c.total(),
        c.done,
        HumanBytes(c.done_bytes),
        c.failed,
        c.uploading,
        c.pending,
        batch.runs,
        when(batch.updated_ms)
    );
}
