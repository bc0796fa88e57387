// Type declarations of the npm package `chunkup` (hand-written; they
// describe js/index.js, the wrapper around the WebAssembly module).

/**
 * The upload protocol; 'auto' asks the endpoint (OPTIONS) and picks one of ranged, tus and ietf.
 * 's3' is a multipart upload through presigned URLs (needs `sign`); 'gcs' a Google-style
 * resumable session (GCS, YouTube, Drive).
 */
export type Protocol = 'auto' | 'ranged' | 'tus' | 'ietf' | 's3' | 'gcs';

/** The S3 operations a signer is asked to sign. */
export type S3Action =
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'ListParts'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload';

/** What `sign` is asked to sign: one request, before each time it is sent. */
export interface SignRequest {
  /** The HTTP method the request will use. */
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** The unsigned URL (`<object URL>?uploads`, `<object URL>?uploadId=U&partNumber=N`, ...). */
  url: string;
  action: S3Action;
  /** The multipart upload's id, once created (null for CreateMultipartUpload). */
  uploadId: string | null;
  /** The part, for UploadPart (else null). */
  partNumber: number | null;
}

/** What `sign` answers: where to send the request, and headers to send with it. */
export interface SignedRequest {
  /** The presigned URL. */
  url: string;
  /** Headers the signature covers (they replace the request's own of the same name). */
  headers?: Record<string, string>;
}

/** An upload kept in the resume store (localStorage, else IndexedDB) that may be continued. */
export interface RememberedUpload {
  /** The resume key (from the file's identity and the endpoint). */
  key: string;
  /** The upload's URL on the server. */
  url: string;
  protocol: 'ranged' | 'tus' | 'ietf' | 'gcs' | 's3';
  fileName: string | null;
  /** The upload's size in bytes. */
  size: number;
  /** Bytes the server had acknowledged when the record was last written (a hint). */
  acknowledged: number;
  /** Where it was created (null when it was continued at a URL the app gave). */
  endpoint: string | null;
  /** Unix ms. */
  createdMs: number;
  updatedMs: number;
  /** When the server forgets it (tus Upload-Expires), if it said. */
  expiresMs: number | null;
  metadata: Record<string, string>;
}

/** The remembered uploads that may still be continued, oldest first. */
export function listRememberedUploads(): Promise<RememberedUpload[]>;
/** Forgets a remembered upload (a new Upload of the file starts afresh); it stays on the server. */
export function forgetRememberedUpload(upload: RememberedUpload | string): Promise<void>;

/** What `getHeaders` is asked: the request about to be sent. */
export interface HeaderRequest {
  url: string;
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS';
  /** The server refused the credentials just sent (401/403): give fresh ones. */
  refresh: boolean;
}

/** Why a request failed in a way worth retrying (what `onShouldRetry` is asked about). */
export interface RetryCause {
  /** Stable: as `reasonKind` of the 'retrying' event ('status', 'transport', 'stalled', ...). */
  kind: string;
  /** For people. */
  message: string;
  /** The HTTP status, when there was an answer (else null). */
  status: number | null;
}

/** Where an upload stands. Never goes backwards. */
export interface Progress {
  /** Bytes the server has confirmed. */
  bytesAcknowledged: number;
  /** Confirmed bytes plus the bytes of the current request already sent (smoother bars). */
  bytesSent: number;
  bytesTotal: number;
  /** Recent speed in bytes per second. */
  speed: number;
  /** Estimated seconds to completion, null while unknown. */
  etaSeconds: number | null;
}

/**
 * Events passed to `onEvent`, in order. Besides these, `onEvent` sees
 * 'progress' (the Progress fields) and 'chunk' ({ offset }).
 */
export type UploadEvent =
  | { type: 'transport'; name: 'xhr' | 'fetch' }
  /** The protocol spoken; `assumed` when no server answer backs it (named by the user, or guessed). */
  | { type: 'discovered'; protocol: Exclude<Protocol, 'auto'>; assumed: boolean }
  | { type: 'expires'; at: number }
  | { type: 'created'; url: string }
  | { type: 'resumed'; offset: number }
  | { type: 'chunk'; offset: number }
  | ({ type: 'progress' } & Progress)
  | { type: 'rewound'; from: number; to: number }
  /**
   * `reason` is for people; `reasonKind` is stable: 'status', 'transport', 'stalled', 'offsetMovedBack',
   * 'noProgress', 'uploadGone', 'chunkTooLarge', 'offsetMismatch', 'checksumMismatch',
   * 'credentialsRefused', 'signatureExpired' (an S3 presigned URL expired: it is signed again).
   */
  | { type: 'retrying'; attempt: number; delayMs: number; reason: string; reasonKind: string }
  | { type: 'paused' }
  /** `url` is null when the server completed the upload in its creation request without naming it. */
  | { type: 'completed'; url: string | null }
  | { type: 'failed'; error: { kind: UploadErrorKind; message: string; status?: number } }
  /** Ended by stop() (or the signal): kept on the server and in the resume store. */
  | { type: 'stopped' }
  /** Ended by terminate(): removed from the server (where the protocol can) and the resume store. */
  | { type: 'terminated' }
  /** The resume store failed (a full quota): the upload goes on but may not be resumable after a reload. */
  | { type: 'storeFailed'; message: string }
  | { type: 'offline' }
  | { type: 'online' };

export interface UploadOptions {
  /**
   * Create endpoint (ranged: POST endpoint; tus/ietf: creation URL; gcs: the resumable initiation
   * URL; s3: the object's unsigned URL, `https://BUCKET.s3.REGION.amazonaws.com/KEY`). Part of the
   * resume key.
   */
  endpoint: string;
  /**
   * Resume a known upload URL instead of creating one (gcs: the session URI; s3: the multipart
   * upload, `<object URL>?uploadId=U`).
   */
  uploadUrl?: string;
  /** Default 'auto'. */
  protocol?: Protocol;
  /** Default 'auto' (adaptive); a number fixes the chunk size in bytes. */
  chunkSize?: 'auto' | number;
  /** Sent to the server (tus Upload-Metadata). */
  metadata?: Record<string, string>;
  /** Extra headers for every request (credentials only go to the upload's own origin). */
  headers?: Record<string, string>;
  /**
   * Credentials for each request: called before every request (may return a Promise) with the
   * request's `url` and `method`; its headers replace `headers` of the same name. After a 401/403 the
   * request is sent once more with `refresh: true` (get fresh credentials); a second refusal in a row
   * is final ('Rejected'). A provider that throws or rejects fails that attempt like a broken
   * connection (retried within `retries`).
   */
  getHeaders?: (request: HeaderRequest) => Record<string, string> | Promise<Record<string, string>>;
  /**
   * Required for 's3': signs each request before it is sent, every time (an expired URL is signed
   * again). Your backend holds the credentials and presigns; a signer that throws or rejects fails
   * that attempt like a broken connection (retried within `retries`).
   */
  sign?: (request: SignRequest) => SignedRequest | Promise<SignedRequest>;
  /**
   * Default true: remember the upload (localStorage, else IndexedDB) and continue a remembered one.
   * Only content with an identity is remembered: a File (name, size, lastModified), or anything
   * given a `fingerprint`. A plain Blob without one is never matched to another upload.
   */
  resume?: boolean;
  /** Your own identity for the content (a content hash, a database id): with `resume`, it names the upload. */
  fingerprint?: string;
  /** Connections for one file (default 1): a big file goes as parallel parts where the server allows it (tus concatenation, S3 multipart). */
  parallel?: number;
  /** Aborting it stops the upload (as stop(): kept, resumable). */
  signal?: AbortSignal;
  /** Failed attempts in a row without the server's offset advancing before giving up (default 10). */
  retries?: number;
  /**
   * Waits (ms) before the 1st, 2nd, ... retry in a row (the last repeats), as tus-js-client's
   * `retryDelays`; default: a jittered exponential ladder. A server's `Retry-After` is still the floor.
   */
  retryDelays?: number[];
  /**
   * Asked before each retry after a failure (may return a Promise); `attempt` counts failures in a
   * row from 1. A falsy answer, a throw or a rejection ends the upload with kind 'RetryDeclined'.
   * Without it every retry within `retries` goes ahead.
   */
  onShouldRetry?: (cause: RetryCause, attempt: number) => boolean | Promise<boolean>;
  /** HTTP stack: default 'auto' (XMLHttpRequest where it exists, for byte-level progress; else fetch). */
  transport?: 'auto' | 'xhr' | 'fetch';
  /** Content type to announce; default the Blob's type, else application/octet-stream. */
  contentType?: string;
  /** File name to announce; default the File's name, else 'blob'. */
  fileName?: string;
  /** A request with no upload progress for this long counts as broken (default 30000). */
  stallTimeoutMs?: number;
  onProgress?: (p: Progress) => void;
  /** `bytesTotal` is null for a ReadableStream source (its length is learned at its end). */
  onChunkComplete?: (chunkBytes: number, bytesAcknowledged: number, bytesTotal: number | null) => void;
  /** Called once when the upload fails (not when it is stopped or terminated). */
  onError?: (e: UploadError) => void;
  onSuccess?: (r: { url: string | null }) => void;
  /** Every event: created, resumed(offset), retrying, paused, ... (see UploadEvent). */
  onEvent?: (e: { type: string; [k: string]: unknown }) => void;
}

/** The kinds of UploadError. */
export type UploadErrorKind =
  | 'InvalidUrl'
  | 'InvalidConfig'
  | 'Rejected'
  | 'UploadGone'
  | 'ProtocolViolation'
  | 'RetriesExhausted'
  | 'WrongProtocol'
  /** `onShouldRetry` answered no (or threw). */
  | 'RetryDeclined'
  /** The server's setup withholds something the upload needs (an S3 bucket's CORS rule that does not expose ETag); the message says what to configure. */
  | 'ServerSetup'
  | 'DiscoveryFailed'
  | 'DeadlineExceeded'
  | 'Stopped'
  | 'Terminated'
  | 'Environment'
  /** The source could not be read (a missing or unreadable file path). */
  | 'Source'
  | 'Other';

export class UploadError extends Error {
  /** One of UploadErrorKind. */
  kind: string;
  /** The HTTP status, for 'Rejected', 'UploadGone', 'WrongProtocol' and (when there was one) 'DiscoveryFailed'. */
  status?: number;
}

/**
 * What an Upload sends: a Blob or File; bytes in memory (an ArrayBuffer or a
 * typed array such as a Node Buffer: anonymous, so never continued by a
 * later Upload unless given a `fingerprint`); or, in Node 19.8 and later, a
 * file path or `file:` URL, read lazily (its absolute path, size and mtime
 * are its identity, so a later run continues the upload; its base name is
 * the announced `fileName`). A path in a browser throws an UploadError of
 * kind 'Environment'; a path that cannot be read fails `start()` with kind
 * 'Source'. Or a `ReadableStream` of `Uint8Array`s whose length is learned
 * at its end (deferred length: tus with creation-defer-length, IETF,
 * Google-style; not ranged or S3): read once, keeping only the bytes the
 * server has not acknowledged (about one chunk); never remembered, one
 * connection; a stream that errors fails the upload with kind 'Source'.
 */
export type UploadSource =
  | Blob
  | File
  | ArrayBuffer
  | ArrayBufferView
  | string
  | URL
  | ReadableStream<Uint8Array>;

export class Upload {
  constructor(source: UploadSource, options: UploadOptions);
  /**
   * Starts (or continues a remembered upload); resolves on completion, rejects with UploadError.
   * `url` is null only when the server completed the upload in its creation request without naming it.
   */
  start(): Promise<{ url: string | null }>;
  /** The remembered uploads of this file (none for an anonymous Blob or with resume: false). */
  findPreviousUploads(): Promise<RememberedUpload[]>;
  /** Continue `previous` at its URL; before start(). */
  resumeFromPreviousUpload(previous: RememberedUpload): void;
  /** The same promise as start() returns. */
  readonly done: Promise<{ url: string | null }>;
  /** Stops sending until resume(). */
  pause(): void;
  /** Continues after pause(), from the server's offset. */
  resume(): void;
  /** Ends the upload but keeps it (server and resume store); done rejects with kind 'Stopped'. */
  stop(): Promise<void>;
  /** Ends the upload and removes it (server where possible: tus DELETE, S3 AbortMultipartUpload; resume store); done rejects with kind 'Terminated'. */
  terminate(): Promise<void>;
  /** As tus-js-client: abort() = stop(), abort(true) = terminate(). Settles when the upload has ended. */
  abort(shouldTerminate?: boolean): Promise<void>;
  /** The upload's URL once created or found. */
  readonly url: string | null;
}

/** Loads the WebAssembly module early (start() does it on first use). */
export function init(
  source?: BufferSource | WebAssembly.Module | URL | string | Response,
): Promise<void>;
