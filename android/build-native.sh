#!/usr/bin/env bash
# Builds libchunkup_ffi.so for the Android ABIs with cargo-ndk into
# src/main/jniLibs/<abi>/, and regenerates the Kotlin bindings.
#
# Needs: the Android NDK (ANDROID_NDK_HOME), `cargo install cargo-ndk`, and
#   rustup target add aarch64-linux-android armv7-linux-androideabi \
#                     x86_64-linux-android i686-linux-android
# NOT run on the project's build machines: they have no NDK and rustup
# cannot add targets there (see README.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT="$(cd .. && pwd)"

command -v cargo-ndk >/dev/null || { echo "cargo-ndk missing: cargo install cargo-ndk" >&2; exit 1; }
[ -n "${ANDROID_NDK_HOME:-}" ] || { echo "set ANDROID_NDK_HOME to the NDK" >&2; exit 1; }

ABIS=(arm64-v8a armeabi-v7a x86_64 x86)
args=()
for abi in "${ABIS[@]}"; do args+=(-t "$abi"); done

# Release profile, stripped; 24 = minSdk.
(cd "$ROOT" && cargo ndk --platform 24 "${args[@]}" -o "$ROOT/android/src/main/jniLibs" \
    build --release -p chunkup-ffi --lib)

# Kotlin bindings from the host build (identical for every ABI).
(cd "$ROOT" && cargo build --release -p chunkup-ffi \
    && cargo run -p chunkup-uniffi-bindgen -- generate target/release/libchunkup_ffi.so \
        -l kotlin --no-format -o bindings/ffi/generated/kotlin)
ls -l src/main/jniLibs/*/libchunkup_ffi.so
