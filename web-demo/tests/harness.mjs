// Test harness: a real `chunkup serve --web-demo` process on 127.0.0.1 and a
// real headless Debian chromium (playwright-core, never a downloaded
// browser), both started and stopped by each test.

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.CHUNKUP_BIN ?? join(REPO, 'target/debug/chunkup');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
// CHUNKUP_WASM_PKG: test a package built elsewhere (default bindings/wasm/pkg).
/** Flags from TOOLCHAIN.md: no sandbox (root in CI), nothing phoning home. */
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage',
];

/** A scratch directory, removed after `t` (after what uses it has stopped, if `keep`). */
export function scratch(t, prefix, { keep = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), `chunkup-web-${prefix}-`));
  if (!keep) t.after(() => remove(dir));
  return dir;
}

// Cleanup never throws: a failing hook would skip the ones after it and
// leave a browser or server running.
function remove(dir) {
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
  } catch (e) {
    console.error(`cannot remove ${dir}: ${e.message}`);
  }
}

/**
 * Starts `chunkup serve --web-demo` on a free loopback port; with
 * `crossOrigin` the page gets a second port of its own. Stopped after `t`.
 */
export async function startServer(t, { crossOrigin = false, faults = 'none' } = {}) {
  const dir = scratch(t, 'store', { keep: true });
  const args = ['serve', '--addr', '127.0.0.1:0', '--dir', dir, '--faults', faults, '--web-demo', '--admin'];
  if (crossOrigin) args.push('--web-demo-addr', '127.0.0.1:0');
  if (process.env.CHUNKUP_WASM_PKG) args.push('--wasm-pkg', process.env.CHUNKUP_WASM_PKG);
  const child = spawn(BIN, args, { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const exited = new Promise((res) => child.once('exit', res));
  t.after(async () => {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 8000);
    await exited;
    clearTimeout(timer);
    remove(dir);
  });
  const found = await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`chunkup serve did not start:\n${log}`)), 15000);
    child.once('error', (e) => { clearTimeout(timer); rej(e); });
    child.once('exit', (code) => { clearTimeout(timer); rej(new Error(`chunkup serve exited ${code}:\n${log}`)); });
    child.stderr.on('data', (chunk) => {
      log += chunk;
      const base = /listening on (http:\/\/\S+)/.exec(log)?.[1];
      const page = /web demo: (http:\/\/\S+)/.exec(log)?.[1];
      if (base && page) { clearTimeout(timer); res({ base, page }); }
    });
  });
  return {
    ...found,
    log: () => log,
    async faults() { return getJson(`${found.base}/_admin/faults`); },
    async setFaults(spec) {
      const resp = await fetch(`${found.base}/_admin/faults`, { method: 'PUT', body: spec });
      if (!resp.ok) throw new Error(`PUT faults: ${resp.status}`);
    },
    async uploads() { return getJson(`${found.base}/_admin/uploads`); },
    async upload(id) { return getJson(`${found.base}/_admin/uploads/${id}`); },
  };
}

async function getJson(url) {
  const resp = await fetch(url);
  if (!resp.ok) throw new Error(`GET ${url}: ${resp.status}`);
  return resp.json();
}

/** Headless chromium with a fresh profile; closed (and the profile removed) after `t`. */
export async function launch(t, { viewport = { width: 900, height: 800 } } = {}) {
  const profile = scratch(t, 'profile', { keep: true });
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport,
  });
  t.after(async () => {
    await ctx.close().catch((e) => console.error(`closing chromium: ${e.message}`));
    remove(profile);
  });
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('Network.enable');
  return {
    ctx, page, problems,
    /** Limits the page's upload bandwidth (bytes/s; 0 = no limit) through DevTools. */
    async throttle(bytesPerSecond) {
      await cdp.send('Network.emulateNetworkConditions', {
        offline: false, latency: 0, downloadThroughput: -1,
        uploadThroughput: bytesPerSecond > 0 ? bytesPerSecond : -1,
      });
    },
  };
}

/** Opens the demo and waits until the package has loaded. */
export async function openDemo(page, url, params = {}) {
  const q = new URLSearchParams(params).toString();
  await page.goto(q ? `${url}?${q}` : url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 20000 });
}

/** Random files of the given sizes; returns [{path, name, size, sha256}]. */
export function makeFiles(t, sizes, names) {
  const dir = scratch(t, 'files');
  return sizes.map((size, i) => {
    const name = names?.[i] ?? `file-${i}.bin`;
    const bytes = randomBytes(size);
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return { path, name, size, sha256: createHash('sha256').update(bytes).digest('hex') };
  });
}

/** The row of the demo for a file name. */
export function row(page, name) {
  return page.locator('.upload').filter({ has: page.locator('.name', { hasText: name }) }).last();
}

/** The upload id at the end of an upload URL (`/tus/{id}` etc.). */
export function idOf(url) {
  return new URL(url).pathname.split('/').pop();
}

/** Polls `f` until it returns a truthy value, or fails after `ms`. */
export async function until(what, f, ms = 60000, every = 100) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Waits for a row to reach a final state and returns it, failing on `failed`. */
export async function waitDone(page, name, ms = 120000) {
  const r = row(page, name);
  await until(`${name} to finish`, async () => {
    const state = await r.getAttribute('data-state');
    if (state === 'failed') throw new Error(`${name} failed: ${await r.locator('.status').textContent()}`);
    return state === 'done';
  }, ms, 200);
  return r;
}

/** Asserts that the server holds exactly the file's bytes; returns the server's record. */
export async function serverCopy(server, page, file) {
  const url = await row(page, file.name).getAttribute('data-url');
  if (!url) throw new Error(`${file.name}: the page shows no upload URL`);
  const rec = await server.upload(idOf(url));
  return { url, ...rec };
}

/** Drops files on the demo's drop zone the way a drag from the desktop does. */
export async function dropFiles(page, files) {
  const payload = files.map((f) => ({
    name: f.name, base64: readFileSync(f.path).toString('base64'), lastModified: statSync(f.path).mtimeMs,
  }));
  const transfer = await page.evaluateHandle((items) => {
    const dt = new DataTransfer();
    for (const { name, base64, lastModified } of items) {
      const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      dt.items.add(new File([bytes], name, { lastModified: Math.floor(lastModified) }));
    }
    return dt;
  }, payload);
  await page.dispatchEvent('#drop-zone', 'dragover', { dataTransfer: transfer });
  await page.dispatchEvent('#drop-zone', 'drop', { dataTransfer: transfer });
}
