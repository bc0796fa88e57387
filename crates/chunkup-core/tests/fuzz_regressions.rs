//! Replays the inputs kept from fuzzing (`fuzz/regressions/<target>/`)
//! through the same checks the cargo-fuzz targets run, so a fixed crash
//! stays fixed under a plain `cargo test`.

use std::fs;
use std::path::Path;

use chunkup_core::fuzzing::{TARGETS, check};

#[test]
fn fuzz_regressions_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut replayed = 0;
    for target in TARGETS {
        let Ok(entries) = fs::read_dir(root.join(target)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let Ok(data) = fs::read(&path) else {
                panic!("cannot read {}", path.display());
            };
            let outcome = std::panic::catch_unwind(|| check(target, &data));
            assert!(outcome.is_ok(), "{target}: {} fails", path.display());
            replayed += 1;
        }
    }
    assert!(
        replayed > 0,
        "no regression inputs under {}",
        root.display()
    );
}

/// A few hand-made inputs per target, so each check runs even before any
/// regression is kept, and the checks themselves stay correct.
#[test]
fn checks_accept_well_formed_inputs() {
    let samples: [(&str, &[u8]); 12] = [
        ("content_range", b"bytes 0-9/100"),
        ("content_range", b"bytes 5-9/*"),
        ("last_known_byte", b"-1"),
        ("last_known_byte", b"1023"),
        ("offset_length", b"5\n1000\n\x02"),
        (
            "upload_limit",
            b"min-append-size=10, max-append-size=5000, max-size=100000",
        ),
        (
            "tus_headers",
            b"1.0.0\0creation,termination\x001000\x00md5,sha1\0Wed, 21 Oct 2015 07:28:00 GMT",
        ),
        ("location", b"\x00/files/abc"),
        ("location", b"\x01http://evil.example:9/steal"),
        ("status_body", b"0-1023/4096"),
        (
            "upload_machine",
            b"\x00\x02\x10\x00\x00\x06\x01\x00\x00\x00",
        ),
        ("upload_machine", b""),
    ];
    for (target, data) in samples {
        check(target, data);
    }
}
