//! tus 1.0.0 (tus.io/protocols/resumable-upload) with the creation,
//! creation-with-upload, creation-defer-length, termination, checksum,
//! concatenation and expiration extensions.

use base64::Engine;

use super::headers::parse_u64;
use super::{Concat, RequestParts, UploadMeta, Verdict, generic_verdict};
use crate::error::Quoted;
use crate::retry::RetryReason;
use crate::{ByteRange, Error, Method, Response};

/// The protocol version spoken; sent on every request but OPTIONS.
pub(crate) const TUS_VERSION: &str = "1.0.0";
const OCTET_STREAM: &str = "application/offset+octet-stream";

/// tus request builders and response interpretation.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tus {
    /// Extensions the server announced (empty when not discovered).
    pub extensions: Vec<String>,
}

impl Tus {
    pub(crate) fn has(&self, extension: &str) -> bool {
        self.extensions.iter().any(|e| e == extension)
    }

    fn base_headers() -> Vec<(String, String)> {
        vec![("Tus-Resumable".into(), TUS_VERSION.into())]
    }

    pub(crate) fn create(&self, meta: &UploadMeta<'_>, body: Option<ByteRange>) -> RequestParts {
        let mut headers = Self::base_headers();
        match (meta.total, meta.concat) {
            // A final upload's length is the sum of its parts.
            (_, Concat::Final(_)) => {}
            (Some(total), _) => headers.push(("Upload-Length".into(), total.to_string())),
            (None, _) => headers.push(("Upload-Defer-Length".into(), "1".into())),
        }
        match meta.concat {
            Concat::None => {}
            Concat::Partial => headers.push(("Upload-Concat".into(), "partial".into())),
            Concat::Final(parts) => {
                headers.push(("Upload-Concat".into(), format!("final;{}", parts.join(" "))))
            }
        }
        // The file's metadata (name, type, the user's pairs) belongs to the
        // upload that stands for the whole file: a part is only a window.
        if !matches!(meta.concat, Concat::Partial) {
            headers.push(("Upload-Metadata".into(), encode_metadata(meta)));
        }
        if body.is_some() {
            headers.push(("Content-Type".into(), OCTET_STREAM.into()));
        }
        RequestParts {
            method: Method::Post,
            headers,
        }
    }

    pub(crate) fn status(&self) -> RequestParts {
        RequestParts {
            method: Method::Head,
            headers: Self::base_headers(),
        }
    }

    pub(crate) fn chunk(
        &self,
        range: ByteRange,
        meta: &UploadMeta<'_>,
        announce_length: bool,
    ) -> RequestParts {
        let mut headers = Self::base_headers();
        headers.push(("Upload-Offset".into(), range.start.to_string()));
        headers.push(("Content-Type".into(), OCTET_STREAM.into()));
        if let (true, Some(total)) = (announce_length, meta.total) {
            headers.push(("Upload-Length".into(), total.to_string()));
        }
        RequestParts {
            method: Method::Patch,
            headers,
        }
    }

    pub(crate) fn terminate(&self) -> RequestParts {
        RequestParts {
            method: Method::Delete,
            headers: Self::base_headers(),
        }
    }

    pub(crate) fn on_create(&self, response: &Response) -> Verdict {
        match response.status {
            200 | 201 => match response.header("Location") {
                Some(location) if !location.is_empty() => match optional_offset(response) {
                    Ok(offset) => Verdict::Created {
                        location: Some(location.to_string()),
                        offset,
                    },
                    Err(verdict) => verdict,
                },
                _ => violation("the upload was created without a Location header".into()),
            },
            _ => tus_verdict(response),
        }
    }

    pub(crate) fn on_status(&self, response: &Response, meta: &UploadMeta<'_>) -> Verdict {
        if !matches!(response.status, 200 | 204) {
            return tus_verdict(response);
        }
        if let Some(length) = response.header("Upload-Length")
            && let (Some(length), Some(total)) = (parse_u64(length), meta.total)
            && length != total
            && !matches!(meta.concat, Concat::Final(_))
        {
            return violation(format!(
                "the server says the upload has {length} bytes, the source has {total}"
            ));
        }
        match optional_offset(response) {
            Ok(Some(offset)) => Verdict::ServerHas(offset),
            // A final concatenation may omit the offset until it is assembled.
            Ok(None) if matches!(meta.concat, Concat::Final(_)) => {
                Verdict::ServerHas(meta.total.unwrap_or(0))
            }
            Ok(None) => violation("the offset answer has no Upload-Offset".into()),
            Err(verdict) => verdict,
        }
    }

    pub(crate) fn on_chunk(&self, response: &Response, _range: ByteRange) -> Verdict {
        match response.status {
            200 | 204 => match optional_offset(response) {
                Ok(Some(offset)) => Verdict::ServerHas(offset),
                Ok(None) => violation("a PATCH was answered without Upload-Offset".into()),
                Err(verdict) => verdict,
            },
            _ => tus_verdict(response),
        }
    }
}

/// Status codes with a tus meaning; the rest as every protocol reads them.
fn tus_verdict(response: &Response) -> Verdict {
    match response.status {
        409 => Verdict::Resync,
        460 => Verdict::ResendChunk(RetryReason::ChecksumMismatch),
        412 => Verdict::Fatal(Error::Rejected {
            status: 412,
            message: format!(
                "the server does not speak tus {TUS_VERSION} (it supports {})",
                response
                    .header("Tus-Version")
                    .unwrap_or("an unknown version")
            ),
        }),
        _ => generic_verdict(response),
    }
}

fn optional_offset(response: &Response) -> Result<Option<u64>, Verdict> {
    match response.header("Upload-Offset") {
        None => Ok(None),
        Some(value) => parse_u64(value).map(Some).ok_or_else(|| {
            violation(format!(
                "Upload-Offset {} is not a byte offset",
                Quoted(value)
            ))
        }),
    }
}

/// `Upload-Metadata`: comma-separated `key base64(value)` pairs; keys are
/// ASCII without spaces or commas (others are dropped rather than sent
/// malformed). A key the user gives (`filename`, as tus-js-client users do)
/// replaces the standard one: a key twice is refused by servers.
fn encode_metadata(meta: &UploadMeta<'_>) -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    let standard = [
        ("filename", meta.file_name),
        ("filetype", meta.content_type),
    ];
    let user = meta.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    // The first of each key counts (the user's over the standard ones). A
    // scan, not a set: a handful of keys, and no hashing code in the npm
    // package (docs/BENCHMARKS.md, npm package size).
    let mut unique: Vec<(&str, &str)> = Vec::new();
    for (key, value) in user.chain(standard) {
        if !unique.iter().any(|(seen, _)| *seen == key) {
            unique.push((key, value));
        }
    }
    let is_standard = |key: &str| key == "filename" || key == "filetype";
    // The standard keys stay first, as before.
    let ordered = (unique.iter().filter(|(key, _)| is_standard(key)))
        .chain(unique.iter().filter(|(key, _)| !is_standard(key)));
    let mut field = String::new();
    for (key, value) in ordered {
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
            continue;
        }
        if !field.is_empty() {
            field.push(',');
        }
        field.push_str(key);
        if !value.is_empty() {
            field.push(' ');
            engine.encode_string(value, &mut field);
        }
    }
    field
}

fn violation(message: String) -> Verdict {
    Verdict::Fatal(Error::ProtocolViolation(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta<'a>(metadata: &'a [(String, String)]) -> UploadMeta<'a> {
        UploadMeta {
            total: Some(10),
            file_name: "a b.txt",
            content_type: "text/plain",
            metadata,
            concat: &Concat::None,
        }
    }

    #[test]
    fn metadata_is_base64_and_skips_bad_keys() {
        let user = vec![
            ("user".to_string(), "jö".to_string()),
            ("flag".to_string(), String::new()),
            ("bad key".to_string(), "x".to_string()),
        ];
        assert_eq!(
            encode_metadata(&meta(&user)),
            "filename YSBiLnR4dA==,filetype dGV4dC9wbGFpbg==,user asO2,flag"
        );
    }

    /// The encoding as it was written before the scan (a `HashSet`,
    /// `partition`, `join`): the reference the property below compares with.
    fn encode_metadata_with_a_set(meta: &UploadMeta<'_>) -> String {
        let engine = base64::engine::general_purpose::STANDARD;
        let standard = [
            ("filename", meta.file_name),
            ("filetype", meta.content_type),
        ];
        let user = meta.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let mut seen = std::collections::HashSet::new();
        let unique: Vec<(&str, &str)> = user
            .chain(standard)
            .filter(|(key, _)| seen.insert(*key))
            .collect();
        let (first, rest): (Vec<_>, Vec<_>) = unique
            .into_iter()
            .partition(|(key, _)| *key == "filename" || *key == "filetype");
        first
            .into_iter()
            .chain(rest)
            .filter(|(key, _)| {
                !key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic() && b != b',')
            })
            .map(|(key, value)| {
                if value.is_empty() {
                    key.to_string()
                } else {
                    format!("{key} {}", engine.encode(value))
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    proptest::proptest! {
        /// Duplicate, standard, empty and invalid keys, empty values: the
        /// same field as the set-based encoding.
        #[test]
        fn metadata_encoding_is_unchanged(
            pairs in proptest::collection::vec(
                ("filename|filetype|a|b|bad key|x,y||é", "|v|jö"),
                0..8,
            ),
            file_name in "|a b.txt",
            content_type in "|text/plain",
        ) {
            let metadata: Vec<(String, String)> = pairs;
            let meta = UploadMeta {
                total: Some(10),
                file_name: &file_name,
                content_type: &content_type,
                metadata: &metadata,
                concat: &Concat::None,
            };
            proptest::prop_assert_eq!(encode_metadata(&meta), encode_metadata_with_a_set(&meta));
        }
    }

    #[test]
    fn user_metadata_replaces_the_standard_keys_without_duplicates() {
        let user = vec![
            ("filename".to_string(), "x".to_string()),
            ("user".to_string(), "u".to_string()),
            ("user".to_string(), "again".to_string()),
        ];
        assert_eq!(
            encode_metadata(&meta(&user)),
            "filename eA==,filetype dGV4dC9wbGFpbg==,user dQ=="
        );
    }

    #[test]
    fn status_codes() {
        let tus = Tus::default();
        let range = ByteRange { start: 0, end: 5 };
        assert_eq!(tus.on_chunk(&Response::status(409), range), Verdict::Resync);
        assert!(matches!(
            tus.on_chunk(&Response::status(460), range),
            Verdict::ResendChunk(_)
        ));
        assert!(matches!(
            tus.on_chunk(&Response::status(423), range),
            Verdict::Retry { .. }
        ));
        assert!(matches!(
            tus.on_chunk(&Response::status(204), range),
            Verdict::Fatal(Error::ProtocolViolation(_))
        ));
        assert_eq!(
            tus.on_chunk(
                &Response::status(204).with_header("Upload-Offset", "5"),
                range
            ),
            Verdict::ServerHas(5)
        );
    }
}
