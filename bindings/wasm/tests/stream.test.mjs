// Node tests of a ReadableStream source of unknown length (deferred length)
// against the reference server (`chunkup serve`) on 127.0.0.1 with faults;
// the server checks sha256.
// Needs CHUNKUP_BIN (the chunkup binary); CHUNKUP_PKG (default ../pkg).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const PKG = resolve(process.env.CHUNKUP_PKG ?? join(here, '..', 'pkg'));
const BIN = process.env.CHUNKUP_BIN ?? resolve(here, '..', '..', '..', 'target', 'debug', 'chunkup');

let chunkup;
let server;
let base;
let dataDir;

function startServer() {
  dataDir = mkdtempSync(join(tmpdir(), 'chunkup-wasm-stream-'));
  const child = spawn(BIN, ['serve', '--addr', '127.0.0.1:0', '--admin', '--dir', dataDir], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return new Promise((resolvePromise, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`chunkup serve did not start: ${seen}`)), 20000);
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`chunkup serve exited (${code}): ${seen}`)));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text) => {
      seen += text;
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(seen);
      if (match) {
        clearTimeout(timer);
        child.stderr.resume();
        resolvePromise({ child, base: match[1] });
      }
    });
  });
}

async function setFaults(spec) {
  const response = await fetch(`${base}/_admin/faults`, { method: 'PUT', body: spec });
  assert.equal(response.status, 200, `PUT /_admin/faults ${spec}: ${await response.text()}`);
}

async function stored(url) {
  const id = new URL(url).pathname.split('/').pop();
  const response = await fetch(`${base}/_admin/uploads/${id}`);
  assert.equal(response.status, 200, `admin lookup of ${url}`);
  return response.json();
}

function sha256(bytes) {
  return createHash('sha256').update(bytes).digest('hex');
}

before(async () => {
  chunkup = await import(pathToFileURL(join(PKG, 'index.js')).href);
  ({ child: server, base } = await startServer());
});

after(() => {
  server?.removeAllListeners('exit');
  server?.kill('SIGTERM');
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});


/**
 * A pull-driven ReadableStream of `bytes` in pieces of `piece` bytes (only
 * read when the upload asks), recording how far it was read.
 */
function streamOf(bytes, piece, { failAt } = {}) {
  const seen = { pulled: 0 };
  const stream = new ReadableStream(
    {
      pull(controller) {
        if (failAt !== undefined && seen.pulled >= failAt) {
          controller.error(new Error('the disk went away'));
          return;
        }
        if (seen.pulled >= bytes.length) {
          controller.close();
          return;
        }
        const end = Math.min(bytes.length, seen.pulled + piece);
        // A copy: the upload may keep it while the caller's buffer changes.
        controller.enqueue(new Uint8Array(bytes.subarray(seen.pulled, end)));
        seen.pulled = end;
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, seen };
}

describe('a ReadableStream of unknown length', () => {
  for (const protocol of ['tus', 'ietf']) {
    test(`${protocol}: uploads under faults, read once with a bounded window`, async (t) => {
      await setFaults('script=1:reset@5000;2:error@502;3:busy;4:stall@100,retry-after=1,stall-secs=0.5');
      const chunkSize = 256 * 1024;
      const piece = 100 * 1024 + 7;
      const bytes = randomBytes(4 * 1024 * 1024 + 333);
      const { stream, seen } = streamOf(bytes, piece);
      let acknowledged = 0;
      let readAhead = 0;
      const events = [];
      const chunks = [];
      const up = new chunkup.Upload(stream, {
        endpoint: `${base}/${protocol}`,
        protocol,
        chunkSize,
        resume: false,
        metadata: { filename: 'stream.bin' },
        onEvent: (e) => events.push(e),
        onChunkComplete: (chunk, acked, total) => {
          chunks.push([chunk, acked, total]);
          acknowledged = acked;
        },
        onProgress: () => {
          readAhead = Math.max(readAhead, seen.pulled - acknowledged);
        },
      });
      assert.deepEqual(await up.findPreviousUploads(), [], 'a stream is never remembered');
      const { url } = await up.start();
      const info = await stored(url);
      assert.equal(info.complete, true);
      assert.equal(info.total, bytes.length);
      assert.equal(info.sha256, sha256(bytes));
      assert.equal(seen.pulled, bytes.length);
      const types = events.map((e) => e.type);
      assert.ok(types.filter((t) => t === 'retrying').length >= 3, `retries seen: ${types}`);
      assert.equal(types.at(-1), 'completed');
      assert.equal(chunks.at(-1)[1], bytes.length);
      assert.ok(chunks.every(([, , total]) => total === null), 'no total for a stream');
      // Never read much more than a chunk past what the server confirmed.
      t.diagnostic(`read ahead of the acknowledged offset: at most ${readAhead} bytes`);
      assert.ok(readAhead <= 2 * chunkSize + piece, `read ahead ${readAhead} bytes`);
    });
  }

  test('an empty stream uploads zero bytes', async () => {
    await setFaults('none');
    const { stream } = streamOf(new Uint8Array(0), 1024);
    const up = new chunkup.Upload(stream, { endpoint: `${base}/tus`, protocol: 'tus', resume: false });
    const { url } = await up.start();
    const info = await stored(url);
    assert.equal(info.complete, true);
    assert.equal(info.total, 0);
  });

  test('a stream that errors fails the upload with kind Source', async () => {
    await setFaults('none');
    const { stream } = streamOf(randomBytes(1024 * 1024), 64 * 1024, { failAt: 300 * 1024 });
    const up = new chunkup.Upload(stream, {
      endpoint: `${base}/tus`, protocol: 'tus', chunkSize: 128 * 1024, resume: false,
    });
    await assert.rejects(up.start(), (e) => {
      assert.ok(e instanceof chunkup.UploadError);
      assert.equal(e.kind, 'Source');
      assert.match(e.message, /the disk went away/);
      return true;
    });
  });

  test('a locked stream is refused at once', () => {
    const { stream } = streamOf(randomBytes(10), 10);
    stream.getReader();
    assert.throws(() => new chunkup.Upload(stream, { endpoint: `${base}/tus` }), /locked/);
  });

  test('ranged needs the length up front: refused before anything is sent', async () => {
    await setFaults('none');
    const { stream, seen } = streamOf(randomBytes(300 * 1024), 64 * 1024);
    const up = new chunkup.Upload(stream, { endpoint: `${base}/ranged`, protocol: 'ranged', resume: false });
    await assert.rejects(up.start(), (e) => {
      assert.ok(e instanceof chunkup.UploadError);
      assert.equal(e.kind, 'InvalidConfig');
      assert.match(e.message, /defer the length/);
      return true;
    });
    assert.equal(up.url, null, 'nothing was created');
    assert.ok(seen.pulled <= 64 * 1024, `read ${seen.pulled}`);
  });
});
