//! When a session writes and forgets resume records: the outputs
//! `Persist` and `Forget`, throttled by `now`.

use std::time::Duration;

use crate::{Capabilities, Instant, ResumeRecord};

/// How often the acknowledged offset in a record is refreshed. The upload
/// URL is saved at once; the offset is only a hint for display (the server's
/// answer decides where to continue), so a write per chunk would be waste.
pub(crate) const REFRESH: Duration = Duration::from_secs(1);

/// What one upload of the session (the file, or one of its parts) has
/// written to the store.
#[derive(Debug, Clone)]
pub(crate) struct Remembered {
    /// The key the record is kept under.
    pub key: String,
    /// For a part: the file's key.
    pub part_of: Option<String>,
    /// The upload's URL, once there is one.
    pub upload_url: Option<String>,
    /// When the upload was created (wall clock, ms), or when the earlier
    /// run's record says it was.
    pub created_ms: Option<i64>,
    /// When the server forgets the upload.
    pub expires_ms: Option<i64>,
    /// Bytes acknowledged as last seen.
    pub acknowledged: u64,
    /// When the record was last written (`now`).
    last_saved: Option<Instant>,
}

/// What the whole session contributes to every record it writes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordContext<'a> {
    pub capabilities: &'a Capabilities,
    pub ietf_version: crate::IetfVersion,
    pub file_name: &'a str,
    pub endpoint: Option<&'a str>,
    pub metadata: &'a [(String, String)],
}

impl Remembered {
    pub(crate) fn new(key: String, part_of: Option<String>) -> Self {
        Remembered {
            key,
            part_of,
            upload_url: None,
            created_ms: None,
            expires_ms: None,
            acknowledged: 0,
            last_saved: None,
        }
    }

    /// Remembers the upload at `upload_url` (one the application named).
    pub(crate) fn at(mut self, upload_url: Option<String>) -> Self {
        self.upload_url = upload_url;
        self
    }

    /// Continues what an earlier run wrote.
    pub(crate) fn continuing(mut self, record: &ResumeRecord) -> Self {
        self.upload_url = Some(record.upload_url.clone());
        self.created_ms = (record.created_ms > 0).then_some(record.created_ms);
        self.expires_ms = record.expires_ms;
        self.acknowledged = record.offset;
        self
    }

    /// Whether a refresh of the offset is due at `now`.
    pub(crate) fn refresh_due(&self, now: Instant) -> bool {
        self.last_saved
            .is_none_or(|at| now.saturating_since(at) >= REFRESH)
    }

    /// The record to write now, if the upload has a URL to remember.
    pub(crate) fn record(
        &mut self,
        context: RecordContext<'_>,
        total: u64,
        now: Instant,
        wall_ms: i64,
    ) -> Option<ResumeRecord> {
        let upload_url = self.upload_url.clone()?;
        self.last_saved = Some(now);
        let protocol = context.capabilities.protocol;
        Some(ResumeRecord {
            fingerprint: self.key.clone(),
            upload_url,
            protocol,
            ietf_version: (protocol == crate::ResolvedProtocol::Ietf).then(|| {
                context
                    .capabilities
                    .ietf_version
                    .unwrap_or(context.ietf_version)
            }),
            offset: self.acknowledged,
            total,
            created_ms: *self.created_ms.get_or_insert(wall_ms),
            updated_ms: wall_ms,
            expires_ms: self.expires_ms,
            file_name: Some(context.file_name.to_string()),
            endpoint: context.endpoint.map(str::to_string),
            metadata: context.metadata.to_vec(),
            part_of: self.part_of.clone(),
        })
    }
}
