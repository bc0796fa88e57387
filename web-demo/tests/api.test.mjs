// The npm package's common API (issue #12) in headless Chromium, driven
// from a page against real servers on 127.0.0.1: a header provider that
// refreshes a token a cross-origin gateway expires mid-upload
// (tests/token_proxy.py), retry control, remembered uploads listed,
// continued and forgotten, a ReadableStream of deferred length, and typed
// events and errors.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
/* global chunkup, decode */
import { REPO, idOf, launch, openDemo, startServer } from './harness.mjs';
import { content } from './package.mjs';

const CHUNK = 256 * 1024;

/** tests/token_proxy.py in front of `upstream`, answering CORS for `origin`; stopped after `t`. */
async function startTokenProxy(t, upstream, usesPerToken, origin) {
  const python = process.env.CHUNKUP_PEERS_PYTHON ?? 'python3';
  const child = spawn(python, [join(REPO, 'tests/token_proxy.py'), upstream, String(usesPerToken), origin], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((res) => child.once('exit', res));
  t.after(async () => {
    child.kill('SIGTERM');
    await exited;
  });
  let log = '';
  child.stderr.on('data', (chunk) => { log += chunk; });
  const url = await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`token_proxy.py did not start:\n${log}`)), 15000);
    child.once('exit', (code) => { clearTimeout(timer); rej(new Error(`token_proxy.py exited ${code}:\n${log}`)); });
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const found = /listening on (http:\/\/\S+)/.exec(out)?.[1];
      if (found) { clearTimeout(timer); res(found); }
    });
  });
  return { url, stats: async () => (await fetch(`${url}/_stats`)).json() };
}

/**
 * Opens the demo page (the package's origin) and imports the package there
 * as `chunkup`, with `decode(base64)` for the content shipped in.
 */
async function packagePage(t, server) {
  const browser = await launch(t);
  await openDemo(browser.page, server.page);
  await browser.page.evaluate(async () => {
    globalThis.chunkup = await import(new URL('pkg/index.js', location.href).href);
    globalThis.decode = (base64) => Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  });
  return browser;
}

test('getHeaders: a token the gateway expires mid-upload is refreshed, one refresh per refusal', async (t) => {
  const server = await startServer(t);
  const { page } = await packagePage(t, server);
  const proxy = await startTokenProxy(t, server.base, 3, new URL(server.page).origin);
  const data = content(12 * CHUNK + 5);

  const result = await page.evaluate(async (args) => {
    const bytes = decode(args.base64);
    const calls = [];
    let token = null;
    const events = [];
    const up = new chunkup.Upload(new Blob([bytes]), {
      endpoint: `${args.proxy}/tus`, protocol: 'tus', chunkSize: args.chunk,
      getHeaders: async (request) => {
        calls.push({ method: request.method, refresh: request.refresh });
        if (token === null || request.refresh) {
          token = (await (await fetch(`${args.proxy}/token`, { method: 'POST' })).json()).token;
        }
        return { Authorization: `Bearer ${token}` };
      },
      onEvent: (e) => events.push(e.type === 'retrying' ? `retrying:${e.reasonKind}:${e.status}` : e.type),
    });
    try {
      const done = await up.start();
      return { url: done.url, calls, events };
    } catch (e) {
      return { error: { kind: e.kind, status: e.status, message: e.message }, calls, events };
    }
  }, { base64: data.base64, proxy: proxy.url, chunk: CHUNK });

  assert.ok(!result.error, JSON.stringify(result.error));
  const stats = await proxy.stats();
  assert.equal((await server.upload(idOf(result.url))).sha256, data.sha256, 'the bytes arrived exactly');
  assert.ok(stats.refused >= 3, `the token expired mid-upload several times: ${JSON.stringify(stats)}`);
  assert.equal(result.calls.length, stats.forwarded + stats.refused, 'the provider prepared every request');
  assert.equal(result.calls.filter((c) => c.refresh).length, stats.refused, 'one refresh per refusal');
  // Each refusal shows as a retry for fresh credentials, none as anything else.
  const retries = result.events.filter((e) => e.startsWith('retrying'));
  assert.deepEqual(retries, retries.map(() => 'retrying:credentialsRefused:401'), result.events.join(' '));
  assert.equal(retries.length, stats.refused, result.events.join(' '));
  assert.equal(result.events.at(-1), 'completed');
});

test('onShouldRetry and retryDelays: every retry is asked, the delays are the given ones; a no ends the upload', async (t) => {
  const server = await startServer(t, { faults: 'script=0:error;1:error' });
  const { page } = await packagePage(t, server);
  const data = content(4 * CHUNK);

  const asked = await page.evaluate(async (args) => {
    const bytes = decode(args.base64);
    const questions = [];
    const retries = [];
    await new chunkup.Upload(new Blob([bytes]), {
      endpoint: args.endpoint, protocol: 'tus', chunkSize: args.chunk, retryDelays: [150, 300],
      onShouldRetry: (cause, attempt) => { questions.push({ status: cause.status, attempt }); return true; },
      onEvent: (e) => { if (e.type === 'retrying') retries.push({ delayMs: e.delayMs, status: e.status }); },
    }).start();
    return { questions, retries };
  }, { base64: data.base64, endpoint: `${server.base}/tus`, chunk: CHUNK });
  assert.deepEqual(asked.questions.map((q) => q.attempt), [1, 2]);
  assert.ok(asked.questions.every((q) => q.status >= 500), JSON.stringify(asked.questions));
  assert.deepEqual(asked.retries.map((r) => r.delayMs), [150, 300]);

  await server.setFaults('error=1');
  const declined = await page.evaluate(async (args) => {
    const bytes = decode(args.base64);
    try {
      await new chunkup.Upload(new Blob([bytes]), {
        endpoint: args.endpoint, protocol: 'tus', chunkSize: args.chunk, onShouldRetry: async () => false,
      }).start();
      return { completed: true };
    } catch (e) {
      return { name: e.constructor.name, kind: e.kind, retryable: e.retryable };
    }
  }, { base64: data.base64, endpoint: `${server.base}/tus`, chunk: CHUNK });
  assert.deepEqual(declined, { name: 'UploadError', kind: 'RetryDeclined', retryable: false });
});

test('remembered uploads: listed with their fields, continued by choice, forgotten', async (t) => {
  const server = await startServer(t);
  const { page, throttle } = await packagePage(t, server);
  const data = content(16 * CHUNK);
  await throttle(1 << 20);

  const kept = await page.evaluate(async (args) => {
    const bytes = decode(args.base64);
    const file = new File([bytes], 'holiday.mov', { lastModified: 1767225600000 });
    const up = new chunkup.Upload(file, {
      endpoint: args.endpoint, protocol: 'tus', chunkSize: args.chunk, metadata: { album: 'summer' },
      onChunkComplete: (_chunk, acked) => { if (acked >= 2 * args.chunk) up.stop(); },
    });
    await up.start().catch(() => {});
    return chunkup.listRememberedUploads();
  }, { base64: data.base64, endpoint: `${server.base}/tus`, chunk: CHUNK });
  await throttle(0);
  assert.equal(kept.length, 1, JSON.stringify(kept));
  const [record] = kept;
  assert.equal(record.fileName, 'holiday.mov');
  assert.equal(record.size, data.size);
  assert.equal(record.protocol, 'tus');
  assert.equal(record.endpoint, `${server.base}/tus`);
  assert.equal(record.metadata.album, 'summer');
  assert.ok(record.acknowledged >= 2 * CHUNK && record.acknowledged < data.size, `${record.acknowledged}`);
  assert.ok(record.updatedMs >= record.createdMs && record.createdMs > 0);

  const continued = await page.evaluate(async (args) => {
    const bytes = decode(args.base64);
    const file = new File([bytes], 'holiday.mov', { lastModified: 1767225600000 });
    const events = [];
    const up = new chunkup.Upload(file, {
      endpoint: args.endpoint, protocol: 'tus', chunkSize: args.chunk, onEvent: (e) => events.push(e),
    });
    const previous = await up.findPreviousUploads();
    up.resumeFromPreviousUpload(previous[0]);
    const done = await up.start();
    return { found: previous.length, url: done.url, resumed: events.find((e) => e.type === 'resumed'), left: await chunkup.listRememberedUploads() };
  }, { base64: data.base64, endpoint: `${server.base}/tus`, chunk: CHUNK });
  assert.equal(continued.found, 1);
  assert.equal(continued.url, record.url, 'the chosen upload continued');
  assert.ok(continued.resumed.offset >= record.acknowledged, JSON.stringify(continued.resumed));
  assert.equal((await server.upload(idOf(continued.url))).sha256, data.sha256);
  assert.deepEqual(continued.left, [], 'a completed upload is not remembered');

  // Forget: a stopped upload's record goes; the upload stays on the server.
  const forgotten = await page.evaluate(async (args) => {
    const bytes = decode(args.base64);
    const file = new File([bytes], 'other.mov', { lastModified: 1767225600001 });
    const up = new chunkup.Upload(file, {
      endpoint: args.endpoint, protocol: 'tus', chunkSize: args.chunk,
      onChunkComplete: () => up.stop(),
    });
    await up.start().catch(() => {});
    const [kept] = await chunkup.listRememberedUploads();
    await chunkup.forgetRememberedUpload(kept);
    return { url: kept.url, left: await chunkup.listRememberedUploads() };
  }, { base64: data.base64, endpoint: `${server.base}/tus`, chunk: CHUNK });
  assert.deepEqual(forgotten.left, []);
  assert.ok((await server.upload(idOf(forgotten.url))).stored > 0, 'still on the server');
});

test('a ReadableStream of deferred length over tus and IETF, with faults: exact bytes, typed progress', async (t) => {
  const server = await startServer(t, { faults: 'seed=5,reset=0.1,error=0.1' });
  const { page } = await packagePage(t, server);
  const data = content(10 * CHUNK + 77);
  for (const protocol of ['tus', 'ietf']) {
    const result = await page.evaluate(async (args) => {
    const bytes = decode(args.base64);
      let at = 0;
      const stream = new ReadableStream({
        pull(controller) {
          if (at >= bytes.length) return controller.close();
          const end = Math.min(bytes.length, at + 100000);
          controller.enqueue(bytes.slice(at, end));
          at = end;
        },
      }, { highWaterMark: 0 });
      const progress = [];
      const done = await new chunkup.Upload(stream, {
        endpoint: args.endpoint, protocol: args.protocol, chunkSize: args.chunk, progressIntervalMs: 0,
        onEvent: (e) => { if (e.type === 'progress') progress.push(e); },
      }).start();
      return { url: done.url, last: progress.at(-1), fields: Object.keys(progress.at(-1)).sort() };
    }, { base64: data.base64, endpoint: `${server.base}/${protocol === 'tus' ? 'tus' : 'ietf'}`, chunk: CHUNK, protocol });
    assert.equal((await server.upload(idOf(result.url))).sha256, data.sha256, protocol);
    assert.equal(result.last.bytesAcknowledged, data.size, protocol);
    assert.equal(result.last.bytesTotal, data.size, protocol);
    for (const field of ['bytesAcknowledged', 'bytesSent', 'bytesTotal', 'speed', 'etaMs']) {
      assert.ok(result.fields.includes(field), `${protocol}: progress has ${field}: ${result.fields}`);
    }
  }
});
