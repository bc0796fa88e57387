//! `uniffi-bindgen`, the UniFFI generator (Kotlin, Swift, Python), built
//! from this workspace's pinned `uniffi` so it matches the library. A crate
//! of its own: it links only UniFFI's generator, not the client, so
//! building it (in debug, as maturin does with `cargo run`) stays cheap.
fn main() {
    uniffi::uniffi_bindgen_main()
}
