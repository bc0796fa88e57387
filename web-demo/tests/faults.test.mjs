// Several files at once, one per protocol, while the server injects resets,
// 5xx and 503 + Retry-After (switched on through the page's "break the
// network" switch); every file must arrive byte for byte. Also takes a
// screenshot mid-upload: target/web-demo.png, or WEB_DEMO_SCREENSHOT=<path>
// (docs/web-demo.png refreshes the committed one; 0: none).

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { test } from 'node:test';
import { REPO, launch, makeFiles, openDemo, row, serverCopy, startServer, until, waitDone } from './harness.mjs';

const SCREENSHOT = process.env.WEB_DEMO_SCREENSHOT === '0' ? null
  : resolve(REPO, process.env.WEB_DEMO_SCREENSHOT || 'target/web-demo.png');

test('uploads several files under injected faults; the server stores each byte for byte', async (t) => {
  const server = await startServer(t);
  const { page, problems, throttle } = await launch(t, { viewport: { width: 860, height: 760 } });
  // Small fixed chunks: many chunk requests, so the faults surely hit some.
  // Random faults, plus a script so each kind surely happens whatever order
  // the three parallel uploads' requests arrive in. 503s say Retry-After: 1.
  const spec = 'seed=11,reset=0.1,error=0.1,busy=0.1,script=1:reset@1000;3:error@502;5:busy;8:error@500';
  await openDemo(page, server.page, { chunkSize: 256 * 1024, faults: spec });

  await page.getByRole('switch', { name: 'Break the network' }).check();
  await page.waitForFunction(() => document.querySelector('#fault-status').textContent.includes('Faults on'));
  const set = (await server.faults()).spec;
  assert.ok(set.includes('reset=0.1') && set.includes('3:error@502'), `the switch set the faults: ${set}`);

  await throttle(4 << 20); // ~3 s for the lot: time to see it happen
  const protocols = ['ranged', 'tus', 'ietf'];
  const files = makeFiles(t, [3 << 20, (2 << 20) + 12345, (4 << 20) - 1],
    ['holiday-video.mp4', 'thesis-draft.pdf', 'photos-2026.zip']);
  for (const [i, file] of files.entries()) {
    await page.getByLabel('Protocol').selectOption(protocols[i]);
    await page.setInputFiles('#file-input', file.path);
  }
  // The screenshot: mid-upload, faults on, retries in the statuses.
  const acked = () => page.locator('#total-bar').getAttribute('aria-valuenow').then(Number);
  await until('a third of the total', async () => (await acked()) >= 33);
  if (SCREENSHOT) {
    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  }
  await throttle(0);
  for (const file of files) await waitDone(page, file.name);

  for (const [i, file] of files.entries()) {
    const copy = await serverCopy(server, page, file);
    assert.equal(copy.sha256, file.sha256, `${file.name}: sha256 on the server`);
    assert.equal(copy.stored, file.size);
    assert.equal(copy.complete, true);
    assert.equal(copy.protocol, protocols[i], `${file.name} went over ${protocols[i]}`);
  }
  const { counts } = await server.faults();
  t.diagnostic(`faults injected: ${JSON.stringify(counts)}`);
  assert.ok(counts.resets > 0 && counts.errors > 0 && counts.busy > 0,
    `every kind of fault was injected: ${JSON.stringify(counts)}`);
  assert.match(await row(page, files[1].name).locator('.status').textContent(), /^Done/);
  assert.match(await page.locator('#total-text').textContent(), /^3 of 3 files/);

  await page.getByRole('switch', { name: 'Break the network' }).uncheck();
  await page.waitForFunction(() => !document.querySelector('#fault-status').textContent.includes('Faults on'));
  assert.equal((await server.faults()).spec, 'none', 'the switch turned the faults off');
  // Failed requests are the point here; anything else the page logs is not.
  assert.deepEqual(problems.filter((p) => !/Failed to load resource|net::ERR_/.test(p)), []);
});
