// Pause stops the upload (the server's offset stays put), resume continues it
// without starting over; stop ends it but keeps it for later; cancel removes
// it for good.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { launch, makeFiles, openDemo, row, serverCopy, startServer, until, waitDone } from './harness.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('pause holds the server offset still, resume finishes the same upload', async (t) => {
  const server = await startServer(t);
  const { page, throttle, problems } = await launch(t);
  await openDemo(page, server.page, { chunkSize: 256 * 1024, protocol: 'ranged' });
  const files = makeFiles(t, [6 << 20, 4 << 20, 5 << 20], ['lecture-recording.webm', 'backup-2026-11.tar.zst', 'dataset.parquet']);
  await throttle(3 << 20);
  await page.setInputFiles('#file-input', files.map((f) => f.path));

  const paused = files[1];
  const r = row(page, paused.name);
  await until('some progress', async () => Number(await r.getAttribute('data-acked')) > 0);
  await r.getByRole('button', { name: `Pause ${paused.name}` }).click();
  assert.equal(await r.getAttribute('data-state'), 'paused');
  await r.getByRole('button', { name: `Resume ${paused.name}` }).waitFor();

  const held = async () => {
    const all = await server.uploads();
    return all.find((u) => u.filename === paused.name);
  };
  await sleep(1000); // a chunk already on the wire may still land
  const first = await held();
  assert.ok(first && first.stored < paused.size, 'paused mid-upload');
  // Let the other files run on while this one is paused.
  await until('the others to move on', async () => {
    const others = await Promise.all([files[0], files[2]].map((f) => row(page, f.name).getAttribute('data-acked')));
    return others.every((a) => Number(a) > 0.3 * (4 << 20));
  });
  const second = await held();
  assert.equal(second.stored, first.stored, 'nothing stored while paused');
  assert.equal(second.bytes_received, first.bytes_received, 'nothing sent while paused');
  t.diagnostic(`paused at ${first.stored} of ${paused.size} bytes, still ${second.stored} after the others moved on`);
  await r.getByText('Paused', { exact: true }).waitFor();

  await r.getByRole('button', { name: `Resume ${paused.name}` }).click();
  await throttle(0);
  for (const file of files) {
    await waitDone(page, file.name);
    const copy = await serverCopy(server, page, file);
    assert.equal(copy.sha256, file.sha256, `${file.name}: sha256`);
    assert.ok(copy.bytes_received < 2 * file.size, `${file.name}: ${copy.bytes_received} bytes received`);
  }
  const copy = await serverCopy(server, page, paused);
  assert.equal(copy.id, first.id, 'resume continued the same upload');
  assert.deepEqual(problems, []);
});

test('cancel stops an upload and removes it from the server', async (t) => {
  const server = await startServer(t);
  const { page, throttle, problems } = await launch(t);
  await openDemo(page, server.page, { chunkSize: 256 * 1024, protocol: 'tus' });
  const [keep, drop] = makeFiles(t, [2 << 20, 4 << 20], ['keep.bin', 'drop.bin']);
  await throttle(2 << 20);
  await page.setInputFiles('#file-input', [keep.path, drop.path]);
  const r = row(page, drop.name);
  await until('some progress', async () => Number(await r.getAttribute('data-acked')) > 0);
  const url = await r.getAttribute('data-url');
  await r.getByRole('button', { name: `Cancel ${drop.name}` }).click();
  assert.equal(await r.getAttribute('data-state'), 'cancelled');
  await throttle(0);
  await waitDone(page, keep.name);
  assert.equal((await serverCopy(server, page, keep)).sha256, keep.sha256);
  // tus termination: the cancelled upload is gone from the server.
  await until('the cancelled upload to be deleted', async () =>
    !(await server.uploads()).some((u) => url.endsWith(u.id)), 10000);
  assert.equal(await r.getAttribute('data-state'), 'cancelled');
  assert.match(await page.locator('#total-text').textContent(), /^1 of 1 file ·/);
  assert.deepEqual(problems, []);
});

test('stop keeps the upload on the server; continue finishes the same upload', async (t) => {
  const server = await startServer(t);
  const { page, throttle, problems } = await launch(t);
  await openDemo(page, server.page, { chunkSize: 256 * 1024, protocol: 'tus' });
  const [file] = makeFiles(t, [3 << 20], ['stopped.bin']);
  await throttle(2 << 20);
  await page.setInputFiles('#file-input', file.path);
  const r = row(page, file.name);
  await until('some progress', async () => Number(await r.getAttribute('data-acked')) > 0);
  await r.getByRole('button', { name: `Stop ${file.name}` }).click();
  assert.equal(await r.getAttribute('data-state'), 'stopped');
  await sleep(500);
  const url = await r.getAttribute('data-url');
  const kept = (await server.uploads()).find((u) => url.endsWith(u.id));
  assert.ok(kept && kept.stored < file.size, 'kept on the server, mid-upload');
  await throttle(0);
  await r.getByRole('button', { name: `Continue ${file.name}` }).click();
  await waitDone(page, file.name);
  const copy = await serverCopy(server, page, file);
  assert.equal(copy.id, kept.id, 'the same upload continued');
  assert.equal(copy.sha256, file.sha256);
  assert.ok(Number(await r.getAttribute('data-resumed-at')) > 0, 'resumed, not restarted');
  assert.deepEqual(problems, []);
});
