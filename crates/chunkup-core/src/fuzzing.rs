//! Check functions shared by the cargo-fuzz targets (`fuzz/`) and the
//! regression replay (`tests/fuzz_regressions.rs`). Each takes arbitrary
//! bytes, feeds them to a parser of server input and panics only when an
//! invariant breaks. Not part of the API: no behaviour lives here.

use std::time::Duration;

use url::Url;

use crate::protocol::headers::{
    parse_content_range, parse_last_known_byte, parse_retry_after, parse_status_body, parse_u64,
};
use crate::protocol::{
    Codec, Concat, Ietf, IetfVersion, Ranged, Tus, UploadMeta, Verdict, announced,
};
use crate::{
    ByteRange, Capabilities, ChecksumAlgorithm, ChunkSizing, Event, Input, Instant, Method, Output,
    RequestId, ResolvedProtocol, Response, RetryPolicy, TransportError, TransportErrorKind, Upload,
    UploadConfig,
};

/// The fuzz targets, by name (the regression directories use these names).
pub const TARGETS: [&str; 8] = [
    "content_range",
    "last_known_byte",
    "offset_length",
    "upload_limit",
    "tus_headers",
    "location",
    "status_body",
    "upload_machine",
];

/// Runs the check of target `name` on `data`; unknown names panic.
pub fn check(name: &str, data: &[u8]) {
    match name {
        "content_range" => check_content_range(data),
        "last_known_byte" => check_last_known_byte(data),
        "offset_length" => check_offset_length(data),
        "upload_limit" => check_upload_limit(data),
        "tus_headers" => check_tus_headers(data),
        "location" => check_location(data),
        "status_body" => check_status_body(data),
        "upload_machine" => check_upload_machine(data),
        other => panic!("no fuzz target {other:?}"),
    }
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// Splits `data` at its first byte `sep` (the rest is empty when absent).
fn split(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// `Content-Range` (and `Retry-After`, the other plain-number header): a
/// parsed range is ordered and round-trips through the formatter.
pub fn check_content_range(data: &[u8]) {
    let value = text(data);
    if let Some((start, end, total)) = parse_content_range(&value) {
        assert!(start <= end, "{value:?} parsed to {start}-{end}");
        if let (Some(total), Some(end1)) = (total, end.checked_add(1)) {
            let again = crate::protocol::headers::content_range(start, end1, total);
            assert_eq!(parse_content_range(&again), Some((start, end, Some(total))));
        }
    }
    if let Some(delay) = parse_retry_after(&value) {
        assert_eq!(parse_u64(&value), Some(delay.as_secs()));
    }
}

/// `X-Last-Known-Byte`, alone and as the ranged protocol reads it: a held
/// count is `n + 1` of a plain index, and a chunk answer never claims more
/// than the number, nor passes a garbage value as an offset.
pub fn check_last_known_byte(data: &[u8]) {
    let value = text(data);
    let parsed = parse_last_known_byte(&value);
    if let Ok(held) = parsed {
        let trimmed = value.trim();
        if trimmed == "-1" {
            assert_eq!(held, 0);
        } else {
            assert!(held >= 1, "{value:?}");
            assert_eq!(trimmed.parse::<u64>().ok(), Some(held - 1), "{value:?}");
        }
    }
    let ranged = Ranged {
        chunk_method: Method::Post,
    };
    let range = ByteRange { start: 10, end: 20 };
    for status in [200, 201, 416, 308, 500] {
        let response = Response::status(status).with_header("X-Last-Known-Byte", value.clone());
        let verdict = ranged.on_chunk(&response, range);
        if let Verdict::ServerHas(held) = verdict {
            assert_eq!(Ok(held), parsed, "{status} {value:?}");
        }
        let meta = meta(Some(100), &Concat::None);
        if let Verdict::ServerHas(held) = ranged.on_status(&response, &meta) {
            assert_eq!(Ok(held), parsed, "status {status} {value:?}");
        }
    }
}

fn meta<'a>(total: Option<u64>, concat: &'a Concat) -> UploadMeta<'a> {
    UploadMeta {
        total,
        file_name: "f.bin",
        content_type: "application/octet-stream",
        metadata: &[],
        concat,
    }
}

/// `Upload-Offset` / `Upload-Length` as tus and the IETF draft read them
/// (`offset\nlength\nstatus-byte`): an offset verdict is exactly the number
/// sent, and a length that contradicts the source is refused.
pub fn check_offset_length(data: &[u8]) {
    let (offset, rest) = split(data, b'\n');
    let (length, rest) = split(rest, b'\n');
    let (offset, length) = (text(offset), text(length));
    let status =
        [200, 201, 204, 409, 460, 412, 503, 404][rest.first().map_or(0, |&b| b as usize % 8)];
    let total = 1000;
    let mut response = Response::status(status).with_header("Upload-Offset", offset.clone());
    if !length.is_empty() {
        response = response.with_header("Upload-Length", length.clone());
    }
    let number = parse_u64(&offset);
    let length_mismatch = parse_u64(&length).is_some_and(|l| l != total);
    let range = ByteRange { start: 0, end: 10 };
    let none = Concat::None;
    let verdicts = [
        (
            "tus chunk",
            Tus::default().on_chunk(&response, range),
            false,
        ),
        (
            "tus status",
            Tus::default().on_status(&response, &meta(Some(total), &none)),
            true,
        ),
        ("tus create", Tus::default().on_create(&response), false),
        (
            "ietf chunk",
            Ietf::default().on_chunk(&response, range),
            false,
        ),
        (
            "ietf status",
            Ietf::default().on_status(&response, &meta(Some(total), &none)),
            true,
        ),
    ];
    for (what, verdict, checks_length) in verdicts {
        match verdict {
            Verdict::ServerHas(held) if held != range.end || number.is_some() => {
                assert_eq!(Some(held), number, "{what}: {offset:?}");
                assert!(!(checks_length && length_mismatch), "{what}: {length:?}");
            }
            Verdict::Created {
                offset: Some(held), ..
            } => {
                assert_eq!(Some(held), number, "{what}: {offset:?}")
            }
            _ => {}
        }
    }
    let ietf6 = Ietf {
        version: IetfVersion::Interop6,
    };
    let _ = ietf6.on_status(&response, &meta(None, &none));
    let _ = Codec::Ietf(Ietf::default()).server_knows_length(&response);
}

/// `Upload-Limit` (a structured-field dictionary) and the other structured
/// fields: never a panic, and the limits a response yields are the ones its
/// integers say.
pub fn check_upload_limit(data: &[u8]) {
    let value = text(data);
    let response = Response::status(204).with_header("Upload-Limit", value.clone());
    if let Some((min, max)) = Codec::Ietf(Ietf::default()).append_limits(&response) {
        // Limits feed the chunk sizer: they must be usable whatever they say.
        let mut sizer = crate::ChunkSizer::new(ChunkSizing::default());
        sizer.set_server_limits(min, max);
        let next = sizer.next_chunk(1 << 40);
        assert!(next <= 1 << 40, "{value:?} -> {next}");
        if let Some(max) = max {
            let floor = min.unwrap_or(1).max(1);
            assert!(
                next <= max.max(floor),
                "{value:?}: chunk {next} above max {max}"
            );
        }
    }
    let complete = Response::status(204).with_header("Upload-Complete", value.clone());
    let _ = Codec::Ietf(Ietf::default()).server_knows_length(&complete);
    let _ = announced(&Response::status(204).with_header("Upload-Limit", value));
}

/// The tus discovery headers (`Tus-Version\0Tus-Extension\0Tus-Max-Size\0
/// Tus-Checksum-Algorithm\0Upload-Expires`) and interop version: parsed
/// without panic, extension names are trimmed lower-case and non-empty.
pub fn check_tus_headers(data: &[u8]) {
    let mut parts = data.split(|&b| b == 0).map(text);
    let mut response = Response::status(204);
    for name in [
        "Tus-Version",
        "Tus-Extension",
        "Tus-Max-Size",
        "Tus-Checksum-Algorithm",
        "Upload-Expires",
        "Upload-Draft-Interop-Version",
        "Accept-Patch",
    ] {
        if let Some(value) = parts.next() {
            response = response.with_header(name, value);
        }
    }
    let Some(caps) = announced(&response) else {
        assert!(response.header("Tus-Version").is_none());
        return;
    };
    for extension in &caps.extensions {
        assert!(!extension.is_empty());
        assert_eq!(extension, &extension.trim().to_ascii_lowercase());
    }
    if let Some(max) = caps.max_size {
        assert_eq!(
            response.header("Tus-Max-Size").and_then(parse_u64),
            Some(max)
        );
    }
    if let Some(list) = response.header("Tus-Checksum-Algorithm") {
        assert_eq!(caps.checksum, ChecksumAlgorithm::preferred_of(list));
    }
    let _ = Codec::Tus(Tus::default()).expires_ms(&response);
}

/// `Location` resolution through the engine: the created upload's URL is
/// http(s), or the upload fails with a typed error; credentials go only to
/// the endpoint's origin.
pub fn check_location(data: &[u8]) {
    let (selector, location) = data.split_first().unwrap_or((&0, &[]));
    let location = text(location);
    let protocol = [
        ResolvedProtocol::Ranged,
        ResolvedProtocol::Tus,
        ResolvedProtocol::Ietf,
    ][*selector as usize % 3];
    let endpoint = if selector & 0x80 == 0 {
        "http://127.0.0.1:8080/files/"
    } else {
        "https://upload.example/a/b?c=d"
    };
    let config = UploadConfig::create(endpoint, 100)
        .speaking(Capabilities::assumed(protocol))
        .with_settings(|s| {
            s.headers = vec![
                ("Authorization".into(), "Bearer secret".into()),
                ("Cookie".into(), "s=1".into()),
                ("X-Other".into(), "kept".into()),
            ]
        });
    let Ok(mut upload) = Upload::new(config) else {
        panic!("a valid configuration was refused");
    };
    let home = Url::parse(endpoint).map(|u| u.origin()).ok();
    let mut now = Instant::ZERO;
    let mut created = false;
    for _ in 0..8 {
        match upload.poll_output(now) {
            Output::Send(request) => {
                let url = Url::parse(&request.url).expect("requests go to absolute URLs");
                assert!(matches!(url.scheme(), "http" | "https"), "{}", request.url);
                if Some(url.origin()) != home {
                    assert!(request.header("Authorization").is_none(), "{}", request.url);
                    assert!(request.header("Cookie").is_none(), "{}", request.url);
                }
                assert_eq!(request.header("X-Other"), Some("kept"));
                if created {
                    return;
                }
                created = true;
                let response = Response::status(201)
                    .with_header("Location", location.clone())
                    .with_header("Upload-Offset", "0");
                upload.handle_input(
                    now,
                    Input::Response {
                        id: request.id,
                        response,
                    },
                );
            }
            Output::Event(Event::Created { upload_url }) => {
                let url = Url::parse(&upload_url).expect("Created carries an absolute URL");
                assert!(matches!(url.scheme(), "http" | "https"));
            }
            Output::Event(_) | Output::Abort(_) | Output::AskRetry { .. } => {}
            Output::Wait(Some(at)) => now = at,
            Output::Wait(None) | Output::Done => return,
        }
    }
}

/// The ranged status body `0-n/total`: held bytes are `n + 1`, and the
/// protocol refuses a body whose total is not the source's.
pub fn check_status_body(data: &[u8]) {
    let body = text(data);
    if let Some((held, total)) = parse_status_body(&body) {
        let ranged = Ranged {
            chunk_method: Method::Put,
        };
        let none = Concat::None;
        let response = Response::status(200).with_body(data.to_vec());
        match ranged.on_status(&response, &meta(Some(total), &none)) {
            Verdict::ServerHas(h) => assert_eq!(h, held),
            other => panic!("{body:?}: a well-formed status body gave {other:?}"),
        }
        if let Some(other) = total.checked_add(1) {
            let verdict = ranged.on_status(&response, &meta(Some(other), &none));
            assert!(!matches!(verdict, Verdict::ServerHas(_)), "{body:?}");
        }
    }
}

/// A cursor over fuzz bytes: every read succeeds (zeros past the end).
struct Bytes<'a> {
    data: &'a [u8],
}

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0; 8];
        b.iter_mut().for_each(|x| *x = self.u8());
        u64::from_le_bytes(b)
    }

    fn string(&mut self) -> String {
        let len = (self.u8() as usize % 24).min(self.data.len());
        let (s, rest) = self.data.split_at(len);
        self.data = rest;
        text(s)
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Facts about the request being answered, for plausible header values.
struct Context {
    range: ByteRange,
    total: u64,
    sent_high: u64,
}

fn number(bytes: &mut Bytes<'_>, ctx: &Context) -> u64 {
    match bytes.u8() % 10 {
        0 => ctx.range.start,
        1 => ctx.range.end,
        2 => ctx.total,
        3 => ctx.total.wrapping_add(1),
        4 => ctx.sent_high,
        5 => ctx.range.start.saturating_sub(u64::from(bytes.u8())),
        6 => u64::MAX,
        7 => bytes.u64(),
        _ => u64::from(bytes.u16()),
    }
}

const HEADER_NAMES: [&str; 17] = [
    "Upload-Offset",
    "Upload-Length",
    "X-Last-Known-Byte",
    "Location",
    "Upload-Limit",
    "Retry-After",
    "Tus-Version",
    "Tus-Resumable",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "Upload-Expires",
    "Upload-Complete",
    "Upload-Draft-Interop-Version",
    "Accept-Patch",
    "Content-Range",
    "Range",
];

const STATUSES: [u16; 20] = [
    200, 201, 204, 308, 400, 403, 404, 405, 408, 409, 410, 412, 413, 416, 423, 429, 460, 500, 501,
    503,
];

fn header_value(bytes: &mut Bytes<'_>, name: &str, ctx: &Context) -> String {
    match bytes.u8() % 8 {
        0 | 1 => bytes.string(),
        2 if name == "X-Last-Known-Byte" => {
            let n = number(bytes, ctx);
            n.checked_sub(1).map_or("-1".into(), |n| n.to_string())
        }
        2 if name == "Location" => [
            "/u/1",
            "http://127.0.0.1:9/other/2",
            "https://evil.example/x",
            "//evil.example/y",
            "data:,x",
            "u/3?x#f",
        ][bytes.u8() as usize % 6]
            .into(),
        3 if name == "Upload-Limit" => format!(
            "min-append-size={}, max-append-size={}",
            number(bytes, ctx) as i64,
            number(bytes, ctx) as i64
        ),
        4 => "-1".into(),
        5 => format!(
            "bytes {}-{}/{}",
            number(bytes, ctx),
            number(bytes, ctx),
            number(bytes, ctx)
        ),
        _ => number(bytes, ctx).to_string(),
    }
}

/// The `Upload` state machine fed arbitrary responses (status, headers and
/// body from the input), transport failures, body progress and time. It must
/// never panic, never plan a body range outside the file, never report an
/// offset beyond the file or progress going backwards, never send a
/// credential to another origin, and only complete holding every byte.
pub fn check_upload_machine(data: &[u8]) {
    let mut bytes = Bytes { data };
    let setup = bytes.u8();
    let total = match bytes.u8() % 4 {
        0 => 0,
        1 => 1,
        2 => u64::from(bytes.u16()),
        _ => u64::from(bytes.u16()) * 977,
    };
    // (The fourth selector was `auto` when the engine discovered; it is
    // the ranged protocol as `auto` guesses it now.)
    let protocol = [
        ResolvedProtocol::Ranged,
        ResolvedProtocol::Tus,
        ResolvedProtocol::Ietf,
        ResolvedProtocol::Ranged,
    ][setup as usize % 4];
    let endpoint = "http://127.0.0.1:8080/files";
    let mut config = match (setup >> 2) % 3 {
        0 | 1 => UploadConfig::create(endpoint, total),
        _ => UploadConfig::resume("http://127.0.0.1:8080/files/existing", total),
    };
    let stream = (setup >> 4) % 4 == 0 && config.endpoint.is_some();
    if stream {
        config.total_size = None;
    }
    config.capabilities = Capabilities::assumed(protocol);
    let settings = &mut config.settings;
    settings.ietf_version = if setup & 0x40 == 0 {
        IetfVersion::Interop8
    } else {
        IetfVersion::Interop6
    };
    settings.chunking = match bytes.u8() % 3 {
        0 => ChunkSizing::default(),
        1 => ChunkSizing::Fixed(u64::from(bytes.u16()).max(1)),
        _ => ChunkSizing::Fixed(1),
    };
    settings.checksum = setup & 0x80 != 0;
    settings.headers = vec![("Authorization".into(), "Bearer secret".into())];
    settings.retry = RetryPolicy {
        max_attempts: 6,
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        ..RetryPolicy::default()
    };
    let home = Url::parse(endpoint).map(|u| u.origin()).ok();
    let Ok(mut upload) = Upload::new(config) else {
        // Only a stream with a protocol that cannot defer the length is refused.
        assert!(stream);
        return;
    };
    let mut now = Instant::ZERO;
    let mut acknowledged = 0;
    let mut progress_acked = 0;
    let mut known_total = (!stream).then_some(total);
    let mut sent_high = 0;
    // CHUNKUP_FUZZ_TRACE=1 prints the conversation (to debug a finding).
    let trace = std::env::var_os("CHUNKUP_FUZZ_TRACE").is_some();
    for _ in 0..4096 {
        let output = upload.poll_output(now);
        if trace {
            eprintln!("{now:?} <- {output:?}");
        }
        assert!(
            upload.acknowledged() >= acknowledged,
            "acknowledged went back"
        );
        acknowledged = upload.acknowledged();
        if let Some(t) = known_total.or(upload.total()) {
            assert!(acknowledged <= t, "acknowledged {acknowledged} of {t}");
        }
        match output {
            Output::Send(request) => {
                let url = Url::parse(&request.url).expect("requests go to absolute URLs");
                if Some(url.origin()) != home {
                    assert!(
                        request.header("Authorization").is_none(),
                        "credential sent to {}",
                        request.url
                    );
                }
                if let Some(range) = request.body {
                    assert!(range.start <= range.end, "{range:?}");
                    if let Some(t) = upload.total() {
                        assert!(range.end <= t, "{range:?} outside a {t}-byte file");
                    }
                    sent_high = sent_high.max(range.end);
                }
                if bytes.is_empty() {
                    return;
                }
                answer(
                    &mut bytes,
                    &mut upload,
                    &mut now,
                    &request,
                    known_total,
                    sent_high,
                );
                if stream && known_total.is_none() {
                    known_total = upload.total();
                }
            }
            Output::Event(event) => match event {
                Event::Progress(p) => {
                    assert!(p.acknowledged >= progress_acked, "progress went back");
                    assert!(p.acknowledged <= p.total || upload.total().is_none());
                    progress_acked = p.acknowledged;
                }
                Event::ChunkAcknowledged { offset } | Event::ResumedAt { offset } => {
                    if let Some(t) = upload.total() {
                        assert!(offset <= t, "offset {offset} beyond {t}");
                    }
                }
                Event::Completed { .. } => {
                    let t = upload.total().expect("a completed upload has a size");
                    assert_eq!(upload.acknowledged(), t, "completed without every byte");
                }
                _ => {}
            },
            Output::Abort(_) | Output::AskRetry { .. } => {}
            Output::Wait(Some(at)) => {
                assert!(at >= now || upload.is_finished(), "woken in the past");
                now = now.max(at);
            }
            Output::Wait(None) => {
                if bytes.is_empty() {
                    return;
                }
                upload.handle_input(now, Input::Resume);
            }
            Output::Done => return,
        }
    }
}

fn answer(
    bytes: &mut Bytes<'_>,
    upload: &mut Upload,
    now: &mut Instant,
    request: &crate::RequestSpec,
    known_total: Option<u64>,
    sent_high: u64,
) {
    let id: RequestId = request.id;
    let ctx = Context {
        range: request.body.unwrap_or(ByteRange { start: 0, end: 0 }),
        total: known_total.unwrap_or(sent_high),
        sent_high,
    };
    *now = *now + Duration::from_millis(u64::from(bytes.u8()));
    let input = match bytes.u8() % 16 {
        0 => Input::TransportFailed {
            id,
            error: TransportError::new(TransportErrorKind::Reset, "reset"),
        },
        1 => Input::BodySent {
            id,
            bytes: number(bytes, &ctx),
        },
        2 => Input::Pause,
        3 => Input::Terminate,
        4 if request.body.is_some() => Input::SourceEnded {
            id,
            at: number(bytes, &ctx),
        },
        5 => {
            // Let the stall timeout fire.
            *now = *now + Duration::from_secs(60);
            return;
        }
        _ => {
            let status = STATUSES[bytes.u8() as usize % STATUSES.len()];
            let mut response = Response::status(status);
            for _ in 0..bytes.u8() % 5 {
                let name = HEADER_NAMES[bytes.u8() as usize % HEADER_NAMES.len()];
                let value = header_value(bytes, name, &ctx);
                response = response.with_header(name, value);
            }
            if bytes.u8() % 4 == 0 {
                response.body = bytes.string().into_bytes();
            }
            Input::Response { id, response }
        }
    };
    if std::env::var_os("CHUNKUP_FUZZ_TRACE").is_some() {
        eprintln!("{now:?} -> {input:?}");
    }
    upload.handle_input(*now, input);
}
