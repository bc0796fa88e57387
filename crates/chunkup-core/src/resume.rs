//! What is remembered about an upload so that another process (or a reloaded
//! page, or a restarted app) can continue it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{IetfVersion, Protocol, ResolvedProtocol};

/// The identity of a source for resuming: the same file sent to the same
/// endpoint gets the same fingerprint, a changed file (size or modification
/// time) a different one.
///
/// `modified` is the modification time in milliseconds since the Unix epoch
/// (or `None` when unknown, e.g. a stream); `name` should be a canonical path
/// on native and the file name in a browser.
pub fn fingerprint(endpoint: &str, name: &str, size: u64, modified: Option<i64>) -> String {
    let mut hasher = Sha256::new();
    for part in [
        "chunkup-fingerprint-v1",
        endpoint,
        name,
        &size.to_string(),
        &modified.map_or_else(String::new, |m| m.to_string()),
    ] {
        // Length-prefixed so that ("ab", "c") and ("a", "bc") differ.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The fingerprint of one part of a file sent as parallel parts (tus
/// concatenation): the file's [`fingerprint`] and the part's byte range, so
/// a later run with the same split finds each part again, and a different
/// split finds none.
pub fn part_fingerprint(file_fingerprint: &str, part: crate::ByteRange) -> String {
    fingerprint(
        "chunkup-part-v1",
        file_fingerprint,
        part.len(),
        Some(i64::try_from(part.start).unwrap_or(i64::MAX)),
    )
}

/// One entry of a resume store, the same JSON on every platform. The
/// session writes it ([`crate::session`]); an application may list these to
/// show remembered uploads and continue a chosen one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeRecord {
    /// The source's resume key ([`crate::session::SourceInfo::resume_key`]).
    pub fingerprint: String,
    /// The upload's URL on the server.
    pub upload_url: String,
    /// The protocol the upload was made with.
    pub protocol: ResolvedProtocol,
    /// The IETF draft revision spoken, for an IETF upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ietf_version: Option<IetfVersion>,
    /// Bytes the server had acknowledged when this was written (a hint for
    /// display; the server's own answer decides where to continue).
    pub offset: u64,
    /// The upload's size.
    pub total: u64,
    /// When the upload was created, milliseconds since the Unix epoch.
    #[serde(default)]
    pub created_ms: i64,
    /// When the record was written, milliseconds since the Unix epoch.
    pub updated_ms: i64,
    /// When the server will forget the upload, if it said (tus expiration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<i64>,
    /// The file name announced to the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Where uploads were created (`None` for an upload continued at a URL
    /// the application gave).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The metadata sent with the upload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metadata: Vec<(String, String)>,
    /// For one part of a file sent as parallel parts: the file's key. Such
    /// records belong to their file's upload, not to the list of uploads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_of: Option<String>,
}

impl ResumeRecord {
    /// A record of the upload of `total` bytes at `upload_url`, made in
    /// `protocol` and written at `now_ms`, with nothing else known yet.
    pub fn new(
        fingerprint: impl Into<String>,
        upload_url: impl Into<String>,
        protocol: ResolvedProtocol,
        total: u64,
        now_ms: i64,
    ) -> Self {
        ResumeRecord {
            fingerprint: fingerprint.into(),
            upload_url: upload_url.into(),
            protocol,
            ietf_version: None,
            offset: 0,
            total,
            created_ms: now_ms,
            updated_ms: now_ms,
            expires_ms: None,
            file_name: None,
            endpoint: None,
            metadata: Vec::new(),
            part_of: None,
        }
    }

    /// Whether the record may still be resumed at `now_ms` (wall clock,
    /// milliseconds since the Unix epoch): an expired upload is not resumed,
    /// with a minute's margin for clock skew and the time to get there.
    pub fn is_resumable(&self, now_ms: i64) -> bool {
        const MARGIN_MS: i64 = 60_000;
        self.expires_ms
            .is_none_or(|expires| now_ms.saturating_add(MARGIN_MS) < expires)
    }

    /// Whether this record may continue an upload of `total` bytes over
    /// `protocol` (`Auto` accepts the record's own) at `now_ms` (wall clock,
    /// milliseconds since the Unix epoch): same size, same protocol, not
    /// expired.
    pub fn continues(&self, protocol: Protocol, total: u64, now_ms: i64) -> bool {
        protocol.resolved().is_none_or(|p| p == self.protocol)
            && self.total == total
            && self.is_resumable(now_ms)
    }

    /// Whether a store should forget the record at `now_ms` (wall clock,
    /// milliseconds since the Unix epoch): it can no longer be resumed, or it
    /// names no expiry and was last written more than
    /// [`ResumeRecord::MAX_AGE_MS`] ago (an upload abandoned long ago; stores
    /// that outlive their uploads, such as a browser's, sweep these).
    pub fn is_stale(&self, now_ms: i64) -> bool {
        !self.is_resumable(now_ms)
            || (self.expires_ms.is_none()
                && now_ms.saturating_sub(self.updated_ms) > Self::MAX_AGE_MS)
    }

    /// How long a record without an expiry is kept: seven days.
    pub const MAX_AGE_MS: i64 = 7 * 24 * 3600 * 1000;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ByteRange;

    fn record() -> ResumeRecord {
        ResumeRecord {
            offset: 1,
            ..ResumeRecord::new("ab", "http://h/u", ResolvedProtocol::Tus, 2, 1_000)
        }
    }

    #[test]
    fn records_of_older_versions_still_read() {
        let old = r#"{"fingerprint":"ab","upload_url":"http://h/u","protocol":"tus","offset":1,"total":2,"updated_ms":1000}"#;
        let record: ResumeRecord = serde_json::from_str(old).expect("old record");
        assert_eq!(record.protocol, ResolvedProtocol::Tus);
        assert_eq!(record.created_ms, 0);
        assert!(record.metadata.is_empty());
    }

    #[test]
    fn part_fingerprints_differ_by_range_and_file() {
        let file = fingerprint("http://h/e", "/a/b", 100, Some(5));
        let other = fingerprint("http://h/e", "/a/c", 100, Some(5));
        let first = ByteRange { start: 0, end: 50 };
        let second = ByteRange {
            start: 50,
            end: 100,
        };
        let key = part_fingerprint(&file, first);
        assert_eq!(key, part_fingerprint(&file, first));
        assert_ne!(key, part_fingerprint(&file, second));
        assert_ne!(key, part_fingerprint(&other, first));
        assert_ne!(
            key,
            part_fingerprint(&file, ByteRange { start: 0, end: 60 })
        );
        assert!(key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn a_record_continues_only_the_same_size_protocol_and_unexpired() {
        let record = ResumeRecord {
            expires_ms: Some(100_000),
            ..record()
        };
        assert!(record.continues(Protocol::Tus, 2, 1_000));
        assert!(record.continues(Protocol::Auto, 2, 1_000));
        assert!(!record.continues(Protocol::Ranged, 2, 1_000));
        assert!(!record.continues(Protocol::Tus, 3, 1_000));
        assert!(!record.continues(Protocol::Tus, 2, 99_000));
    }

    #[test]
    fn stale_records_are_expired_or_old() {
        let record = record();
        assert!(!record.is_stale(1_000));
        assert!(!record.is_stale(1_000 + ResumeRecord::MAX_AGE_MS));
        assert!(record.is_stale(1_001 + ResumeRecord::MAX_AGE_MS));
        let expiring = ResumeRecord {
            expires_ms: Some(100_000),
            ..record
        };
        // The server's expiry decides, not the age.
        assert!(!expiring.is_stale(1_000));
        assert!(expiring.is_stale(40_001));
        assert!(expiring.is_stale(200_000));
    }

    #[test]
    fn fingerprint_changes_with_each_part() {
        let base = fingerprint("http://h/e", "/a/b", 10, Some(5));
        assert_eq!(base, fingerprint("http://h/e", "/a/b", 10, Some(5)));
        assert_ne!(base, fingerprint("http://h/f", "/a/b", 10, Some(5)));
        assert_ne!(base, fingerprint("http://h/e", "/a/c", 10, Some(5)));
        assert_ne!(base, fingerprint("http://h/e", "/a/b", 11, Some(5)));
        assert_ne!(base, fingerprint("http://h/e", "/a/b", 10, Some(6)));
        assert_ne!(base, fingerprint("http://h/e", "/a/b", 10, None));
        assert_ne!(
            fingerprint("ab", "c", 1, None),
            fingerprint("a", "bc", 1, None)
        );
    }
}
