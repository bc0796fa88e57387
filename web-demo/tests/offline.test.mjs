// The browser's own signals and limits: going offline pauses an upload and
// coming back continues it; with localStorage full the package remembers
// uploads in IndexedDB, so a reload still resumes.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { idOf, launch, makeFiles, openDemo, row, serverCopy, startServer, until, waitDone } from './harness.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('offline pauses the upload, online continues it', async (t) => {
  const server = await startServer(t);
  const { ctx, page, throttle } = await launch(t);
  await openDemo(page, server.page, { chunkSize: 256 * 1024, protocol: 'ietf' });
  const [file] = makeFiles(t, [6 << 20], ['field-notes.mov']);
  await throttle(2 << 20);
  await page.setInputFiles('#file-input', file.path);
  const r = row(page, file.name);
  await until('some progress', async () => Number(await r.getAttribute('data-acked')) >= 512 * 1024);

  await ctx.setOffline(true);
  await r.getByText(/^Offline/).waitFor();
  await sleep(500); // the request cut by going offline may land its prefix
  const [first] = await server.uploads();
  await sleep(1500);
  const [second] = await server.uploads();
  assert.equal(second.bytes_received, first.bytes_received, 'nothing sent while offline');
  assert.ok(second.stored < file.size, 'offline mid-upload');

  await ctx.setOffline(false);
  await throttle(0);
  await waitDone(page, file.name);
  const copy = await serverCopy(server, page, file);
  assert.equal(copy.sha256, file.sha256);
  assert.ok(copy.bytes_received < file.size + (1 << 20), `${copy.bytes_received} bytes received for ${file.size}`);
});

test('with localStorage full, a reload still resumes (IndexedDB)', async (t) => {
  const server = await startServer(t);
  const { page, throttle, problems } = await launch(t);
  await openDemo(page, server.page, { chunkSize: 512 * 1024, protocol: 'tus' });
  const filled = await page.evaluate(() => {
    localStorage.clear();
    const block = 'x'.repeat(256 * 1024);
    let n = 0;
    for (;;) {
      try { localStorage.setItem(`filler-${n}`, block); n += 1; } catch { break; }
    }
    // Top up with smaller pieces until not even one character fits.
    for (let size = 16384; size >= 1; size = Math.floor(size / 4)) {
      try { for (;;) { localStorage.setItem(`filler-${n}`, 'y'.repeat(size)); n += 1; } } catch { /* next size */ }
    }
    return n;
  });
  assert.ok(filled > 0);

  const [file] = makeFiles(t, [6 << 20], ['quota.bin']);
  await throttle(2 << 20);
  await page.setInputFiles('#file-input', file.path);
  const before = await until('a quarter on the server', async () => {
    const [up] = await server.uploads();
    return up && up.stored >= file.size / 4 ? up : null;
  });
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  await throttle(0);
  assert.equal(await page.evaluate(() => localStorage.length), filled, 'localStorage still full, untouched');
  const databases = await page.evaluate(async () => (await indexedDB.databases()).map((d) => d.name));
  t.diagnostic(`IndexedDB databases: ${databases.join(', ')}`);
  assert.ok(databases.length > 0, 'the upload was remembered in IndexedDB');

  await page.setInputFiles('#file-input', file.path);
  const done = await waitDone(page, file.name);
  const resumedAt = Number(await done.getAttribute('data-resumed-at'));
  assert.ok(resumedAt >= before.stored, `resumed at ${resumedAt}, server held ${before.stored} before the reload`);
  const copy = await serverCopy(server, page, file);
  assert.equal(idOf(copy.url), before.id, 'the same upload continued');
  assert.equal(copy.sha256, file.sha256);
  assert.deepEqual(problems, []);
});
