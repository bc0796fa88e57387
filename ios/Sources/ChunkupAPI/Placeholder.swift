// The generated bindings of the shared types (ChunkupAPI.swift) are written
// here by ../../build-xcframework.sh; this file keeps the target non-empty in git.
