// Node 20 tests of the npm package `chunkup` (bindings/wasm/pkg) against the
// reference server (`chunkup serve`), started here on 127.0.0.1 with faults.
// Run by `scripts/wasm.sh test`; needs CHUNKUP_BIN (the chunkup binary) and
// optionally CHUNKUP_PKG (the package folder, default ../pkg).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PKG, loadPackage, memoryStorage, sha256, startReferenceServer } from './support/reference-server.mjs';

const here = dirname(fileURLToPath(import.meta.url));

let chunkup;
let server;
let base;

const setFaults = (spec) => server.setFaults(spec);
const stored = (url) => server.stored(url);

/** Uploads `bytes` and records what the callbacks saw. */
function upload(bytes, options, file) {
  const seen = { events: [], progress: [], chunks: [], errors: [], successes: [] };
  const blob = file ?? new Blob([bytes], { type: 'application/octet-stream' });
  const up = new chunkup.Upload(blob, {
    ...options,
    onEvent: (e) => {
      seen.events.push(e);
      options.onEvent?.(e, up);
    },
    onProgress: (p) => seen.progress.push(p),
    onChunkComplete: (chunk, acked, total) => {
      seen.chunks.push([chunk, acked, total]);
      options.onChunkComplete?.(chunk, acked, total, up);
    },
    onError: (e) => seen.errors.push(e),
    onSuccess: (r) => seen.successes.push(r),
  });
  return { up, seen };
}

function assertProgressSane(seen, total) {
  assert.ok(seen.progress.length > 0, 'progress was reported');
  let last = 0;
  for (const p of seen.progress) {
    assert.ok(p.bytesAcknowledged >= last, 'progress never goes back');
    assert.ok(p.bytesSent >= p.bytesAcknowledged && p.bytesSent <= total);
    assert.equal(p.bytesTotal, total);
    assert.equal(typeof p.speed, 'number');
    assert.ok(p.etaSeconds === null || typeof p.etaSeconds === 'number');
    last = p.bytesAcknowledged;
  }
  assert.equal(seen.progress.at(-1).bytesAcknowledged, total);
}

before(async () => {
  chunkup = await loadPackage();
  server = await startReferenceServer('test');
  base = server.base;
});

after(() => {
  server?.stop();
});

describe('uploads under injected faults, sha256 checked by the server', () => {
  for (const protocol of ['ranged', 'tus', 'ietf']) {
    test(protocol, async () => {
      // Chunk requests 1-4 fail: reset mid-body, 502, 503 + Retry-After, stall.
      await setFaults('script=1:reset@5000;2:error@502;3:busy;4:stall@100,retry-after=1,stall-secs=0.5');
      const bytes = randomBytes(3 * 1024 * 1024 + 17);
      const { up, seen } = upload(bytes, {
        endpoint: `${base}/${protocol}`,
        protocol,
        chunkSize: 256 * 1024,
        metadata: { filename: `${protocol}.bin`, user: 'node-test' },
        resume: false,
      });
      const result = await up.start();
      assert.equal(result.url, up.url);
      assert.deepEqual(seen.successes, [result]);
      assert.equal(seen.errors.length, 0);
      const info = await stored(result.url);
      assert.equal(info.complete, true);
      assert.equal(info.total, bytes.length);
      assert.equal(info.sha256, sha256(bytes));
      assert.equal(info.protocol, protocol);
      const types = seen.events.map((e) => e.type);
      assert.equal(types[0], 'transport');
      assert.equal(seen.events[0].name, 'fetch', 'Node has no XMLHttpRequest');
      assert.ok(types.includes('created'));
      assert.ok(types.filter((t) => t === 'retrying').length >= 3, `retries seen: ${types}`);
      assert.equal(types.at(-1), 'completed');
      assertProgressSane(seen, bytes.length);
      const sum = seen.chunks.reduce((n, [chunk]) => n + chunk, 0);
      assert.equal(sum, bytes.length, 'chunk sizes add up to the file');
      if (protocol === 'tus') assert.equal(info.metadata.user, 'node-test');
    });
  }

  test('auto discovers tus and adaptive chunking completes under random faults', async () => {
    await setFaults('seed=11,reset=0.15,error=0.1,busy=0.05,retry-after=1');
    const bytes = randomBytes(5 * 1024 * 1024);
    const { up, seen } = upload(bytes, { endpoint: `${base}/tus`, resume: false });
    const { url } = await up.start();
    const discovered = seen.events.find((e) => e.type === 'discovered');
    assert.equal(discovered?.protocol, 'tus');
    assert.equal(discovered?.assumed, false, 'the server said so');
    assert.equal((await stored(url)).sha256, sha256(bytes));
  });
});

describe('control', () => {
  test('pause stops sending, resume continues from the server offset', async () => {
    await setFaults('none');
    const bytes = randomBytes(4 * 1024 * 1024);
    let paused = false;
    const { up, seen } = upload(bytes, {
      endpoint: `${base}/ranged`,
      protocol: 'ranged',
      chunkSize: 256 * 1024,
      resume: false,
      onChunkComplete: (_c, acked, _t, self) => {
        if (!paused && acked >= 512 * 1024) {
          paused = true;
          self.pause();
        }
      },
    });
    const done = up.start();
    while (!paused) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 400));
    const atPause = (await stored(up.url)).stored;
    assert.ok(atPause < bytes.length, 'not complete while paused');
    await new Promise((r) => setTimeout(r, 400));
    assert.equal((await stored(up.url)).stored, atPause, 'nothing sent while paused');
    assert.ok(seen.events.some((e) => e.type === 'paused'));
    up.resume();
    const { url } = await done;
    assert.equal((await stored(url)).sha256, sha256(bytes));
  });

  test('abort(true) terminates: rejects with Terminated and removes the tus upload', async () => {
    await setFaults('none');
    const bytes = randomBytes(4 * 1024 * 1024);
    const { up, seen } = upload(bytes, {
      endpoint: `${base}/tus`,
      protocol: 'tus',
      chunkSize: 256 * 1024,
      resume: false,
      onChunkComplete: (_c, _a, _t, self) => self.abort(true),
    });
    const outcome = up.start().then(
      () => assert.fail('a terminated upload must not complete'),
      (e) => e,
    );
    const error = await outcome;
    assert.ok(error instanceof chunkup.UploadError);
    assert.equal(error.kind, 'Terminated');
    await up.abort(); // idempotent, settles at once
    assert.equal(seen.errors.length, 0, 'onError is not called for a terminate');
    assert.ok(seen.events.some((e) => e.type === 'terminated'));
    const id = new URL(up.url).pathname.split('/').pop();
    const response = await fetch(`${base}/_admin/uploads/${id}`);
    assert.equal(response.status, 404, 'terminated on the server');
  });

  test('abort() before start stops without a request', async () => {
    const { up, seen } = upload(randomBytes(10), { endpoint: `${base}/ranged` });
    await up.abort();
    await assert.rejects(up.done, (e) => e.kind === 'Stopped');
    assert.equal(seen.errors.length, 0);
  });

  test('an aborted signal stops the upload and keeps it on the server', async () => {
    await setFaults('none');
    const bytes = randomBytes(2 * 1024 * 1024);
    const controller = new AbortController();
    const { up, seen } = upload(bytes, {
      endpoint: `${base}/ranged`,
      protocol: 'ranged',
      chunkSize: 256 * 1024,
      resume: false,
      signal: controller.signal,
      onChunkComplete: () => controller.abort(),
    });
    await assert.rejects(up.start(), (e) => e.kind === 'Stopped');
    assert.ok(seen.events.some((e) => e.type === 'stopped'));
    const info = await stored(up.url);
    assert.ok(info.stored > 0 && info.stored < bytes.length, `kept mid-upload: ${info.stored}`);
    const late = upload(bytes, { endpoint: `${base}/ranged`, resume: false, signal: controller.signal });
    await assert.rejects(late.up.start(), (e) => e.kind === 'Stopped', 'an already aborted signal');
  });

  test('a known uploadUrl is resumed from the server offset', async () => {
    await setFaults('none');
    const bytes = randomBytes(2 * 1024 * 1024);
    let stop;
    const stopped = new Promise((r) => (stop = r));
    const first = upload(bytes, {
      endpoint: `${base}/ietf`,
      protocol: 'ietf',
      chunkSize: 256 * 1024,
      resume: false,
      onChunkComplete: (_c, acked, _t, self) => {
        if (acked >= 768 * 1024) {
          self.pause();
          stop(acked);
        }
      },
    });
    first.up.start();
    const acked = await stopped;
    const url = first.up.url;
    const second = upload(bytes, {
      endpoint: `${base}/ietf`,
      uploadUrl: url,
      protocol: 'ietf',
      chunkSize: 256 * 1024,
      resume: false,
    });
    const result = await second.up.start();
    assert.equal(result.url, url);
    const resumed = second.seen.events.find((e) => e.type === 'resumed');
    assert.ok(resumed && resumed.offset >= acked, `resumed at ${resumed?.offset}`);
    assert.equal((await stored(url)).sha256, sha256(bytes));
    await first.up.abort();
  });
});

describe('retry control: onShouldRetry and retryDelays', () => {
  const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

  test('an async onShouldRetry is asked before each retry; retryDelays are the waits', async () => {
    // Resets, not error statuses: a status answered before the body is read
    // may reach the client as a broken connection instead (a race).
    // Nothing of the chunk is stored (reset at byte 0): the second failure is attempt 2.
    await setFaults('script=1:reset@0;2:reset@0');
    const bytes = randomBytes(600 * 1024 + 3);
    const asked = [];
    const { up, seen } = upload(bytes, {
      endpoint: `${base}/tus`, protocol: 'tus', chunkSize: 256 * 1024, resume: false,
      retryDelays: [0, 40],
      onShouldRetry: async (cause, attempt) => {
        asked.push({ ...cause, attempt });
        await sleep(20);
        return true;
      },
    });
    const result = await up.start();
    assert.deepEqual(asked.map(({ kind, status, attempt }) => [kind, status, attempt]), [
      ['transport', null, 1],
      ['transport', null, 2],
    ]);
    assert.ok(asked.every((c) => /connection/.test(c.message)), JSON.stringify(asked));
    const retries = seen.events.filter((e) => e.type === 'retrying');
    assert.deepEqual(retries.map((e) => [e.attempt, e.delayMs]), [[1, 0], [2, 40]]);
    const info = await stored(result.url);
    assert.equal(info.sha256, sha256(bytes));
  });

  for (const [label, onShouldRetry] of [
    ['answers no', () => Promise.resolve(false)],
    ['throws', () => { throw new Error('no retries today'); }],
  ]) {
    test(`an onShouldRetry that ${label} ends the upload with RetryDeclined`, async () => {
      await setFaults('script=1:reset@5000');
      const { up, seen } = upload(randomBytes(600 * 1024), {
        endpoint: `${base}/tus`, protocol: 'tus', chunkSize: 256 * 1024, resume: false, onShouldRetry,
      });
      await assert.rejects(up.start(), (e) => e.kind === 'RetryDeclined' && /declined to retry after: connection/.test(e.message));
      assert.equal(seen.errors.length, 1);
      assert.ok(!seen.events.some((e) => e.type === 'retrying'), 'nothing retried');
      const info = await stored(up.url);
      assert.equal(info.complete, false);
    });
  }

  test('retryDelays must be milliseconds; onShouldRetry a function', async () => {
    for (const bad of [{ retryDelays: [-1] }, { retryDelays: '100' }, { onShouldRetry: true }]) {
      const { up } = upload(randomBytes(10), { endpoint: `${base}/tus`, resume: false, ...bad });
      await assert.rejects(up.start(), (e) => e.kind === 'InvalidConfig', JSON.stringify(bad));
    }
  });
});

/**
 * A token-checking proxy in front of `chunkup serve`: a request must carry
 * `Authorization: Bearer t<generation>`, else it is answered 401 (after its
 * body is read). The token expires (the generation moves on) after each
 * request number in `expireAfter`. `issue()` is the auth backend: the
 * current token. Closed after `t`.
 */
async function startTokenProxy(t, expireAfter) {
  let generation = 1;
  let forwarded = 0;
  const seen = [];
  const target = new URL(base);
  const server = createServer((req, res) => {
    const ok = req.headers.authorization === `Bearer t${generation}`;
    seen.push({ method: req.method, ok, static: req.headers['x-static'] });
    if (!ok) {
      req.resume();
      req.on('end', () => res.writeHead(401, { 'content-length': 0 }).end());
      return;
    }
    forwarded += 1;
    if (expireAfter.includes(forwarded)) generation += 1;
    const onward = httpRequest({
      host: target.hostname, port: target.port, path: req.url, method: req.method,
      headers: { ...req.headers, host: target.host },
    }, (answer) => {
      const headers = { ...answer.headers };
      if (headers.location) headers.location = headers.location.replace(base, proxyBase);
      res.writeHead(answer.statusCode, headers);
      answer.pipe(res);
    });
    onward.on('error', () => res.destroy());
    req.pipe(onward);
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  const proxyBase = `http://127.0.0.1:${server.address().port}`;
  t.after(() => new Promise((res) => server.close(res)));
  return { base: proxyBase, seen, issue: async () => `t${generation}` };
}

describe('getHeaders: credentials from the app before every request, refreshed once on 401', () => {
  test('a token that expires twice mid-upload is refreshed each time; every request asked', async (t) => {
    await setFaults('none');
    const proxy = await startTokenProxy(t, [3, 6]);
    let token = await proxy.issue();
    const asked = [];
    const bytes = randomBytes(8 * 128 * 1024 + 5);
    const { up, seen } = upload(bytes, {
      endpoint: `${proxy.base}/tus`, protocol: 'tus', chunkSize: 128 * 1024, resume: false,
      headers: { 'X-Static': 'kept' },
      getHeaders: async ({ url, method, refresh }) => {
        asked.push({ url, method, refresh });
        if (refresh) token = await proxy.issue();
        return { Authorization: `Bearer ${token}` };
      },
    });
    const result = await up.start();
    assert.equal((await stored(result.url.replace(proxy.base, base))).sha256, sha256(bytes));
    assert.equal(asked.length, proxy.seen.length, 'the provider is asked before every request');
    assert.deepEqual(asked.map((a) => a.method), proxy.seen.map((s) => s.method));
    assert.ok(asked.every((a) => a.url.startsWith(proxy.base)));
    assert.ok(proxy.seen.every((s) => s.static === 'kept'), 'the static headers still go too');
    assert.deepEqual(proxy.seen.filter((s) => !s.ok).length, 2, 'two requests refused');
    assert.equal(asked.filter((a) => a.refresh).length, 2, 'one refresh per expiry');
    const refused = proxy.seen.findIndex((s) => !s.ok);
    assert.equal(asked[refused + 1].refresh, true, 'the request after a 401 asks for fresh credentials');
    const retries = seen.events.filter((e) => e.type === 'retrying').map((e) => e.reasonKind);
    assert.deepEqual(retries, ['credentialsRefused', 'credentialsRefused']);
  });

  test('credentials refused again after a refresh: Rejected 401, no more tries', async (t) => {
    const proxy = await startTokenProxy(t, [1]);
    const asked = [];
    const { up } = upload(randomBytes(300 * 1024), {
      endpoint: `${proxy.base}/tus`, protocol: 'tus', chunkSize: 128 * 1024, resume: false,
      getHeaders: ({ refresh }) => {
        asked.push(refresh);
        return { Authorization: 'Bearer t1' }; // never a fresh one
      },
    });
    await assert.rejects(up.start(), (e) => e.kind === 'Rejected' && e.status === 401);
    assert.deepEqual(asked, [false, false, true]);
    assert.deepEqual(proxy.seen.map((s) => s.ok), [true, false, false]);
  });

  test('a provider that throws fails that attempt like a broken connection: retried', async (t) => {
    const proxy = await startTokenProxy(t, []);
    let calls = 0;
    const bytes = randomBytes(200 * 1024);
    const { up, seen } = upload(bytes, {
      endpoint: `${proxy.base}/tus`, protocol: 'tus', chunkSize: 128 * 1024, resume: false, retryDelays: [0],
      getHeaders: () => {
        calls += 1;
        if (calls === 2) throw new Error('auth backend down');
        return { Authorization: 'Bearer t1' };
      },
    });
    const result = await up.start();
    assert.equal((await stored(result.url.replace(proxy.base, base))).sha256, sha256(bytes));
    const retry = seen.events.find((e) => e.type === 'retrying');
    assert.equal(retry.reasonKind, 'transport');
    assert.match(retry.reason, /the header provider failed: Error: auth backend down/);
  });
});

describe('online/offline', () => {
  // Node has no network events: give globalThis the window's
  // addEventListener and play the browser.
  let network;
  before(() => {
    network = new EventTarget();
    globalThis.addEventListener = network.addEventListener.bind(network);
    globalThis.removeEventListener = network.removeEventListener.bind(network);
  });
  after(() => {
    delete globalThis.addEventListener;
    delete globalThis.removeEventListener;
  });

  test('offline pauses, online resumes; a user pause outlasts going online', async () => {
    await setFaults('none');
    const bytes = randomBytes(3 * 1024 * 1024);
    let wentOffline = false;
    const { up, seen } = upload(bytes, {
      endpoint: `${base}/tus`,
      protocol: 'tus',
      chunkSize: 256 * 1024,
      resume: false,
      onChunkComplete: (_c, acked) => {
        if (!wentOffline && acked >= 512 * 1024) {
          wentOffline = true;
          network.dispatchEvent(new Event('offline'));
        }
      },
    });
    const done = up.start();
    while (!wentOffline) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 300));
    const atOffline = (await stored(up.url)).stored;
    assert.ok(atOffline < bytes.length);
    const types = () => seen.events.map((e) => e.type);
    assert.ok(types().includes('offline') && types().includes('paused'), `${types()}`);
    // The user pauses too: coming back online must not resume.
    up.pause();
    network.dispatchEvent(new Event('online'));
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(types().includes('online'));
    assert.equal((await stored(up.url)).stored, atOffline, 'still paused by the user');
    up.resume();
    const { url } = await done;
    assert.equal((await stored(url)).sha256, sha256(bytes));
  });

  test('going online without having been offline changes nothing', async () => {
    await setFaults('none');
    const bytes = randomBytes(300 * 1024);
    const { up, seen } = upload(bytes, { endpoint: `${base}/ranged`, protocol: 'ranged', resume: false });
    const done = up.start();
    network.dispatchEvent(new Event('online'));
    await done;
    assert.ok(!seen.events.some((e) => e.type === 'paused'));
  });
});

describe('errors are typed', () => {
  test('an unusable URL', async () => {
    const { up, seen } = upload(randomBytes(10), { endpoint: 'not a url', resume: false });
    await assert.rejects(up.start(), (e) => {
      assert.ok(e instanceof chunkup.UploadError);
      assert.ok(e instanceof Error);
      assert.equal(e.kind, 'InvalidUrl');
      assert.match(e.message, /not a url/);
      return true;
    });
    assert.equal(seen.errors.length, 1);
  });

  test('bad options throw InvalidConfig', async () => {
    const { up } = upload(randomBytes(10), { endpoint: `${base}/ranged`, protocol: 'carrier-pigeon' });
    await assert.rejects(up.start(), (e) => e.kind === 'InvalidConfig');
    // (A string is a file path in Node: see sources.test.mjs.)
    assert.throws(() => new chunkup.Upload(42, { endpoint: base }), TypeError);
  });

  test('a refused connection exhausts the retries', async () => {
    const { up } = upload(randomBytes(10), {
      endpoint: 'http://127.0.0.1:9/ranged',
      protocol: 'ranged',
      retries: 2,
      resume: false,
    });
    await assert.rejects(up.start(), (e) => e.kind === 'RetriesExhausted');
  });

  test('a refusal carries the status', async () => {
    await setFaults('none');
    // Larger than the server's limit? No: a tus POST without a length is
    // impossible to provoke from here, so ask a path no protocol serves.
    const { up } = upload(randomBytes(10), {
      endpoint: `${base}/_nothing_here`,
      protocol: 'tus',
      resume: false,
    });
    await assert.rejects(up.start(), (e) => {
      assert.ok(e instanceof chunkup.UploadError);
      assert.equal(typeof e.status, 'number');
      return true;
    });
  });
});

describe('resume store (Web Storage API)', () => {
  after(() => {
    delete globalThis.localStorage;
  });

  test('a full quota degrades to an upload that cannot be resumed later', async () => {
    await setFaults('none');
    globalThis.localStorage = memoryStorage({ full: true });
    const bytes = randomBytes(600 * 1024);
    const file = new File([bytes], 'full.bin', { lastModified: 1700000000002 });
    const { up, seen } = upload(bytes, { endpoint: `${base}/ranged`, protocol: 'ranged' }, file);
    const { url } = await up.start();
    assert.equal((await stored(url)).sha256, sha256(bytes));
    const failed = seen.events.find((e) => e.type === 'storeFailed');
    assert.match(failed?.message ?? '', /QuotaExceededError/);
  });

  test('a remembered upload of the same file continues after a "reload"', async () => {
    await setFaults('none');
    const storage = memoryStorage();
    globalThis.localStorage = storage;
    const bytes = randomBytes(2 * 1024 * 1024);
    const file = new File([bytes], 'movie.bin', { lastModified: 1700000000000 });
    let stop;
    const stopped = new Promise((r) => (stop = r));
    const first = upload(bytes, {
      endpoint: `${base}/tus`,
      protocol: 'tus',
      chunkSize: 256 * 1024,
      onChunkComplete: (_c, acked, _t, self) => {
        if (acked >= 1024 * 1024) {
          self.pause();
          stop();
        }
      },
    }, file);
    first.up.start();
    await stopped;
    const keys = [...storage.map.keys()].filter((k) => k.startsWith('chunkup:resume:'));
    assert.equal(keys.length, 1, 'one record kept');
    const record = JSON.parse(storage.map.get(keys[0]));
    assert.equal(record.upload_url, first.up.url);
    assert.equal(record.protocol, 'tus');
    // Stale records of other uploads (expired; old without an expiry) are
    // swept on the next start; a fresh one stays.
    storage.map.set('chunkup:resume:00ff', JSON.stringify({ ...record, fingerprint: '00ff', expires_ms: 1 }));
    const { expires_ms: _, ...noExpiry } = record;
    storage.map.set('chunkup:resume:01ff', JSON.stringify({ ...noExpiry, fingerprint: '01ff', updated_ms: 1 }));
    storage.map.set('chunkup:resume:02ff', JSON.stringify({ ...noExpiry, fingerprint: '02ff', updated_ms: Date.now() }));
    // The page reloads: a new Upload of the same File, no uploadUrl given.
    const again = new File([bytes], 'movie.bin', { lastModified: 1700000000000 });
    const second = upload(bytes, { endpoint: `${base}/tus`, protocol: 'tus', chunkSize: 256 * 1024 }, again);
    const { url } = await second.up.start();
    assert.equal(url, first.up.url, 'the same upload was continued');
    const resumed = second.seen.events.find((e) => e.type === 'resumed');
    assert.ok(resumed?.offset >= 1024 * 1024, `resumed at ${resumed?.offset}`);
    const info = await stored(url);
    assert.equal(info.sha256, sha256(bytes));
    assert.ok(info.bytes_received < bytes.length + 512 * 1024, 'little was sent twice');
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual([...storage.map.keys()], ['chunkup:resume:02ff'], 'completed and stale records are removed');
    await first.up.abort();
  });
});

describe('stop and terminate with a resume store', () => {
  const records = (storage) =>
    [...storage.map.entries()].filter(([k]) => k.startsWith('chunkup:resume:')).map(([, v]) => JSON.parse(v));

  after(() => {
    delete globalThis.localStorage;
  });

  /** Starts an upload of `file` and stops or terminates it once 512 KiB are acknowledged. */
  async function endMidway(file, protocol, how) {
    const { up, seen } = upload(null, {
      endpoint: `${base}/${protocol}`,
      chunkSize: 128 * 1024,
      onChunkComplete: (_c, acked, _t, self) => {
        if (acked >= 512 * 1024) self[how]();
      },
    }, file);
    const error = await up.start().then(() => assert.fail('ended before completing'), (e) => e);
    return { up, seen, error };
  }

  test('stop keeps the upload and its record (name, size, endpoint, protocol); the next run continues it', async () => {
    await setFaults('none');
    const storage = memoryStorage();
    globalThis.localStorage = storage;
    const bytes = randomBytes(2 * 1024 * 1024);
    const makeFile = () => new File([bytes], 'kept.mov', { lastModified: 1700000000100 });
    const { up, seen, error } = await endMidway(makeFile(), 'tus', 'stop');
    assert.equal(error.kind, 'Stopped');
    assert.equal(seen.errors.length, 0, 'onError is not called for a stop');
    assert.equal(seen.events.at(-1).type, 'stopped');
    const info = await stored(up.url);
    assert.ok(info.stored >= 512 * 1024 && info.stored < bytes.length, `kept on the server: ${info.stored}`);
    const [record, ...more] = records(storage);
    assert.equal(more.length, 0, 'one record');
    assert.equal(record.upload_url, up.url);
    assert.equal(record.file_name, 'kept.mov');
    assert.equal(record.total, bytes.length);
    assert.equal(record.endpoint, `${base}/tus`);
    assert.equal(record.protocol, 'tus', 'auto settled tus, and the record says so');
    assert.ok(record.offset >= 512 * 1024, `offset hint ${record.offset}`);

    const again = upload(bytes, { endpoint: `${base}/tus` }, makeFile());
    const { url } = await again.up.start();
    assert.equal(url, up.url, 'the same upload was continued');
    const resumed = again.seen.events.find((e) => e.type === 'resumed');
    assert.ok(resumed?.offset >= 512 * 1024, `resumed at ${resumed?.offset}`);
    assert.equal((await stored(url)).sha256, sha256(bytes));
    assert.deepEqual(records(storage), [], 'a completed upload is forgotten');
  });

  test('remembered uploads: findPreviousUploads, listRememberedUploads, forgetRememberedUpload, resumeFromPreviousUpload', async () => {
    await setFaults('none');
    const storage = memoryStorage();
    globalThis.localStorage = storage;
    const endpoint = `${base}/tus`;
    const bytes = randomBytes(1024 * 1024);
    const fileA = () => new File([bytes], 'a.mov', { lastModified: 1700000000400 });
    const fileB = () => new File([bytes], 'b.mov', { lastModified: 1700000000500 });
    const a = await endMidway(fileA(), 'tus', 'stop');
    const b = await endMidway(fileB(), 'tus', 'stop');

    const all = await chunkup.listRememberedUploads();
    assert.deepEqual(all.map((r) => [r.fileName, r.url]), [['a.mov', a.up.url], ['b.mov', b.up.url]]);
    for (const r of all) {
      assert.equal(r.protocol, 'tus');
      assert.equal(r.size, bytes.length);
      assert.equal(r.endpoint, endpoint);
      assert.ok(r.acknowledged >= 512 * 1024 && r.acknowledged < bytes.length, `acknowledged ${r.acknowledged}`);
      assert.ok(r.createdMs > 1.7e12 && r.updatedMs >= r.createdMs);
      assert.equal(typeof r.key, 'string');
    }
    const [prevA] = all;
    assert.deepEqual(await new chunkup.Upload(fileA(), { endpoint }).findPreviousUploads(), [prevA]);
    assert.deepEqual(await new chunkup.Upload(fileA(), { endpoint: `${base}/ietf` }).findPreviousUploads(), [],
      'another endpoint is another upload');
    assert.deepEqual(await new chunkup.Upload(new Blob([bytes]), { endpoint }).findPreviousUploads(), [],
      'an anonymous Blob has none');
    assert.deepEqual(await new chunkup.Upload(fileA(), { endpoint, resume: false }).findPreviousUploads(), []);

    await chunkup.forgetRememberedUpload(prevA);
    assert.deepEqual((await chunkup.listRememberedUploads()).map((r) => r.fileName), ['b.mov']);
    assert.ok((await stored(a.up.url)).stored >= 512 * 1024, 'forgetting leaves the server alone');
    const fresh = upload(null, { endpoint }, fileA());
    const { url: freshUrl } = await fresh.up.start();
    assert.notEqual(freshUrl, a.up.url, 'a forgotten upload is not continued');
    assert.ok(!fresh.seen.events.some((e) => e.type === 'resumed'));

    const [prevB] = await new chunkup.Upload(fileB(), { endpoint }).findPreviousUploads();
    const chosen = upload(null, { endpoint, resume: false }, fileB());
    chosen.up.resumeFromPreviousUpload(prevB);
    const { url } = await chosen.up.start();
    assert.equal(url, b.up.url, 'continued at the remembered URL');
    assert.ok(chosen.seen.events.find((e) => e.type === 'resumed')?.offset >= 512 * 1024);
    assert.equal((await stored(url)).sha256, sha256(bytes));
    await assert.rejects(chunkup.forgetRememberedUpload(42), TypeError);
  });

  test('terminate removes the upload from the server and its record', async () => {
    await setFaults('none');
    const storage = memoryStorage();
    globalThis.localStorage = storage;
    const bytes = randomBytes(2 * 1024 * 1024);
    const file = new File([bytes], 'dropped.mov', { lastModified: 1700000000200 });
    const { up, seen, error } = await endMidway(file, 'tus', 'terminate');
    assert.equal(error.kind, 'Terminated');
    assert.equal(seen.errors.length, 0);
    assert.equal(seen.events.at(-1).type, 'terminated');
    const id = new URL(up.url).pathname.split('/').pop();
    assert.equal((await fetch(`${base}/_admin/uploads/${id}`)).status, 404, 'gone from the server');
    assert.deepEqual(records(storage), [], 'and from the store');
  });

  test('terminate before start removes a stopped upload of the same file', async () => {
    await setFaults('none');
    const storage = memoryStorage();
    globalThis.localStorage = storage;
    const bytes = randomBytes(1024 * 1024);
    const makeFile = () => new File([bytes], 'later.mov', { lastModified: 1700000000300 });
    const first = await endMidway(makeFile(), 'tus', 'stop');
    assert.equal(records(storage).length, 1);
    const second = upload(bytes, { endpoint: `${base}/tus` }, makeFile());
    await second.up.terminate();
    await assert.rejects(second.up.done, (e) => e.kind === 'Terminated');
    const id = new URL(first.up.url).pathname.split('/').pop();
    assert.equal((await fetch(`${base}/_admin/uploads/${id}`)).status, 404, 'the remembered upload is removed');
    assert.deepEqual(records(storage), []);
  });

  test('parallel parts: requests run at once, a stop keeps every part, the next run continues and joins them', async () => {
    await setFaults('none');
    const storage = memoryStorage();
    globalThis.localStorage = storage;
    const bytes = randomBytes(24 * 1024 * 1024); // three parts of 8 MiB
    const makeFile = () => new File([bytes], 'big.bin', { lastModified: 1700000000400 });
    // The driver calls the global fetch: count the requests open at once.
    const realFetch = globalThis.fetch;
    let open = 0;
    let most = 0;
    globalThis.fetch = async (...args) => {
      open += 1;
      most = Math.max(most, open);
      try {
        return await realFetch(...args);
      } finally {
        open -= 1;
      }
    };
    try {
      let asked = false;
      const first = upload(bytes, {
        endpoint: `${base}/tus`,
        parallel: 3,
        chunkSize: 1024 * 1024,
        onEvent: (e, self) => {
          if (e.type === 'progress' && e.bytesAcknowledged >= 6 * 1024 * 1024 && !asked) {
            asked = true;
            self.stop();
          }
        },
      }, makeFile());
      await assert.rejects(first.up.start(), (e) => e.kind === 'Stopped');
      assert.ok(most >= 3, `${most} requests at once`);
      const parts = records(storage);
      assert.equal(parts.length, 3, 'each part is remembered');
      assert.ok(parts.every((r) => r.part_of && r.protocol === 'tus' && r.total === 8 * 1024 * 1024));

      const again = upload(bytes, { endpoint: `${base}/tus`, parallel: 3, chunkSize: 1024 * 1024 }, makeFile());
      const { url } = await again.up.start();
      assert.equal((await stored(url)).sha256, sha256(bytes), 'the joined upload is the file');
      let received = 0;
      for (const part of parts) received += (await stored(part.upload_url)).bytes_received;
      assert.ok(received <= bytes.length + 3 * 1024 * 1024, `the parts continued: ${received} bytes received`);
      assert.deepEqual(records(storage), [], 'parts and file forgotten once joined');
    } finally {
      globalThis.fetch = realFetch;
    }
  });

  test('an anonymous Blob is never remembered; one with a fingerprint is', async () => {
    await setFaults('none');
    const storage = memoryStorage();
    globalThis.localStorage = storage;
    const bytes = randomBytes(1024 * 1024);
    const anonymous = await endMidway(new Blob([bytes]), 'ranged', 'stop');
    assert.equal(anonymous.error.kind, 'Stopped');
    assert.deepEqual(records(storage), [], 'nothing to match it by');
    // Another Blob of the same size is another upload, whole.
    const other = randomBytes(bytes.length);
    const second = upload(other, { endpoint: `${base}/ranged` });
    const { url: otherUrl } = await second.up.start();
    assert.notEqual(otherUrl, anonymous.up.url);
    assert.ok(!second.seen.events.some((e) => e.type === 'resumed'), 'not continued');
    assert.equal((await stored(otherUrl)).sha256, sha256(other));
    const { up } = upload(null, {
      endpoint: `${base}/ranged`,
      chunkSize: 128 * 1024,
      fingerprint: 'sha256:app-known-content',
      onChunkComplete: (_c, acked, _t, self) => {
        if (acked >= 512 * 1024) self.stop();
      },
    }, new Blob([bytes]));
    await assert.rejects(up.start(), (e) => e.kind === 'Stopped');
    const [record] = records(storage);
    assert.equal(record?.upload_url, up.url, 'the fingerprint names it');
    const again = upload(bytes, { endpoint: `${base}/ranged`, fingerprint: 'sha256:app-known-content' }, new Blob([bytes]));
    const { url } = await again.up.start();
    assert.equal(url, up.url, 'continued');
    assert.equal((await stored(url)).sha256, sha256(bytes));
  });
});

describe('resume store (IndexedDB fallback)', () => {
  after(() => {
    delete globalThis.localStorage;
    delete globalThis.indexedDB;
  });

  test('with localStorage full the record goes to IndexedDB and a "reload" resumes from it', async (t) => {
    const tools = process.env.CHUNKUP_TEST_TOOLS;
    let fake;
    try {
      fake = await import(pathToFileURL(resolve(tools ?? '', 'node_modules/fake-indexeddb/build/esm/index.js')).href);
    } catch {
      t.skip('fake-indexeddb is not installed (scripts/wasm.sh test installs it)');
      return;
    }
    await setFaults('none');
    const full = {
      length: 0,
      key: () => null,
      getItem: () => null,
      setItem: () => {
        throw new DOMException('the quota has been exceeded', 'QuotaExceededError');
      },
      removeItem: () => {},
    };
    globalThis.localStorage = full;
    globalThis.indexedDB = new fake.IDBFactory();
    const bytes = randomBytes(2 * 1024 * 1024);
    const makeFile = () => new File([bytes], 'idb.bin', { lastModified: 1700000000001 });
    let stop;
    const stopped = new Promise((r) => (stop = r));
    const first = upload(bytes, {
      endpoint: `${base}/ranged`,
      protocol: 'ranged',
      chunkSize: 256 * 1024,
      onChunkComplete: (_c, acked, _t, self) => {
        if (acked >= 1024 * 1024) {
          self.pause();
          stop();
        }
      },
    }, makeFile());
    first.up.start();
    await stopped;
    await new Promise((r) => setTimeout(r, 100)); // the IndexedDB write completes
    const failures = first.seen.events.filter((e) => e.type === 'storeFailed');
    assert.deepEqual(failures, [], 'IndexedDB took the record');
    const second = upload(bytes, { endpoint: `${base}/ranged`, protocol: 'ranged', chunkSize: 256 * 1024 }, makeFile());
    const { url } = await second.up.start();
    assert.equal(url, first.up.url, 'the same upload was continued');
    const resumed = second.seen.events.find((e) => e.type === 'resumed');
    assert.ok(resumed?.offset >= 1024 * 1024, `resumed at ${resumed?.offset}`);
    assert.equal((await stored(url)).sha256, sha256(bytes));
    await first.up.abort();
  });
});

describe('the package folder installs into a fresh project', () => {
  test('npm install <pkg>, import chunkup, upload; tsc --strict accepts the types', async (t) => {
    await setFaults('none');
    const project = mkdtempSync(join(tmpdir(), 'chunkup-consumer-'));
    try {
      writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
      execFileSync('npm', ['install', '--no-audit', '--no-fund', '--install-links', PKG], { cwd: project, stdio: 'pipe' });
      writeFileSync(
        join(project, 'main.mjs'),
        `import { Upload, UploadError } from 'chunkup';
         const bytes = new Uint8Array(300000).map((_, i) => i % 251);
         const up = new Upload(new Blob([bytes]), { endpoint: process.argv[2], protocol: 'ietf' });
         const { url } = await up.start();
         console.log(JSON.stringify({ url, isError: typeof UploadError }));`,
      );
      const out = execFileSync('node', ['main.mjs', `${base}/ietf`], { cwd: project, encoding: 'utf8' });
      // The declarations, as a TypeScript project would use them.
      const tsc = resolve(process.env.CHUNKUP_TEST_TOOLS ?? '', 'node_modules', 'typescript', 'bin', 'tsc');
      if (existsSync(tsc)) {
        copyFileSync(join(here, 'types', 'consumer.ts'), join(project, 'consumer.ts'));
        const args = ['--strict', '--noEmit', '--target', 'es2022', '--module', 'nodenext',
          '--moduleResolution', 'nodenext', '--lib', 'es2022,dom', 'consumer.ts'];
        try {
          execFileSync('node', [tsc, ...args], { cwd: project, encoding: 'utf8' });
        } catch (e) {
          assert.fail(`tsc: ${e.stdout}${e.stderr}`);
        }
      } else {
        t.diagnostic('typescript not installed: declarations not compiled');
      }
      const { url, isError } = JSON.parse(out.trim().split('\n').pop());
      assert.equal(isError, 'function');
      const expected = sha256(new Uint8Array(300000).map((_, i) => i % 251));
      assert.equal((await stored(url)).sha256, expected);
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  });
});
