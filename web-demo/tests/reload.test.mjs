// Reloading the page mid-upload: after the same files are chosen again each
// upload continues on the server where it stopped instead of starting over —
// over ranged, tus and IETF at once.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { idOf, launch, makeFiles, openDemo, row, serverCopy, startServer, until, waitDone } from './harness.mjs';

const CHUNK = 512 * 1024;

test('a reload mid-upload resumes the same uploads from the server offsets', async (t) => {
  const server = await startServer(t);
  const { page, throttle } = await launch(t);
  const protocols = ['ranged', 'tus', 'ietf'];
  const files = makeFiles(t, [6 << 20, (6 << 20) + 333, (5 << 20) - 7],
    ['holiday-video.mp4', 'backup.tar', 'scan.tiff']);
  await openDemo(page, server.page, { chunkSize: CHUNK });

  await throttle(3 << 20); // 3 MiB/s for 17 MiB: ~6 s
  for (const [i, file] of files.entries()) {
    await page.getByLabel('Protocol').selectOption(protocols[i]);
    await page.setInputFiles('#file-input', file.path);
  }
  const byName = async () => Object.fromEntries((await server.uploads()).map((u) => [u.filename, u]));
  const before = await until('each file partly on the server', async () => {
    const ups = await byName();
    return files.every((f) => ups[f.name]?.stored >= CHUNK) ? ups : null;
  });
  for (const file of files) assert.ok(before[file.name].stored < file.size, `${file.name} still mid-upload`);

  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  await throttle(0);
  // The page lists the unfinished uploads so the user knows what to choose.
  for (const file of files) await page.locator('#remembered').getByText(file.name).waitFor();
  const atReload = await byName();

  // All at once, with the selector on "auto": each goes back to its endpoint.
  await page.getByLabel('Protocol').selectOption('auto');
  await page.setInputFiles('#file-input', files.map((f) => f.path));
  for (const [i, file] of files.entries()) {
    const done = await waitDone(page, file.name);
    const resumedAt = Number(await done.getAttribute('data-resumed-at'));
    const held = atReload[file.name].stored;
    assert.ok(resumedAt >= held && resumedAt > 0, `${file.name}: resumed at ${resumedAt}, server held ${held}`);
    assert.match(await row(page, file.name).locator('.status').textContent(), /resumed at \d+(\.\d)?%/i);

    const copy = await serverCopy(server, page, file);
    t.diagnostic(`${protocols[i]}: reloaded with ${before[file.name].stored} stored, ${held} after, ` +
      `resumed at ${resumedAt}; ${copy.bytes_received} bytes received for ${file.size}`);
    assert.equal(idOf(copy.url), before[file.name].id, `${file.name}: the same upload continued`);
    assert.equal(copy.protocol, protocols[i]);
    assert.equal(copy.sha256, file.sha256, `${file.name}: sha256`);
    // Restarting would cost the whole file again; resuming at most the
    // chunk that was in flight.
    assert.ok(copy.bytes_received < 2 * file.size, `${file.name}: ${copy.bytes_received} bytes received`);
    assert.ok(copy.bytes_received <= file.size + CHUNK, `${file.name}: ${copy.bytes_received} bytes received`);
  }
  assert.equal((await server.uploads()).length, files.length, 'no new uploads');
  assert.equal(await page.locator('#remembered-section').isHidden(), true, 'nothing left unfinished');
});
