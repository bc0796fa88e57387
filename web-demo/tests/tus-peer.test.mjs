// The npm package in Chromium against a tus server nobody here wrote:
// stock @tus/server 2.4.5 (interop/peers) on another origin than the page,
// with the package's default protocol, 'auto'. Its CORS allows exactly its
// own headers (Access-Control-Allow-Headers: Authorization, Content-Type,
// Location, Tus-*, Upload-Concat/-Defer-Length/-Length/-Metadata/-Offset,
// X-HTTP-Method-Override, X-Requested-With, X-Forwarded-*, Forwarded) and
// exposes the same list, Tus-Version included. Discovery used to send
// Upload-Draft-Interop-Version, which that preflight refuses: the upload
// then retried for about a minute and failed. And a server whose CORS
// refuses the page altogether must end the upload within seconds with an
// error that says so.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { idOf, launch, openDemo, startServer } from './harness.mjs';
import { content, pageUpload, sha256, startTusPeer } from './package.mjs';

test("auto against a stock @tus/server on another origin discovers tus and completes", async (t) => {
  const site = await startServer(t); // the page's origin
  const peer = await startTusPeer(t);
  const { page, problems } = await launch(t);
  await openDemo(page, site.page);
  assert.notEqual(new URL(peer.endpoint).origin, new URL(site.page).origin);

  const source = content((3 << 20) + 5);
  const result = await pageUpload(page, { ...source, options: { endpoint: peer.endpoint }, timeoutMs: 30000 });
  assert.ok(result.ok, JSON.stringify(result.error ?? result));
  const discovered = result.events.find((e) => e.type === 'discovered');
  assert.deepEqual({ protocol: discovered?.protocol, assumed: discovered?.assumed }, { protocol: 'tus', assumed: false },
    'Tus-Version is exposed: the server said tus');
  assert.ok(!result.events.some((e) => e.type === 'retrying'), 'nothing refused on the way');
  assert.equal(new URL(result.url).origin, new URL(peer.endpoint).origin);
  assert.equal(sha256(readFileSync(join(peer.dir, idOf(result.url)))), source.sha256, 'the peer stored the bytes');
  t.diagnostic(`${source.size} bytes in ${Math.round(result.ms)} ms`);
  assert.deepEqual(problems, []);
});

test('a tus server whose CORS refuses the page ends the upload within seconds, naming CORS', async (t) => {
  const site = await startServer(t);
  const peer = await startTusPeer(t, { allowedOrigin: 'http://127.0.0.1:1' });
  const { page } = await launch(t);
  await openDemo(page, site.page);

  const result = await pageUpload(page, { ...content(1 << 20), options: { endpoint: peer.endpoint }, timeoutMs: 30000 });
  assert.equal(result.error?.kind, 'DiscoveryFailed', JSON.stringify(result));
  assert.match(result.error.message, /browser blocked a cross-origin request/);
  assert.match(result.error.message, /check the server's CORS/);
  assert.ok(result.ms < 10000, `ended in ${Math.round(result.ms)} ms`);
  t.diagnostic(`${result.error.message} (after ${Math.round(result.ms)} ms)`);
});
