//! Parsers and formatters for the header values the protocols use. Every
//! parser takes untrusted server input and returns `None`/`Err` rather than
//! panicking.

use std::time::Duration;

use crate::error::Quoted;

/// Parses `X-Last-Known-Byte`: an inclusive byte index, `-1` when the server
/// holds nothing. Returns the number of bytes held (`n + 1`).
pub fn parse_last_known_byte(value: &str) -> Result<u64, String> {
    let value = value.trim();
    if value == "-1" {
        return Ok(0);
    }
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "X-Last-Known-Byte {} is not a byte index",
            Quoted(value)
        ));
    }
    value
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_add(1))
        .ok_or_else(|| format!("X-Last-Known-Byte {} is out of range", Quoted(value)))
}

/// Parses a ranged status body `0-n/total` (or `-1/total`-style bodies for
/// nothing stored) into the number of bytes held and the total.
pub fn parse_status_body(body: &str) -> Option<(u64, u64)> {
    let (range, total) = body.trim().split_once('/')?;
    let total = parse_digits(total)?;
    if range == "-1" || range == "*" || range.is_empty() {
        return Some((0, total));
    }
    let (start, end) = range.split_once('-')?;
    if parse_digits(start)? != 0 {
        return None;
    }
    let held = parse_digits(end)?.checked_add(1)?;
    Some((held, total))
}

/// Parses a `Content-Range: bytes s-e/total` value (`total` may be `*`).
/// (Only the fuzz checks read this header today.)
#[cfg(any(test, feature = "fuzzing"))]
pub fn parse_content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let (start, end) = (parse_digits(start)?, parse_digits(end)?);
    if end < start {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        t => Some(parse_digits(t)?),
    };
    Some((start, end, total))
}

/// Parses `Retry-After` in delta-seconds. HTTP-dates need a wall clock the
/// core does not have; they yield `None` and the normal backoff applies.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    parse_digits(value).map(Duration::from_secs)
}

/// `Content-Range: bytes s-e/total` for the half-open range `[start, end)`.
pub fn content_range(start: u64, end: u64, total: u64) -> String {
    format!("bytes {}-{}/{}", start, end - 1, total)
}

/// `Content-Disposition: attachment; filename="..."` with a safe ASCII
/// fallback and the RFC 6266 `filename*` form for other names.
pub fn content_disposition(file_name: &str) -> String {
    let ascii: String = file_name
        .chars()
        .map(|c| match c {
            '"' | '\\' => '_',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '_',
        })
        .collect();
    if ascii == file_name {
        format!("attachment; filename=\"{ascii}\"")
    } else {
        let encoded: String = file_name
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
    }
}

/// Parses a non-negative decimal integer header value (at most 20 digits,
/// no sign, no spaces inside).
pub fn parse_u64(value: &str) -> Option<u64> {
    parse_digits(value)
}

fn parse_digits(value: &str) -> Option<u64> {
    let value = value.trim();
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_known_byte() {
        assert_eq!(parse_last_known_byte("-1"), Ok(0));
        assert_eq!(parse_last_known_byte("0"), Ok(1));
        assert_eq!(parse_last_known_byte(" 1023 "), Ok(1024));
        for bad in ["", "-2", "abc", "1e3", "+5", "18446744073709551615", "1.5"] {
            assert!(parse_last_known_byte(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_body() {
        assert_eq!(parse_status_body("0-1023/4096"), Some((1024, 4096)));
        assert_eq!(parse_status_body("0-0/1"), Some((1, 1)));
        assert_eq!(parse_status_body("-1/10"), Some((0, 10)));
        for bad in ["", "5-9/10", "0-x/10", "0-9", "0-9/y"] {
            assert_eq!(parse_status_body(bad), None, "{bad}");
        }
    }

    #[test]
    fn content_range_round_trip() {
        assert_eq!(content_range(0, 10, 100), "bytes 0-9/100");
        assert_eq!(
            parse_content_range("bytes 0-9/100"),
            Some((0, 9, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, 9, None)));
        assert_eq!(parse_content_range("bytes 9-5/100"), None);
        assert_eq!(parse_content_range("items 0-9/100"), None);
    }

    #[test]
    fn retry_after() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn disposition_escapes_names() {
        assert_eq!(
            content_disposition("a b.mp4"),
            "attachment; filename=\"a b.mp4\""
        );
        assert_eq!(
            content_disposition("\"x\".txt"),
            "attachment; filename=\"_x_.txt\"; filename*=UTF-8''%22x%22.txt"
        );
        assert!(content_disposition("видео.mp4").contains("filename*=UTF-8''%D0%B2"));
    }
}
