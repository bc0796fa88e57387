// swift-tools-version:5.9
// The Swift package over the UniFFI bindings of chunkup.
//
// Before building, run ./build-xcframework.sh on macOS: it builds the Rust
// library for iOS, the simulator and macOS into ChunkupFFI.xcframework and
// puts the generated Swift bindings in Sources/ChunkupAPI/ and
// Sources/ChunkupFFI/. Nothing here was
// compiled on the project's Linux machines (see README.md).
import PackageDescription

let package = Package(
    name: "Chunkup",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Chunkup", targets: ["Chunkup"]),
    ],
    targets: [
        // The static library, its C headers and module map (C modules
        // chunkup_ffiFFI and chunkup_apiFFI).
        .binaryTarget(name: "chunkup_ffiFFI", path: "ChunkupFFI.xcframework"),
        // The generated Swift bindings of the shared types (ChunkupAPI.swift:
        // options, events, errors, remembered uploads; written by the script).
        .target(name: "ChunkupAPI", dependencies: ["chunkup_ffiFFI"], path: "Sources/ChunkupAPI"),
        // The generated Swift bindings of the upload object and the app's
        // protocols (ChunkupFFI.swift, written by the script).
        .target(name: "ChunkupFFI", dependencies: ["ChunkupAPI", "chunkup_ffiFFI"], path: "Sources/ChunkupFFI"),
        // The Swift API: async/await, AsyncStreams of progress and typed
        // events. It imports the generated modules without re-exporting them.
        .target(name: "Chunkup", dependencies: ["ChunkupAPI", "ChunkupFFI"], path: "Sources/Chunkup"),
        .testTarget(name: "ChunkupTests", dependencies: ["Chunkup"], path: "Tests/ChunkupTests"),
    ]
)
