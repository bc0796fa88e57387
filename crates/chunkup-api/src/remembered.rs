//! Remembered uploads, as an application lists them (to show them, forget
//! some, or continue a chosen one).

use chunkup_core::ResumeRecord;

use crate::options::{KeyValue, Protocol};

/// An upload the resume store remembers: one the application may continue
/// (pass `upload_url` as the upload's `upload_url` option with the same
/// file) or forget (by `key`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[cfg_attr(
    feature = "typescript",
    derive(ts_rs::TS),
    ts(rename_all = "camelCase")
)]
pub struct RememberedUpload {
    /// The key the store keeps it under.
    pub key: String,
    /// The file name announced to the server.
    pub file_name: Option<String>,
    /// The upload's size in bytes.
    pub size: u64,
    /// Where uploads were created, when known.
    pub endpoint: Option<String>,
    /// The upload's URL on the server.
    #[cfg_attr(feature = "typescript", ts(rename = "url"))]
    pub upload_url: String,
    /// The protocol it was made in.
    pub protocol: Protocol,
    /// Bytes the server had acknowledged when last written (a hint: the
    /// server's answer decides where it continues).
    pub acknowledged: u64,
    /// When it was created, milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// When the record was last written.
    pub updated_ms: i64,
    /// When the server will forget it, if it said.
    pub expires_ms: Option<i64>,
    /// The metadata sent with it.
    #[cfg_attr(
        feature = "typescript",
        ts(as = "std::collections::HashMap<String, String>")
    )]
    pub metadata: Vec<KeyValue>,
}

impl RememberedUpload {
    /// The upload a record stands for; `None` for a record of one part of a
    /// file sent in parallel parts (it belongs to its file's upload).
    pub fn from_record(record: &ResumeRecord) -> Option<Self> {
        if record.part_of.is_some() {
            return None;
        }
        Some(RememberedUpload {
            key: record.fingerprint.clone(),
            file_name: record.file_name.clone(),
            size: record.total,
            endpoint: record.endpoint.clone(),
            upload_url: record.upload_url.clone(),
            protocol: record.protocol.into(),
            acknowledged: record.offset,
            created_ms: record.created_ms,
            updated_ms: record.updated_ms,
            expires_ms: record.expires_ms,
            metadata: record
                .metadata
                .iter()
                .map(|(k, v)| KeyValue::new(k, v))
                .collect(),
        })
    }

    /// The uploads of a store's records, newest first, parts left out.
    pub fn list(records: &[ResumeRecord]) -> Vec<Self> {
        let mut uploads: Vec<Self> = records.iter().filter_map(Self::from_record).collect();
        uploads.sort_by_key(|u| std::cmp::Reverse(u.updated_ms));
        uploads
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chunkup_core::ResolvedProtocol;

    #[test]
    fn parts_are_left_out_and_the_newest_come_first() {
        let older = ResumeRecord::new("a", "http://h/1", ResolvedProtocol::Tus, 10, 1);
        let newer = ResumeRecord::new("b", "http://h/2", ResolvedProtocol::S3, 20, 2);
        let part = ResumeRecord {
            part_of: Some("a".into()),
            ..ResumeRecord::new("c", "http://h/3", ResolvedProtocol::Tus, 5, 3)
        };
        let list = RememberedUpload::list(&[older, newer, part]);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].key, "b");
        assert_eq!(list[0].protocol, Protocol::S3);
        assert_eq!(list[1].size, 10);
    }
}
