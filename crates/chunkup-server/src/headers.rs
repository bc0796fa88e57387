//! Strict parsing of request headers, shared by every protocol: numbers,
//! media types, `Content-Range`, and the file name and content type an
//! upload remembers.

use axum::http::{HeaderMap, header};

use crate::reply::Reply;

/// Longest filename / content type remembered.
pub(crate) const MAX_META_LEN: usize = 255;

/// A header as text (`None` when missing or not visible ASCII).
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A non-negative integer of at most 19 digits (digits only, surrounding
/// whitespace allowed).
pub(crate) fn parse_u64(value: &str) -> Option<u64> {
    let v = value.trim();
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// A malformed request header: answered 400 with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadHeader(pub(crate) String);

impl From<BadHeader> for Reply {
    fn from(e: BadHeader) -> Self {
        Reply::bad(e.0)
    }
}

/// An optional numeric header: `Ok(None)` when missing, `Err` when present
/// but not a non-negative integer.
pub(crate) fn opt_u64(headers: &HeaderMap, name: &str) -> Result<Option<u64>, BadHeader> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(parse_u64)
            .map(Some)
            .ok_or_else(|| BadHeader(format!("{name} must be a non-negative integer"))),
    }
}

/// The request's `Content-Length`, when it has one.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, header::CONTENT_LENGTH.as_str()).and_then(parse_u64)
}

/// True when `Content-Type` is `media` (parameters and case ignored).
pub(crate) fn content_type_is(headers: &HeaderMap, media: &str) -> bool {
    header_str(headers, header::CONTENT_TYPE.as_str()).is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case(media))
    })
}

/// A request's `Content-Range`: `bytes S-E/T`, with `*` for the range (a
/// GCS status query) or the total (a length not known yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContentRange {
    /// First and last (inclusive) byte; `None` for `*`.
    pub(crate) span: Option<(u64, u64)>,
    /// The total length; `None` for `*`.
    pub(crate) total: Option<u64>,
}

impl ContentRange {
    /// Parses `bytes S-E/T`, `bytes S-E/*`, `bytes */T` or `bytes */*`
    /// (digits only).
    pub(crate) fn parse(value: &str) -> Option<ContentRange> {
        let rest = value.trim().strip_prefix("bytes ")?.trim_start();
        let (range, total) = rest.split_once('/')?;
        let star_or = |s: &str| match s.trim() {
            "*" => Some(None),
            s => parse_u64(s).map(Some),
        };
        let span = match range.trim() {
            "*" => None,
            range => {
                let (start, end) = range.split_once('-')?;
                Some((parse_u64(start)?, parse_u64(end)?))
            }
        };
        Some(ContentRange {
            span,
            total: star_or(total)?,
        })
    }

    /// `(S, E, T)` of a `bytes S-E/T` without stars.
    pub(crate) fn whole(self) -> Option<(u64, u64, u64)> {
        let (start, end) = self.span?;
        Some((start, end, self.total?))
    }
}

/// The `filename` of a `Content-Disposition` header (`filename*=UTF-8''…`
/// preferred), sanitised: the last path component, no control characters,
/// at most 255 characters. Never used as a path.
pub(crate) fn disposition_filename(value: &str) -> Option<String> {
    let mut plain = None;
    let mut extended = None;
    for param in split_params(value) {
        let Some((key, val)) = param.split_once('=') else {
            continue;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "filename" => plain = Some(unquote(val.trim())),
            "filename*" => {
                let val = val.trim();
                if let Some((charset, rest)) = val.split_once('\'')
                    && charset.eq_ignore_ascii_case("utf-8")
                    && let Some((_lang, enc)) = rest.split_once('\'')
                {
                    extended = percent_decode(enc);
                }
            }
            _ => {}
        }
    }
    sanitize_filename(&extended.or(plain)?)
}

/// Splits on `;` outside double quotes.
fn split_params(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}

fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return v.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The last path component of `raw`, without control characters, at most
/// [`MAX_META_LEN`] characters; `None` when nothing usable is left.
pub(crate) fn sanitize_filename(raw: &str) -> Option<String> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_META_LEN)
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        None
    } else {
        Some(cleaned.to_owned())
    }
}

/// The content type an upload remembers from header `name`: trimmed, at
/// most [`MAX_META_LEN`] characters, `None` when missing or empty.
pub(crate) fn content_type(headers: &HeaderMap, name: &str) -> Option<String> {
    header_str(headers, name)
        .map(|v| v.trim().chars().take(MAX_META_LEN).collect::<String>())
        .filter(|v| !v.is_empty())
}

/// The file name of a creation request's `Content-Disposition`.
pub(crate) fn filename(headers: &HeaderMap) -> Option<String> {
    header_str(headers, header::CONTENT_DISPOSITION.as_str()).and_then(disposition_filename)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(" 42 "), Some(42));
        for bad in ["", "-1", "+1", "1.0", "0x10", "99999999999999999999"] {
            assert_eq!(parse_u64(bad), None, "{bad}");
        }
    }

    #[test]
    fn content_range() {
        let whole = |v: &str| ContentRange::parse(v).and_then(ContentRange::whole);
        assert_eq!(whole("bytes 0-9/10"), Some((0, 9, 10)));
        assert_eq!(whole(" bytes  5-5/6 "), Some((5, 5, 6)));
        for bad in [
            "bytes 0-9",
            "0-9/10",
            "bytes */10",
            "bytes 0-9/*",
            "bytes +0-9/10",
            "bytes a-9/10",
            "bytes 0-/10",
            "bytes */",
            "",
        ] {
            assert_eq!(whole(bad), None, "{bad}");
        }
        let parse = ContentRange::parse;
        let cr = |span, total| Some(ContentRange { span, total });
        assert_eq!(parse("bytes */10"), cr(None, Some(10)));
        assert_eq!(parse("bytes */*"), cr(None, None));
        assert_eq!(parse("bytes 0-9/*"), cr(Some((0, 9)), None));
        for bad in ["bytes *-9/10", "bytes 0-*/10", "bytes */x", "bytes **/*"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn filenames() {
        let f = |v: &str| disposition_filename(v);
        assert_eq!(
            f("attachment; filename=\"a b.txt\""),
            Some("a b.txt".into())
        );
        assert_eq!(
            f("attachment; filename=plain.bin"),
            Some("plain.bin".into())
        );
        assert_eq!(
            f("attachment; filename=\"../../etc/passwd\""),
            Some("passwd".into())
        );
        assert_eq!(
            f("attachment; filename=\"C:\\\\x\\\\y.doc\""),
            Some("y.doc".into())
        );
        assert_eq!(f("attachment; filename=\"..\""), None);
        assert_eq!(
            f("attachment; filename=\"semi;colon\""),
            Some("semi;colon".into())
        );
        assert_eq!(
            f("attachment; filename=\"fallback\"; filename*=UTF-8''%C3%A9t%C3%A9.txt"),
            Some("été.txt".into())
        );
        assert_eq!(f("attachment"), None);
        assert_eq!(f("attachment; filename=\"a\u{7}b\""), Some("ab".into()));
    }
}
