// Type declarations of the npm package `chunkup` (js/index.js, the wrapper
// around the WebAssembly module). The types every surface shares (options,
// events, errors, progress, remembered uploads) are generated from
// crates/chunkup-api into generated/api.d.ts (see its header to regenerate);
// this file re-exports them and declares only what JavaScript alone has: the
// Upload class, callbacks, sources and the web driver's own events.

import type {
  ErrorKind,
  Progress as DeclaredProgress,
  Protocol,
  RememberedUpload,
  UploadError as UploadErrorFields,
  UploadEvent as DeclaredEvent,
  UploadOptions as DeclaredOptions,
} from './generated/api.js';

export type { ErrorKind, Protocol, RememberedUpload, UploadErrorFields };

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

/**
 * Where an upload stands (never goes backwards). `etaSeconds` is `etaMs` in
 * seconds (the name of earlier versions).
 */
export type Progress = DeclaredProgress & { etaSeconds: number | null };

/**
 * Events passed to `onEvent`, in order: the shared events (a discriminated
 * union on `type`), plus the web driver's own: `transport` (the HTTP stack
 * chosen), `offline` and `online` (the upload waits for the network).
 * `failed` also carries its error as `error`, as `onError` gets it.
 */
export type UploadEvent =
  | Exclude<DeclaredEvent, { type: 'progress' | 'failed' }>
  | (Extract<DeclaredEvent, { type: 'progress' }> & { etaSeconds: number | null })
  | (Extract<DeclaredEvent, { type: 'failed' }> & { error: UploadErrorFields })
  | { type: 'transport'; name: 'xhr' | 'fetch' }
  | { type: 'offline' }
  | { type: 'online' };

/** The kinds of UploadError (the earlier name of ErrorKind). */
export type UploadErrorKind = ErrorKind;

/**
 * Options for one upload: the shared options (generated), plus the endpoint,
 * callbacks and what only the web has. With `resume` (default true) only
 * content with an identity is remembered: a File (name, size, lastModified),
 * a Node file path, or anything given a `fingerprint`; a plain Blob without
 * one is never matched to another upload.
 */
export interface UploadOptions extends DeclaredOptions {
  /**
   * Create endpoint (ranged: POST endpoint; tus/ietf: creation URL; gcs: the resumable initiation
   * URL; s3: the object's unsigned URL, `https://BUCKET.s3.REGION.amazonaws.com/KEY`). Part of the
   * resume key.
   */
  endpoint: string;
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
  /** Aborting it stops the upload (as stop(): kept, resumable). */
  signal?: AbortSignal;
  /**
   * Asked before each retry after a failure (may return a Promise); `attempt` counts failures in a
   * row from 1. A falsy answer, a throw or a rejection ends the upload with kind 'RetryDeclined'.
   * Without it every retry within `retries` goes ahead.
   */
  onShouldRetry?: (cause: RetryCause, attempt: number) => boolean | Promise<boolean>;
  /** HTTP stack: default 'auto' (XMLHttpRequest where it exists, for byte-level progress; else fetch). */
  transport?: 'auto' | 'xhr' | 'fetch';
  onProgress?: (p: Progress) => void;
  /** `bytesTotal` is null for a ReadableStream source (its length is learned at its end). */
  onChunkComplete?: (chunkBytes: number, bytesAcknowledged: number, bytesTotal: number | null) => void;
  /** Called once when the upload fails (not when it is stopped or terminated). */
  onError?: (e: UploadError) => void;
  onSuccess?: (r: { url: string | null }) => void;
  /** Every event: created, resumed(offset), retrying, paused, ... (see UploadEvent). */
  onEvent?: (e: UploadEvent) => void;
}

/** Why an upload did not complete: an Error with the fields of UploadErrorFields. */
export class UploadError extends Error {
  kind: ErrorKind;
  /** The HTTP status it came with, if any. */
  status?: number;
  /** Whether trying the same upload again later may succeed. */
  retryable: boolean;
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
 * Or an async iterable of `Uint8Array`s — a Node `stream.Readable` (without
 * an encoding), an async generator — read the same way.
 */
export type UploadSource =
  | Blob
  | File
  | ArrayBuffer
  | ArrayBufferView
  | string
  | URL
  | ReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array>;

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
