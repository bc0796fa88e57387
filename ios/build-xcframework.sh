#!/usr/bin/env bash
# macOS only: builds ChunkupFFI.xcframework (static libraries for iOS devices,
# the iOS simulator and macOS) and generates the Swift bindings into
# Sources/ChunkupAPI/ (the shared types of crates/chunkup-api) and
# Sources/ChunkupFFI/ (the upload object and the app's protocols). Then: `swift build`, or
# `CHUNKUP_TEST_BASE=http://127.0.0.1:8080 swift test` with
# `chunkup serve --addr 127.0.0.1:8080 --admin --faults seed=11,reset=0.05` running.
#
# Needs Xcode (xcodebuild, lipo) and
#   rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios \
#                     aarch64-apple-darwin x86_64-apple-darwin
# NOT run on the project's build machines (Linux, no Swift toolchain).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
IOS="$(pwd)"
ROOT="$(cd .. && pwd)"
[ "$(uname)" = Darwin ] || { echo "build-xcframework.sh runs on macOS only" >&2; exit 1; }

TARGETS=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin)
export IPHONEOS_DEPLOYMENT_TARGET=15.0 MACOSX_DEPLOYMENT_TARGET=12.0
cd "$ROOT"
for target in "${TARGETS[@]}"; do
    cargo build --release -p chunkup-ffi --lib --target "$target"
done

# Swift bindings from the host library (the same for every target).
cargo build --release -p chunkup-ffi
GEN="$ROOT/bindings/ffi/generated"
rm -rf "$GEN/swift"
cargo run -p chunkup-uniffi-bindgen -- generate target/release/libchunkup_ffi.dylib -l swift --no-format -o "$GEN/swift"

OUT="$ROOT/target/xcframework"
rm -rf "$OUT" "$IOS/ChunkupFFI.xcframework"
mkdir -p "$OUT/headers" "$OUT/ios-sim" "$OUT/macos"
# Both generated modules call into the one static library: both C headers,
# and one module map (an XCFramework's must be called module.modulemap)
# declaring both C modules.
cp "$GEN/swift/chunkup_ffiFFI.h" "$GEN/swift/chunkup_apiFFI.h" "$OUT/headers/"
cat "$GEN/swift/chunkup_ffiFFI.modulemap" "$GEN/swift/chunkup_apiFFI.modulemap" > "$OUT/headers/module.modulemap"

lipo -create target/aarch64-apple-ios-sim/release/libchunkup_ffi.a \
    target/x86_64-apple-ios/release/libchunkup_ffi.a -output "$OUT/ios-sim/libchunkup_ffi.a"
lipo -create target/aarch64-apple-darwin/release/libchunkup_ffi.a \
    target/x86_64-apple-darwin/release/libchunkup_ffi.a -output "$OUT/macos/libchunkup_ffi.a"

xcodebuild -create-xcframework \
    -library target/aarch64-apple-ios/release/libchunkup_ffi.a -headers "$OUT/headers" \
    -library "$OUT/ios-sim/libchunkup_ffi.a" -headers "$OUT/headers" \
    -library "$OUT/macos/libchunkup_ffi.a" -headers "$OUT/headers" \
    -output "$IOS/ChunkupFFI.xcframework"

cp "$GEN/swift/ChunkupFFI.swift" "$IOS/Sources/ChunkupFFI/ChunkupFFI.swift"
cp "$GEN/swift/ChunkupAPI.swift" "$IOS/Sources/ChunkupAPI/ChunkupAPI.swift"
echo "built $IOS/ChunkupFFI.xcframework, Sources/ChunkupFFI/ChunkupFFI.swift and Sources/ChunkupAPI/ChunkupAPI.swift"
