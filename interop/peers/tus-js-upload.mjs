// Upload one file with tus-js-client (Node).
//
//   node tus-js-upload.mjs ENDPOINT FILE [--chunk-size BYTES] [--protocol tus-v1|ietf-draft-05]
//                          [--metadata key=value]...
//
// The chunk size defaults to tus-js-client's own default (Infinity: one PATCH
// with the whole file). Prints `{"upload_url": ..., "size": ...}` on stdout on
// success; exits 1 with the error on stderr otherwise.
import fs from 'node:fs'
import path from 'node:path'
import * as tus from 'tus-js-client'

const args = process.argv.slice(2)
const positional = []
const options = { chunkSize: undefined, protocol: 'tus-v1', metadata: {} }
for (let i = 0; i < args.length; i++) {
  const arg = args[i]
  if (arg === '--chunk-size') options.chunkSize = Number(args[++i])
  else if (arg === '--protocol') options.protocol = args[++i]
  else if (arg === '--metadata') {
    const [key, ...rest] = args[++i].split('=')
    options.metadata[key] = rest.join('=')
  } else positional.push(arg)
}
const [endpoint, file] = positional
if (endpoint === undefined || file === undefined) {
  console.error('usage: node tus-js-upload.mjs ENDPOINT FILE [--chunk-size BYTES] [--protocol P] [--metadata k=v]')
  process.exit(2)
}

const size = fs.statSync(file).size
const upload = new tus.Upload(fs.createReadStream(file), {
  endpoint,
  protocol: options.protocol,
  ...(options.chunkSize ? { chunkSize: options.chunkSize } : {}),
  metadata: { filename: path.basename(file), ...options.metadata },
  retryDelays: [0, 200, 1000],
  onError(error) {
    console.error(`tus-js-client: ${error}`)
    process.exit(1)
  },
  onSuccess() {
    process.stdout.write(`${JSON.stringify({ upload_url: upload.url, size })}\n`)
  },
})
upload.start()
