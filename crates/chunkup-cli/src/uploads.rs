//! `chunkup uploads list|forget`: the remembered uploads (unfinished uploads
//! this machine can continue), from the resume store of single uploads and
//! from the batches' journal.

use std::path::PathBuf;

use chunkup::batch::Journal;
use chunkup::{FileResumeStore, RememberedUpload, ResumeRecord, ResumeStore};
use clap::{Args, Subcommand};
use indicatif::HumanBytes;
use serde_json::json;

use crate::exit;
use crate::report::emit;

#[derive(Debug, Args)]
pub(crate) struct UploadsArgs {
    /// Where resume and batch state is kept (default $XDG_STATE_HOME/chunkup).
    #[arg(long, global = true, env = "CHUNKUP_STATE_DIR")]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: UploadsCommand,
}

#[derive(Debug, Subcommand)]
enum UploadsCommand {
    /// List the remembered uploads, newest first: file name, size, endpoint,
    /// URL, protocol, acknowledged bytes, times and metadata.
    List {
        /// Print NDJSON, one upload a line.
        #[arg(long)]
        json: bool,
    },
    /// Forget remembered uploads (the uploads stay on their servers; the
    /// next upload of the same file starts a new one).
    Forget {
        /// Keys (or their first characters, as `list` shows them).
        #[arg(required_unless_present = "all")]
        keys: Vec<String>,
        /// Forget every remembered upload.
        #[arg(long, conflicts_with = "keys")]
        all: bool,
    },
}

/// Where one record is kept: the file store, or a batch in the journal.
struct Kept {
    batch: Option<String>,
    record: ResumeRecord,
}

pub(crate) fn run(args: UploadsArgs) -> u8 {
    let store = match &args.state_dir {
        Some(dir) => Ok(FileResumeStore::new(dir)),
        None => FileResumeStore::default_location(),
    };
    let store = match store {
        Ok(store) => store,
        Err(error) => return failed(&error),
    };
    let journal = match Journal::open_existing(&Journal::location(store.dir())) {
        Ok(journal) => journal,
        Err(error) => return failed(&error),
    };
    let mut kept: Vec<Kept> = match store.list() {
        Ok(records) => records
            .into_iter()
            .map(|record| Kept {
                batch: None,
                record,
            })
            .collect(),
        Err(error) => return failed(&error),
    };
    if let Some(journal) = &journal {
        match journal.resume_records() {
            Ok(records) => kept.extend(records.into_iter().map(|(batch, record)| Kept {
                batch: Some(batch),
                record,
            })),
            Err(error) => return failed(&error),
        }
    }
    let records: Vec<ResumeRecord> = kept.iter().map(|k| k.record.clone()).collect();
    let uploads = RememberedUpload::list(&records);
    match args.command {
        UploadsCommand::List { json } => {
            list(&uploads, json);
            0
        }
        UploadsCommand::Forget { keys, all } => {
            let mut chosen = Vec::new();
            if all {
                chosen.extend(uploads.iter().map(|u| u.key.clone()));
            }
            for prefix in &keys {
                let matching: Vec<&RememberedUpload> = uploads
                    .iter()
                    .filter(|u| u.key.starts_with(prefix.as_str()))
                    .collect();
                match matching.as_slice() {
                    [one] => chosen.push(one.key.clone()),
                    [] => {
                        eprintln!("chunkup uploads forget: no remembered upload {prefix:?}");
                        return exit::FAILED;
                    }
                    _ => {
                        eprintln!(
                            "chunkup uploads forget: {prefix:?} names {} uploads: give more of the key",
                            matching.len()
                        );
                        return exit::USAGE;
                    }
                }
            }
            for key in &chosen {
                // The upload's record and those of its parallel parts.
                for k in kept.iter().filter(|k| {
                    k.record.fingerprint == *key || k.record.part_of.as_ref() == Some(key)
                }) {
                    let removed = match (&k.batch, &journal) {
                        (Some(_), Some(journal)) => journal.forget_upload(&k.record.fingerprint),
                        _ => store.remove(&k.record.fingerprint),
                    };
                    if let Err(error) = removed {
                        return failed(&error);
                    }
                }
                println!("forgot {key}");
            }
            0
        }
    }
}

fn list(uploads: &[RememberedUpload], json: bool) {
    if json {
        for u in uploads {
            let metadata: serde_json::Map<String, serde_json::Value> = u
                .metadata
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone().into()))
                .collect();
            emit(&json!({
                "key": u.key,
                "file_name": u.file_name,
                "size": u.size,
                "endpoint": u.endpoint,
                "upload_url": u.upload_url,
                "protocol": protocol_name(u),
                "acknowledged": u.acknowledged,
                "created_ms": u.created_ms,
                "updated_ms": u.updated_ms,
                "expires_ms": u.expires_ms,
                "metadata": metadata,
            }));
        }
        return;
    }
    if uploads.is_empty() {
        println!("no remembered uploads");
        return;
    }
    for u in uploads {
        let percent = if u.size == 0 {
            100.0
        } else {
            u.acknowledged as f64 * 100.0 / u.size as f64
        };
        println!(
            "{}  {}  {:>5.1}% of {}  {}  {}",
            &u.key[..12.min(u.key.len())],
            u.file_name.as_deref().unwrap_or("(unnamed)"),
            percent,
            HumanBytes(u.size),
            protocol_name(u),
            u.upload_url,
        );
        if let Some(endpoint) = &u.endpoint {
            println!("      endpoint {endpoint}");
        }
        if !u.metadata.is_empty() {
            let pairs: Vec<String> = u
                .metadata
                .iter()
                .map(|kv| format!("{}={}", kv.key, kv.value))
                .collect();
            println!("      metadata {}", pairs.join(", "));
        }
    }
}

fn protocol_name(upload: &RememberedUpload) -> String {
    chunkup::core::Protocol::from(upload.protocol).to_string()
}

fn failed(error: &chunkup::Error) -> u8 {
    eprintln!("chunkup uploads: {error}");
    exit::FAILED
}
