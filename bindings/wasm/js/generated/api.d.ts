// Generated from crates/chunkup-api by ts-rs: do not edit. To regenerate:
//   CHUNKUP_WRITE_TS=1 cargo test -p chunkup-api --features typescript --test typescript
// index.d.ts re-exports these types and adds what only JavaScript has.

/**
 * The upload protocol.
 */
export type Protocol = "auto" | "ranged" | "tus" | "ietf" | "gcs" | "s3";

/**
 * Options for one upload. Defaults are the same on every surface.
 *
 * In TypeScript every field is optional, headers and metadata are objects
 * of strings, and two names follow tus-js-client (`retries`,
 * `retryDelays`).
 */
export type UploadOptions = { 
/**
 * The protocol (default: ask the endpoint).
 */
protocol?: Protocol, 
/**
 * The IETF draft's interop version, 6 (draft -05, tusd) or 8 (draft
 * -11, the default), when the protocol is IETF.
 */
ietfVersion?: number, 
/**
 * Every chunk this many bytes (a server limit or a 413 may lower it);
 * default: adaptive, from the measured throughput, round trip and
 * break rate.
 */
chunkSize?: 'auto' | number, 
/**
 * Headers sent with every request (credentials only to the origin the
 * upload started on).
 */
headers?: { [key in string]: string }, 
/**
 * Metadata for the server (tus `Upload-Metadata`).
 */
metadata?: { [key in string]: string }, 
/**
 * The content type announced (default: the file's, else
 * `application/octet-stream`).
 */
contentType?: string, 
/**
 * The file name announced (default: the file's).
 */
fileName?: string, 
/**
 * The application's own identity for the content (a content hash, a
 * database id): with it, content without a stable name (a stream, a
 * `Blob`) can be resumed too.
 */
fingerprint?: string, 
/**
 * An upload the application knows, to continue (a remembered upload's
 * URL, a Google-style session URI, an S3 multipart upload's URL).
 */
uploadUrl?: string, 
/**
 * Remember the upload in the resume store and continue a remembered
 * one of the same content (default true).
 */
resume?: boolean, 
/**
 * Connections one file may use: a big file goes as parallel parts
 * where the protocol allows (tus concatenation, S3 windows).
 */
parallel?: number, 
/**
 * Failed attempts in a row, without the server's offset advancing,
 * before the upload gives up.
 */
retries?: number, 
/**
 * Explicit waits before the 1st, 2nd, … retry in a row, in
 * milliseconds (the last repeats); default: a jittered exponential
 * ladder from 200 ms to 30 s. A server's `Retry-After` always wins.
 */
retryDelays?: Array<number>, 
/**
 * Milliseconds without progress on a request that count as a broken
 * connection.
 */
stallTimeoutMs?: number, 
/**
 * Give up when the whole upload takes longer (default: no deadline).
 */
deadlineMs?: number, 
/**
 * Minimum milliseconds between two progress events.
 */
progressIntervalMs?: number, };

/**
 * How far an upload is.
 */
export type Progress = { 
/**
 * Bytes the server acknowledged (never decreasing).
 */
bytesAcknowledged: number, 
/**
 * Acknowledged bytes plus the bytes of the request in flight already
 * handed to the network (smoother, for byte-level bars).
 */
bytesSent: number, 
/**
 * The upload's size (while a stream's end is unknown: what is
 * acknowledged so far).
 */
bytesTotal: number, 
/**
 * Recent speed, bytes per second.
 */
speed: number, 
/**
 * Estimated milliseconds to completion at that speed, when known.
 */
etaMs: number | null, };

/**
 * Something that happened to an upload.
 */
export type UploadEvent = { "type": "discovered", protocol: Protocol, assumed: boolean, 
/**
 * tus extensions the server listed (or that are assumed).
 */
extensions: Array<string>, 
/**
 * The largest upload the server takes, if it said.
 */
maxSize: number | null, } | { "type": "created", url: string, } | { "type": "resumed", offset: number, } | { "type": "chunk", offset: number, } | { "type": "progress", 
/**
 * Bytes the server acknowledged (never decreasing).
 */
bytesAcknowledged: number, 
/**
 * Acknowledged bytes plus the bytes of the request in flight already
 * handed to the network (smoother, for byte-level bars).
 */
bytesSent: number, 
/**
 * The upload's size (while a stream's end is unknown: what is
 * acknowledged so far).
 */
bytesTotal: number, 
/**
 * Recent speed, bytes per second.
 */
speed: number, 
/**
 * Estimated milliseconds to completion at that speed, when known.
 */
etaMs: number | null, } | { "type": "retrying", attempt: number, delayMs: number, 
/**
 * The reason's kind (`status`, `transport`, `stalled`,
 * `credentialsRefused`, `signatureExpired`, …).
 */
reasonKind: string, 
/**
 * The HTTP status, when the reason was an answer.
 */
status: number | null, 
/**
 * The reason, for people.
 */
reason: string, } | { "type": "rewound", from: number, to: number, } | { "type": "paused" } | { "type": "expires", at: number, } | { "type": "storeFailed", message: string, } | { "type": "completed", url: string | null, } | { "type": "failed", kind: ErrorKind, message: string, status: number | null, retryable: boolean, } | { "type": "stopped" } | { "type": "terminated" };

/**
 * The kind of an [`UploadError`].
 */
export type ErrorKind = "InvalidUrl" | "InvalidConfig" | "Rejected" | "UploadGone" | "ProtocolViolation" | "RetriesExhausted" | "DeadlineExceeded" | "WrongProtocol" | "DiscoveryFailed" | "ServerSetup" | "RetryDeclined" | "Source" | "SourceChanged" | "Store" | "Stopped" | "Terminated" | "Environment" | "Http" | "Internal";

/**
 * Why an upload did not complete. Kotlin and Swift see one case
 * per kind (a sealed exception class, an enum case), TypeScript
 * `{kind, message, status?, retryable}` (an `Error`'s `message`).
 */
export type UploadError = { "kind": "InvalidUrl", 
/**
 * What happened, for people.
 */
message: string, 
/**
 * The HTTP status it came with, if any.
 */
status?: number, 
/**
 * Whether trying the same upload again later may
 * succeed (the link or the server failed for a while;
 * a refusal or a bad configuration will not).
 */
retryable: boolean, } | { "kind": "InvalidConfig", 
/**
 * What happened, for people.
 */
message: string, 
/**
 * The HTTP status it came with, if any.
 */
status?: number, 
/**
 * Whether trying the same upload again later may
 * succeed (the link or the server failed for a while;
 * a refusal or a bad configuration will not).
 */
retryable: boolean, } | { "kind": "Rejected", 
/**
 * What happened, for people.
 */
message: string, 
/**
 * The HTTP status it came with, if any.
 */
status?: number, 
/**
 * Whether trying the same upload again later may
 * succeed (the link or the server failed for a while;
 * a refusal or a bad configuration will not).
 */
retryable: boolean, } | { "kind": "UploadGone", 
/**
 * What happened, for people.
 */
message: string, 
/**
 * The HTTP status it came with, if any.
 */
status?: number, 
/**
 * Whether trying the same upload again later may
 * succeed (the link or the server failed for a while;
 * a refusal or a bad configuration will not).
 */
retryable: boolean, } | { "kind": "ProtocolViolation", 
/**
 * What happened, for people.
 */
message: string, 
/**
 * The HTTP status it came with, if any.
 */
status?: number, 
/**
 * Whether trying the same upload again later may
 * succeed (the link or the server failed for a while;
 * a refusal or a bad configuration will not).
 */
retryable: boolean, } | { "kind": "RetriesExhausted", 
/**
 * What happened, for people.
 */
message: string, 
/**
 * The HTTP status it came with, if any.
 */
status?: number, 
/**
 * Whether trying the same upload again later may
 * succeed (the link or the server failed for a while;
 * a refusal or a bad configuration will not).
 */
retryable: boolean, } | { "kind": "DeadlineExceeded", 
/**
 * What happened, for people.
 */
message: string, 
/**
 * The HTTP status it came with, if any.
 */
status?: number, 
/**
 * Whether trying the same upload again later may
 * succeed (the link or the server failed for a while;
 * a refusal or a bad configuration will not).
 */
retryable: boolean, } | { "kind": "WrongProtocol", 
/**
 * What happened, for people.
 */
message: string, 
/**
 * The HTTP status it came with, if any.
 */
status?: number, 
/**
 * Whether trying the same upload again later may
 * succeed (the link or the server failed for a while;
 * a refusal or a bad configuration will not).
 */
retryable: boolean, } | { "kind": "DiscoveryFailed", 
/**
 * What happened, for people.
 */
message: string, 
/**
 * The HTTP status it came with, if any.
 */
status?: number, 
/**
 * Whether trying the same upload again later may
 * succeed (the link or the server failed for a while;
 * a refusal or a bad configuration will not).
 */
retryable: boolean, } | { "kind": "ServerSetup", 
/**
 * What happened, for people.
 */
message: string, 
/**
 * The HTTP status it came with, if any.
 */
status?: number, 
/**
 * Whether trying the same upload again later may
 * succeed (the link or the server failed for a while;
 * a refusal or a bad configuration will not).
 */
retryable: boolean, } | { "kind": "RetryDeclined", 
/**
 * What happened, for people.
 */
message: string, 
/**
 * The HTTP status it came with, if any.
 */
status?: number, 
/**
 * Whether trying the same upload again later may
 * succeed (the link or the server failed for a while;
 * a refusal or a bad configuration will not).
 */
retryable: boolean, } | { "kind": "Source", 
/**
 * What happened, for people.
 */
message: string, 
/**
 * The HTTP status it came with, if any.
 */
status?: number, 
/**
 * Whether trying the same upload again later may
 * succeed (the link or the server failed for a while;
 * a refusal or a bad configuration will not).
 */
retryable: boolean, } | { "kind": "SourceChanged", 
/**
 * What happened, for people.
 */
message: string, 
/**
 * The HTTP status it came with, if any.
 */
status?: number, 
/**
 * Whether trying the same upload again later may
 * succeed (the link or the server failed for a while;
 * a refusal or a bad configuration will not).
 */
retryable: boolean, } | { "kind": "Store", 
/**
 * What happened, for people.
 */
message: string, 
/**
 * The HTTP status it came with, if any.
 */
status?: number, 
/**
 * Whether trying the same upload again later may
 * succeed (the link or the server failed for a while;
 * a refusal or a bad configuration will not).
 */
retryable: boolean, } | { "kind": "Stopped", 
/**
 * What happened, for people.
 */
message: string, 
/**
 * The HTTP status it came with, if any.
 */
status?: number, 
/**
 * Whether trying the same upload again later may
 * succeed (the link or the server failed for a while;
 * a refusal or a bad configuration will not).
 */
retryable: boolean, } | { "kind": "Terminated", 
/**
 * What happened, for people.
 */
message: string, 
/**
 * The HTTP status it came with, if any.
 */
status?: number, 
/**
 * Whether trying the same upload again later may
 * succeed (the link or the server failed for a while;
 * a refusal or a bad configuration will not).
 */
retryable: boolean, } | { "kind": "Environment", 
/**
 * What happened, for people.
 */
message: string, 
/**
 * The HTTP status it came with, if any.
 */
status?: number, 
/**
 * Whether trying the same upload again later may
 * succeed (the link or the server failed for a while;
 * a refusal or a bad configuration will not).
 */
retryable: boolean, } | { "kind": "Http", 
/**
 * What happened, for people.
 */
message: string, 
/**
 * The HTTP status it came with, if any.
 */
status?: number, 
/**
 * Whether trying the same upload again later may
 * succeed (the link or the server failed for a while;
 * a refusal or a bad configuration will not).
 */
retryable: boolean, } | { "kind": "Internal", 
/**
 * What happened, for people.
 */
message: string, 
/**
 * The HTTP status it came with, if any.
 */
status?: number, 
/**
 * Whether trying the same upload again later may
 * succeed (the link or the server failed for a while;
 * a refusal or a bad configuration will not).
 */
retryable: boolean, };

/**
 * An upload the resume store remembers: one the application may continue
 * (pass `upload_url` as the upload's `upload_url` option with the same
 * file) or forget (by `key`).
 */
export type RememberedUpload = { 
/**
 * The key the store keeps it under.
 */
key: string, 
/**
 * The file name announced to the server.
 */
fileName: string | null, 
/**
 * The upload's size in bytes.
 */
size: number, 
/**
 * Where uploads were created, when known.
 */
endpoint: string | null, 
/**
 * The upload's URL on the server.
 */
url: string, 
/**
 * The protocol it was made in.
 */
protocol: Protocol, 
/**
 * Bytes the server had acknowledged when last written (a hint: the
 * server's answer decides where it continues).
 */
acknowledged: number, 
/**
 * When it was created, milliseconds since the Unix epoch.
 */
createdMs: number, 
/**
 * When the record was last written.
 */
updatedMs: number, 
/**
 * When the server will forget it, if it said.
 */
expiresMs: number | null, 
/**
 * The metadata sent with it.
 */
metadata: { [key in string]: string }, };
