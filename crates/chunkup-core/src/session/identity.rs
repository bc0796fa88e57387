//! Which upload a source is: the key its resume record is kept under.
//!
//! A key must never match another content. A file named by a canonical path
//! with a size and a modification time, or content the application names
//! itself, has a stable identity; an anonymous `Blob` or a stream does not,
//! and then nothing is remembered or matched (two different `new Blob(...)`
//! of one size must never continue each other's upload).

use sha2::{Digest, Sha256};

use crate::{ByteRange, fingerprint};

/// What the session knows about the bytes it uploads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceInfo {
    /// Size in bytes; `None` for a stream whose end is not known yet.
    pub size: Option<u64>,
    /// A name that identifies the content where it lives: a canonical path
    /// on native, a `File`'s name in a browser. `None` for an anonymous
    /// `Blob`, a buffer or a stream.
    pub name: Option<String>,
    /// Modification time, milliseconds since the Unix epoch, when known.
    pub modified_ms: Option<i64>,
    /// The application's own identity for the content (a content hash, a
    /// database id, a photo-library asset id). When given it alone (with the
    /// size and where the upload goes) identifies the upload.
    pub fingerprint: Option<String>,
}

impl SourceInfo {
    /// A source of `size` bytes without a stable identity.
    pub fn anonymous(size: Option<u64>) -> Self {
        SourceInfo {
            size,
            ..SourceInfo::default()
        }
    }

    /// The key this content's upload to `target` (the endpoint, or the upload
    /// URL when there is none) is remembered under, or `None` when the
    /// content has no identity that cannot collide: no application
    /// fingerprint, and not both a name and a modification time. A stream of
    /// unknown size is never remembered (it cannot be read again from an
    /// offset to check).
    pub fn resume_key(&self, target: &str) -> Option<String> {
        let size = self.size?;
        if let Some(app) = self.fingerprint.as_deref().filter(|f| !f.is_empty()) {
            return Some(tagged_hash(
                "chunkup-app-fingerprint-v1",
                &[target, app, &size.to_string()],
            ));
        }
        match (&self.name, self.modified_ms) {
            (Some(name), Some(modified)) if !name.is_empty() => {
                Some(fingerprint(target, name, size, Some(modified)))
            }
            _ => None,
        }
    }
}

/// The key of one part of a file sent as parallel parts: the file's key and
/// the part's byte range, so a later run with the same split finds each part
/// again and a different split finds none.
pub fn part_key(file_key: &str, part: ByteRange) -> String {
    crate::part_fingerprint(file_key, part)
}

/// sha256 over a domain tag and length-prefixed parts.
fn tagged_hash(tag: &str, parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in std::iter::once(&tag).chain(parts) {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENDPOINT: &str = "http://127.0.0.1:1/files";

    #[test]
    fn anonymous_content_has_no_key() {
        assert_eq!(SourceInfo::anonymous(Some(10)).resume_key(ENDPOINT), None);
        // A name without a modification time (a Blob given a name) is not
        // enough: two different contents may share it.
        let named = SourceInfo {
            name: Some("blob".into()),
            ..SourceInfo::anonymous(Some(10))
        };
        assert_eq!(named.resume_key(ENDPOINT), None);
        let stream = SourceInfo {
            name: Some("/a".into()),
            modified_ms: Some(1),
            ..SourceInfo::anonymous(None)
        };
        assert_eq!(stream.resume_key(ENDPOINT), None);
    }

    #[test]
    fn files_and_app_fingerprints_have_distinct_keys() {
        let file = SourceInfo {
            size: Some(10),
            name: Some("/a/b".into()),
            modified_ms: Some(5),
            fingerprint: None,
        };
        let key = file.resume_key(ENDPOINT).expect("a file has a key");
        assert_eq!(Some(key.clone()), file.resume_key(ENDPOINT));
        assert_ne!(
            Some(key.clone()),
            file.resume_key("http://127.0.0.1:1/other")
        );
        let changed = SourceInfo {
            modified_ms: Some(6),
            ..file.clone()
        };
        assert_ne!(Some(key.clone()), changed.resume_key(ENDPOINT));

        let app = SourceInfo {
            fingerprint: Some("sha256:abc".into()),
            ..SourceInfo::anonymous(Some(10))
        };
        let app_key = app
            .resume_key(ENDPOINT)
            .expect("an app fingerprint is a key");
        assert_ne!(app_key, key);
        // The app's identity wins over the file's.
        let both = SourceInfo {
            fingerprint: Some("sha256:abc".into()),
            ..file
        };
        assert_eq!(both.resume_key(ENDPOINT), Some(app_key.clone()));
        let other_size = SourceInfo {
            size: Some(11),
            ..app
        };
        assert_ne!(other_size.resume_key(ENDPOINT), Some(app_key));
    }
}
