//! `Upload-Metadata`: comma-separated `key base64(value)` pairs (a key alone
//! for an empty value). Values are standard Base64 with padding.

use std::collections::BTreeMap;

use base64::Engine;

use crate::headers::{MAX_META_LEN, sanitize_filename};

/// Decodes `Upload-Metadata` (values as lossy UTF-8). `Err` names the
/// problem (answered 400).
pub(crate) fn parse(value: &str) -> Result<BTreeMap<String, String>, String> {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut map = BTreeMap::new();
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, encoded) = match pair.split_once(' ') {
            Some((k, v)) => (k, v.trim()),
            None => (pair, ""),
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
            return Err(format!("invalid Upload-Metadata key `{key}`"));
        }
        let decoded = engine
            .decode(encoded)
            .map_err(|_| format!("Upload-Metadata value of `{key}` is not Base64"))?;
        if map
            .insert(
                key.to_owned(),
                String::from_utf8_lossy(&decoded).into_owned(),
            )
            .is_some()
        {
            return Err(format!("Upload-Metadata key `{key}` given twice"));
        }
    }
    Ok(map)
}

/// The sanitised file name (`filename`, else `name`) and content type
/// (`filetype`, else `type`) of decoded metadata.
pub(crate) fn file_info(map: &BTreeMap<String, String>) -> (Option<String>, Option<String>) {
    let pick = |a: &str, b: &str| map.get(a).or_else(|| map.get(b)).map(String::as_str);
    let filename = pick("filename", "name").and_then(sanitize_filename);
    let content_type = pick("filetype", "type")
        .map(|t| {
            t.trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_META_LEN)
                .collect::<String>()
        })
        .filter(|t| !t.is_empty());
    (filename, content_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs() {
        let m = parse("filename YSBiLnR4dA==,filetype dGV4dC9wbGFpbg==, user asO2,flag")
            .expect("valid");
        assert_eq!(m["filename"], "a b.txt");
        assert_eq!(m["user"], "jö");
        assert_eq!(m["flag"], "");
        assert_eq!(
            file_info(&m),
            (Some("a b.txt".into()), Some("text/plain".into()))
        );
        assert!(parse("").expect("empty").is_empty());
        assert!(parse("k !!!").is_err());
        assert!(parse("k YQ==,k YQ==").is_err());
        assert!(parse("k\u{e9} YQ==").is_err());
    }
}
