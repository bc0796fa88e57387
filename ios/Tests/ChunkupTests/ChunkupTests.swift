// The JVM tests' scenarios in Swift, against `chunkup serve` with faults on:
//   chunkup serve --addr 127.0.0.1:8080 --admin --faults seed=11,reset=0.05,error=0.05,busy=0.03,retry-after=1
//   CHUNKUP_TEST_BASE=http://127.0.0.1:8080 swift test
// Written against the generated bindings; NOT compiled or run on the
// project's machines (no Swift toolchain there).
import CryptoKit
import Foundation
import XCTest
@testable import Chunkup

final class ChunkupTests: XCTestCase {
    private var base: String { ProcessInfo.processInfo.environment["CHUNKUP_TEST_BASE"] ?? "http://127.0.0.1:8080" }
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("chunkup-swift-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    private func sourceFile(_ name: String, size: Int, seed: UInt8) throws -> URL {
        var bytes = [UInt8](repeating: 0, count: size)
        var x = UInt32(seed) &+ 1
        for i in 0..<size { x = x &* 1_664_525 &+ 1_013_904_223; bytes[i] = UInt8(truncatingIfNeeded: x >> 24) }
        let url = dir.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    private func sha256(_ url: URL) throws -> String {
        SHA256.hash(data: try Data(contentsOf: url)).map { String(format: "%02x", $0) }.joined()
    }

    /// What the server holds for an upload (its admin API), or nil when it
    /// has no such upload. The only use of `/_admin`.
    private func serverUpload(_ uploadUrl: String) async throws -> [String: Any]? {
        let id = uploadUrl.split(separator: "/").last.map(String.init) ?? ""
        let (data, response) = try await URLSession.shared.data(from: URL(string: "\(base)/_admin/uploads/\(id)")!)
        if (response as? HTTPURLResponse)?.statusCode == 404 { return nil }
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }

    private func admin(_ uploadUrl: String) async throws -> [String: Any] {
        try XCTUnwrap(try await serverUpload(uploadUrl), "the server has no upload \(uploadUrl)")
    }

    private func assertStoredExactly(_ file: URL, _ uploadUrl: String?) async throws {
        let info = try await admin(try XCTUnwrap(uploadUrl))
        XCTAssertEqual(info["sha256"] as? String, try sha256(file))
    }

    func testExactBytesUnderFaults() async throws {
        let file = try sourceFile("exact.bin", size: 6 * 1024 * 1024 + 123, seed: 1)
        let seen = Locked<[UInt64]>([])
        let report = try await upload(
            fileURL: file, endpoint: "\(base)/ranged", options: uploadOptions(chunkSizeBytes: 256 * 1024)
        ) { p in seen.mutate { $0.append(p.acknowledged) } }
        XCTAssertEqual(report.size, UInt64(6 * 1024 * 1024 + 123))
        try await assertStoredExactly(file, report.uploadUrl)
        XCTAssertEqual(seen.value, seen.value.sorted())
    }

    func testTusUnderFaultsWithChecksums() async throws {
        let file = try sourceFile("tus.bin", size: 5 * 1024 * 1024 + 7, seed: 2)
        var options = uploadOptions(protocol: .tus, chunkSizeBytes: 512 * 1024, metadata: ["user": "swift"])
        options.checksum = true
        let report = try await upload(fileURL: file, endpoint: "\(base)/tus", options: options)
        try await assertStoredExactly(file, report.uploadUrl)
    }

    func testProgressNeverGoesBackwards() async throws {
        let file = try sourceFile("monotonic.bin", size: 8 * 1024 * 1024, seed: 3)
        final class Raw: ProgressListener, @unchecked Sendable {
            let seen = Locked<[UInt64]>([])
            func onProgress(acknowledged: UInt64, total: UInt64, bytesPerSecond: Double) { seen.mutate { $0.append(acknowledged) } }
            func onEvent(kind: EventKind, message: String) {}
        }
        let raw = Raw()
        var options = uploadOptions(chunkSizeBytes: 128 * 1024)
        options.progressIntervalMs = 0
        let report = try await Upload(path: file.path, endpoint: "\(base)/ranged", options: options, listener: raw).start()
        try await assertStoredExactly(file, report.uploadUrl)
        XCTAssertGreaterThanOrEqual(raw.seen.value.count, 10)
        XCTAssertEqual(raw.seen.value, raw.seen.value.sorted())
        XCTAssertEqual(raw.seen.value.last, UInt64(8 * 1024 * 1024))
    }

    func testStopKeepsTheUploadForALaterRun() async throws {
        let file = try sourceFile("stop.bin", size: 24 * 1024 * 1024, seed: 4)
        let store = MemoryResumeStore()
        let options = uploadOptions(chunkSizeBytes: 128 * 1024)
        let upload = try ChunkupUpload(fileURL: file, endpoint: "\(base)/ranged", options: options, store: store)
        let running = Task { try await upload.start() }
        for await p in upload.progress where p.acknowledged > 0 { break }
        upload.stop()
        do {
            _ = try await running.value
            XCTFail("the upload completed despite stop()")
        } catch let error as UploadError {
            XCTAssertEqual(error.kind, .stopped)
            XCTAssertEqual(error.message, "the upload was stopped; it can be continued later")
        }
        let record = try XCTUnwrap(try store.records().first)
        let held = try await serverUpload(record.uploadUrl)
        XCTAssertNotNil(held, "stop() removed the upload from the server")
        let report = try await upload(fileURL: file, endpoint: "\(base)/ranged", options: options, store: store)
        XCTAssertGreaterThan(report.resumedFrom ?? 0, 0)
        try await assertStoredExactly(file, report.uploadUrl)
    }

    /// Issue #11, fault 5: cancelling the task must not delete the upload;
    /// a new upload over the same store continues from the server's offset.
    func testTaskCancellationKeepsTheUploadAndANewUploadContinuesIt() async throws {
        let file = try sourceFile("task.bin", size: 24 * 1024 * 1024, seed: 5)
        let store = MemoryResumeStore()
        let options = uploadOptions(chunkSizeBytes: 128 * 1024)
        let upload = try ChunkupUpload(fileURL: file, endpoint: "\(base)/ranged", options: options, store: store)
        let running = Task { try await upload.start() }
        for await p in upload.progress where p.acknowledged >= 6 * 1024 * 1024 { break }
        running.cancel()
        do {
            _ = try await running.value
            XCTFail("the upload completed despite the cancellation")
        } catch is CancellationError {}
        let record = try XCTUnwrap(try store.records().first)
        let held = try await serverUpload(record.uploadUrl)
        XCTAssertNotNil(held, "cancelling the task deleted the upload on the server")
        let report = try await upload(fileURL: file, endpoint: "\(base)/ranged", options: options, store: store)
        XCTAssertGreaterThan(report.resumedFrom ?? 0, 0)
        XCTAssertEqual(report.uploadUrl, record.uploadUrl)
        try await assertStoredExactly(file, report.uploadUrl)
        XCTAssertTrue(try store.list().isEmpty)
    }

    func testTerminateRemovesTheUploadFromTheServerAndTheStore() async throws {
        let file = try sourceFile("terminate.bin", size: 24 * 1024 * 1024, seed: 9)
        let store = MemoryResumeStore()
        let upload = try ChunkupUpload(fileURL: file, endpoint: "\(base)/ranged", options: uploadOptions(chunkSizeBytes: 128 * 1024), store: store)
        let running = Task { try await upload.start() }
        for await p in upload.progress where p.acknowledged > 0 { break }
        let record = try XCTUnwrap(try store.records().first)
        upload.terminate()
        do {
            _ = try await running.value
            XCTFail("the upload completed despite terminate()")
        } catch let error as UploadError {
            XCTAssertEqual(error.kind, .terminated)
        }
        let held = try await serverUpload(record.uploadUrl)
        XCTAssertNil(held, "the server still has the upload")
        XCTAssertTrue(try store.list().isEmpty)
    }

    /// The restart: the first upload is paused and abandoned (its object
    /// dropped, as a killed app would leave it); a new Upload over a new
    /// store object on the same UserDefaults suite resumes.
    func testNewUploadOverTheSameStoreResumesAfterRestart() async throws {
        let file = try sourceFile("resume.bin", size: 12 * 1024 * 1024, seed: 6)
        let suite = "chunkup-tests-\(UUID().uuidString)"
        let stopAt = UInt64(12 * 1024 * 1024 * 4 / 10)
        final class Pauser: ProgressListener, @unchecked Sendable {
            let stopAt: UInt64
            var upload: Upload?
            init(stopAt: UInt64) { self.stopAt = stopAt }
            func onProgress(acknowledged: UInt64, total: UInt64, bytesPerSecond: Double) {
                if acknowledged >= stopAt { upload?.pause() }
            }
            func onEvent(kind: EventKind, message: String) {}
        }
        var options = uploadOptions(chunkSizeBytes: 256 * 1024)
        options.progressIntervalMs = 0
        let pauser = Pauser(stopAt: stopAt)
        let first = try Upload(path: file.path, endpoint: "\(base)/ranged", options: options, listener: pauser,
                               store: UserDefaultsResumeStore(defaults: UserDefaults(suiteName: suite)!))
        pauser.upload = first
        let abandoned = Task { try await first.start() }
        try await Task.sleep(nanoseconds: 3_000_000_000)
        _ = abandoned

        let store = UserDefaultsResumeStore(defaults: UserDefaults(suiteName: suite)!)
        XCTAssertEqual(try store.list().count, 1)
        let report = try await upload(fileURL: file, endpoint: "\(base)/ranged", options: options, store: store)
        let resumedFrom = try XCTUnwrap(report.resumedFrom, "the second run started from zero")
        XCTAssertGreaterThanOrEqual(resumedFrom, stopAt / 2)
        try await assertStoredExactly(file, report.uploadUrl)
        XCTAssertTrue(try store.list().isEmpty)
    }

    func testForeignTransportSendsTheChunks() async throws {
        let file = try sourceFile("foreign.bin", size: 4 * 1024 * 1024 + 1, seed: 7)
        let report = try await upload(
            fileURL: file, endpoint: "\(base)/ranged",
            options: uploadOptions(chunkSizeBytes: 256 * 1024), transport: URLSessionTransport()
        )
        try await assertStoredExactly(file, report.uploadUrl)
    }

    func testErrorsHaveAKindAndAReadableMessage() async throws {
        XCTAssertThrowsError(try ChunkupUpload(fileURL: dir.appendingPathComponent("missing.bin"), endpoint: "\(base)/ranged")) { error in
            XCTAssertEqual((error as? UploadError)?.kind, .source)
            XCTAssertTrue((error as? UploadError)?.message.hasPrefix("cannot read") ?? false)
        }
        let file = try sourceFile("rejected.bin", size: 1000, seed: 8)
        do {
            _ = try await upload(fileURL: file, endpoint: "\(base)/no-such-endpoint")
            XCTFail("a 404 endpoint was accepted")
        } catch let error as UploadError {
            XCTAssertTrue([.rejected, .uploadGone].contains(error.kind))
            XCTAssertTrue(error.message.contains("HTTP 404"))
        }
    }
}

/// A value behind a lock, for callbacks (they come on the thread running the upload).
final class Locked<T>: @unchecked Sendable {
    private var inner: T
    private let lock = NSLock()
    init(_ value: T) { inner = value }
    var value: T { lock.lock(); defer { lock.unlock() }; return inner }
    func mutate(_ body: (inout T) -> Void) { lock.lock(); defer { lock.unlock() }; body(&inner) }
}
