//! What a server says about itself: one `OPTIONS` answer (or any answer
//! carrying protocol headers) tells tus servers (`Tus-Version`,
//! `Tus-Extension`, ...), IETF-draft servers (`Upload-Draft-Interop-Version`,
//! `Accept-Patch: application/partial-upload`, `Upload-Limit`) and neither
//! apart. When to ask, and what a failure to ask means, is the session's
//! decision ([`crate::session`]).

use super::headers::parse_u64;
use super::{IetfVersion, ResolvedProtocol};
use crate::{ChecksumAlgorithm, Response};

/// What is known about the server an upload goes to: the protocol it is
/// spoken to in, and what that protocol's server supports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// The protocol spoken.
    pub protocol: ResolvedProtocol,
    /// tus extensions the server listed (or, when `assumed`, those taken for
    /// granted).
    pub extensions: Vec<String>,
    /// The largest upload the server takes (`Tus-Max-Size`).
    pub max_size: Option<u64>,
    /// The strongest checksum both sides support (`Tus-Checksum-Algorithm`).
    pub checksum: Option<ChecksumAlgorithm>,
    /// The IETF draft version, when the protocol is IETF and the server said
    /// (else the configured one is spoken).
    pub ietf_version: Option<IetfVersion>,
    /// True when no server answer backs this: the user named the protocol
    /// and the server did not describe itself, or discovery found no
    /// protocol headers and the ranged protocol is a guess.
    pub assumed: bool,
}

impl Capabilities {
    /// What is taken for granted about a server of `protocol` that did not
    /// describe itself: for tus, the core protocol with creation and
    /// termination (nearly every tus server has both; a `DELETE` a server
    /// does not support is answered with an error and changes nothing).
    pub fn assumed(protocol: ResolvedProtocol) -> Self {
        let extensions = match protocol {
            ResolvedProtocol::Tus => vec!["creation".into(), "termination".into()],
            _ => Vec::new(),
        };
        Capabilities {
            protocol,
            extensions,
            assumed: true,
            ..Capabilities::default()
        }
    }

    /// Whether the server listed (or is assumed to support) a tus extension.
    pub fn has_extension(&self, name: &str) -> bool {
        self.extensions.iter().any(|e| e == name)
    }
}

/// The protocol an answer announces, if it announces one: tus headers mean
/// tus, IETF-draft headers the draft. `None` when the answer carries
/// neither (a plain server, or one that hid its headers from a browser).
pub fn announced(response: &Response) -> Option<Capabilities> {
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
        return Some(Capabilities {
            protocol: ResolvedProtocol::Tus,
            extensions,
            max_size: response.header("Tus-Max-Size").and_then(parse_u64),
            checksum: response
                .header("Tus-Checksum-Algorithm")
                .and_then(ChecksumAlgorithm::preferred_of),
            ietf_version: None,
            assumed: false,
        });
    }
    let interop = response.header("Upload-Draft-Interop-Version");
    let partial_patch = response
        .header("Accept-Patch")
        .is_some_and(|types| types.contains("application/partial-upload"));
    if interop.is_some() || partial_patch || response.header("Upload-Limit").is_some() {
        // Servers need not echo the version: then the configured one is spoken.
        let version = interop
            .and_then(parse_u64)
            .and_then(IetfVersion::from_interop);
        return Some(Capabilities {
            protocol: ResolvedProtocol::Ietf,
            ietf_version: version,
            ..Capabilities::default()
        });
    }
    None
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
        let caps = announced(&tus).expect("tus");
        assert_eq!(caps.protocol, ResolvedProtocol::Tus);
        assert_eq!(caps.extensions, ["creation", "termination", "checksum"]);
        assert_eq!(caps.max_size, Some(1000));
        assert_eq!(caps.checksum, Some(ChecksumAlgorithm::Sha256));
        assert!(!caps.assumed);

        let ietf = Response::status(204).with_header("Upload-Draft-Interop-Version", "6");
        assert_eq!(
            announced(&ietf).expect("ietf").ietf_version,
            Some(IetfVersion::Interop6)
        );
        let ietf11 =
            Response::status(200).with_header("Accept-Patch", "application/partial-upload");
        let caps = announced(&ietf11).expect("ietf");
        assert_eq!(caps.protocol, ResolvedProtocol::Ietf);
        assert_eq!(caps.ietf_version, None);
        let tusd = Response::status(200)
            .with_header("Tus-Version", "1.0.0")
            .with_header("Upload-Limit", "min-size=0");
        assert_eq!(
            announced(&tusd).map(|c| c.protocol),
            Some(ResolvedProtocol::Tus)
        );
        assert_eq!(announced(&Response::status(204)), None);
        // A tus server refusing a request it did not understand still says so.
        let refusal = Response::status(412).with_header("Tus-Version", "1.0.0");
        assert_eq!(
            announced(&refusal).map(|c| c.protocol),
            Some(ResolvedProtocol::Tus)
        );
    }

    #[test]
    fn assumed_tus_can_create_and_terminate() {
        let caps = Capabilities::assumed(ResolvedProtocol::Tus);
        assert!(
            caps.assumed && caps.has_extension("creation") && caps.has_extension("termination")
        );
        assert!(!caps.has_extension("creation-with-upload"));
        assert!(
            Capabilities::assumed(ResolvedProtocol::Ranged)
                .extensions
                .is_empty()
        );
    }
}
