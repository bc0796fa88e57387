import Foundation
import ChunkupFFI

/// Resume records in UserDefaults (the core's JSON, one string per upload):
/// an upload survives the app being killed.
public final class UserDefaultsResumeStore: ResumeStore, @unchecked Sendable {
    private let defaults: UserDefaults
    private let prefix: String

    public init(defaults: UserDefaults = .standard, prefix: String = "chunkup.upload.") {
        self.defaults = defaults
        self.prefix = prefix
    }

    public func load(key: String) throws -> String? {
        defaults.string(forKey: prefix + key)
    }

    public func save(key: String, record: String) throws {
        defaults.set(record, forKey: prefix + key)
    }

    public func remove(key: String) throws {
        defaults.removeObject(forKey: prefix + key)
    }

    public func list() throws -> [String] {
        defaults.dictionaryRepresentation()
            .filter { $0.key.hasPrefix(prefix) }
            .compactMap { $0.value as? String }
    }
}

/// Resume records in memory (tests).
public final class MemoryResumeStore: ResumeStore, @unchecked Sendable {
    private var records: [String: String] = [:]
    private let lock = NSLock()
    public init() {}
    public func load(key: String) throws -> String? { lock.lock(); defer { lock.unlock() }; return records[key] }
    public func save(key: String, record: String) throws { lock.lock(); defer { lock.unlock() }; records[key] = record }
    public func remove(key: String) throws { lock.lock(); defer { lock.unlock() }; records[key] = nil }
    public func list() throws -> [String] { lock.lock(); defer { lock.unlock() }; return Array(records.values) }
}

extension ResumeStore {
    /// The remembered uploads of this store, readable (unreadable entries are skipped).
    public func records() throws -> [ResumeRecord] {
        try list().compactMap { try? parseResumeRecord(json: $0) }
    }
}

/// A foreign transport over URLSession: the app sends the chunks, the Rust
/// engine decides what to send. `send` is async: when the upload ends first
/// (stopped, cancelled) its task is cancelled, which cancels the URLSession
/// request. The body range is read from the file (one chunk in memory,
/// bounded by the chunk size; a background session would upload from a
/// temporary file of the range instead).
public final class URLSessionTransport: Transport, @unchecked Sendable {
    private let session: URLSession

    public init(session: URLSession = URLSession(configuration: .ephemeral)) {
        self.session = session
    }

    public func send(request: HttpRequest) async throws -> HttpResponse {
        guard let url = URL(string: request.url) else { throw TransportError.Other(detail: "bad URL \(request.url)") }
        var urlRequest = URLRequest(url: url)
        urlRequest.httpMethod = request.method
        for header in request.headers { urlRequest.addValue(header.value, forHTTPHeaderField: header.key) }
        do {
            let (data, response): (Data, URLResponse)
            if let range = request.body {
                let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: range.path))
                defer { try? handle.close() }
                try handle.seek(toOffset: range.offset)
                let body = try handle.read(upToCount: Int(range.length)) ?? Data()
                (data, response) = try await session.upload(for: urlRequest, from: body)
            } else {
                (data, response) = try await session.data(for: urlRequest)
            }
            guard let http = response as? HTTPURLResponse else { throw TransportError.Other(detail: "not an HTTP response") }
            let headers = http.allHeaderFields.map { KeyValue(key: "\($0.key)", value: "\($0.value)") }
            return HttpResponse(status: UInt16(http.statusCode), headers: headers, body: data.prefix(65536))
        } catch let error as URLError {
            switch error.code {
            case .timedOut: throw TransportError.Timeout(detail: error.localizedDescription)
            case .cannotFindHost, .dnsLookupFailed: throw TransportError.Dns(detail: error.localizedDescription)
            case .cannotConnectToHost: throw TransportError.Connect(detail: error.localizedDescription)
            case .secureConnectionFailed, .serverCertificateUntrusted: throw TransportError.Tls(detail: error.localizedDescription)
            default: throw TransportError.Reset(detail: error.localizedDescription)
            }
        } catch let error as TransportError {
            throw error
        } catch {
            throw TransportError.Other(detail: error.localizedDescription)
        }
    }
}
