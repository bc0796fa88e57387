// Resume stores, remembered uploads and the optional foreign transport, as
// public Swift types over the generated protocols (which stay internal).
// NOT compiled here (no Swift toolchain on the project's machines).
import Foundation
import ChunkupAPI
import ChunkupFFI

/// Where resume records are kept: a key-value store of strings (the core's
/// JSON, the same bytes on every platform). Calls are short and synchronous.
public protocol ChunkupResumeStore: AnyObject, Sendable {
    func load(key: String) throws -> String?
    func save(key: String, record: String) throws
    func remove(key: String) throws
    func list() throws -> [String]
}

/// A `ChunkupResumeStore` as the generated protocol.
final class StoreAdapter: ResumeStore, @unchecked Sendable {
    let store: ChunkupResumeStore
    init(_ store: ChunkupResumeStore) { self.store = store }
    private func guarded<T>(_ call: () throws -> T) throws -> T {
        do { return try call() } catch let error as StoreError { throw error } catch {
            throw StoreError.Failed(detail: "\(error)")
        }
    }
    func load(key: String) throws -> String? { try guarded { try store.load(key: key) } }
    func save(key: String, record: String) throws { try guarded { try store.save(key: key, record: record) } }
    func remove(key: String) throws { try guarded { try store.remove(key: key) } }
    func list() throws -> [String] { try guarded { try store.list() } }
}

/// Resume records in UserDefaults (one string per upload): an upload
/// survives the app being killed.
public final class UserDefaultsResumeStore: ChunkupResumeStore, @unchecked Sendable {
    private let defaults: UserDefaults
    private let prefix: String

    public init(defaults: UserDefaults = .standard, prefix: String = "chunkup.upload.") {
        self.defaults = defaults
        self.prefix = prefix
    }

    public func load(key: String) throws -> String? { defaults.string(forKey: prefix + key) }
    public func save(key: String, record: String) throws { defaults.set(record, forKey: prefix + key) }
    public func remove(key: String) throws { defaults.removeObject(forKey: prefix + key) }
    public func list() throws -> [String] {
        defaults.dictionaryRepresentation()
            .filter { $0.key.hasPrefix(prefix) }
            .compactMap { $0.value as? String }
    }
}

/// Resume records as one JSON file per upload in a directory (the layout of
/// the CLI's, Kotlin's and Python's file stores), written atomically.
public final class DirectoryResumeStore: ChunkupResumeStore, @unchecked Sendable {
    public let directory: URL
    public init(directory: URL) { self.directory = directory }

    private func file(_ key: String) throws -> URL {
        guard !key.isEmpty, key.count <= 128, key.allSatisfy({ $0.isLetter || $0.isNumber }) else {
            throw StoreError.Failed(detail: "not a resume key: \(key)")
        }
        return directory.appendingPathComponent(key + ".json")
    }

    public func load(key: String) throws -> String? {
        let url = try file(key)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        return try String(contentsOf: url, encoding: .utf8)
    }

    public func save(key: String, record: String) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try record.write(to: try file(key), atomically: true, encoding: .utf8)
    }

    public func remove(key: String) throws {
        try? FileManager.default.removeItem(at: try file(key))
    }

    public func list() throws -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return try names.filter { $0.hasSuffix(".json") }.compactMap { try load(key: String($0.dropLast(5))) }
    }
}

/// Resume records in memory (tests).
public final class MemoryResumeStore: ChunkupResumeStore, @unchecked Sendable {
    private var records: [String: String] = [:]
    private let lock = NSLock()
    public init() {}
    public func load(key: String) throws -> String? { lock.lock(); defer { lock.unlock() }; return records[key] }
    public func save(key: String, record: String) throws { lock.lock(); defer { lock.unlock() }; records[key] = record }
    public func remove(key: String) throws { lock.lock(); defer { lock.unlock() }; records[key] = nil }
    public func list() throws -> [String] { lock.lock(); defer { lock.unlock() }; return Array(records.values) }
}

/// An upload a store remembers (TUSKit's `getStoredUploads`): continue it
/// (the same file with `options.uploadURL = uploadURL`) or forget it.
public struct RememberedUpload: Sendable {
    public let key: String
    public let fileName: String?
    public let size: UInt64
    public let endpoint: String?
    public let uploadURL: String
    public let `protocol`: UploadProtocol
    /// Bytes the server had acknowledged when last written (a hint).
    public let acknowledged: UInt64
    public let created: Date
    public let updated: Date
    public let expires: Date?
    public let metadata: [String: String]

    init(_ r: ChunkupAPI.RememberedUpload) {
        key = r.key; fileName = r.fileName; size = r.size; endpoint = r.endpoint
        uploadURL = r.uploadUrl; self.protocol = UploadProtocol(r.protocol); acknowledged = r.acknowledged
        created = Date(timeIntervalSince1970: Double(r.createdMs) / 1000)
        updated = Date(timeIntervalSince1970: Double(r.updatedMs) / 1000)
        expires = r.expiresMs.map { Date(timeIntervalSince1970: Double($0) / 1000) }
        metadata = Dictionary(r.metadata.map { ($0.key, $0.value) }, uniquingKeysWith: { _, last in last })
    }
}

extension ChunkupResumeStore {
    /// The uploads this store remembers, newest first (unreadable records left out).
    public func remembered() throws -> [RememberedUpload] {
        do {
            return try ChunkupFFI.remembered(store: StoreAdapter(self)).map(RememberedUpload.init)
        } catch let error as ChunkupAPI.UploadError {
            throw ChunkupError(error)
        }
    }

    /// Forgets the upload remembered under `key` (it stays on the server).
    public func forget(key: String) throws {
        do {
            try ChunkupFFI.forget(store: StoreAdapter(self), key: key)
        } catch let error as ChunkupAPI.UploadError {
            throw ChunkupError(error)
        }
    }
}

// MARK: - Transport

/// A request the engine decided on; the transport only sends it.
public struct ChunkupHTTPRequest: Sendable {
    public let method: String
    public let url: String
    /// Send as they are, in order.
    public let headers: [(String, String)]
    /// Bytes of the file to send: `length` bytes at `offset` of `path`.
    public let body: (path: String, offset: UInt64, length: UInt64)?
    /// A small body that is not part of the file (S3's completion XML).
    public let payload: Data?
}

/// The final response (only the first 64 KiB of the body are used).
public struct ChunkupHTTPResponse: Sendable {
    public let status: Int
    public let headers: [(String, String)]
    public let body: Data
    public init(status: Int, headers: [(String, String)], body: Data) {
        self.status = status; self.headers = headers; self.body = body
    }
}

/// Why a transport could not get a response (the engine decides what it means).
public enum ChunkupTransportError: Error, Sendable {
    case connect(String), dns(String), tls(String), reset(String), timeout(String), other(String)
}

/// Sends requests for the engine; no redirects, no retries — every decision
/// is the engine's. Cancelled when the upload ends first.
public protocol ChunkupTransport: AnyObject, Sendable {
    func send(_ request: ChunkupHTTPRequest) async throws -> ChunkupHTTPResponse
}

final class TransportAdapter: Transport, @unchecked Sendable {
    let transport: ChunkupTransport
    init(_ transport: ChunkupTransport) { self.transport = transport }

    func send(request: HttpRequest) async throws -> HttpResponse {
        let mirrored = ChunkupHTTPRequest(
            method: request.method, url: request.url,
            headers: request.headers.map { ($0.key, $0.value) },
            body: request.body.map { ($0.path, $0.offset, $0.length) },
            payload: request.payload)
        do {
            let response = try await transport.send(mirrored)
            return HttpResponse(
                status: UInt16(clamping: response.status),
                headers: response.headers.map { KeyValue(key: $0.0, value: $0.1) },
                body: response.body.prefix(65536))
        } catch let error as ChunkupTransportError {
            switch error {
            case let .connect(d): throw TransportError.Connect(detail: d)
            case let .dns(d): throw TransportError.Dns(detail: d)
            case let .tls(d): throw TransportError.Tls(detail: d)
            case let .reset(d): throw TransportError.Reset(detail: d)
            case let .timeout(d): throw TransportError.Timeout(detail: d)
            case let .other(d): throw TransportError.Other(detail: d)
            }
        } catch {
            throw TransportError.Other(detail: "\(error)")
        }
    }
}

/// A transport over URLSession: the app sends the chunks, the Rust engine
/// decides what to send. The body range is read from the file (one chunk
/// in memory, bounded by the chunk size).
public final class URLSessionTransport: ChunkupTransport, @unchecked Sendable {
    private let session: URLSession

    public init(session: URLSession = URLSession(configuration: .ephemeral)) {
        self.session = session
    }

    public func send(_ request: ChunkupHTTPRequest) async throws -> ChunkupHTTPResponse {
        guard let url = URL(string: request.url) else { throw ChunkupTransportError.other("bad URL \(request.url)") }
        var urlRequest = URLRequest(url: url)
        urlRequest.httpMethod = request.method
        for (name, value) in request.headers { urlRequest.addValue(value, forHTTPHeaderField: name) }
        do {
            let (data, response): (Data, URLResponse)
            if let range = request.body {
                let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: range.path))
                defer { try? handle.close() }
                try handle.seek(toOffset: range.offset)
                let body = try handle.read(upToCount: Int(range.length)) ?? Data()
                (data, response) = try await session.upload(for: urlRequest, from: body)
            } else if let payload = request.payload {
                (data, response) = try await session.upload(for: urlRequest, from: payload)
            } else {
                (data, response) = try await session.data(for: urlRequest)
            }
            guard let http = response as? HTTPURLResponse else { throw ChunkupTransportError.other("not an HTTP response") }
            let headers = http.allHeaderFields.map { ("\($0.key)", "\($0.value)") }
            return ChunkupHTTPResponse(status: http.statusCode, headers: headers, body: data.prefix(65536))
        } catch let error as URLError {
            switch error.code {
            case .timedOut: throw ChunkupTransportError.timeout(error.localizedDescription)
            case .cannotFindHost, .dnsLookupFailed: throw ChunkupTransportError.dns(error.localizedDescription)
            case .cannotConnectToHost: throw ChunkupTransportError.connect(error.localizedDescription)
            case .secureConnectionFailed, .serverCertificateUntrusted: throw ChunkupTransportError.tls(error.localizedDescription)
            default: throw ChunkupTransportError.reset(error.localizedDescription)
            }
        }
    }
}
