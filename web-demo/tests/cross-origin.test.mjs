// The page on one port, the upload server on another: every upload request is
// cross-origin, so it only works when CORS (preflights, exposed headers such
// as Location, Upload-Offset and X-Last-Known-Byte) is right.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dropFiles, launch, makeFiles, openDemo, serverCopy, startServer, waitDone } from './harness.mjs';

test('uploads cross-origin, over every protocol, dropped or picked', async (t) => {
  const server = await startServer(t, { crossOrigin: true });
  const pageOrigin = new URL(server.page).origin;
  assert.notEqual(pageOrigin, new URL(server.base).origin);
  const { page, problems } = await launch(t);
  const requests = [];
  page.on('request', (r) => requests.push(r));
  await openDemo(page, server.page, { chunkSize: 1 << 20 });
  assert.match(await page.locator('#server-info').textContent(), /another origin/);

  const protocols = ['auto', 'ranged', 'tus', 'ietf'];
  const files = makeFiles(t, [(3 << 20) + 7, 2 << 20, 1 << 20, (2 << 20) + 1], protocols.map((p) => `${p}.dat`));
  for (const [i, protocol] of protocols.entries()) {
    await page.getByLabel('Protocol').selectOption(protocol);
    // One dragged and dropped, the others through the file picker.
    if (i === 0) await dropFiles(page, [files[i]]);
    else await page.setInputFiles('#file-input', files[i].path);
  }
  for (const file of files) {
    await waitDone(page, file.name);
    const copy = await serverCopy(server, page, file);
    assert.equal(copy.sha256, file.sha256, `${file.name}: sha256`);
    assert.equal(new URL(copy.url).origin, new URL(server.base).origin);
  }
  const uploads = requests.filter((r) => new URL(r.url()).origin === new URL(server.base).origin
    && !r.url().includes('/_admin/'));
  assert.ok(uploads.length >= files.length * 2, `upload requests went to the other origin (${uploads.length})`);
  assert.ok(requests.every((r) => r.url().startsWith(pageOrigin) || r.url().startsWith(server.base)
    || r.url().startsWith('data:')), 'no request left loopback');
  assert.deepEqual(problems, []);
});
