//! How fast each chunk checksum runs on this machine, on one core: hashes
//! `MIB` MiB (default 1024) in 256 KiB pieces, as the native driver feeds
//! them, and prints MiB/s per algorithm (or only `ALGORITHM`'s).
//!
//! ```text
//! cargo run --release -p chunkup-core --example checksum_speed [MIB [ALGORITHM]]
//! ```
//!
//! Wall time of one thread: run it on a quiet machine, or under
//! `/usr/bin/time` one algorithm at a time for the CPU seconds.

use std::time::Instant;

use chunkup_core::ChecksumAlgorithm;

fn main() {
    let mib: usize = std::env::args()
        .nth(1)
        .map_or(Ok(1024), |a| a.parse())
        .unwrap_or_else(|_| {
            eprintln!("usage: checksum_speed [MIB [sha256|sha512|sha1]]");
            std::process::exit(2)
        });
    let only = std::env::args()
        .nth(2)
        .and_then(|a| ChecksumAlgorithm::from_name(&a));
    let piece: Vec<u8> = (0..256 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    for algorithm in [
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Sha512,
        ChecksumAlgorithm::Sha1,
    ] {
        if only.is_some_and(|o| o != algorithm) {
            continue;
        }
        let started = Instant::now();
        let mut hasher = algorithm.hasher();
        for _ in 0..mib * 4 {
            hasher.update(&piece);
        }
        let header = hasher.header_value();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{:7} {:7.0} MiB/s  {:5.2} s per GiB  ({header})",
            algorithm.name(),
            mib as f64 / secs,
            secs * 1024.0 / mib as f64
        );
    }
}
