// Helpers for the tests that drive the npm package directly from a page
// (without the demo's UI): content made here and shipped into the page,
// uploads run there, and a stock @tus/server (interop/peers) as a peer on
// another origin.

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from './harness.mjs';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function sha256(bytes) {
  return createHash('sha256').update(bytes).digest('hex');
}

/** `size` random bytes, as base64 for the page and with their sha256. */
export function content(size) {
  const bytes = randomBytes(size);
  return { base64: bytes.toString('base64'), sha256: sha256(bytes), size };
}

/**
 * Uploads `base64` from the page with the package (`pkg/index.js` of the
 * page's origin): as a `File` when `name` is given, else as a plain Blob.
 * With `stopAt`, once that many bytes are acknowledged the upload is
 * `how`-ed ('pause' resolves at once; 'stop' and 'terminate' when it ended).
 * Resolves `{ok, url} | {error: {kind, message, status}} | {paused, url} |
 * {timedOut}` with the events seen, the upload's URL and the time taken.
 */
export function pageUpload(page, { base64, name, lastModified, options, stopAt, how = 'pause', timeoutMs = 60000 }) {
  return page.evaluate(async (args) => {
    const { Upload } = await import(new URL('pkg/index.js', location.href).href);
    const bytes = Uint8Array.from(atob(args.base64), (c) => c.charCodeAt(0));
    const source = args.name
      ? new File([bytes], args.name, { lastModified: args.lastModified })
      : new Blob([bytes]);
    const events = [];
    const started = performance.now();
    let ended = false;
    return new Promise((resolve) => {
      let up;
      const finish = (result) => {
        if (ended) return;
        ended = true;
        resolve({ ...result, url: result.url ?? up?.url ?? null, events, ms: performance.now() - started });
      };
      up = new Upload(source, {
        ...args.options,
        onEvent: (e) => events.push(JSON.parse(JSON.stringify(e))),
        onChunkComplete: (_chunk, acked) => {
          if (args.stopAt === undefined || acked < args.stopAt || up.asked) return;
          up.asked = true;
          up[args.how]();
          if (args.how === 'pause') finish({ paused: true, acked });
        },
      });
      up.start().then(
        (r) => finish({ ok: true, url: r.url }),
        (e) => finish({ error: { kind: e.kind, message: e.message, status: e.status } }),
      );
      setTimeout(() => finish({ timedOut: true }), args.timeoutMs);
    });
  }, { base64, name, lastModified, options, stopAt, how, timeoutMs });
}

/** The package's resume records in the page's localStorage. */
export function pageRecords(page) {
  return page.evaluate(() => Object.keys(localStorage)
    .filter((k) => k.startsWith('chunkup:resume:'))
    .map((k) => JSON.parse(localStorage.getItem(k))));
}

/**
 * Starts @tus/server 2.4.5 from interop/peers on a free 127.0.0.1 port:
 * stock (interop/peers/tus-server.mjs), or allowing only `allowedOrigin`
 * through CORS. Returns `{endpoint, dir}` (DIR/<id> holds an upload's
 * bytes); stopped after `t`.
 */
export async function startTusPeer(t, { allowedOrigin } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'chunkup-web-tus-'));
  const script = allowedOrigin
    ? [join(REPO, 'web-demo/tests/tus-peer.mjs'), dir, allowedOrigin]
    : [join(REPO, 'interop/peers/tus-server.mjs'), '0', dir];
  // stdin stays open: the peer exits when it closes.
  const child = spawn(process.execPath, script, { cwd: join(REPO, 'interop/peers'), stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise((res) => child.once('exit', res));
  t.after(async () => {
    child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  });
  let log = '';
  child.stderr.on('data', (chunk) => { log += chunk; });
  const endpoint = await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`@tus/server did not start:\n${log}`)), 15000);
    child.once('exit', (code) => { clearTimeout(timer); rej(new Error(`@tus/server exited ${code} (run scripts/browser_test.sh, which installs interop/peers):\n${log}`)); });
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const url = /listening (http:\/\/\S+)/.exec(out)?.[1];
      if (url) { clearTimeout(timer); res(url); }
    });
  });
  return { endpoint, dir };
}
