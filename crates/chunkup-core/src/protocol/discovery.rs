//! Protocol discovery: one `OPTIONS` on the endpoint tells tus servers
//! (`Tus-Version`, `Tus-Extension`, ...), IETF-draft servers
//! (`Upload-Draft-Interop-Version`, `Upload-Limit`) and neither apart.

use super::headers::parse_u64;
use super::{IetfVersion, Protocol, Verdict, generic_verdict};
use crate::{ChecksumAlgorithm, Response};

/// What an endpoint said about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// The protocol chosen from the answer.
    pub protocol: Protocol,
    /// tus extensions the server listed.
    pub extensions: Vec<String>,
    /// The largest upload the server takes (`Tus-Max-Size`).
    pub max_size: Option<u64>,
    /// The strongest checksum both sides support (`Tus-Checksum-Algorithm`).
    pub checksum: Option<ChecksumAlgorithm>,
    /// The IETF draft version, when the protocol is IETF.
    pub ietf_version: Option<IetfVersion>,
}

/// Reads an `OPTIONS` answer.
pub fn capabilities(response: &Response) -> Capabilities {
    let tus =
        response.header("Tus-Version").is_some() || response.header("Tus-Resumable").is_some();
    if tus {
        let extensions = response
            .header("Tus-Extension")
            .map(|list| {
                list.split(',')
                    .map(|e| e.trim().to_ascii_lowercase())
                    .filter(|e| !e.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        return Capabilities {
            protocol: Protocol::Tus,
            extensions,
            max_size: response.header("Tus-Max-Size").and_then(parse_u64),
            checksum: response
                .header("Tus-Checksum-Algorithm")
                .and_then(ChecksumAlgorithm::preferred_of),
            ietf_version: None,
        };
    }
    let interop = response.header("Upload-Draft-Interop-Version");
    let partial_patch = response
        .header("Accept-Patch")
        .is_some_and(|types| types.contains("application/partial-upload"));
    if interop.is_some() || partial_patch || response.header("Upload-Limit").is_some() {
        // Servers need not echo the version: then it is the one asked with.
        let version = interop
            .and_then(parse_u64)
            .and_then(IetfVersion::from_interop);
        return Capabilities {
            protocol: Protocol::Ietf,
            ietf_version: version,
            ..Capabilities::default()
        };
    }
    Capabilities {
        protocol: Protocol::Ranged,
        ..Capabilities::default()
    }
}

/// The verdict for an `OPTIONS` answer: a server that does not support
/// `OPTIONS` at all is taken to speak the ranged protocol.
pub(crate) fn on_options(response: &Response) -> Verdict {
    match response.status {
        200..=299 => Verdict::Discovered(capabilities(response)),
        400 | 403 | 404 | 405 | 501 => Verdict::Discovered(Capabilities {
            protocol: Protocol::Ranged,
            ..Capabilities::default()
        }),
        _ => generic_verdict(response),
    }
}

/// The discovery request for `endpoint`: `OPTIONS` carrying the IETF interop
/// version (so IETF servers and tusd answer as such), no `Tus-Resumable`.
pub fn options_request(
    id: crate::RequestId,
    endpoint: &str,
    interop: IetfVersion,
) -> crate::RequestSpec {
    crate::RequestSpec {
        id,
        kind: crate::RequestKind::Discover,
        method: crate::Method::Options,
        url: endpoint.to_string(),
        headers: vec![(
            "Upload-Draft-Interop-Version".into(),
            interop.interop().to_string(),
        )],
        body: None,
        checksum: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_protocols_apart() {
        let tus = Response::status(204)
            .with_header("Tus-Version", "1.0.0")
            .with_header("Tus-Extension", "creation,termination, checksum")
            .with_header("Tus-Max-Size", "1000")
            .with_header("Tus-Checksum-Algorithm", "md5,sha1,sha256");
        let caps = capabilities(&tus);
        assert_eq!(caps.protocol, Protocol::Tus);
        assert_eq!(caps.extensions, ["creation", "termination", "checksum"]);
        assert_eq!(caps.max_size, Some(1000));
        assert_eq!(caps.checksum, Some(ChecksumAlgorithm::Sha256));

        let ietf = Response::status(204).with_header("Upload-Draft-Interop-Version", "6");
        assert_eq!(
            capabilities(&ietf).ietf_version,
            Some(IetfVersion::Interop6)
        );
        let ietf11 =
            Response::status(200).with_header("Accept-Patch", "application/partial-upload");
        assert_eq!(capabilities(&ietf11).protocol, Protocol::Ietf);
        assert_eq!(capabilities(&ietf11).ietf_version, None);
        let tusd = Response::status(200)
            .with_header("Tus-Version", "1.0.0")
            .with_header("Upload-Limit", "min-size=0");
        assert_eq!(capabilities(&tusd).protocol, Protocol::Tus);
        assert_eq!(
            capabilities(&Response::status(204)).protocol,
            Protocol::Ranged
        );
        assert!(matches!(
            on_options(&Response::status(405)),
            Verdict::Discovered(Capabilities {
                protocol: Protocol::Ranged,
                ..
            })
        ));
        assert!(matches!(
            on_options(&Response::status(503)),
            Verdict::Retry { .. }
        ));
    }
}
