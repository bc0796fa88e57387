//! The npm package's TypeScript declarations of the shared types, generated
//! from this crate's declarations (ts-rs): `bindings/wasm/js/generated/api.d.ts`.
//!
//! The test fails when the file in the tree is not what the declarations
//! generate; to write it:
//!
//! ```text
//! CHUNKUP_WRITE_TS=1 cargo test -p chunkup-api --features typescript --test typescript
//! ```

use std::path::PathBuf;

use chunkup_api::{
    ErrorKind, Progress, Protocol, RememberedUpload, UploadError, UploadEvent, UploadOptions,
};
use ts_rs::{Config, TS};

const HEADER: &str = "\
// Generated from crates/chunkup-api by ts-rs: do not edit. To regenerate:
//   CHUNKUP_WRITE_TS=1 cargo test -p chunkup-api --features typescript --test typescript
// index.d.ts re-exports these types and adds what only JavaScript has.
";

/// One declaration, as ts-rs exports it (its docs, then `export type ...`).
fn declaration<T: TS>(config: &Config) -> String {
    format!(
        "\n{}export {}\n",
        T::docs().unwrap_or_default(),
        T::decl(config)
    )
}

/// The whole file: one module, no imports (they would need file extensions
/// that differ between module resolutions).
fn declarations() -> String {
    // JavaScript numbers: byte counts and times stay far below 2^53.
    let config = Config::new().with_large_int("number");
    let mut file = HEADER.to_string();
    for declaration in [
        declaration::<Protocol>(&config),
        declaration::<UploadOptions>(&config),
        declaration::<Progress>(&config),
        declaration::<UploadEvent>(&config),
        declaration::<ErrorKind>(&config),
        declaration::<UploadError>(&config),
        declaration::<RememberedUpload>(&config),
    ] {
        file.push_str(&declaration);
    }
    file
}

fn generated_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bindings/wasm/js/generated/api.d.ts")
}

#[test]
fn generated_typescript_is_current() {
    let expected = declarations();
    let path = generated_file();
    if std::env::var_os("CHUNKUP_WRITE_TS").is_some() {
        std::fs::create_dir_all(path.parent().expect("a parent folder"))
            .expect("create the folder");
        std::fs::write(&path, &expected).expect("write the declarations");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == expected,
        "{} is stale: regenerate it with\n  CHUNKUP_WRITE_TS=1 cargo test -p chunkup-api --features typescript --test typescript",
        path.display()
    );
}

/// The `type` of every event as the Rust side names it (`type_name`, what
/// the web driver sends) is a tag of the generated union.
#[test]
fn every_event_type_name_is_a_declared_tag() {
    let union = UploadEvent::decl(&Config::new().with_large_int("number"));
    let events = [
        UploadEvent::Created {
            upload_url: String::new(),
        },
        UploadEvent::ChunkAcknowledged { offset: 0 },
        UploadEvent::ServerRewound { from: 1, to: 0 },
        UploadEvent::Expires { at_unix_ms: 0 },
        UploadEvent::StoreFailed {
            message: String::new(),
        },
        UploadEvent::Paused,
        UploadEvent::Completed { upload_url: None },
        UploadEvent::Stopped,
        UploadEvent::Terminated,
    ];
    for event in events {
        let tag = format!("\"type\": \"{}\"", event.type_name());
        assert!(union.contains(&tag), "{tag} missing from {union}");
    }
}
