// chunkup — resumable uploads for browsers, workers and Node 20.
//
// A thin wrapper over the WebAssembly module: it turns the module's event
// objects into callbacks, Promises and UploadError. Every protocol, retry,
// chunk-size and resume decision is made by the Rust core inside the module.
import initWasm, { RawUpload } from './chunkup_wasm.js';

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
   */
  constructor(kind, message, status) {
    super(message);
    this.name = 'UploadError';
    this.kind = kind;
    if (status !== undefined) this.status = status;
  }
}

function toUploadError(value) {
  if (value instanceof UploadError) return value;
  if (value && typeof value === 'object' && typeof value.kind === 'string') {
    return new UploadError(value.kind, String(value.message ?? value.kind), value.status);
  }
  return new UploadError('Other', String(value?.message ?? value));
}

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

/** One resumable upload of a Blob or File. */
export class Upload {
  #file;
  #options;
  #raw = null;
  #started = false;
  #paused = false;
  #aborted = false;
  #settled = false;
  #url = null;
  #acknowledged = 0;
  #resolve;
  #reject;

  /**
   * @param {Blob} file
   * @param {import('./index.js').UploadOptions} options
   */
  constructor(file, options) {
    if (!file || typeof file.slice !== 'function' || typeof file.size !== 'number') {
      throw new TypeError('chunkup: the file must be a Blob or File');
    }
    if (!options || typeof options !== 'object') {
      throw new TypeError('chunkup: options must be an object');
    }
    this.#file = file;
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
    if (this.#aborted) {
      this.#finish({ error: { kind: 'Cancelled', message: 'the upload was cancelled' } });
      return;
    }
    let raw;
    try {
      raw = new RawUpload(this.#file, this.#options, (event) => this.#event(event));
    } catch (error) {
      this.#finish({ error });
      return;
    }
    this.#raw = raw;
    if (this.#paused) raw.pause();
    raw.start();
  }

  /** Stops sending until resume(); the request in flight is abandoned. */
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
   * Gives the upload up (removing it on the server where the protocol can).
   * `done` and `start()` reject with kind 'Cancelled'.
   * @returns {Promise<void>} settles when the upload has stopped
   */
  abort() {
    if (!this.#settled) {
      this.#aborted = true;
      if (this.#raw) {
        this.#raw.abort();
      } else if (!this.#started) {
        this.#finish({ error: { kind: 'Cancelled', message: 'the upload was cancelled' } });
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
        call(options.onChunkComplete, chunkBytes, event.offset, this.#file.size);
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
      this.#url = outcome.url;
      const result = { url: outcome.url };
      this.#resolve(result);
      call(this.#options.onSuccess, result);
    } else {
      const error = toUploadError(outcome.error);
      this.#reject(error);
      if (error.kind !== 'Cancelled') call(this.#options.onError, error);
    }
  }
}
