// Node tests of the sources `new Upload(source)` takes besides a Blob: a file
// path or file: URL (read lazily, remembered by path, size and mtime), bytes
// in memory (Buffer, Uint8Array, ArrayBuffer: anonymous). Against the
// reference server (`chunkup serve`) on 127.0.0.1, which checks sha256.
// Needs CHUNKUP_BIN (the chunkup binary); CHUNKUP_PKG (default ../pkg).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PKG, loadPackage, memoryStorage, sha256, startReferenceServer } from './support/reference-server.mjs';

let chunkup;
let server;
let base;
let workDir;

const setFaults = (spec) => server.setFaults(spec);
const stored = (url) => server.stored(url);

before(async () => {
  chunkup = await loadPackage();
  server = await startReferenceServer('sources');
  base = server.base;
  workDir = mkdtempSync(join(tmpdir(), 'chunkup-wasm-files-'));
});

after(() => {
  delete globalThis.localStorage;
  server?.stop();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

describe('a file path (Node)', () => {
  test('uploads under faults; a later run continues it by path, size and mtime', async () => {
    globalThis.localStorage = memoryStorage();
    const bytes = randomBytes(2 * 1024 * 1024 + 5);
    const path = join(workDir, 'movie.bin');
    writeFileSync(path, bytes);
    utimesSync(path, 1700000000, 1700000000);
    await setFaults('script=1:reset@5000;2:error@502');

    // First run: stopped after 1 MiB is acknowledged; the record is kept.
    const first = new chunkup.Upload(path, {
      endpoint: `${base}/tus`,
      protocol: 'tus',
      chunkSize: 256 * 1024,
      onChunkComplete: (_chunk, acked) => {
        if (acked >= 1024 * 1024) first.stop();
      },
    });
    await assert.rejects(first.start(), (e) => e instanceof chunkup.UploadError && e.kind === 'Stopped');
    const remembered = await first.findPreviousUploads();
    assert.equal(remembered.length, 1, 'the path upload is remembered');
    assert.equal(remembered[0].url, first.url);
    assert.equal(remembered[0].fileName, 'movie.bin', 'the announced name is the base name');
    assert.equal(remembered[0].size, bytes.length);

    // Second run, the same file named by a file: URL: continued, not restarted.
    await setFaults('script=1:error@503');
    const events = [];
    const second = new chunkup.Upload(pathToFileURL(path), {
      endpoint: `${base}/tus`,
      protocol: 'tus',
      chunkSize: 256 * 1024,
      onEvent: (e) => events.push(e),
    });
    const { url } = await second.start();
    assert.equal(url, first.url, 'the same upload was continued');
    const resumed = events.find((e) => e.type === 'resumed');
    assert.ok(resumed?.offset >= 1024 * 1024, `resumed at ${resumed?.offset}`);
    const info = await stored(url);
    assert.equal(info.complete, true);
    assert.equal(info.total, bytes.length);
    assert.equal(info.sha256, sha256(bytes));
    assert.equal(info.metadata.filename, 'movie.bin');
  });

  test('a changed mtime is another file: not matched to the remembered upload', async () => {
    globalThis.localStorage = memoryStorage();
    await setFaults('none');
    const path = join(workDir, 'changing.bin');
    writeFileSync(path, randomBytes(600 * 1024));
    utimesSync(path, 1700000000, 1700000000);
    const first = new chunkup.Upload(path, {
      endpoint: `${base}/tus`,
      protocol: 'tus',
      chunkSize: 256 * 1024,
      onChunkComplete: () => first.stop(),
    });
    await assert.rejects(first.start(), (e) => e.kind === 'Stopped');
    const same = new chunkup.Upload(path, { endpoint: `${base}/tus` });
    assert.equal((await same.findPreviousUploads()).length, 1);
    utimesSync(path, 1700000100, 1700000100);
    const touched = new chunkup.Upload(path, { endpoint: `${base}/tus` });
    assert.deepEqual(await touched.findPreviousUploads(), []);
  });

  test('a missing path fails start() with an UploadError of kind Source', async () => {
    const missing = join(workDir, 'no-such-file.bin');
    const errors = [];
    const up = new chunkup.Upload(missing, { endpoint: `${base}/tus`, resume: false, onError: (e) => errors.push(e) });
    await assert.rejects(up.start(), (e) => {
      assert.ok(e instanceof chunkup.UploadError);
      assert.equal(e.kind, 'Source');
      assert.match(e.message, /no-such-file\.bin/);
      assert.match(e.message, /ENOENT/);
      return true;
    });
    assert.equal(errors.length, 1, 'onError was called');
    assert.equal(up.url, null, 'nothing was created');
    // A directory is not a file either.
    const dir = new chunkup.Upload(workDir, { endpoint: `${base}/tus`, resume: false });
    await assert.rejects(dir.start(), (e) => e.kind === 'Source');
  });

  test('an http: URL is not a file path', async () => {
    const up = new chunkup.Upload(new URL('http://127.0.0.1/file.bin'), { endpoint: `${base}/tus`, resume: false });
    await assert.rejects(up.start(), (e) => e instanceof chunkup.UploadError && e.kind === 'InvalidConfig');
  });
});

test('a file path where there is no Node (a page) throws an UploadError of kind Environment', () => {
  // A fresh Node process that looks like a page (a `window` global): the
  // package decides at load time whether it can read paths.
  const script = `
    globalThis.window = globalThis;
    const chunkup = await import(${JSON.stringify(pathToFileURL(join(PKG, 'index.js')).href)});
    try {
      new chunkup.Upload('/etc/hostname', { endpoint: 'http://127.0.0.1:1/tus' });
      console.log('no error');
    } catch (e) {
      console.log(JSON.stringify({ name: e.name, kind: e.kind, message: e.message }));
    }`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  const thrown = JSON.parse(out.trim());
  assert.equal(thrown.name, 'UploadError');
  assert.equal(thrown.kind, 'Environment');
  assert.match(thrown.message, /only be uploaded in Node/);
});

describe('bytes in memory', () => {
  for (const [name, wrap] of [
    ['Buffer', (bytes) => bytes],
    ['Uint8Array', (bytes) => new Uint8Array(bytes)],
    ['ArrayBuffer', (bytes) => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)],
  ]) {
    test(`a ${name} uploads under faults, sha256 checked`, async () => {
      await setFaults('script=1:reset@5000;2:busy,retry-after=0');
      const bytes = randomBytes(1024 * 1024 + 3);
      const up = new chunkup.Upload(wrap(bytes), {
        endpoint: `${base}/ranged`,
        protocol: 'ranged',
        chunkSize: 256 * 1024,
        resume: false,
      });
      const { url } = await up.start();
      const info = await stored(url);
      assert.equal(info.complete, true);
      assert.equal(info.sha256, sha256(bytes));
    });
  }

  test('a Buffer is anonymous: never remembered, never matched', async () => {
    const storage = memoryStorage();
    globalThis.localStorage = storage;
    await setFaults('none');
    const bytes = randomBytes(300 * 1024);
    const up = new chunkup.Upload(bytes, { endpoint: `${base}/tus`, protocol: 'tus', chunkSize: 128 * 1024 });
    assert.deepEqual(await up.findPreviousUploads(), []);
    const { url } = await up.start();
    assert.equal((await stored(url)).sha256, sha256(bytes));
    assert.equal([...storage.map.keys()].filter((k) => k.startsWith('chunkup:resume:')).length, 0, 'no record written');
  });

  test('something else is a TypeError', () => {
    assert.throws(() => new chunkup.Upload(42, { endpoint: `${base}/tus` }), TypeError);
    assert.throws(() => new chunkup.Upload({ size: 3 }, { endpoint: `${base}/tus` }), TypeError);
  });
});
