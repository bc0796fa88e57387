//! Chunk checksums (tus `checksum` extension). The engine picks the
//! algorithm; drivers feed the chunk's bytes to [`ChecksumAlgorithm::header_value`].

use std::fmt;

use base64::Engine;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

/// Digest algorithms chunkup can compute, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChecksumAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl ChecksumAlgorithm {
    /// The name used in `Tus-Checksum-Algorithm` and `Upload-Checksum`.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Sha1 => "sha1",
            ChecksumAlgorithm::Sha256 => "sha256",
            ChecksumAlgorithm::Sha512 => "sha512",
        }
    }

    /// Parses an algorithm name (case-insensitive); unknown names are `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "sha1" => Some(ChecksumAlgorithm::Sha1),
            "sha256" => Some(ChecksumAlgorithm::Sha256),
            "sha512" => Some(ChecksumAlgorithm::Sha512),
            _ => None,
        }
    }

    /// The strongest algorithm in a server's comma-separated list that
    /// chunkup supports.
    pub fn strongest_of(list: &str) -> Option<Self> {
        list.split(',').filter_map(Self::from_name).max()
    }

    /// `Upload-Checksum` value for `bytes`: `<name> <base64 digest>`.
    pub fn header_value(self, bytes: &[u8]) -> String {
        let digest = match self {
            ChecksumAlgorithm::Sha1 => Sha1::digest(bytes).to_vec(),
            ChecksumAlgorithm::Sha256 => Sha256::digest(bytes).to_vec(),
            ChecksumAlgorithm::Sha512 => Sha512::digest(bytes).to_vec(),
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(digest);
        format!("{} {encoded}", self.name())
    }
}

impl fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_strongest_supported() {
        assert_eq!(
            ChecksumAlgorithm::strongest_of("md5,sha1,sha256"),
            Some(ChecksumAlgorithm::Sha256)
        );
        assert_eq!(
            ChecksumAlgorithm::strongest_of("crc32, SHA1"),
            Some(ChecksumAlgorithm::Sha1)
        );
        assert_eq!(ChecksumAlgorithm::strongest_of("md5"), None);
    }

    #[test]
    fn header_values_match_known_digests() {
        // sha1("abc") = a9993e364706816aba3e25717850c26c9cd0d89d
        assert_eq!(
            ChecksumAlgorithm::Sha1.header_value(b"abc"),
            "sha1 qZk+NkcGgWq6PiVxeFDCbJzQ2J0="
        );
        assert!(
            ChecksumAlgorithm::Sha256
                .header_value(b"")
                .starts_with("sha256 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
        );
    }
}
