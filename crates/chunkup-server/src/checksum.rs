//! tus `checksum`: `Upload-Checksum: <algorithm> <base64 digest>` of one
//! request body, verified before the body is written.

use base64::Engine;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

/// The algorithms announced in `Tus-Checksum-Algorithm`.
pub(crate) const ALGORITHMS: &str = "sha1,sha256,sha512";

/// A supported digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "sha1" => Some(Algorithm::Sha1),
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Algorithm::Sha1 => Sha1::digest(data).to_vec(),
            Algorithm::Sha256 => Sha256::digest(data).to_vec(),
            Algorithm::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

/// The checksum a request announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expected {
    pub(crate) algorithm: Algorithm,
    digest: Vec<u8>,
}

/// Why an `Upload-Checksum` header is unusable (both are 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ChecksumError {
    /// Not `<algorithm> <base64>`.
    #[error("Upload-Checksum must be `<algorithm> <base64 digest>`")]
    Malformed,
    /// An algorithm this server does not offer.
    #[error("unsupported checksum algorithm `{0}` (supported: sha1, sha256, sha512)")]
    Unsupported(String),
}

/// Parses an `Upload-Checksum` value.
pub(crate) fn parse(value: &str) -> Result<Expected, ChecksumError> {
    let (name, encoded) = value
        .trim()
        .split_once(' ')
        .ok_or(ChecksumError::Malformed)?;
    let algorithm =
        Algorithm::from_name(name).ok_or_else(|| ChecksumError::Unsupported(name.to_owned()))?;
    let digest = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| ChecksumError::Malformed)?;
    Ok(Expected { algorithm, digest })
}

impl Expected {
    /// True when `data` has the announced digest.
    pub(crate) fn matches(&self, data: &[u8]) -> bool {
        self.algorithm.digest(data) == self.digest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_verifies() {
        let sha1 = parse("sha1 qZk+NkcGgWq6PiVxeFDCbJzQ2J0=").expect("valid");
        assert_eq!(sha1.algorithm, Algorithm::Sha1);
        assert!(sha1.matches(b"abc"));
        assert!(!sha1.matches(b"abd"));
        let sha256 = parse("SHA256 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=").expect("valid");
        assert!(sha256.matches(b""));
        assert_eq!(
            parse("md4 AAAA"),
            Err(ChecksumError::Unsupported("md4".into()))
        );
        assert_eq!(parse("sha1"), Err(ChecksumError::Malformed));
        assert_eq!(parse("sha1 !!!"), Err(ChecksumError::Malformed));
    }
}
