// Node tests of a ReadableStream source of unknown length (deferred length)
// against the reference server (`chunkup serve`) on 127.0.0.1 with faults;
// the server checks sha256.
// Needs CHUNKUP_BIN (the chunkup binary); CHUNKUP_PKG (default ../pkg).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { loadPackage, sha256, startReferenceServer } from './support/reference-server.mjs';

let chunkup;
let server;
let base;

const setFaults = (spec) => server.setFaults(spec);
const stored = (url) => server.stored(url);

before(async () => {
  chunkup = await loadPackage();
  server = await startReferenceServer('stream');
  base = server.base;
});

after(() => {
  server?.stop();
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

describe('a Node stream.Readable or an async iterable of bytes', () => {
  test('a Readable over tus under faults: exact bytes, read only as needed', async () => {
    await setFaults('script=1:reset@5000;2:error@502');
    const bytes = randomBytes(2 * 1024 * 1024 + 99);
    let produced = 0;
    const readable = Readable.from((function* pieces() {
      for (let at = 0; at < bytes.length; at += 64 * 1024) {
        produced = Math.min(bytes.length, at + 64 * 1024);
        yield bytes.subarray(at, produced);
      }
    })(), { objectMode: false, highWaterMark: 0 });
    const up = new chunkup.Upload(readable, {
      endpoint: `${base}/tus`, protocol: 'tus', chunkSize: 256 * 1024, resume: false,
    });
    const { url } = await up.start();
    const info = await stored(url);
    assert.equal(info.total, bytes.length);
    assert.equal(info.sha256, sha256(bytes));
    assert.equal(produced, bytes.length);
  });

  test('an async generator over IETF', async () => {
    await setFaults('none');
    const bytes = randomBytes(700 * 1024 + 3);
    async function* pieces() {
      // ArrayBuffers of their own (a Buffer's .buffer may be a larger pool).
      for (let at = 0; at < bytes.length; at += 100 * 1024) yield new Uint8Array(bytes.subarray(at, at + 100 * 1024)).buffer;
    }
    const { url } = await new chunkup.Upload(pieces(), {
      endpoint: `${base}/ietf`, protocol: 'ietf', chunkSize: 256 * 1024, resume: false,
    }).start();
    assert.equal((await stored(url)).sha256, sha256(bytes));
  });

  test('a Readable that errors, or gives text, fails the upload with kind Source', async () => {
    await setFaults('none');
    const failing = new Readable({
      read() {
        this.destroy(new Error('the disk went away'));
      },
    });
    const texts = Readable.from(['not', 'bytes']);
    for (const [source, message] of [[failing, /the disk went away/], [texts, /text/]]) {
      const up = new chunkup.Upload(source, { endpoint: `${base}/tus`, protocol: 'tus', resume: false });
      await assert.rejects(up.start(), (e) => {
        assert.ok(e instanceof chunkup.UploadError, String(e));
        assert.equal(e.kind, 'Source');
        assert.match(e.message, message);
        return true;
      });
    }
  });
});
