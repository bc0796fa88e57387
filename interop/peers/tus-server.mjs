// A tus server nobody here wrote: @tus/server + @tus/file-store.
//
//   node tus-server.mjs PORT DIR
//
// Listens on 127.0.0.1:PORT (0 = any free port), endpoint /files, stores
// uploads under DIR (DIR/<id> holds the bytes, DIR/<id>.json the upload's
// info incl. metadata). Prints one line `listening http://127.0.0.1:<port>/files`
// on stdout when ready; stops on SIGTERM/SIGINT or when stdin closes.
import { Server } from '@tus/server'
import { FileStore } from '@tus/file-store'

const [portArg, dir] = process.argv.slice(2)
if (portArg === undefined || dir === undefined) {
  console.error('usage: node tus-server.mjs PORT DIR')
  process.exit(2)
}

const server = new Server({
  path: '/files',
  datastore: new FileStore({ directory: dir }),
})

const http = server.listen({ host: '127.0.0.1', port: Number(portArg) }, () => {
  const { port } = http.address()
  process.stdout.write(`listening http://127.0.0.1:${port}/files\n`)
})

const stop = () => {
  http.close()
  http.closeAllConnections?.()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
// The test that started us holds our stdin: when it goes away, so do we.
process.stdin.on('end', stop)
process.stdin.on('error', stop)
process.stdin.resume()
