// @tus/server 2.4.5 (installed in interop/peers) whose CORS allows one
// origin only — not the test page's — for the browser tests:
//
//   node tus-peer.mjs DIR ALLOWED_ORIGIN
//
// Otherwise as interop/peers/tus-server.mjs: 127.0.0.1, a free port,
// endpoint /files, one line `listening http://127.0.0.1:<port>/files` on
// stdout, exits on SIGTERM or when stdin closes.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const [dir, allowedOrigin] = process.argv.slice(2);
if (!dir || !allowedOrigin) {
  console.error('usage: node tus-peer.mjs DIR ALLOWED_ORIGIN');
  process.exit(2);
}
const peers = createRequire(join(dirname(fileURLToPath(import.meta.url)), '../../interop/peers/package.json'));
const load = (name) => import(pathToFileURL(peers.resolve(name)).href);
const { Server } = await load('@tus/server');
const { FileStore } = await load('@tus/file-store');

const server = new Server({
  path: '/files',
  datastore: new FileStore({ directory: dir }),
  allowedOrigins: [allowedOrigin],
});
const http = server.listen({ host: '127.0.0.1', port: 0 }, () => {
  process.stdout.write(`listening http://127.0.0.1:${http.address().port}/files\n`);
});
const stop = () => {
  http.close();
  http.closeAllConnections?.();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
