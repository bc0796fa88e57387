//! What is remembered about an upload so that another process (or a reloaded
//! page, or a restarted app) can continue it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Protocol;

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

/// One entry of a resume store, the same JSON on every platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeRecord {
    /// The source's [`fingerprint`].
    pub fingerprint: String,
    /// The upload's URL on the server.
    pub upload_url: String,
    /// The protocol the upload was made with.
    pub protocol: Protocol,
    /// Bytes the server had acknowledged when this was written (a hint for
    /// display; the server's own answer decides where to continue).
    pub offset: u64,
    /// The upload's size.
    pub total: u64,
    /// When the record was written, milliseconds since the Unix epoch.
    pub updated_ms: i64,
    /// When the server will forget the upload, if it said (tus expiration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<i64>,
}

impl ResumeRecord {
    /// Whether the record may still be resumed at `now_ms` (wall clock,
    /// milliseconds since the Unix epoch): an expired upload is not resumed,
    /// with a minute's margin for clock skew and the time to get there.
    pub fn is_resumable(&self, now_ms: i64) -> bool {
        const MARGIN_MS: i64 = 60_000;
        self.expires_ms
            .is_none_or(|expires| now_ms.saturating_add(MARGIN_MS) < expires)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
