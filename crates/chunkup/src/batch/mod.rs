//! Batches: many files uploaded as one job that survives being killed.
//!
//! A batch is named by what it uploads and where ([`BatchSpec::id`]): the
//! same command run again finds the same batch. Its state lives in a
//! [`Journal`] (SQLite, feature `batch`): one row per file seen, with its
//! state, its upload URL and the reason it failed. The decisions a driver
//! (the CLI, an application) follows are made here, once:
//!
//! - [`decide`]: a file finished by an earlier run and unchanged since (same
//!   size and modification time) is skipped without a request; one that was
//!   started continues at the server's offset; a new or changed file is
//!   uploaded.
//! - [`after_failure`]: a failure that another try may cure (the retry budget
//!   ran out on a flaky link, a deadline) sends the file back to the queue, up
//!   to [`BatchPolicy::file_attempts`] tries per run; a refusal, a protocol
//!   violation or an unreadable source is final for this run (the next run
//!   tries again).
//! - discovery is done once per endpoint and shared by every file
//!   ([`DiscoveryCache`]), and tus creation-with-upload is not used unless
//!   asked for — see [`BatchPolicy::creation_with_upload`] for why.
//!
//! The journal is also the batch's [`crate::ResumeStore`], so one file's
//! upload URL and offset hint are written in the same database as its state,
//! without a `fsync` per file (see [`Journal`] for the durability it gives).

use sha2::{Digest, Sha256};

use chunkup_core::{Protocol, ResolvedProtocol};

use crate::Error;

#[cfg(feature = "native")]
mod discovery;
#[cfg(feature = "batch")]
mod journal;

#[cfg(feature = "native")]
pub use discovery::DiscoveryCache;
#[cfg(feature = "batch")]
pub use journal::{
    BatchInfo, BatchLock, BatchResumeStore, Counts, FileEntry, FileFailure, Journal, RetryItem,
};

/// What identifies a batch: where the files go, which files (roots and
/// filters) and what is sent with them. Parallelism, bandwidth, chunk size
/// and retry settings are not part of it: changing them continues the batch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BatchSpec {
    /// Where uploads are created.
    pub endpoint: String,
    /// The inputs, canonical (absolute, symlinks resolved; a glob keeps its
    /// pattern after its canonical base directory). Order does not matter.
    pub roots: Vec<String>,
    /// The protocol asked for.
    pub protocol: Protocol,
    /// `--include` globs.
    pub include: Vec<String>,
    /// `--exclude` globs.
    pub exclude: Vec<String>,
    /// Metadata sent with every file.
    pub metadata: Vec<(String, String)>,
}

impl BatchSpec {
    /// The batch id: a hex sha256 over the length-prefixed, order-independent
    /// parts of the spec.
    pub fn id(&self) -> String {
        let mut roots = self.roots.clone();
        roots.sort();
        roots.dedup();
        let mut include = self.include.clone();
        include.sort();
        let mut exclude = self.exclude.clone();
        exclude.sort();
        let mut metadata = self.metadata.clone();
        metadata.sort();
        let mut hasher = Sha256::new();
        let mut part = |text: &str| {
            hasher.update((text.len() as u64).to_le_bytes());
            hasher.update(text.as_bytes());
        };
        part("chunkup-batch-v1");
        part(&self.endpoint);
        part(self.protocol.as_str());
        for (label, list) in [
            ("roots", &roots),
            ("include", &include),
            ("exclude", &exclude),
        ] {
            part(label);
            part(&list.len().to_string());
            list.iter().for_each(|item| part(item));
        }
        part("metadata");
        part(&metadata.len().to_string());
        for (key, value) in &metadata {
            part(key);
            part(value);
        }
        hex::encode(hasher.finalize())
    }
}

/// Where a file stands in its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileState {
    /// Seen by the walk, not started yet.
    Pending,
    /// Started (it may hold an upload URL and bytes on the server).
    Uploading,
    /// Complete on the server.
    Done,
    /// Gave up in the last run, with a reason.
    Failed,
}

impl FileState {
    /// The name stored in the journal and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Pending => "pending",
            FileState::Uploading => "uploading",
            FileState::Done => "done",
            FileState::Failed => "failed",
        }
    }

    /// Every state, in display order.
    pub const ALL: [FileState; 4] = [
        FileState::Done,
        FileState::Failed,
        FileState::Uploading,
        FileState::Pending,
    ];

    /// Parses [`FileState::as_str`].
    pub fn parse(text: &str) -> Option<FileState> {
        FileState::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// What the journal remembers of a file from earlier runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// Its state when last written.
    pub state: FileState,
    /// Size when it was seen.
    pub size: u64,
    /// Modification time (ms since the Unix epoch) when it was seen.
    pub modified_ms: Option<i64>,
    /// The upload URL, once the server created one.
    pub upload_url: Option<String>,
    /// The protocol the upload was made with, once known.
    pub protocol: Option<ResolvedProtocol>,
}

/// What to do with a file the walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Finished by an earlier run and unchanged: no request at all.
    Skip {
        /// Where it was stored (`None` when the server completed it in its
        /// creation request without naming it).
        upload_url: Option<String>,
    },
    /// Upload it.
    Upload {
        /// An upload an earlier run started for this very content: it is
        /// continued (the server is asked for its offset), never created again.
        resume: Option<(String, ResolvedProtocol)>,
    },
}

/// The decision for a file of `size` bytes modified at `modified_ms`, given
/// what the journal knows of it. Content that changed since (size or
/// modification time) is a new upload; so is a file never seen.
pub fn decide(known: Option<&Known>, size: u64, modified_ms: Option<i64>) -> Decision {
    let Some(known) = known else {
        return Decision::Upload { resume: None };
    };
    let unchanged = known.size == size && known.modified_ms == modified_ms;
    match (&known.upload_url, known.state) {
        (url, FileState::Done) if unchanged => Decision::Skip {
            upload_url: url.clone(),
        },
        (Some(url), _) if unchanged => Decision::Upload {
            // Without the protocol the record cannot be written back: the
            // session then finds no record and the file is sent again.
            resume: known.protocol.map(|protocol| (url.clone(), protocol)),
        },
        _ => Decision::Upload { resume: None },
    }
}

/// Batch-level retry settings (the per-request budget is the engine's
/// [`crate::RetryPolicy`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Tries per file per run: a file whose upload ended with a transient
    /// failure goes back to the queue (after the other files) until it has
    /// had this many.
    pub file_attempts: u32,
    /// Send small files inside their creation request (tus
    /// creation-with-upload): one request per file instead of two. Off by
    /// default: a creation request that carries the whole file and is cut
    /// off by a kill (or a broken connection) after the server stored it
    /// leaves a complete upload the client never learned the URL of, so the
    /// next run would store the file twice. Creating first (an empty
    /// upload, saved in the journal) and then sending makes a second copy
    /// impossible; the cost is one request per file.
    pub creation_with_upload: bool,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        BatchPolicy {
            file_attempts: 3,
            creation_with_upload: false,
        }
    }
}

/// What follows a failed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try it again later in this run.
    RetryLater,
    /// Give up for this run (the next run of the batch tries again).
    GiveUp,
}

/// Whether another try of the whole file may succeed where this one failed:
/// the engine gave up on a link or a server that kept failing, or ran out of
/// time. A refusal, a broken protocol, a bad configuration or source, or a
/// cancellation is not cured by trying again now.
pub fn is_transient(error: &Error) -> bool {
    chunkup_api::UploadError::from(error).retryable()
}

/// The decision after a file's `attempts`-th try in this run failed.
pub fn after_failure(policy: &BatchPolicy, attempts: u32, error: &Error) -> AfterFailure {
    if is_transient(error) && attempts < policy.file_attempts {
        AfterFailure::RetryLater
    } else {
        AfterFailure::GiveUp
    }
}

/// The key the session remembers `source` under when uploaded to
/// `endpoint` (what [`crate::Client::upload_file`] keys its resume record
/// by): a file always has one.
#[cfg(feature = "native")]
pub fn file_fingerprint(endpoint: &str, source: &crate::FileSource) -> String {
    use crate::Source;
    let info = chunkup_core::SourceInfo {
        size: Some(source.size()),
        name: Some(source.path().to_string_lossy().into_owned()),
        modified_ms: source.modified_ms(),
        fingerprint: None,
    };
    info.resume_key(endpoint).unwrap_or_default()
}

/// The remote name of a file: its path relative to the input it was found
/// under, with `/` separators (sent as tus metadata `relativePath`).
pub const RELATIVE_PATH_KEY: &str = "relativePath";

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> BatchSpec {
        BatchSpec {
            endpoint: "http://127.0.0.1:1/tus".into(),
            roots: vec!["/data/a".into(), "/data/b".into()],
            protocol: Protocol::Tus,
            include: vec!["*.jpg".into()],
            exclude: vec![],
            metadata: vec![("k".into(), "v".into())],
        }
    }

    #[test]
    fn batch_id_is_stable_order_free_and_sensitive_to_what_is_uploaded() {
        let base = spec().id();
        assert_eq!(base.len(), 64);
        let mut swapped = spec();
        swapped.roots.reverse();
        assert_eq!(swapped.id(), base);
        let mut other = spec();
        other.endpoint.push('2');
        assert_ne!(other.id(), base);
        let mut moved = spec();
        moved.include = vec![];
        moved.exclude = vec!["*.jpg".into()];
        assert_ne!(moved.id(), base, "include and exclude are told apart");
        let mut joined = spec();
        joined.roots = vec!["/data/a/data/b".into()];
        assert_ne!(joined.id(), base);
    }

    fn known(state: FileState, url: Option<&str>) -> Known {
        Known {
            state,
            size: 10,
            modified_ms: Some(5),
            upload_url: url.map(str::to_string),
            protocol: Some(ResolvedProtocol::Tus),
        }
    }

    #[test]
    fn decisions() {
        assert_eq!(decide(None, 10, Some(5)), Decision::Upload { resume: None });
        let done = known(FileState::Done, Some("http://x/1"));
        assert_eq!(
            decide(Some(&done), 10, Some(5)),
            Decision::Skip {
                upload_url: Some("http://x/1".into())
            }
        );
        // Changed content is a new upload.
        assert_eq!(
            decide(Some(&done), 11, Some(5)),
            Decision::Upload { resume: None }
        );
        assert_eq!(
            decide(Some(&done), 10, Some(6)),
            Decision::Upload { resume: None }
        );
        // Started uploads continue from their URL, whatever the last state.
        for state in [FileState::Uploading, FileState::Failed, FileState::Pending] {
            assert_eq!(
                decide(Some(&known(state, Some("http://x/2"))), 10, Some(5)),
                Decision::Upload {
                    resume: Some(("http://x/2".into(), ResolvedProtocol::Tus))
                }
            );
        }
        assert_eq!(
            decide(Some(&known(FileState::Uploading, None)), 10, Some(5)),
            Decision::Upload { resume: None }
        );
    }

    #[test]
    fn only_transient_failures_are_retried_and_only_so_often() {
        let policy = BatchPolicy {
            file_attempts: 2,
            ..BatchPolicy::default()
        };
        let exhausted = Error::Upload(chunkup_core::Error::RetriesExhausted {
            attempts: 10,
            last: "HTTP 502".into(),
        });
        assert_eq!(
            after_failure(&policy, 1, &exhausted),
            AfterFailure::RetryLater
        );
        assert_eq!(after_failure(&policy, 2, &exhausted), AfterFailure::GiveUp);
        let refused = Error::Upload(chunkup_core::Error::Rejected {
            status: 413,
            message: String::new(),
        });
        assert_eq!(after_failure(&policy, 1, &refused), AfterFailure::GiveUp);
        assert_eq!(
            after_failure(&policy, 1, &Error::Stopped),
            AfterFailure::GiveUp
        );
    }
}
