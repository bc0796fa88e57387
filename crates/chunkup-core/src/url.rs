//! A minimal http(s) URL: what the sans-IO engine needs from a URL, and
//! nothing more.
//!
//! The engine accepts an endpoint or upload URL, resolves a server's
//! `Location` against it (RFC 3986 §5.2), decides whether a request goes to
//! the home origin (credentials go nowhere else), reads and appends query
//! parameters (S3's `uploadId`, `partNumber`) and prints the result. A full
//! WHATWG URL parser (the `url` crate, with `idna`) cost the npm package
//! about 20 KB gzipped for that (docs/BENCHMARKS.md, "npm package size").
//!
//! What it keeps and what it changes:
//!
//! - The scheme and host are lower-cased; a default port (80, 443) is
//!   dropped; an empty path becomes `/`; dot segments are removed (also
//!   `%2e` spelled ones, as browsers and the `url` crate do); a space
//!   becomes `%20` (the next parser would drop one at the end). Everything
//!   else — percent-escapes, user info, query, fragment — stays as given:
//!   nothing is decoded or re-encoded.
//! - Hosts are ASCII names (RFC 3986 `reg-name` without percent-escapes),
//!   dotted IPv4 addresses (`127.0.0.1`) or IPv6 literals (`[::1]`). An
//!   international name must come in its ASCII form (`xn--…`): drivers pass
//!   URLs their platform has already normalised (a browser's `new
//!   URL(x).href`, reqwest's `Url`), and a server's `Location` is ASCII. A
//!   host another parser would read as a number in another spelling
//!   (`0x7f.1`, `127.1`, `1.2.3.4.`) is refused rather than guessed at.
//! - IPv6 literals are compared as written (lower-cased): two spellings of
//!   one address are two origins, so credentials are withheld — the safe
//!   side.
//! - Control characters and backslashes are refused anywhere: WHATWG parsers
//!   (browsers, reqwest) read `\` as `/` and drop tabs and newlines, so such a
//!   URL could name another host for them than for us.
//!
//! `url::Url` is the reference: the property tests below check that
//! parsing, resolution and origins agree with it on generated URLs and
//! references; where they may not, it is one of the refusals above (or a
//! quirk of `url`'s, named in the tests).

/// Why a text is not a usable http(s) URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrlError {
    /// No scheme: a relative reference where an absolute URL is needed.
    NotAbsolute,
    /// A scheme other than http or https.
    NotHttp,
    /// No host (`http://`, `http:/path`).
    NoHost,
    /// Characters a host cannot have (percent-escapes among them), or a
    /// number that is not a dotted IPv4 address, or a malformed IPv6 one.
    BadHost,
    /// A host with non-ASCII characters (an international name not in its
    /// `xn--` form).
    InternationalHost,
    /// A port that is not a number up to 65535.
    BadPort,
    /// User info with characters RFC 3986 does not allow there.
    BadUserInfo,
    /// A control character or a backslash.
    BadCharacter,
}

impl UrlError {
    /// The reason, for people.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            UrlError::NotAbsolute => "not an absolute URL (it needs http:// or https://)",
            UrlError::NotHttp => "only http and https URLs are supported",
            UrlError::NoHost => "the URL has no host",
            UrlError::BadHost => {
                "the host is neither a name (ASCII letters, digits, '-', '.'), nor a dotted IPv4 address, nor an [IPv6] address"
            }
            UrlError::InternationalHost => {
                "an international host name must be given in its ASCII (xn--) form"
            }
            UrlError::BadPort => "the port is not a number from 0 to 65535",
            UrlError::BadUserInfo => "the user info has characters a URL cannot have there",
            UrlError::BadCharacter => "the URL has a control character or a backslash",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn parse(name: &str) -> Result<Scheme, UrlError> {
        if name.eq_ignore_ascii_case("http") {
            Ok(Scheme::Http)
        } else if name.eq_ignore_ascii_case("https") {
            Ok(Scheme::Https)
        } else {
            Err(UrlError::NotHttp)
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// Scheme, host and port (the default filled in): requests to the same
/// origin may carry the user's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: Scheme,
    host: String,
    port: u16,
}

/// An absolute http or https URL with a host. See the module documentation
/// for what parsing keeps and what it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpUrl {
    scheme: Scheme,
    /// `user:password` as given, without the `@`.
    user_info: Option<String>,
    /// Lower-cased; an IPv6 literal with its brackets.
    host: String,
    /// Only a port that is not the scheme's default.
    port: Option<u16>,
    /// Starts with `/`, dot segments removed.
    path: String,
    query: Option<String>,
    fragment: Option<String>,
    /// The URL as printed.
    text: String,
}

impl HttpUrl {
    /// Parses an absolute http(s) URL with a host.
    pub(crate) fn parse(text: &str) -> Result<HttpUrl, UrlError> {
        let parts = Parts::split(trim(text))?;
        let scheme = Scheme::parse(parts.scheme.ok_or(UrlError::NotAbsolute)?)?;
        let authority = parts.authority.ok_or(UrlError::NoHost)?;
        HttpUrl::with_authority(scheme, authority, &parts)
    }

    /// Resolves `reference` (a server's `Location`: absolute, `//host/…`,
    /// `/path`, `path`, `?query` or `#fragment`) against this URL, as RFC
    /// 3986 §5.2.2 says (a reference with this URL's own scheme and no
    /// authority is relative, as in browsers). The result must be http(s)
    /// with a host.
    pub(crate) fn join(&self, reference: &str) -> Result<HttpUrl, UrlError> {
        let parts = Parts::split(trim(reference))?;
        let scheme = match parts.scheme {
            Some(name) if !name.eq_ignore_ascii_case(self.scheme.as_str()) => {
                let scheme = Scheme::parse(name)?;
                let authority = parts.authority.ok_or(UrlError::NoHost)?;
                return HttpUrl::with_authority(scheme, authority, &parts);
            }
            _ => self.scheme,
        };
        if let Some(authority) = parts.authority {
            return HttpUrl::with_authority(scheme, authority, &parts);
        }
        let (path, query) = if parts.path.is_empty() {
            (self.path.clone(), parts.query.or(self.query.as_deref()))
        } else if parts.path.starts_with('/') {
            (remove_dot_segments(parts.path), parts.query)
        } else {
            // Merge (§5.2.3): the base path always has a `/`.
            let directory = &self.path[..self.path.rfind('/').map_or(0, |i| i + 1)];
            (
                remove_dot_segments(&[directory, parts.path].concat()),
                parts.query,
            )
        };
        Ok(HttpUrl::assemble(
            scheme,
            self.user_info.clone(),
            self.host.clone(),
            self.port,
            path,
            query,
            parts.fragment,
        ))
    }

    /// Where requests to this URL go, for the credential rule.
    pub(crate) fn origin(&self) -> Origin {
        Origin {
            scheme: self.scheme,
            host: self.host.clone(),
            port: self.port.unwrap_or(self.scheme.default_port()),
        }
    }

    /// The first query parameter called `name`, percent-decoded (`+` stays
    /// `+`: S3 upload IDs are not form data).
    pub(crate) fn query_param(&self, name: &str) -> Option<String> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
    }

    /// Adds `pairs` (already encoded, `a=1&b`) to the query.
    pub(crate) fn append_query(&mut self, pairs: &str) {
        let query = match self.query.take() {
            Some(existing) if !existing.is_empty() => existing + "&" + pairs,
            _ => pairs.to_string(),
        };
        self.query = Some(query);
        self.text = self.serialize();
    }

    /// The URL as printed.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// A URL of `scheme` with this `authority`; path, query and fragment from
    /// `parts`.
    fn with_authority(
        scheme: Scheme,
        authority: &str,
        parts: &Parts<'_>,
    ) -> Result<HttpUrl, UrlError> {
        let (user_info, host_port) = match authority.rsplit_once('@') {
            Some((user_info, rest)) => (Some(user_info), rest),
            None => (None, authority),
        };
        if let Some(user_info) = user_info
            && !user_info.bytes().all(is_user_info_byte)
        {
            return Err(UrlError::BadUserInfo);
        }
        let (host, port) = split_host_port(host_port)?;
        let port = match port {
            None | Some("") => None,
            Some(digits) => {
                let port = parse_port(digits)?;
                (port != scheme.default_port()).then_some(port)
            }
        };
        Ok(HttpUrl::assemble(
            scheme,
            user_info.map(str::to_string),
            host,
            port,
            remove_dot_segments(parts.path),
            parts.query,
            parts.fragment,
        ))
    }

    fn assemble(
        scheme: Scheme,
        user_info: Option<String>,
        host: String,
        port: Option<u16>,
        path: String,
        query: Option<&str>,
        fragment: Option<&str>,
    ) -> HttpUrl {
        let escape_spaces = |text: &str| text.replace(' ', "%20");
        let mut url = HttpUrl {
            scheme,
            user_info,
            host,
            port,
            // An empty path is `/` for http(s) (RFC 3986 §6.2.3).
            path: if path.is_empty() {
                "/".into()
            } else {
                escape_spaces(&path)
            },
            query: query.map(escape_spaces),
            fragment: fragment.map(escape_spaces),
            text: String::new(),
        };
        url.text = url.serialize();
        url
    }

    fn serialize(&self) -> String {
        let mut text = String::with_capacity(self.host.len() + self.path.len() + 16);
        text.push_str(self.scheme.as_str());
        text.push_str("://");
        if let Some(user_info) = &self.user_info {
            text.push_str(user_info);
            text.push('@');
        }
        text.push_str(&self.host);
        if let Some(port) = self.port {
            text.push(':');
            text.push_str(&port.to_string());
        }
        text.push_str(&self.path);
        if let Some(query) = &self.query {
            text.push('?');
            text.push_str(query);
        }
        if let Some(fragment) = &self.fragment {
            text.push('#');
            text.push_str(fragment);
        }
        text
    }
}

/// The five components of a URI reference (RFC 3986 appendix B), not yet
/// checked.
struct Parts<'a> {
    scheme: Option<&'a str>,
    authority: Option<&'a str>,
    /// Empty, or starting with `/` when there is an authority.
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

impl<'a> Parts<'a> {
    fn split(text: &'a str) -> Result<Parts<'a>, UrlError> {
        if text.bytes().any(|b| b < b' ' || b == 0x7f || b == b'\\') {
            return Err(UrlError::BadCharacter);
        }
        let (rest, fragment) = split_off(text, '#');
        let (rest, query) = split_off(rest, '?');
        // A colon before any `/` ends a scheme, if what precedes it is one;
        // otherwise it is part of the path.
        let (scheme, rest) = match rest.split_once(':') {
            Some((scheme, rest)) if is_scheme(scheme) => (Some(scheme), rest),
            _ => (None, rest),
        };
        let (authority, path) = match rest.strip_prefix("//") {
            Some(rest) => {
                let end = rest.find('/').unwrap_or(rest.len());
                (Some(&rest[..end]), &rest[end..])
            }
            None => (None, rest),
        };
        Ok(Parts {
            scheme,
            authority,
            path,
            query,
            fragment,
        })
    }
}

/// `text` before the first `separator`, and what follows it if it occurs.
fn split_off(text: &str, separator: char) -> (&str, Option<&str>) {
    match text.split_once(separator) {
        Some((before, after)) => (before, Some(after)),
        None => (text, None),
    }
}

/// Leading and trailing spaces and control characters go, as in browsers.
fn trim(text: &str) -> &str {
    text.trim_matches(|c: char| c <= ' ')
}

/// `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`
fn is_scheme(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// Unreserved, sub-delims, `:` and `%` (RFC 3986 `userinfo`).
fn is_user_info_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:%".contains(&b)
}

/// The host (lower-cased) and the port's digits, if a `:` follows the host.
fn split_host_port(text: &str) -> Result<(String, Option<&str>), UrlError> {
    let (host, port) = if text.starts_with('[') {
        let end = text.find(']').ok_or(UrlError::BadHost)?;
        let (host, rest) = text.split_at(end + 1);
        if !is_ipv6(&host[1..end]) {
            return Err(UrlError::BadHost);
        }
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':').ok_or(UrlError::BadHost)?)),
        }
    } else {
        let (host, port) = split_off_last(text, ':');
        check_name(host)?;
        (host, port)
    };
    Ok((host.to_ascii_lowercase(), port))
}

fn split_off_last(text: &str, separator: char) -> (&str, Option<&str>) {
    match text.rsplit_once(separator) {
        Some((before, after)) => (before, Some(after)),
        None => (text, None),
    }
}

/// A registered name, or a dotted IPv4 address when it ends in a number.
fn check_name(host: &str) -> Result<(), UrlError> {
    if host.is_empty() {
        return Err(UrlError::NoHost);
    }
    if !host.is_ascii() {
        return Err(UrlError::InternationalHost);
    }
    // Unreserved and sub-delims (RFC 3986 `reg-name`); percent-escapes,
    // which WHATWG parsers decode, are refused.
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b))
    {
        return Err(UrlError::BadHost);
    }
    // WHATWG parsers read a name whose last label is a number as an IPv4
    // address in any of several spellings; only the plain one is accepted.
    let labels = host.strip_suffix('.').unwrap_or(host);
    let last = labels.rsplit('.').next().unwrap_or_default();
    let hex = last
        .strip_prefix("0x")
        .or_else(|| last.strip_prefix("0X"))
        .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_hexdigit()));
    let numeric = !last.is_empty() && (hex || last.bytes().all(|b| b.is_ascii_digit()));
    if numeric && !is_dotted_ipv4(host) {
        return Err(UrlError::BadHost);
    }
    Ok(())
}

/// Four decimal numbers up to 255, without leading zeros.
fn is_dotted_ipv4(host: &str) -> bool {
    let mut count = 0;
    let valid = host.split('.').all(|part| {
        count += 1;
        !part.is_empty()
            && part.len() <= 3
            && part.bytes().all(|b| b.is_ascii_digit())
            && (part == "0" || !part.starts_with('0'))
            && part.parse::<u8>().is_ok()
    });
    valid && count == 4
}

/// Eight groups of 1-4 hex digits, or fewer with one `::` standing for the
/// missing zero groups (no embedded IPv4 form, no zone).
fn is_ipv6(text: &str) -> bool {
    let groups = |side: &str| -> Option<usize> {
        if side.is_empty() {
            return Some(0);
        }
        let mut count = 0;
        for group in side.split(':') {
            if group.is_empty() || group.len() > 4 || !group.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return None;
            }
            count += 1;
        }
        Some(count)
    };
    match text.split_once("::") {
        Some((left, right)) => match (groups(left), groups(right)) {
            (Some(l), Some(r)) => l + r <= 7,
            _ => false,
        },
        None => groups(text) == Some(8),
    }
}

fn parse_port(digits: &str) -> Result<u16, UrlError> {
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UrlError::BadPort);
    }
    // Leading zeros are allowed (`:0080` is 80).
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Ok(0);
    }
    significant.parse().map_err(|_| UrlError::BadPort)
}

/// RFC 3986 §5.2.4 on a path that is empty or starts with `/`. A segment
/// `.` or `..` may also be spelled with `%2e` (WHATWG): such a URL is read
/// so by browsers and reqwest, so it is resolved the same way here.
fn remove_dot_segments(path: &str) -> String {
    let Some(rest) = path.strip_prefix('/') else {
        return path.to_string();
    };
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in rest.split('/') {
        trailing_slash = false;
        if is_dot(segment, 1) {
            trailing_slash = true;
        } else if is_dot(segment, 2) {
            segments.pop();
            trailing_slash = true;
        } else {
            segments.push(segment);
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    out
}

/// Whether `segment` is `dots` dots, each written `.` or `%2e`.
fn is_dot(segment: &str, dots: usize) -> bool {
    let mut rest = segment.as_bytes();
    for _ in 0..dots {
        rest = match rest {
            [b'.', tail @ ..] => tail,
            [b'%', b'2', b'e' | b'E', tail @ ..] => tail,
            _ => return false,
        };
    }
    rest.is_empty()
}

/// Decodes `%XX` escapes; malformed ones stay as they are.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes[i..] {
            [b'%', high, low, ..] => hex_value(high).zip(hex_value(low)),
            _ => None,
        };
        match escaped {
            Some((high, low)) => {
                out.push(high << 4 | low);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parsed(text: &str) -> HttpUrl {
        HttpUrl::parse(text).unwrap()
    }

    fn joined(base: &str, reference: &str) -> Result<String, UrlError> {
        parsed(base)
            .join(reference)
            .map(|url| url.as_str().to_string())
    }

    /// RFC 3986 §5.4: every normal and abnormal example with an http result.
    #[test]
    fn rfc3986_reference_resolution_examples() {
        let base = "http://a/b/c/d;p?q";
        let examples = [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g/"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q#s"),
            ("g#s", "http://a/b/c/g#s"),
            ("g?y#s", "http://a/b/c/g?y#s"),
            (";x", "http://a/b/c/;x"),
            ("g;x", "http://a/b/c/g;x"),
            ("g;x?y#s", "http://a/b/c/g;x?y#s"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("./", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../", "http://a/"),
            ("../../g", "http://a/g"),
            ("../../../g", "http://a/g"),
            ("../../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("/../g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            (".g", "http://a/b/c/.g"),
            ("g..", "http://a/b/c/g.."),
            ("..g", "http://a/b/c/..g"),
            ("./../g", "http://a/b/g"),
            ("./g/.", "http://a/b/c/g/"),
            ("g/./h", "http://a/b/c/g/h"),
            ("g/../h", "http://a/b/c/h"),
            ("g;x=1/./y", "http://a/b/c/g;x=1/y"),
            ("g;x=1/../y", "http://a/b/c/y"),
            ("g?y/./x", "http://a/b/c/g?y/./x"),
            ("g?y/../x", "http://a/b/c/g?y/../x"),
            ("g#s/./x", "http://a/b/c/g#s/./x"),
            ("g#s/../x", "http://a/b/c/g#s/../x"),
            // Its own scheme without an authority is relative (§5.2.2's
            // backwards-compatible reading, as browsers do).
            ("http:g", "http://a/b/c/g"),
        ];
        for (reference, expected) in examples {
            assert_eq!(
                joined(base, reference).as_deref(),
                Ok(expected),
                "{reference}"
            );
        }
        assert_eq!(joined(base, "g:h"), Err(UrlError::NotHttp));
    }

    #[test]
    fn server_locations_resolve() {
        let endpoint = "http://127.0.0.1:8080/files/";
        let cases = [
            ("/files/abc", "http://127.0.0.1:8080/files/abc"),
            ("abc", "http://127.0.0.1:8080/files/abc"),
            (
                "../uploads/x?token=a%2Fb",
                "http://127.0.0.1:8080/uploads/x?token=a%2Fb",
            ),
            ("//127.0.0.1:9/x", "http://127.0.0.1:9/x"),
            (
                "https://store.example/b/k?uploadId=U",
                "https://store.example/b/k?uploadId=U",
            ),
            ("?uploadId=U", "http://127.0.0.1:8080/files/?uploadId=U"),
            ("/a/%2e%2E/b/%2e/c", "http://127.0.0.1:8080/b/c"),
            ("  /trimmed  ", "http://127.0.0.1:8080/trimmed"),
        ];
        for (location, expected) in cases {
            assert_eq!(
                joined(endpoint, location).as_deref(),
                Ok(expected),
                "{location}"
            );
        }
        let object = "https://s3.example/bucket/key?x=1#f";
        assert_eq!(
            joined(object, "?uploadId=U").as_deref(),
            Ok("https://s3.example/bucket/key?uploadId=U")
        );
    }

    #[test]
    fn parsing_normalises_only_scheme_host_port_and_dots() {
        let cases = [
            ("HTTP://Example.COM:80", "http://example.com/"),
            (
                "https://h:443/a/./b/../c?x=%2f&y#Frag",
                "https://h/a/c?x=%2f&y#Frag",
            ),
            ("https://h:80/", "https://h:80/"),
            ("http://h:0080/", "http://h/"),
            ("http://h:/x", "http://h/x"),
            (
                "http://u:p%40ss@h:8080/a%20b",
                "http://u:p%40ss@h:8080/a%20b",
            ),
            ("  http://h/  ", "http://h/"),
            ("http://[::1]:8080/x", "http://[::1]:8080/x"),
            ("http://[FE80::A]/", "http://[fe80::a]/"),
            ("http://h/a b/é?q=ü ", "http://h/a%20b/é?q=ü"),
            ("http://h/é?q=a b#c d", "http://h/é?q=a%20b#c%20d"),
            ("http://h?q", "http://h/?q"),
            ("http://a.b_c~d-e.", "http://a.b_c~d-e./"),
        ];
        for (text, expected) in cases {
            assert_eq!(parsed(text).as_str(), expected, "{text}");
        }
    }

    #[test]
    fn unusable_urls_are_typed_errors() {
        let cases = [
            ("not a url", UrlError::NotAbsolute),
            ("/ranged", UrlError::NotAbsolute),
            ("ftp://host/x", UrlError::NotHttp),
            ("file:///etc/passwd", UrlError::NotHttp),
            ("http://", UrlError::NoHost),
            ("http:/x", UrlError::NoHost),
            ("http:///x", UrlError::NoHost),
            ("http://user@/x", UrlError::NoHost),
            ("http://bücher.example/", UrlError::InternationalHost),
            ("http://h:65536/", UrlError::BadPort),
            ("http://h:8a/", UrlError::BadPort),
            ("http://h:80:80/", UrlError::BadHost),
            ("http://ex ample/", UrlError::BadHost),
            ("http://%41/", UrlError::BadHost),
            ("http://0x7f.0.0.1/", UrlError::BadHost),
            ("http://127.1/", UrlError::BadHost),
            ("http://127.0.0.01/", UrlError::BadHost),
            ("http://1.2.3.4./", UrlError::BadHost),
            ("http://256.0.0.1/", UrlError::BadHost),
            ("http://example.123/", UrlError::BadHost),
            ("http://[::1/", UrlError::BadHost),
            ("http://[1:2:3:4:5:6:7:8:9]/", UrlError::BadHost),
            ("http://[::1%25eth0]/", UrlError::BadHost),
            ("http://[::1]x/", UrlError::BadHost),
            ("http://a[b]@h/", UrlError::BadUserInfo),
            ("http://h/a\\b", UrlError::BadCharacter),
            ("http://h/a\nb", UrlError::BadCharacter),
        ];
        for (text, expected) in cases {
            assert_eq!(HttpUrl::parse(text), Err(expected), "{text}");
        }
    }

    /// A URL that a WHATWG parser (a browser, reqwest) would send to another
    /// host than the one read here is refused, never misread.
    #[test]
    fn another_host_cannot_be_smuggled_in() {
        let home = "http://home.example/files/";
        for location in [
            "http://evil.example\\@home.example/",
            "\\\\evil.example/x",
            "/\\evil.example/x",
            "http://evil.example\t@home.example/",
        ] {
            assert_eq!(
                joined(home, location),
                Err(UrlError::BadCharacter),
                "{location}"
            );
        }
        // The host is what follows the last `@`.
        let url = parsed(home).join("//home.example@evil.example/x").unwrap();
        assert_ne!(url.origin(), parsed(home).origin());
    }

    #[test]
    fn origins_are_scheme_host_and_port() {
        let same = [
            ("http://h/a", "http://H:80/b?c"),
            ("https://h", "https://h:443/x"),
            ("http://u:p@h:8080/", "http://h:8080/z"),
        ];
        for (a, b) in same {
            assert_eq!(parsed(a).origin(), parsed(b).origin(), "{a} {b}");
        }
        let different = [
            ("http://localhost:8080/", "http://127.0.0.1:8080/"),
            ("http://h/", "https://h/"),
            ("http://h:80/", "http://h:8080/"),
            ("https://h/", "https://h:80/"),
            ("http://[::1]/", "http://[0::1]/"),
        ];
        for (a, b) in different {
            assert_ne!(parsed(a).origin(), parsed(b).origin(), "{a} {b}");
        }
    }

    #[test]
    fn query_parameters_are_read_and_added() {
        let url = parsed("http://h/k?x&uploadId=a%2Fb%2B%3D+c&uploadId=second#f");
        assert_eq!(url.query_param("uploadId").as_deref(), Some("a/b+=+c"));
        assert_eq!(url.query_param("x").as_deref(), Some(""));
        assert_eq!(url.query_param("missing"), None);
        let mut url = url;
        url.append_query("partNumber=2");
        assert_eq!(
            url.as_str(),
            "http://h/k?x&uploadId=a%2Fb%2B%3D+c&uploadId=second&partNumber=2#f"
        );
        for (start, expected) in [
            ("http://h/k", "http://h/k?uploads"),
            ("http://h/k?", "http://h/k?uploads"),
            ("http://h/k#f", "http://h/k?uploads#f"),
        ] {
            let mut url = parsed(start);
            url.append_query("uploads");
            assert_eq!(url.as_str(), expected);
        }
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("a%C3%A9"), "aé");
    }

    // --- The same answers as the `url` crate (WHATWG) --------------------

    fn scheme() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["http", "https", "HTTP", "Https"])
    }

    /// Hosts both parsers read the same way: names whose last label is not
    /// a number (nor `xn--`, which `url` decodes), plain IPv4, and IPv6
    /// in its shortest form (which `url` prints).
    fn host() -> impl Strategy<Value = String> {
        let label = "[a-zA-Z0-9_~!$&'()*+,;=-]{1,5}";
        let last = "[a-zA-Z][a-zA-Z0-9_~!$&'()*+,;=-]{0,5}";
        prop_oneof![
            4 => (prop::collection::vec(label, 0..3), last).prop_map(|(mut labels, last)| {
                labels.push(last);
                labels.join(".")
            }),
            2 => any::<[u8; 4]>().prop_map(|[a, b, c, d]| format!("{a}.{b}.{c}.{d}")),
            1 => prop::sample::select(vec![
                "localhost", "LocalHost", "[::1]", "[2001:db8::7]", "[fe80::1:2]", "[::]",
            ])
            .prop_map(String::from),
        ]
        .prop_filter("url decodes punycode", |host| {
            !host
                .split('.')
                .any(|l| l.to_ascii_lowercase().starts_with("xn--"))
        })
    }

    fn port() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => Just(String::new()),
            1 => prop::sample::select(vec![":", ":80", ":443", ":0080", ":0"]).prop_map(String::from),
            2 => any::<u16>().prop_map(|p| format!(":{p}")),
        ]
    }

    fn authority() -> impl Strategy<Value = String> {
        let user_info = prop_oneof![
            4 => Just(String::new()),
            1 => "[a-z0-9]{1,4}(:[a-z0-9]{1,4})?@",
        ];
        (user_info, host(), port()).prop_map(|(u, h, p)| format!("{u}{h}{p}"))
    }

    /// Path characters: narrow ones both parsers keep as they are (no `@`:
    /// it would make user info of a leading segment); the wide set adds ones
    /// `url` percent-encodes.
    fn segment(wide: bool) -> BoxedStrategy<String> {
        let plain = if wide {
            "[a-zA-Z0-9._~!$&()*+,;=:@%'\" <>`{}^|\\[\\]é-]{0,6}"
        } else {
            "[a-zA-Z0-9._~!$&()*+,;=:-]{0,6}"
        };
        prop_oneof![
            6 => plain,
            1 => prop::sample::select(vec![".", "..", "%2e", "%2E%2e", ".%2E", "%2e.", "%41", "%zz", ""])
                .prop_map(String::from),
        ]
        // `url` 2.5 does not let `..` remove a segment like `A:` (a Windows
        // drive letter) whatever the scheme; the URL standard and browsers
        // do, as here.
        .prop_filter("a drive letter", |s| !is_drive_letter(s))
        .boxed()
    }

    fn is_drive_letter(segment: &str) -> bool {
        matches!(segment.as_bytes(), [letter, b':' | b'|'] if letter.is_ascii_alphabetic())
    }

    /// Segments joined by `/`; the first is not empty, so that `/` + path
    /// never starts an authority (those come from `authority()`: the
    /// malformed ones are in `unusable_urls_are_typed_errors`).
    fn path(wide: bool) -> impl Strategy<Value = String> {
        (segment(wide), prop::collection::vec(segment(wide), 0..4)).prop_map(|(first, rest)| {
            // (Nor blank: leading spaces are trimmed.)
            // (Trimming can also leave a drive letter: " a:" becomes "a:".)
            let first = match first.trim_start() {
                "" => "x".to_string(),
                first if is_drive_letter(first) => format!("x{first}"),
                first => first.to_string(),
            };
            std::iter::once(first)
                .chain(rest)
                .collect::<Vec<_>>()
                .join("/")
        })
    }

    fn query_and_fragment(wide: bool) -> impl Strategy<Value = String> {
        let text = if wide {
            "[a-zA-Z0-9._~!$&()*+,;=:@/?%\" <>`{}^|é-]{0,8}"
        } else {
            "[a-zA-Z0-9._~!$&()*+,;=:@/?%-]{0,8}"
        };
        let query =
            prop::option::of(text).prop_map(|q| q.map(|q| format!("?{q}")).unwrap_or_default());
        let fragment =
            prop::option::of(text).prop_map(|f| f.map(|f| format!("#{f}")).unwrap_or_default());
        (query, fragment).prop_map(|(q, f)| q + &f)
    }

    fn absolute(wide: bool) -> impl Strategy<Value = String> {
        (scheme(), authority(), path(wide), query_and_fragment(wide))
            .prop_map(|(s, a, p, qf)| format!("{s}://{a}/{p}{qf}"))
    }

    fn reference(wide: bool) -> impl Strategy<Value = String> {
        let target = prop_oneof![
            2 => absolute(wide),
            1 => (authority(), path(wide)).prop_map(|(a, p)| format!("//{a}/{p}")),
            2 => path(wide).prop_map(|p| format!("/{p}")),
            3 => path(wide),
            1 => prop::sample::select(vec!["", "ftp://h/x", "file:///etc/passwd", "mailto:a@h", "http:g", "HTTP:/g"])
                .prop_map(String::from),
        ];
        (target, query_and_fragment(wide)).prop_map(|(t, qf)| t + &qf)
    }

    /// `url`'s answer, when it is an http(s) URL with a host.
    fn whatwg_http(url: Result<url::Url, url::ParseError>) -> Option<url::Url> {
        url.ok().filter(|u| {
            matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
        })
    }

    /// `https:x` against an http base: WHATWG reads it as `https://x/`, RFC
    /// 3986 as a URL without a host (refused here).
    fn other_scheme_without_authority(base: &str, reference: &str) -> bool {
        let Some((scheme, rest)) = reference.split_once(':') else {
            return false;
        };
        let base_scheme = base.split(':').next().unwrap_or_default();
        is_scheme(scheme)
            && !scheme.eq_ignore_ascii_case(base_scheme)
            && Scheme::parse(scheme).is_ok()
            && !rest.starts_with("//")
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        /// Within characters neither parser re-encodes, parsing, resolution
        /// and origins give the very same URLs as `url`.
        #[test]
        fn resolution_and_origins_agree_with_url(base in absolute(false), reference in reference(false)) {
            prop_assume!(!other_scheme_without_authority(&base, &reference));
            let theirs_base = whatwg_http(url::Url::parse(&base));
            let ours_base = HttpUrl::parse(&base).ok();
            prop_assert_eq!(
                ours_base.as_ref().map(HttpUrl::as_str),
                theirs_base.as_ref().map(url::Url::as_str)
            );
            let (Some(ours_base), Some(theirs_base)) = (ours_base, theirs_base) else {
                return Ok(());
            };
            let theirs = whatwg_http(theirs_base.join(&reference));
            let ours = ours_base.join(&reference).ok();
            prop_assert_eq!(ours.as_ref().map(HttpUrl::as_str), theirs.as_ref().map(url::Url::as_str));
            if let (Some(ours), Some(theirs)) = (ours, theirs) {
                prop_assert_eq!(
                    ours.origin() == ours_base.origin(),
                    theirs.origin() == theirs_base.origin()
                );
            }
        }

        /// With characters `url` percent-encodes (and we keep as sent), the
        /// URL we print is the one `url` resolves to once it has read it.
        #[test]
        fn kept_characters_mean_what_url_reads(base in absolute(true), reference in reference(true)) {
            prop_assume!(!other_scheme_without_authority(&base, &reference));
            let ours_base = HttpUrl::parse(&base).ok();
            let theirs_base = whatwg_http(url::Url::parse(&base));
            prop_assert_eq!(ours_base.is_some(), theirs_base.is_some());
            let (Some(ours_base), Some(theirs_base)) = (ours_base, theirs_base) else {
                return Ok(());
            };
            prop_assert_eq!(url::Url::parse(ours_base.as_str()).ok(), Some(theirs_base.clone()));
            let theirs = whatwg_http(theirs_base.join(&reference));
            let ours = ours_base.join(&reference).ok();
            prop_assert_eq!(
                ours.as_ref().map(|u| url::Url::parse(u.as_str()).ok()),
                theirs.as_ref().map(|u| Some(u.clone()))
            );
            if let (Some(ours), Some(theirs)) = (ours, theirs) {
                prop_assert_eq!(
                    ours.origin() == ours_base.origin(),
                    theirs.origin() == theirs_base.origin()
                );
            }
        }
    }
}
