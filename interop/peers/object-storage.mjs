// The object-storage peers for chunkup's JavaScript tests (the npm package in
// Node, bindings/wasm/tests; and in Chromium, web-demo/tests), started the
// way the Rust harness starts them (interop/src/object_storage.rs): the
// binaries scripts/test.sh installs into interop/peers/bin, every port on
// 127.0.0.1, data in a temporary directory.
//
//   const s3 = await startSeaweedFs();   // SeaweedFS's S3 gateway + a signing backend
//   const gcs = await startFakeGcs();    // fake-gcs-server
//   ...
//   await s3.stop(); await gcs.stop();
//
// SeaweedFS takes seconds to start: start one per test file, not per test.
// Binaries: $CHUNKUP_WEED, $CHUNKUP_FAKE_GCS, $CHUNKUP_PEERS_PYTHON (a Python
// with boto3), else interop/peers/{bin/weed, bin/fake-gcs-server,
// .venv/bin/python}.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PEERS = dirname(fileURLToPath(import.meta.url));

function binary(env, path) {
  const file = process.env[env] ?? join(PEERS, path);
  if (!existsSync(file)) {
    throw new Error(`${file} is missing: run scripts/test.sh (it installs the interop peers), or set ${env}`);
  }
  return file;
}

/** `count` distinct free ports on 127.0.0.1 (held open together while picked). */
async function freePorts(count) {
  const servers = [];
  for (let i = 0; i < count; i += 1) {
    const server = createServer();
    await new Promise((res, rej) => server.once('error', rej).listen(0, '127.0.0.1', res));
    servers.push(server);
  }
  const ports = servers.map((s) => s.address().port);
  await Promise.all(servers.map((s) => new Promise((res) => s.close(res))));
  return ports;
}

async function waitListening(port, ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const up = await new Promise((res) => {
      const socket = connect(port, '127.0.0.1', () => { socket.destroy(); res(true); });
      socket.once('error', () => res(false));
    });
    if (up) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${ms} ms`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** A child process whose output is kept for error messages; `stop()` ends it. */
function run(name, file, args, options = {}) {
  const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options });
  let log = '';
  child.stdout.on('data', (chunk) => { log += chunk; });
  child.stderr.on('data', (chunk) => { log += chunk; });
  const exited = new Promise((res) => child.once('exit', res));
  return {
    child,
    log: () => log,
    /** Resolves with the first match of `pattern` in its output. */
    waitFor(pattern, ms) {
      return new Promise((res, rej) => {
        const timer = setTimeout(() => rej(new Error(`${name} did not start in ${ms} ms:\n${log}`)), ms);
        const check = () => {
          const match = pattern.exec(log);
          if (match) { clearTimeout(timer); res(match); }
        };
        child.stdout.on('data', check);
        child.stderr.on('data', check);
        child.once('exit', (code) => { clearTimeout(timer); rej(new Error(`${name} exited (${code}):\n${log}`)); });
        check();
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.stdin.end();
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function json(response, what) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${what}: HTTP ${response.status} ${text}`);
  }
}

/**
 * SeaweedFS (`weed server -s3`: master, volume server, filer, S3 gateway) with
 * S3 authentication on (one identity, random keys) and one bucket, and the
 * application's signing backend (interop/peers/s3_signer.py, boto3) next to
 * it. Resolves `{s3Endpoint, bucket, signer, objectUrl(key), sign(request),
 * setCors(rules), object(key), parts(key, uploadId), log(), stop()}`:
 * `signer` is the backend's base URL (a page's or Node's `sign` POSTs to
 * `${signer}/sign`), `objectUrl(key)` the unsigned URL chunkup's `endpoint`
 * takes.
 */
export async function startSeaweedFs({ bucket = 'uploads' } = {}) {
  const weed = binary('CHUNKUP_WEED', 'bin/weed');
  const python = binary('CHUNKUP_PEERS_PYTHON', '.venv/bin/python');
  const dir = mkdtempSync(join(tmpdir(), 'chunkup-seaweedfs-'));
  const keys = {
    AWS_ACCESS_KEY_ID: `CHUNKUP${randomBytes(8).toString('hex').toUpperCase()}`,
    AWS_SECRET_ACCESS_KEY: randomBytes(24).toString('base64url'),
    AWS_REGION: 'us-east-1',
  };
  for (const sub of ['data', 'logs']) mkdirSync(join(dir, sub));
  const identities = join(dir, 's3.json');
  writeFileSync(identities, JSON.stringify({
    identities: [{
      name: 'chunkup',
      credentials: [{ accessKey: keys.AWS_ACCESS_KEY_ID, secretKey: keys.AWS_SECRET_ACCESS_KEY }],
      actions: ['Admin', 'Read', 'List', 'Tagging', 'Write'],
    }],
  }));
  // Every port is given: the gRPC ones default to port + 10000, which
  // collides between instances.
  const [s3Port, filerPort, masterPort, volumePort, ...grpc] = await freePorts(8);
  const services = ['master', 'volume', 'filer', 's3'];
  const sockets = services.map((s, i) => `/tmp/seaweedfs-${s}-grpc-${grpc[i]}.sock`);
  const server = run('SeaweedFS', weed, [
    `-logdir=${join(dir, 'logs')}`, 'server', `-dir=${join(dir, 'data')}`,
    '-ip=127.0.0.1', '-ip.bind=127.0.0.1',
    `-master.port=${masterPort}`, '-master.volumeSizeLimitMB=64',
    `-volume.port=${volumePort}`,
    '-filer', `-filer.port=${filerPort}`, `-filer.localSocket=${join(dir, 'filer.sock')}`,
    '-s3', `-s3.port=${s3Port}`, `-s3.localSocket=${join(dir, 's3.sock')}`,
    '-s3.port.iceberg=0', '-s3.port.lance=0', `-s3.config=${identities}`,
    ...services.map((s, i) => `-${s}.port.grpc=${grpc[i]}`),
  ]);
  const s3Endpoint = `http://127.0.0.1:${s3Port}`;
  // No shared AWS config, no instance metadata: nothing leaves loopback.
  const env = {
    PATH: process.env.PATH, ...keys, AWS_DEFAULT_REGION: keys.AWS_REGION,
    AWS_EC2_METADATA_DISABLED: 'true', AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  };
  const backend = run('s3_signer.py', python, [join(PEERS, 's3_signer.py'), s3Endpoint, bucket], { env });
  const stop = async () => {
    await backend.stop();
    await server.stop();
    for (const socket of sockets) rmSync(socket, { force: true });
    rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
  };
  let signer;
  try {
    // The backend creates the bucket (retrying while SeaweedFS starts) first.
    [, signer] = await backend.waitFor(/listening (http:\/\/127\.0\.0\.1:\d+)/, 120000);
  } catch (error) {
    await stop();
    throw new Error(`${error.message}\nSeaweedFS output:\n${server.log()}`);
  }
  const get = async (path) => json(await fetch(`${signer}${path}`), `GET ${path}`);
  return {
    s3Endpoint,
    bucket,
    signer,
    /** The object's unsigned URL (path-style). */
    objectUrl: (key) => `${s3Endpoint}/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`,
    /** Presigns chunkup's sign request (what a `sign` option does through the backend). */
    async sign(request) {
      const response = await fetch(`${signer}/sign`, { method: 'POST', body: JSON.stringify(request) });
      const body = await json(response, 'POST /sign');
      if (!response.ok) throw new Error(`the signing backend refused: ${body.error}`);
      return body;
    },
    /** Sets the bucket's CORS rules (boto3's shape: AllowedOrigins, ExposeHeaders, ...). */
    async setCors(rules) {
      const response = await fetch(`${signer}/cors`, { method: 'POST', body: JSON.stringify(rules) });
      if (!response.ok) throw new Error(`PutBucketCors: ${await response.text()}`);
    },
    /** `{size, sha256}` of an object, or null when there is none. */
    async object(key) {
      const response = await fetch(`${signer}/object?key=${encodeURIComponent(key)}`);
      return response.status === 404 ? null : json(response, 'GET /object');
    },
    /** ListParts: `{status: 200, parts: [{number, size}]}` or `{status, code}`. */
    parts: (key, uploadId) => get(`/parts?key=${encodeURIComponent(key)}&uploadId=${encodeURIComponent(uploadId)}`),
    log: () => `${server.log()}${backend.log()}`,
    stop,
  };
}

/**
 * fake-gcs-server (GCS's JSON API, resumable uploads) over plain HTTP with a
 * filesystem backend and one bucket. Resolves `{baseUrl, bucket,
 * initiationUrl(name), objectBytes(name), log(), stop()}`. Its deviations
 * from GCS are in docs/PROTOCOLS.md §5.3 (a status query finalizes the
 * object: test only the straight path against it).
 */
export async function startFakeGcs({ bucket = 'uploads' } = {}) {
  const file = binary('CHUNKUP_FAKE_GCS', 'bin/fake-gcs-server');
  const dir = mkdtempSync(join(tmpdir(), 'chunkup-fake-gcs-'));
  const [port] = await freePorts(1);
  const baseUrl = `http://127.0.0.1:${port}`;
  const server = run('fake-gcs-server', file, [
    '-scheme', 'http', '-host', '127.0.0.1', '-port', String(port),
    '-backend', 'filesystem', '-filesystem-root', dir,
    '-public-host', `127.0.0.1:${port}`, '-log-level', 'warn',
  ]);
  const stop = async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
  };
  try {
    await waitListening(port);
    const created = await fetch(`${baseUrl}/storage/v1/b`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: bucket }),
    });
    if (created.status !== 200) throw new Error(`create bucket: ${created.status} ${await created.text()}`);
  } catch (error) {
    await stop();
    throw new Error(`${error.message}\nfake-gcs-server output:\n${server.log()}`);
  }
  return {
    baseUrl,
    bucket,
    /** Where a resumable session of object `name` is initiated. */
    initiationUrl: (name) =>
      `${baseUrl}/upload/storage/v1/b/${bucket}/o?uploadType=resumable&name=${encodeURIComponent(name)}`,
    /** The object's bytes, or null when there is none. */
    async objectBytes(name) {
      const response = await fetch(`${baseUrl}/download/storage/v1/b/${bucket}/o/${encodeURIComponent(name)}?alt=media`);
      if (response.status === 404) return null;
      if (!response.ok) throw new Error(`GET ${name}: ${response.status}`);
      return Buffer.from(await response.arrayBuffer());
    },
    log: server.log,
    stop,
  };
}
