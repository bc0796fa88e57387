// swift-tools-version:5.9
// The Swift package over the UniFFI bindings of chunkup.
//
// Before building, run ./build-xcframework.sh on macOS: it builds the Rust
// library for iOS, the simulator and macOS into ChunkupFFI.xcframework and
// puts the generated Swift bindings in Sources/ChunkupFFI/. Nothing here was
// compiled on the project's Linux machines (see README.md).
import PackageDescription

let package = Package(
    name: "Chunkup",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "Chunkup", targets: ["Chunkup"]),
    ],
    targets: [
        // The static library, its C header and module map (module chunkup_ffiFFI).
        .binaryTarget(name: "chunkup_ffiFFI", path: "ChunkupFFI.xcframework"),
        // The generated Swift bindings (ChunkupFFI.swift, written by the script).
        .target(name: "ChunkupFFI", dependencies: ["chunkup_ffiFFI"], path: "Sources/ChunkupFFI"),
        // The Swift API: async/await, AsyncStream of progress.
        .target(name: "Chunkup", dependencies: ["ChunkupFFI"], path: "Sources/Chunkup"),
        .testTarget(name: "ChunkupTests", dependencies: ["Chunkup"], path: "Tests/ChunkupTests"),
    ]
)
