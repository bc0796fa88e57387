// Reloading the page mid-upload: after the same file is chosen again the
// upload continues on the server where it stopped instead of starting over.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { idOf, launch, makeFiles, openDemo, row, serverCopy, startServer, until, waitDone } from './harness.mjs';

test('a reload mid-upload resumes the same upload from the server offset', async (t) => {
  const server = await startServer(t);
  const { page, throttle } = await launch(t);
  const [file] = makeFiles(t, [8 << 20], ['holiday-video.mp4']);
  const params = { chunkSize: 512 * 1024, protocol: 'tus' };
  await openDemo(page, server.page, params);

  await throttle(2 << 20); // 2 MiB/s: the upload takes ~4 s
  await page.setInputFiles('#file-input', file.path);
  const before = await until('a quarter of the file on the server', async () => {
    const [up] = await server.uploads();
    return up && up.stored >= file.size / 4 ? up : null;
  });
  assert.ok(before.stored < file.size, 'still mid-upload when the page reloads');

  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  await throttle(0);
  // The page remembers the unfinished upload and says which file to choose.
  await page.locator('#remembered-section').getByText(file.name).waitFor();
  const atReload = (await server.upload(before.id)).stored;

  await page.setInputFiles('#file-input', file.path);
  const done = await waitDone(page, file.name);
  const resumedAt = Number(await done.getAttribute('data-resumed-at'));
  assert.ok(resumedAt >= atReload && resumedAt > 0, `resumed at ${resumedAt}, server held ${atReload}`);
  assert.match(await row(page, file.name).locator('.status').textContent(), /resumed at \d+(\.\d)?%/i);

  const copy = await serverCopy(server, page, file);
  t.diagnostic(`reloaded with ${before.stored} bytes stored, ${atReload} after; resumed at ${resumedAt}; ` +
    `${copy.bytes_received} bytes received for ${file.size}`);
  assert.equal(idOf(copy.url), before.id, 'the same upload continued, no new one');
  assert.equal(copy.sha256, file.sha256);
  assert.equal((await server.uploads()).length, 1, 'one upload on the server');
  assert.ok(copy.bytes_received < 2 * file.size,
    `resent little: ${copy.bytes_received} bytes received for ${file.size}`);
  assert.ok(copy.bytes_received <= file.size + 1024 * 1024,
    `at most the chunks in flight twice: ${copy.bytes_received} for ${file.size}`);
  assert.equal(await page.locator('#remembered-section').isHidden(), true, 'nothing left unfinished');
});
