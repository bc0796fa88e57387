// Which upload a file is (npm package, in Chromium with the real
// localStorage). Two different anonymous Blobs of one size must never
// continue each other's upload — before the core's session layer they did,
// and the server stored the first Blob's head with the second's tail. A
// File (name, size, lastModified) and a Blob the app names with a
// `fingerprint` do continue after a reload.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { idOf, launch, openDemo, startServer } from './harness.mjs';
import { content, pageRecords, pageUpload, sleep } from './package.mjs';

const SIZE = 2 << 20;
const CHUNK = 256 * 1024;

async function reload(page) {
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]', { timeout: 20000 });
}

test('a second anonymous Blob of the same size is uploaded whole after the first was paused and the page reloaded', async (t) => {
  const server = await startServer(t);
  const { page, throttle } = await launch(t);
  await openDemo(page, server.page);
  const endpoint = `${server.base}/tus`;
  const [a, b] = [content(SIZE), content(SIZE)];

  await throttle(1 << 20); // time to pause half way
  const first = await pageUpload(page, { ...a, options: { endpoint, chunkSize: CHUNK }, stopAt: SIZE / 4 });
  assert.ok(first.paused && first.url, `the first upload was paused mid-way: ${JSON.stringify(first)}`);
  await sleep(300); // anything the store was to write is written
  const remembered = await pageRecords(page);
  await reload(page);
  await throttle(0);

  const second = await pageUpload(page, { ...b, options: { endpoint, chunkSize: CHUNK } });
  assert.ok(second.ok, `the second upload completed: ${JSON.stringify(second.error ?? second)}`);
  const copy = await server.upload(idOf(second.url));
  assert.equal(copy.sha256, b.sha256, 'the server holds exactly the second Blob');
  assert.notEqual(idOf(second.url), idOf(first.url), 'a new upload, not the first one continued');
  assert.ok(!second.events.some((e) => e.type === 'resumed'), 'nothing resumed');
  const held = await server.upload(idOf(first.url));
  assert.ok(held.stored < SIZE, 'the first upload is untouched');
  assert.deepEqual(remembered, [], 'an anonymous Blob is not remembered');
});

test('stop() keeps the first anonymous upload; a second Blob of the same size is a new upload', async (t) => {
  const server = await startServer(t);
  const { page, throttle } = await launch(t);
  await openDemo(page, server.page);
  const endpoint = `${server.base}/tus`;
  const [a, b] = [content(SIZE), content(SIZE)];

  await throttle(1 << 20);
  const first = await pageUpload(page, { ...a, options: { endpoint, chunkSize: CHUNK }, stopAt: SIZE / 4, how: 'stop' });
  assert.equal(first.error?.kind, 'Stopped', JSON.stringify(first));
  assert.equal(first.events.at(-1)?.type, 'stopped');
  await throttle(0);
  const kept = await server.upload(idOf(first.url));
  assert.ok(kept.stored >= SIZE / 4 && kept.stored < SIZE, `kept on the server: ${kept.stored}`);

  const second = await pageUpload(page, { ...b, options: { endpoint, chunkSize: CHUNK } });
  assert.ok(second.ok, JSON.stringify(second.error ?? second));
  assert.notEqual(idOf(second.url), idOf(first.url));
  assert.equal((await server.upload(idOf(second.url))).sha256, b.sha256);
  assert.deepEqual(await pageRecords(page), []);
});

test('a File with the same name, size and lastModified, and a Blob with the same app fingerprint, continue after a reload', async (t) => {
  const server = await startServer(t);
  const { page, throttle } = await launch(t);
  await openDemo(page, server.page);
  const file = { ...content(SIZE), name: 'holiday.mov', lastModified: 1767225600000 };
  const named = { ...content(SIZE), options: { fingerprint: 'app:asset-42' } };
  const runs = [
    { what: 'File', endpoint: `${server.base}/tus`, source: file },
    { what: 'fingerprinted Blob', endpoint: `${server.base}/ranged`, source: named },
  ];

  await throttle(1 << 20);
  for (const run of runs) {
    const options = { ...run.source.options, endpoint: run.endpoint, chunkSize: CHUNK };
    run.first = await pageUpload(page, { ...run.source, options, stopAt: SIZE / 4 });
    assert.ok(run.first.paused && run.first.url, `${run.what}: paused mid-way`);
  }
  await sleep(300);
  const records = await pageRecords(page);
  assert.deepEqual(records.map((r) => r.upload_url).sort(), runs.map((r) => r.first.url).sort(), 'both remembered');
  assert.ok(records.some((r) => r.file_name === 'holiday.mov' && r.total === SIZE), 'the record names the file');
  await reload(page);
  await throttle(0);

  for (const run of runs) {
    const options = { ...run.source.options, endpoint: run.endpoint, chunkSize: CHUNK };
    const again = await pageUpload(page, { ...run.source, options });
    assert.ok(again.ok, `${run.what}: ${JSON.stringify(again.error ?? again)}`);
    assert.equal(again.url, run.first.url, `${run.what}: the same upload continued`);
    const resumed = again.events.find((e) => e.type === 'resumed');
    assert.ok(resumed?.offset >= SIZE / 4, `${run.what}: resumed at ${resumed?.offset}`);
    const copy = await server.upload(idOf(again.url));
    assert.equal(copy.sha256, run.source.sha256, `${run.what}: sha256`);
    assert.ok(copy.bytes_received < SIZE + 2 * CHUNK, `${run.what}: ${copy.bytes_received} bytes received`);
  }
  assert.deepEqual(await pageRecords(page), [], 'completed uploads are forgotten');
});
