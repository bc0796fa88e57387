// The npm package in headless Chromium (Debian's chromium through
// playwright-core, never a downloaded browser) uploading S3 multipart
// through presigned URLs straight to SeaweedFS's S3 gateway on another
// origin, signed by the application's backend (interop/peers/s3_signer.py,
// boto3) on a third origin, as a page behind Uppy's signPart would. The
// bucket's CORS rules decide what the page may read: with `ExposeHeaders:
// ETag` the upload completes; without it the part's ETag is hidden from the
// page and the upload ends in a typed `ServerSetup` error that says what to
// configure. Run by `scripts/wasm.sh test` (it installs playwright-core into
// bindings/wasm/.tools and sets PLAYWRIGHT_CORE).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startSeaweedFs } from '../../../interop/peers/object-storage.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const PKG = resolve(process.env.CHUNKUP_PKG ?? join(here, '..', 'pkg'));
const PLAYWRIGHT_CORE = process.env.PLAYWRIGHT_CORE
  ?? join(here, '..', '.tools', 'node_modules', 'playwright-core', 'index.mjs');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage',
];
const MIB = 1024 * 1024;

let s3;
let web;
let origin;
let context;
let profile;
let page;

/** Serves the package under /pkg/ and an empty page at / (the page's origin). */
async function startPageServer() {
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>chunkup object storage</title>');
      return;
    }
    const file = path.startsWith('/pkg/') ? join(PKG, path.slice('/pkg/'.length)) : null;
    try {
      if (!file || !file.startsWith(PKG)) throw new Error('outside the package');
      const body = readFileSync(file);
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  return server;
}

before(async () => {
  const { chromium } = await import(pathToFileURL(PLAYWRIGHT_CORE).href);
  s3 = await startSeaweedFs();
  web = await startPageServer();
  origin = `http://127.0.0.1:${web.address().port}`;
  profile = mkdtempSync(join(tmpdir(), 'chunkup-s3-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS,
  });
  page = context.pages()[0] ?? (await context.newPage());
  await page.goto(`${origin}/`);
  await page.evaluate(async () => {
    window.chunkup = await import('/pkg/index.js');
    await window.chunkup.init();
  });
});

after(async () => {
  await context?.close().catch((e) => console.error(`closing chromium: ${e.message}`));
  if (profile) rmSync(profile, { recursive: true, force: true, maxRetries: 5 });
  await new Promise((res) => (web ? web.close(res) : res()));
  await s3?.stop();
});

/** The bucket's CORS: the page's origin may upload; `expose` lists the headers it may read. */
function corsRules(expose) {
  return [{
    AllowedOrigins: [origin],
    AllowedMethods: ['GET', 'PUT', 'POST', 'DELETE', 'HEAD'],
    AllowedHeaders: ['*'],
    ...(expose.length ? { ExposeHeaders: expose } : {}),
    MaxAgeSeconds: 600,
  }];
}

/**
 * Uploads `size` random bytes made in the page, to `key`, signed by the
 * backend through `fetch` from the page. `expireFirstPart`: the first URL of
 * part 1 has expired by the time it is used. Resolves `{result | error,
 * events, sha256, signed}` (`signed`: the actions the page asked to sign).
 */
function upload(key, size, options = {}, { expireFirstPart = false } = {}) {
  return page.evaluate(async ({ endpoint, signer, size, options, expireFirstPart }) => {
    const bytes = new Uint8Array(size);
    for (let at = 0; at < size; at += 65536) crypto.getRandomValues(bytes.subarray(at, at + 65536));
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    const sha256 = [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
    const signed = [];
    let expiredOnce = false;
    const sign = async (request) => {
      signed.push(request.action);
      const expired = expireFirstPart && !expiredOnce && request.action === 'UploadPart';
      if (expired) expiredOnce = true;
      const answer = await fetch(`${signer}/sign`, {
        method: 'POST',
        body: JSON.stringify({ ...request, ...(expired ? { expired: true } : {}) }),
      });
      if (!answer.ok) throw new Error(`the backend answered ${answer.status}`);
      return answer.json();
    };
    const events = [];
    const up = new window.chunkup.Upload(new Blob([bytes]), {
      endpoint, protocol: 's3', sign, resume: false, ...options,
      onEvent: (e) => events.push(
        e.type === 'retrying' ? `retrying ${e.reasonKind}` : e.type === 'transport' ? `transport ${e.name}` : e.type,
      ),
    });
    try {
      const result = await up.start();
      return { result, events, sha256, signed };
    } catch (e) {
      return { error: { kind: e.kind, message: e.message, status: e.status ?? null }, events, sha256, signed };
    }
  }, { endpoint: s3.objectUrl(key), signer: s3.signer, size, options, expireFirstPart });
}

describe('S3 multipart from Chromium to SeaweedFS on another origin', () => {
  test('with ExposeHeaders: ETag, parts in parallel over XHR, the object is the file', async () => {
    await s3.setCors(corsRules(['ETag']));
    const key = 'chromium/parallel.bin';
    const size = 12 * MIB + 7;
    const { result, error, events, sha256, signed } = await upload(key, size, { parallel: 2, chunkSize: 5 * MIB });
    assert.ok(result, `failed: ${error?.kind} ${error?.message}\n${events}`);
    assert.equal(result.url, s3.objectUrl(key));
    assert.equal(events[0], 'transport xhr', 'XMLHttpRequest, for byte-level progress');
    assert.deepEqual(await s3.object(key), { size, sha256 });
    assert.equal(signed[0], 'CreateMultipartUpload');
    assert.ok(signed.filter((a) => a === 'UploadPart').length >= 3, `parts: ${signed}`);
    assert.equal(signed.at(-1), 'CompleteMultipartUpload');
  });

  test('an expired presigned URL is signed again through the page\'s signer', async () => {
    await s3.setCors(corsRules(['ETag']));
    const key = 'chromium/expired.bin';
    const size = 2 * MIB + 1;
    const { result, error, events, sha256, signed } = await upload(key, size, {}, { expireFirstPart: true });
    assert.ok(result, `failed: ${error?.kind} ${error?.message}\n${events}`);
    assert.deepEqual(events.filter((e) => e.startsWith('retrying')), ['retrying signatureExpired']);
    assert.equal(signed.filter((a) => a === 'UploadPart').length, 2, 'the part was signed twice');
    assert.deepEqual(await s3.object(key), { size, sha256 });
  });

  test('without ExposeHeaders the ETag is hidden: a typed ServerSetup error naming the fix', async () => {
    await s3.setCors(corsRules([]));
    const key = 'chromium/no-expose.bin';
    const { result, error, events, signed } = await upload(key, MIB);
    assert.equal(result, undefined, 'the upload cannot complete without ETags');
    assert.equal(error.kind, 'ServerSetup', `${error.kind}: ${error.message}\n${events}`);
    assert.match(error.message, /CORS/);
    assert.match(error.message, /ExposeHeaders: ETag/);
    assert.ok(!events.some((e) => e.startsWith('retrying')), `a setup error is not retried: ${events}`);
    assert.equal(signed.filter((a) => a === 'UploadPart').length, 1, 'stops at the first part');
    assert.equal(await s3.object(key), null, 'nothing completed');
  });
});
