import Foundation
import ChunkupFFI

/// Resume records in UserDefaults (one dictionary per fingerprint): an upload
/// survives the app being killed.
public final class UserDefaultsResumeStore: ResumeStore, @unchecked Sendable {
    private let defaults: UserDefaults
    private let prefix: String

    public init(defaults: UserDefaults = .standard, prefix: String = "chunkup.upload.") {
        self.defaults = defaults
        self.prefix = prefix
    }

    public func load(fingerprint: String) throws -> ResumeRecord? {
        guard let d = defaults.dictionary(forKey: prefix + fingerprint) else { return nil }
        return Self.decode(d)
    }

    public func save(record: ResumeRecord) throws {
        var d: [String: Any] = [
            "fingerprint": record.fingerprint, "upload_url": record.uploadUrl,
            "protocol": "\(record.protocol)", "offset": NSNumber(value: record.offset),
            "total": NSNumber(value: record.total), "updated_ms": NSNumber(value: record.updatedMs),
        ]
        if let expires = record.expiresMs { d["expires_ms"] = NSNumber(value: expires) }
        defaults.set(d, forKey: prefix + record.fingerprint)
    }

    public func remove(fingerprint: String) throws {
        defaults.removeObject(forKey: prefix + fingerprint)
    }

    public func list() throws -> [ResumeRecord] {
        defaults.dictionaryRepresentation()
            .filter { $0.key.hasPrefix(prefix) }
            .compactMap { ($0.value as? [String: Any]).flatMap(Self.decode) }
    }

    private static func decode(_ d: [String: Any]) -> ResumeRecord? {
        guard let fingerprint = d["fingerprint"] as? String,
              let url = d["upload_url"] as? String,
              let proto = d["protocol"] as? String,
              let offset = (d["offset"] as? NSNumber)?.uint64Value,
              let total = (d["total"] as? NSNumber)?.uint64Value,
              let updated = (d["updated_ms"] as? NSNumber)?.int64Value
        else { return nil }
        let protocols: [String: ChunkupFFI.Protocol] = ["ranged": .ranged, "tus": .tus, "ietf": .ietf, "auto": .auto]
        return ResumeRecord(
            fingerprint: fingerprint, uploadUrl: url, protocol: protocols[proto] ?? .auto,
            offset: offset, total: total, updatedMs: updated,
            expiresMs: (d["expires_ms"] as? NSNumber)?.int64Value
        )
    }
}

/// Resume records in memory (tests).
public final class MemoryResumeStore: ResumeStore, @unchecked Sendable {
    private var records: [String: ResumeRecord] = [:]
    private let lock = NSLock()
    public init() {}
    public func load(fingerprint: String) throws -> ResumeRecord? { lock.lock(); defer { lock.unlock() }; return records[fingerprint] }
    public func save(record: ResumeRecord) throws { lock.lock(); defer { lock.unlock() }; records[record.fingerprint] = record }
    public func remove(fingerprint: String) throws { lock.lock(); defer { lock.unlock() }; records[fingerprint] = nil }
    public func list() throws -> [ResumeRecord] { lock.lock(); defer { lock.unlock() }; return Array(records.values) }
}

/// A foreign transport over URLSession: the app sends the chunks, the Rust
/// engine decides what to send. Called on a Rust worker thread, so it
/// blocks on the session's completion. The body range is read from the file
/// (one chunk in memory, bounded by the chunk size; a background session
/// would upload from a temporary file of the range instead).
public final class URLSessionTransport: Transport, @unchecked Sendable {
    private let session: URLSession

    public init(session: URLSession = URLSession(configuration: .ephemeral)) {
        self.session = session
    }

    public func send(request: HttpRequest) throws -> HttpResponse {
        guard let url = URL(string: request.url) else { throw TransportError.Other(detail: "bad URL \(request.url)") }
        var urlRequest = URLRequest(url: url)
        urlRequest.httpMethod = request.method
        for header in request.headers { urlRequest.addValue(header.value, forHTTPHeaderField: header.key) }
        var body: Data? = nil
        if let range = request.body {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: range.path))
            defer { try? handle.close() }
            try handle.seek(toOffset: range.offset)
            body = try handle.read(upToCount: Int(range.length)) ?? Data()
        }
        let done = DispatchSemaphore(value: 0)
        var outcome: Result<HttpResponse, TransportError> = .failure(.Other(detail: "no answer"))
        let completion: @Sendable (Data?, URLResponse?, Error?) -> Void = { data, response, error in
            if let error = error as? URLError {
                switch error.code {
                case .timedOut: outcome = .failure(.Timeout(detail: error.localizedDescription))
                case .cannotFindHost, .dnsLookupFailed: outcome = .failure(.Dns(detail: error.localizedDescription))
                case .cannotConnectToHost: outcome = .failure(.Connect(detail: error.localizedDescription))
                case .secureConnectionFailed, .serverCertificateUntrusted: outcome = .failure(.Tls(detail: error.localizedDescription))
                default: outcome = .failure(.Reset(detail: error.localizedDescription))
                }
            } else if let error {
                outcome = .failure(.Other(detail: error.localizedDescription))
            } else if let http = response as? HTTPURLResponse {
                let headers = http.allHeaderFields.map { KeyValue(key: "\($0.key)", value: "\($0.value)") }
                outcome = .success(HttpResponse(status: UInt16(http.statusCode), headers: headers, body: (data ?? Data()).prefix(65536)))
            }
            done.signal()
        }
        let task = body.map { session.uploadTask(with: urlRequest, from: $0, completionHandler: completion) }
            ?? session.dataTask(with: urlRequest, completionHandler: completion)
        task.resume()
        done.wait()
        return try outcome.get()
    }
}
