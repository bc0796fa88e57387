// Node 20 tests of the npm package against object stores nobody here wrote:
// S3 multipart uploads through presigned URLs against SeaweedFS's S3 gateway,
// signed by an application backend (boto3, interop/peers/s3_signer.py), and
// Google-style resumable sessions against fake-gcs-server. Both peers are
// started once for this file by interop/peers/object-storage.mjs, from the
// binaries scripts/test.sh installs. Run by `scripts/wasm.sh test`.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startFakeGcs, startSeaweedFs } from '../../../interop/peers/object-storage.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const PKG = resolve(process.env.CHUNKUP_PKG ?? join(here, '..', 'pkg'));
const MIB = 1024 * 1024;
const GRANULE = 256 * 1024; // Google-style chunks are multiples of 256 KiB

let chunkup;
let s3;
let gcs;

before(async () => {
  chunkup = await import(pathToFileURL(join(PKG, 'index.js')).href);
  [s3, gcs] = await Promise.all([startSeaweedFs(), startFakeGcs()]);
});

after(async () => {
  await Promise.all([s3?.stop(), gcs?.stop()]);
});

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/**
 * A signer that asks the backend (as an app's `sign` would) and records
 * every request it was asked to sign; `before(request, calls)` may throw,
 * or return fields to add to what the backend is sent (`{expired: true}`).
 */
function recordingSigner(before) {
  const calls = [];
  const sign = (request) => {
    calls.push({ ...request });
    const extra = before?.(request, calls) ?? {};
    return s3.sign({ ...request, ...extra });
  };
  return { sign, calls };
}

/** Runs an upload of `bytes`; resolves `{result | error, events, up}`. */
async function run(bytes, options, onEvent) {
  const events = [];
  const up = new chunkup.Upload(new Blob([bytes]), {
    resume: false,
    ...options,
    onEvent: (e) => {
      events.push(e);
      onEvent?.(e, up);
    },
  });
  try {
    return { result: await up.start(), events, up };
  } catch (error) {
    return { error, events, up };
  }
}

const uploadIdOf = (url) => new URL(url).searchParams.get('uploadId');

describe('S3 multipart through presigned URLs (SeaweedFS, signed by a boto3 backend)', () => {
  test('create, parts in two parallel windows, complete: the object is the file', async () => {
    const key = 'node/parallel.bin';
    const bytes = randomBytes(12 * MIB + 3);
    const { sign, calls } = recordingSigner();
    // Count the part requests open at once (the driver calls the global fetch).
    const realFetch = globalThis.fetch;
    let open = 0;
    let most = 0;
    globalThis.fetch = async (url, ...rest) => {
      const part = String(url).includes('partNumber=');
      if (part) most = Math.max(most, (open += 1));
      try {
        return await realFetch(url, ...rest);
      } finally {
        if (part) open -= 1;
      }
    };
    let outcome;
    try {
      outcome = await run(bytes, { endpoint: s3.objectUrl(key), protocol: 's3', sign, parallel: 2 });
    } finally {
      globalThis.fetch = realFetch;
    }
    const { result, error, events } = outcome;
    assert.ok(result, `failed: ${error?.kind} ${error?.message}`);
    assert.equal(result.url, s3.objectUrl(key), 'completed at the object');
    assert.deepEqual(await s3.object(key), { size: bytes.length, sha256: sha256(bytes) });

    const created = events.find((e) => e.type === 'created');
    const id = uploadIdOf(created.url);
    assert.ok(id, `the upload URL names the multipart upload: ${created.url}`);
    assert.deepEqual(calls[0], {
      method: 'POST', url: `${s3.objectUrl(key)}?uploads`, action: 'CreateMultipartUpload', uploadId: null, partNumber: null,
    });
    const parts = calls.filter((c) => c.action === 'UploadPart');
    assert.ok(parts.every((c) => c.method === 'PUT' && c.uploadId === id && c.url.includes(`partNumber=${c.partNumber}`)));
    const numbers = parts.map((c) => c.partNumber);
    assert.ok(numbers.includes(1) && numbers.includes(5001), `each window has its own part numbers: ${numbers}`);
    assert.equal(calls.at(-1).action, 'CompleteMultipartUpload');
    assert.equal(calls.at(-1).uploadId, id);
    assert.equal(most, 2, 'two parts in flight at once');
    assert.equal(events.at(-1).type, 'completed');
  });

  test('a stopped upload continues from ListParts in a new Upload given its URL', async () => {
    const key = 'node/continued.bin';
    const bytes = randomBytes(16 * MIB + 11);
    const options = { protocol: 's3', chunkSize: 5 * MIB };
    const first = recordingSigner();
    const stopped = await run(bytes, { ...options, endpoint: s3.objectUrl(key), sign: first.sign }, (e, up) => {
      // An S3 window reports progress, not chunk events (those are the whole upload's).
      if (e.type === 'progress' && e.bytesAcknowledged >= 5 * MIB) up.stop();
    });
    assert.equal(stopped.error?.kind, 'Stopped', String(stopped.error));
    const uploadUrl = stopped.up.url;
    const id = uploadIdOf(uploadUrl);
    assert.ok(id, `the URL to continue: ${uploadUrl}`);
    assert.ok(!first.calls.some((c) => c.action === 'AbortMultipartUpload'), 'a stop keeps the upload');
    const held = await s3.parts(key, id);
    assert.equal(held.status, 200);
    assert.ok(held.parts.length >= 1, 'parts are on the server');

    const second = recordingSigner();
    const { result, error, events } = await run(bytes, { ...options, uploadUrl, sign: second.sign });
    assert.ok(result, `failed: ${error?.kind} ${error?.message}`);
    assert.equal(second.calls[0].action, 'ListParts', 'asks the server first');
    assert.equal(second.calls[0].uploadId, id);
    // The windows' 'resumed' stays inside the session: its first progress says where it starts.
    const start = events.find((e) => e.type === 'progress');
    const keptBytes = held.parts.reduce((n, p) => n + p.size, 0);
    assert.equal(start?.bytesAcknowledged, keptBytes, 'continues after the parts the server holds');
    const sent = second.calls.filter((c) => c.action === 'UploadPart').map((c) => c.partNumber);
    assert.ok(sent.every((n) => n > held.parts.length), `no held part sent again: ${sent}`);
    assert.deepEqual(await s3.object(key), { size: bytes.length, sha256: sha256(bytes) });
  });

  test('terminate() aborts the multipart upload: ListParts then answers 404 NoSuchUpload', async () => {
    const key = 'node/terminated.bin';
    const bytes = randomBytes(16 * MIB);
    const { sign, calls } = recordingSigner();
    const { error, up } = await run(bytes, { endpoint: s3.objectUrl(key), protocol: 's3', sign, chunkSize: 5 * MIB },
      (e, self) => {
        if (e.type === 'progress' && e.bytesAcknowledged > 0) self.terminate();
      });
    assert.equal(error?.kind, 'Terminated', String(error));
    const id = uploadIdOf(up.url ?? calls.find((c) => c.uploadId)?.url);
    const abort = calls.find((c) => c.action === 'AbortMultipartUpload');
    assert.deepEqual(abort && { method: abort.method, uploadId: abort.uploadId }, { method: 'DELETE', uploadId: id });
    assert.deepEqual(await s3.parts(key, id), { status: 404, code: 'NoSuchUpload' });
    assert.equal(await s3.object(key), null);
  });

  test('an expired presigned URL is signed again, never a failure', async () => {
    const key = 'node/expired.bin';
    const bytes = randomBytes(MIB + 5);
    // The first URL of each part has expired by the time it is used.
    const { sign, calls } = recordingSigner((request, seen) => {
      const first = seen.filter((c) => c.action === 'UploadPart' && c.partNumber === request.partNumber).length === 1;
      return request.action === 'UploadPart' && first ? { expired: true } : {};
    });
    const { result, error, events } = await run(bytes, { endpoint: s3.objectUrl(key), protocol: 's3', sign });
    assert.ok(result, `failed: ${error?.kind} ${error?.message}`);
    const retries = events.filter((e) => e.type === 'retrying');
    assert.deepEqual(retries.map((e) => e.reasonKind), ['signatureExpired']);
    assert.match(retries[0].reason, /expired/);
    assert.equal(calls.filter((c) => c.action === 'UploadPart').length, 2, 'signed twice');
    assert.deepEqual(await s3.object(key), { size: bytes.length, sha256: sha256(bytes) });
  });

  test('a signer that throws or rejects fails that attempt like a broken connection: retried', async () => {
    const key = 'node/flaky-signer.bin';
    const bytes = randomBytes(MIB);
    const tries = { CreateMultipartUpload: 0, UploadPart: 0 };
    const sign = (request) => {
      tries[request.action] += 1;
      if (request.action === 'CreateMultipartUpload' && tries.CreateMultipartUpload === 1) {
        throw new TypeError('backend unreachable');
      }
      if (request.action === 'UploadPart' && tries.UploadPart === 1) return Promise.reject(new Error('502 from /sign'));
      return s3.sign(request);
    };
    const { result, error, events } = await run(bytes, { endpoint: s3.objectUrl(key), protocol: 's3', sign });
    assert.ok(result, `failed: ${error?.kind} ${error?.message}`);
    const reasons = events.filter((e) => e.type === 'retrying').map((e) => [e.reasonKind, e.reason]);
    assert.equal(reasons.length, 2, JSON.stringify(reasons));
    assert.ok(reasons.every(([kind]) => kind === 'transport'));
    assert.match(reasons[0][1], /the signer failed: TypeError: backend unreachable/);
    assert.match(reasons[1][1], /the signer failed: Error: 502 from \/sign/);
    assert.deepEqual(await s3.object(key), { size: bytes.length, sha256: sha256(bytes) });
  });

  test('a signer that keeps failing exhausts the retries, naming the signer', async () => {
    const { error } = await run(randomBytes(1024), {
      endpoint: s3.objectUrl('node/never.bin'),
      protocol: 's3',
      retries: 1,
      sign: async () => ({ headers: {} }),
    });
    assert.equal(error?.kind, 'RetriesExhausted');
    assert.match(error.message, /the signer failed: its answer has no `url` string/);
  });

  test("protocol 's3' needs a sign function", async () => {
    for (const sign of [undefined, 'https://signer']) {
      const { error } = await run(randomBytes(8), { endpoint: s3.objectUrl('node/x.bin'), protocol: 's3', sign });
      assert.equal(error?.kind, 'InvalidConfig');
      assert.match(error.message, /sign/);
    }
  });
});

describe('Google-style resumable sessions (fake-gcs-server)', () => {
  // fake-gcs-server finalizes an object on a status query (docs/PROTOCOLS.md
  // §5.3): only the straight path is tested against it.
  for (const [label, chunkSize] of [['fixed 256 KiB chunks', GRANULE], ['adaptive chunks', 'auto']]) {
    test(`initiate, chunks answered 308 + Range, then 200 (${label})`, async () => {
      const name = `node/${label.replace(/\W+/g, '-')}.bin`;
      const bytes = randomBytes(3 * MIB + 4 * GRANULE + 9);
      const { result, error, events } = await run(bytes, {
        endpoint: gcs.initiationUrl(name), protocol: 'gcs', chunkSize, contentType: 'video/mp4',
      });
      assert.ok(result, `failed: ${error?.kind} ${error?.message}\n${gcs.log()}`);
      const created = events.find((e) => e.type === 'created');
      assert.match(created.url, /[?&]upload_id=[0-9a-f]+/, 'the session URI from Location');
      const offsets = events.filter((e) => e.type === 'chunk').map((e) => e.offset);
      assert.ok(offsets.length >= 2, `several chunks: ${offsets}`);
      assert.ok(offsets.slice(0, -1).every((o) => o % GRANULE === 0), `whole granules but the last: ${offsets}`);
      assert.equal(offsets.at(-1), bytes.length);
      assert.ok(!events.some((e) => e.type === 'retrying'));
      const stored = await gcs.objectBytes(name);
      assert.equal(sha256(stored ?? Buffer.alloc(0)), sha256(bytes));
    });
  }
});
