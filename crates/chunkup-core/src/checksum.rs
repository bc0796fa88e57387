//! Chunk checksums (tus `checksum` extension). The engine picks the
//! algorithm; drivers feed the chunk's bytes, as they read them, to a
//! [`ChunkHasher`] and send its [`ChunkHasher::header_value`].
//!
//! Which algorithm: of those the server lists, SHA-256 first, then SHA-512,
//! then SHA-1. The checksum guards against corruption, for which all three
//! are far more than enough, so speed decides between the strong ones:
//! SHA-256 has instructions of its own on x86-64 (SHA-NI) and on ARMv8
//! (phones), SHA-512 rarely does. Per GiB on one core of the project's
//! machines (Intel Xeon with SHA-NI, `sha2` 0.10): SHA-256 1.0 s, SHA-512
//! 2.8 s, SHA-1 0.8 s (docs/BENCHMARKS.md, `examples/checksum_speed.rs`).
//! SHA-1 comes last for being broken against deliberate collisions.

use std::fmt;

use base64::Engine;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

/// Digest algorithms chunkup can compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

    /// The algorithm to use from a server's comma-separated list: the
    /// preferred one chunkup supports (see the module's documentation).
    pub fn preferred_of(list: &str) -> Option<Self> {
        list.split(',')
            .filter_map(Self::from_name)
            .min_by_key(|algorithm| algorithm.preference())
    }

    /// Lower is preferred.
    fn preference(self) -> u8 {
        match self {
            ChecksumAlgorithm::Sha256 => 0,
            ChecksumAlgorithm::Sha512 => 1,
            ChecksumAlgorithm::Sha1 => 2,
        }
    }

    /// A hasher to feed a chunk's bytes to, piece by piece.
    pub fn hasher(self) -> ChunkHasher {
        let state = match self {
            ChecksumAlgorithm::Sha1 => HasherState::Sha1(Sha1::new()),
            ChecksumAlgorithm::Sha256 => HasherState::Sha256(Sha256::new()),
            ChecksumAlgorithm::Sha512 => HasherState::Sha512(Box::default()),
        };
        ChunkHasher { state }
    }

    /// `Upload-Checksum` value for `bytes`: `<name> <base64 digest>`.
    pub fn header_value(self, bytes: &[u8]) -> String {
        let mut hasher = self.hasher();
        hasher.update(bytes);
        hasher.header_value()
    }
}

/// The running digest of one chunk, for its `Upload-Checksum` header.
#[derive(Debug, Clone)]
pub struct ChunkHasher {
    state: HasherState,
}

#[derive(Debug, Clone)]
enum HasherState {
    Sha1(Sha1),
    Sha256(Sha256),
    Sha512(Box<Sha512>),
}

impl ChunkHasher {
    /// Adds the next bytes of the chunk.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.state {
            HasherState::Sha1(h) => h.update(bytes),
            HasherState::Sha256(h) => h.update(bytes),
            HasherState::Sha512(h) => h.update(bytes),
        }
    }

    /// The algorithm this hasher computes.
    pub fn algorithm(&self) -> ChecksumAlgorithm {
        match self.state {
            HasherState::Sha1(_) => ChecksumAlgorithm::Sha1,
            HasherState::Sha256(_) => ChecksumAlgorithm::Sha256,
            HasherState::Sha512(_) => ChecksumAlgorithm::Sha512,
        }
    }

    /// `Upload-Checksum` value for the bytes fed so far:
    /// `<name> <base64 digest>`.
    pub fn header_value(self) -> String {
        let name = self.algorithm().name();
        let digest = match self.state {
            HasherState::Sha1(h) => h.finalize().to_vec(),
            HasherState::Sha256(h) => h.finalize().to_vec(),
            HasherState::Sha512(h) => h.finalize().to_vec(),
        };
        let encoded = base64::engine::general_purpose::STANDARD.encode(digest);
        format!("{name} {encoded}")
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
    fn prefers_sha256_then_sha512_then_sha1() {
        assert_eq!(
            ChecksumAlgorithm::preferred_of("md5,sha1,sha256,sha512"),
            Some(ChecksumAlgorithm::Sha256)
        );
        assert_eq!(
            ChecksumAlgorithm::preferred_of("sha512, sha1"),
            Some(ChecksumAlgorithm::Sha512)
        );
        assert_eq!(
            ChecksumAlgorithm::preferred_of("crc32, SHA1"),
            Some(ChecksumAlgorithm::Sha1)
        );
        assert_eq!(ChecksumAlgorithm::preferred_of("md5"), None);
        assert_eq!(ChecksumAlgorithm::preferred_of(""), None);
    }

    #[test]
    fn feeding_pieces_equals_hashing_the_whole() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
        for algorithm in [
            ChecksumAlgorithm::Sha1,
            ChecksumAlgorithm::Sha256,
            ChecksumAlgorithm::Sha512,
        ] {
            let mut hasher = algorithm.hasher();
            for piece in data.chunks(7_919) {
                hasher.update(piece);
            }
            assert_eq!(hasher.algorithm(), algorithm);
            assert_eq!(hasher.header_value(), algorithm.header_value(&data));
        }
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
        assert_eq!(
            ChecksumAlgorithm::Sha512.header_value(b"abc"),
            "sha512 3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw=="
        );
    }
}
