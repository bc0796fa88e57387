// What the Node test files share: where the package and the `chunkup`
// binary are, and the reference server (`chunkup serve`) each file starts on
// 127.0.0.1 with its admin API open (faults, stored sha256), then stops.
// Not a test file itself: `node --test` only runs `*.test.mjs`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
/** The package folder under test (CHUNKUP_PKG, default bindings/wasm/pkg). */
export const PKG = resolve(process.env.CHUNKUP_PKG ?? join(here, '..', '..', 'pkg'));
/** The `chunkup` binary whose `serve` the tests run against (CHUNKUP_BIN). */
export const BIN =
  process.env.CHUNKUP_BIN ?? resolve(here, '..', '..', '..', '..', 'target', 'debug', 'chunkup');

/** Imports the package under test. */
export function loadPackage() {
  return import(pathToFileURL(join(PKG, 'index.js')).href);
}

export function sha256(bytes) {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Starts `chunkup serve --admin` on 127.0.0.1:0 with a fresh data folder
 * (named after `label`) and resolves once it listens.
 */
export function startReferenceServer(label) {
  const dataDir = mkdtempSync(join(tmpdir(), `chunkup-wasm-${label}-`));
  const child = spawn(BIN, ['serve', '--addr', '127.0.0.1:0', '--admin', '--dir', dataDir], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return new Promise((resolvePromise, reject) => {
    let seen = '';
    const fail = (error) => {
      rmSync(dataDir, { recursive: true, force: true });
      reject(error);
    };
    const timer = setTimeout(() => fail(new Error(`chunkup serve did not start: ${seen}`)), 20000);
    child.on('error', fail);
    child.on('exit', (code) => fail(new Error(`chunkup serve exited (${code}): ${seen}`)));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text) => {
      seen += text;
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(seen);
      if (match) {
        clearTimeout(timer);
        child.stderr.resume();
        resolvePromise(new ReferenceServer(child, match[1], dataDir));
      }
    });
  });
}

class ReferenceServer {
  constructor(child, base, dataDir) {
    this.child = child;
    /** `http://127.0.0.1:<port>` */
    this.base = base;
    this.dataDir = dataDir;
  }

  /** Turns on faults (`seed=1,reset=0.1,...`; `off` turns them off). */
  async setFaults(spec) {
    const response = await fetch(`${this.base}/_admin/faults`, { method: 'PUT', body: spec });
    assert.equal(response.status, 200, `PUT /_admin/faults ${spec}: ${await response.text()}`);
  }

  /** What the server stored for the upload at `url` (size, sha256, ...). */
  async stored(url) {
    const id = new URL(url).pathname.split('/').pop();
    const response = await fetch(`${this.base}/_admin/uploads/${id}`);
    assert.equal(response.status, 200, `admin lookup of ${url}`);
    return response.json();
  }

  stop() {
    this.child.removeAllListeners('exit');
    this.child.kill('SIGTERM');
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/**
 * A Web Storage in memory (`localStorage` under Node), its entries in
 * `map`; with `full`, every write fails as a full quota does.
 */
export function memoryStorage({ full = false } = {}) {
  const map = new Map();
  return {
    map,
    get length() {
      return map.size;
    },
    key: (i) => [...map.keys()][i] ?? null,
    getItem: (k) => (map.has(k) ? map.get(k) : null),
    setItem: (k, v) => {
      if (full) throw new DOMException('the quota has been exceeded', 'QuotaExceededError');
      map.set(k, String(v));
    },
    removeItem: (k) => map.delete(k),
  };
}
