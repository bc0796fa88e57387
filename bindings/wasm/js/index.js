// chunkup — resumable uploads for browsers, workers and Node 20.
//
// A thin wrapper over the WebAssembly module: it turns the module's event
// objects into callbacks, Promises and UploadError. Every protocol, retry,
// chunk-size and resume decision is made by the Rust core inside the module.
import initWasm, { RawUpload, rememberedUploads, resumeKey } from './chunkup_wasm.js';

const isNode =
  typeof process === 'object' &&
  process !== null &&
  typeof process.versions === 'object' &&
  process.versions !== null &&
  typeof process.versions.node === 'string' &&
  typeof window === 'undefined';

let loading = null;

/**
 * Loads the WebAssembly module (done by `start()` on first use; call it to
 * load early, or to pass the module yourself).
 * @param {BufferSource | WebAssembly.Module | URL | string | Response} [source]
 * @returns {Promise<void>}
 */
export function init(source) {
  if (!loading) {
    loading = (async () => {
      let moduleOrPath = source;
      if (moduleOrPath === undefined) {
        const url = new URL('./chunkup_wasm_bg.wasm', import.meta.url);
        if (isNode && url.protocol === 'file:') {
          // Node's fetch cannot read file: URLs. Hidden from bundlers.
          const fsModule = 'node:fs/promises';
          const { readFile } = await import(/* webpackIgnore: true */ /* @vite-ignore */ fsModule);
          moduleOrPath = await readFile(url);
        } else {
          moduleOrPath = url;
        }
      }
      await initWasm({ module_or_path: moduleOrPath });
    })();
    loading.catch(() => {
      loading = null; // a later call may try again
    });
  }
  return loading;
}

/** Why an upload did not complete. */
export class UploadError extends Error {
  /**
   * @param {string} kind
   * @param {string} message
   * @param {number} [status]
   * @param {boolean} [retryable]
   */
  constructor(kind, message, status, retryable = false) {
    super(message);
    this.name = 'UploadError';
    this.kind = kind;
    if (status !== undefined) this.status = status;
    this.retryable = retryable;
  }
}

function toUploadError(value) {
  if (value instanceof UploadError) return value;
  if (value && typeof value === 'object' && typeof value.kind === 'string') {
    return new UploadError(value.kind, String(value.message ?? value.kind), value.status, value.retryable === true);
  }
  return new UploadError('Internal', String(value?.message ?? value));
}

/**
 * The uploads remembered in this origin's resume store (localStorage, else
 * IndexedDB) that may still be continued, oldest first.
 * @returns {Promise<import('./index.js').RememberedUpload[]>}
 */
export async function listRememberedUploads() {
  await init();
  try {
    return await rememberedUploads();
  } catch (error) {
    throw toUploadError(error);
  }
}

/**
 * Forgets a remembered upload (a `RememberedUpload` or its `key`): a new
 * Upload of the same file starts afresh. The upload stays on the server.
 * @param {string | {key: string}} upload
 * @returns {Promise<void>}
 */
export async function forgetRememberedUpload(upload) {
  const key = typeof upload === 'string' ? upload : upload?.key;
  if (typeof key !== 'string') throw new TypeError('chunkup: forgetRememberedUpload takes a RememberedUpload or its key');
  await init();
  try {
    await rememberedUploads(key);
  } catch (error) {
    throw toUploadError(error);
  }
}

const STOPPED = { error: { kind: 'Stopped', message: 'the upload was stopped; it can be continued later' } };

// A throwing user callback must not break the upload; it is rethrown
// outside, where the platform reports it.
function call(callback, ...args) {
  if (typeof callback !== 'function') return;
  try {
    callback(...args);
  } catch (error) {
    setTimeout(() => {
      throw error;
    }, 0);
  }
}

// Node's built-in modules, hidden from bundlers (the package also runs in browsers).
function nodeModule(name) {
  const specifier = `node:${name}`;
  return import(/* webpackIgnore: true */ /* @vite-ignore */ specifier);
}

/**
 * A path (string or `file:` URL) opened as a lazily read Blob (Node >= 19.8,
 * `fs.openAsBlob`). It is a File named by the absolute path with the file's
 * mtime as `lastModified`: with its size that is the upload's identity, so a
 * later run with the same unchanged file continues the upload.
 * @param {string | URL} path
 * @returns {Promise<{file: File, baseName: string}>}
 */
async function openPath(path) {
  const [fs, nodePath, nodeUrl] = await Promise.all([nodeModule('fs'), nodeModule('path'), nodeModule('url')]);
  if (typeof fs.openAsBlob !== 'function') {
    throw new UploadError('Environment', `reading a file path needs Node 19.8 or later (fs.openAsBlob); this is Node ${process.versions.node}`);
  }
  let absolute;
  try {
    absolute = nodePath.resolve(typeof path === 'string' ? path : nodeUrl.fileURLToPath(path));
  } catch (error) {
    throw new UploadError('InvalidConfig', `not a file path or file: URL: ${String(path)} (${error?.message ?? error})`);
  }
  let stat;
  let blob;
  try {
    stat = await fs.promises.stat(absolute);
    if (!stat.isFile()) throw new Error('not a regular file');
    blob = await fs.openAsBlob(absolute);
  } catch (error) {
    throw new UploadError('Source', `cannot read ${absolute}: ${error?.message ?? error}`);
  }
  // Blob parts are kept by reference: the file is still read lazily, slice by slice.
  const file = new File([blob], absolute, { lastModified: Math.trunc(stat.mtimeMs) });
  return { file, baseName: nodePath.basename(absolute) };
}

/**
 * What `new Upload(source)` takes: a Blob now, a path to open later, or a
 * stream of unknown length.
 * @returns {{blob: Blob} | {path: string | URL} | {stream: ReadableStream}}
 */
function classifySource(source) {
  if (source && typeof source.slice === 'function' && typeof source.size === 'number') {
    return { blob: source };
  }
  if (typeof ReadableStream === 'function' && source instanceof ReadableStream) {
    if (source.locked) throw new TypeError('chunkup: the ReadableStream is locked (another reader is reading it)');
    return { stream: source };
  }
  // Bytes in memory (a Node Buffer is a Uint8Array): an anonymous Blob, never
  // matched to another upload unless the application gives a fingerprint.
  if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
    return { blob: new Blob([source]) };
  }
  if (typeof source === 'string' || source instanceof URL) {
    if (!isNode) {
      throw new UploadError('Environment', 'a file path can only be uploaded in Node; in a browser pass a File or Blob');
    }
    return { path: source };
  }
  // A Node stream.Readable, or any async iterable of bytes (an async
  // generator): read as a ReadableStream of deferred length.
  if (source && typeof source[Symbol.asyncIterator] === 'function') {
    return { stream: streamOfChunks(source) };
  }
  throw new TypeError(
    'chunkup: the source must be a Blob, File, ArrayBuffer, typed array (Buffer), ReadableStream, async iterable of bytes (a Node stream.Readable), or in Node a file path or file: URL',
  );
}

/**
 * A pull-driven ReadableStream over an async iterable of Uint8Arrays (Node
 * Buffers) or ArrayBuffers: read only as the upload asks; cancelling it
 * ends the iterator (a Node Readable is destroyed).
 */
function streamOfChunks(iterable) {
  const iterator = iterable[Symbol.asyncIterator]();
  return new ReadableStream(
    {
      async pull(controller) {
        const { value, done } = await iterator.next();
        if (done) {
          controller.close();
        } else if (value instanceof Uint8Array) {
          controller.enqueue(value);
        } else if (value instanceof ArrayBuffer) {
          controller.enqueue(new Uint8Array(value));
        } else {
          const what = typeof value === 'string' ? 'text (a stream with an encoding set?)' : typeof value;
          throw new TypeError(`chunkup: the source gave ${what}, not bytes`);
        }
      },
      cancel(reason) {
        return iterator.return?.(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

/** One resumable upload of a Blob, File, bytes or (in Node) a file path. */
export class Upload {
  /** The Blob to upload; null until a path is opened. */
  #file;
  /** A path (string or URL) not opened yet. */
  #path = null;
  /** A ReadableStream source (read once, length learned at its end). */
  #stream = null;
  #options;
  #raw = null;
  #started = false;
  #paused = false;
  /** 'stop' or 'terminate', once asked for. */
  #ending = null;
  #settled = false;
  #url = null;
  #acknowledged = 0;
  #resolve;
  #reject;

  /**
   * @param {import('./index.js').UploadSource} source
   * @param {import('./index.js').UploadOptions} options
   */
  constructor(source, options) {
    const classified = classifySource(source);
    if (!options || typeof options !== 'object') {
      throw new TypeError('chunkup: options must be an object');
    }
    this.#file = classified.blob ?? null;
    this.#path = classified.path ?? null;
    this.#stream = classified.stream ?? null;
    this.#options = options;
    /** Settles when the upload is over: `{url}`, or an UploadError. */
    this.done = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // Failures reach onError and whoever awaits; never an unhandled rejection.
    this.done.catch(() => {});
  }

  /** The upload's URL once created or found, else null. */
  get url() {
    return this.#raw?.url ?? this.#url;
  }

  /**
   * The remembered uploads of this file (same identity and endpoint), as in
   * tus-js-client: none for content without an identity (an anonymous Blob)
   * or with `resume: false`. `start()` continues such an upload by itself;
   * see `resumeFromPreviousUpload` to pick one explicitly.
   * @returns {Promise<import('./index.js').RememberedUpload[]>}
   */
  async findPreviousUploads() {
    if (this.#stream) return []; // a stream is never remembered
    await init();
    await this.#open();
    let key;
    try {
      key = resumeKey(this.#file, this.#options);
    } catch (error) {
      throw toUploadError(error);
    }
    if (!key) return [];
    return (await listRememberedUploads()).filter((upload) => upload.key === key);
  }

  /**
   * Continues `previous` (from `findPreviousUploads()` or
   * `listRememberedUploads()`) at its URL; call before `start()`.
   * @param {import('./index.js').RememberedUpload} previous
   */
  resumeFromPreviousUpload(previous) {
    if (typeof previous?.url !== 'string') throw new TypeError('chunkup: not a remembered upload');
    if (this.#started) throw new Error('chunkup: resumeFromPreviousUpload must be called before start()');
    this.#options = { ...this.#options, uploadUrl: previous.url };
  }

  /** Starts (or continues a remembered upload); resolves on completion. */
  start() {
    if (!this.#started) {
      this.#started = true;
      this.#run();
    }
    return this.done;
  }

  async #run() {
    try {
      await init();
    } catch (error) {
      this.#finish({ error: { kind: 'Environment', message: `cannot load the WebAssembly module: ${error?.message ?? error}` } });
      return;
    }
    try {
      await this.#open();
    } catch (error) {
      this.#finish({ error: toUploadError(error) });
      return;
    }
    if (this.#ending === 'stop') {
      this.#finish(STOPPED);
      return;
    }
    let raw;
    try {
      const sink = (event) => this.#event(event);
      raw = this.#stream
        ? RawUpload.fromStream(this.#stream, this.#options, sink)
        : new RawUpload(this.#file, this.#options, sink);
    } catch (error) {
      this.#finish({ error });
      return;
    }
    this.#raw = raw;
    if (this.#paused) raw.pause();
    if (this.#ending === 'terminate') raw.terminate();
    raw.start();
  }

  /** Opens a path source (once); its base name is the announced file name unless `fileName` is given. */
  async #open() {
    if (this.#file || this.#stream) return;
    const { file, baseName } = await openPath(this.#path);
    if (this.#file) return; // opened by a concurrent call
    this.#file = file;
    this.#path = null;
    if (this.#options.fileName === undefined) this.#options = { ...this.#options, fileName: baseName };
  }

  /** Stops sending until resume(); the requests in flight are abandoned. */
  pause() {
    this.#paused = true;
    this.#raw?.pause();
  }

  /** Continues after pause(), from the server's offset. */
  resume() {
    this.#paused = false;
    this.#raw?.resume();
  }

  /**
   * Ends the upload but keeps it, on the server and in the resume store: a
   * later Upload of the same file (or fingerprint) continues it. `done` and
   * `start()` reject with kind 'Stopped'.
   * @returns {Promise<void>} settles when the upload has ended
   */
  stop() {
    return this.abort(false);
  }

  /**
   * Ends the upload and removes it: on the server where the protocol can
   * (tus DELETE, S3 AbortMultipartUpload), and from the resume store. Before start(), a remembered
   * upload of the same file is removed. `done` and `start()` reject with
   * kind 'Terminated'.
   * @returns {Promise<void>} settles when the upload has ended
   */
  terminate() {
    return this.abort(true);
  }

  /**
   * As in tus-js-client: `abort()` stops (keeps the upload), `abort(true)`
   * terminates (removes it).
   * @param {boolean} [shouldTerminate=false]
   * @returns {Promise<void>} settles when the upload has ended
   */
  abort(shouldTerminate = false) {
    if (!this.#settled && this.#ending === null) {
      this.#ending = shouldTerminate ? 'terminate' : 'stop';
      if (this.#raw) {
        if (shouldTerminate) this.#raw.terminate();
        else this.#raw.stop();
      } else if (!this.#started) {
        if (shouldTerminate) this.start();
        else this.#finish(STOPPED);
      }
    }
    return this.done.then(
      () => {},
      () => {},
    );
  }

  #event(event) {
    const options = this.#options;
    switch (event.type) {
      case 'finished':
        this.#finish(event);
        return;
      case 'progress':
        call(options.onProgress, {
          bytesAcknowledged: event.bytesAcknowledged,
          bytesSent: event.bytesSent,
          bytesTotal: event.bytesTotal,
          speed: event.speed,
          etaMs: event.etaMs,
          etaSeconds: event.etaSeconds,
        });
        break;
      case 'created':
        this.#url = event.url;
        break;
      case 'resumed':
        this.#acknowledged = event.offset;
        break;
      case 'chunk': {
        const chunkBytes = Math.max(0, event.offset - this.#acknowledged);
        this.#acknowledged = Math.max(this.#acknowledged, event.offset);
        call(options.onChunkComplete, chunkBytes, event.offset, this.#file?.size ?? null);
        break;
      }
      default:
        break;
    }
    call(options.onEvent, event);
  }

  #finish(outcome) {
    if (this.#settled) return;
    this.#settled = true;
    const raw = this.#raw;
    if (raw) {
      this.#url = raw.url ?? this.#url;
      this.#raw = null;
      // Released outside the call that reported the end.
      setTimeout(() => raw.free(), 0);
    }
    if (outcome.error === undefined) {
      this.#url = outcome.url ?? this.#url;
      const result = { url: outcome.url ?? null };
      this.#resolve(result);
      call(this.#options.onSuccess, result);
    } else {
      const error = toUploadError(outcome.error);
      this.#reject(error);
      // Asked for: not a failure.
      if (error.kind !== 'Stopped' && error.kind !== 'Terminated') call(this.#options.onError, error);
    }
  }
}
