// Bundler check (run by `scripts/wasm.sh bundler`): webpack 5 bundles an app
// that imports the package folder, headless Chromium loads the bundle from a
// loopback server, the bundle uploads to `chunkup serve` over XHR, and the
// server's sha256 must match. Environment: CHUNKUP_BIN, CHUNKUP_PKG,
// CHUNKUP_TEST_TOOLS (webpack), PLAYWRIGHT_CORE (module path), CHROMIUM.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const { CHUNKUP_BIN, CHUNKUP_PKG, CHUNKUP_TEST_TOOLS, PLAYWRIGHT_CORE } = process.env;
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const { chromium } = await import(pathToFileURL(PLAYWRIGHT_CORE).href);

const work = mkdtempSync(join(tmpdir(), 'chunkup-bundler-'));
let server;
let web;
let browser;
try {
  // 1. An app that depends on the package folder, bundled by webpack.
  writeFileSync(join(work, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--install-links', CHUNKUP_PKG], { cwd: work, stdio: 'pipe' });
  cpSync(join(here, 'main.js'), join(work, 'main.js'));
  writeFileSync(
    join(work, 'webpack.config.mjs'),
    `export default { mode: 'production', entry: './main.js', target: 'web',
       performance: { hints: false },
       output: { path: ${JSON.stringify(join(work, 'dist'))}, publicPath: 'auto' } };`,
  );
  const webpack = join(CHUNKUP_TEST_TOOLS, 'node_modules', 'webpack-cli', 'bin', 'cli.js');
  const log = execFileSync('node', [webpack, '--config', 'webpack.config.mjs'], { cwd: work, encoding: 'utf8' });
  assert.match(log, /compiled successfully/, log);
  assert.match(log, /\.wasm/, 'the wasm is emitted as an asset');
  writeFileSync(join(work, 'dist', 'index.html'), '<!doctype html><script src="main.js"></script>');

  // 2. The upload server and a static server for the bundle (two origins).
  const dataDir = join(work, 'data');
  server = spawn(CHUNKUP_BIN, ['serve', '--addr', '127.0.0.1:0', '--admin', '--dir', dataDir], { stdio: ['ignore', 'ignore', 'pipe'] });
  const base = await new Promise((resolve, reject) => {
    let seen = '';
    server.on('exit', (code) => reject(new Error(`chunkup serve exited ${code}: ${seen}`)));
    server.stderr.setEncoding('utf8');
    server.stderr.on('data', (t) => {
      seen += t;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(seen);
      if (m) resolve(m[1]);
    });
  });
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };
  web = createServer((req, res) => {
    const file = join(work, 'dist', new URL(req.url, 'http://x').pathname.replace(/^\/$/, '/index.html'));
    try {
      const body = readFileSync(file);
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => web.listen(0, '127.0.0.1', r));
  const page_url = `http://127.0.0.1:${web.address().port}/`;

  // 3. Chromium runs the bundle.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(page_url);
  const size = 700 * 1024 + 3;
  const result = await page.evaluate(([endpoint, n]) => window.runUpload(endpoint, n), [`${base}/tus`, size]);
  assert.deepEqual(errors, []);
  assert.equal(result.transport, 'transport:xhr');
  assert.equal(result.isError, 'function');
  assert.ok(result.progress > 0);
  const id = new URL(result.url).pathname.split('/').pop();
  const info = await (await fetch(`${base}/_admin/uploads/${id}`)).json();
  const bytes = new Uint8Array(size).map((_, i) => (i * 7) % 256);
  assert.equal(info.sha256, createHash('sha256').update(bytes).digest('hex'));
  console.log(`bundler check: webpack bundle uploaded ${size} bytes from Chromium over XHR (cross-origin, tus via auto); sha256 matches`);
} finally {
  await browser?.close();
  web?.close();
  server?.removeAllListeners('exit');
  server?.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
}
