// The reference automerge-repo sync server, as @automerge/automerge-repo-sync-server sets it up
// (a Repo with the WebSocket server adapter and node-fs storage, sharing nothing unasked), minus
// express. `just bench` measures it beside Hindsight with the same workload.
//
// Usage: node server.mjs <port> <data dir>. Prints "listening <port>" once ready.
import fs from "node:fs"
import http from "node:http"
import { WebSocketServer } from "ws"
import { Repo } from "@automerge/automerge-repo"
import { NodeWSServerAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"

const port = Number(process.argv[2] ?? 3030)
const dir = process.argv[3] ?? ".amrg"
fs.mkdirSync(dir, { recursive: true })

const sockets = new WebSocketServer({ noServer: true })
const repo = new Repo({
  network: [new NodeWSServerAdapter(sockets)],
  storage: new NodeFSStorageAdapter(dir),
  peerId: "reference-sync-server",
  sharePolicy: async () => false,
})

const server = http.createServer((_, res) => res.end("ok"))
server.on("upgrade", (request, socket, head) => {
  sockets.handleUpgrade(request, socket, head, (ws) => sockets.emit("connection", ws, request))
})

// The repo attaches its adapter to the socket server only after reading its storage id, and a
// connection that arrives before that is dropped: listen once the adapter is attached.
while (sockets.listenerCount("connection") === 0) {
  await new Promise((resolve) => setTimeout(resolve, 5))
}
server.listen(port, "127.0.0.1", () => console.log(`listening ${server.address().port}`))

// Stop as a sync server should: flush storage, then exit (server.close would wait for every
// open WebSocket).
const stop = async () => {
  try {
    await repo.shutdown()
  } finally {
    process.exit(0)
  }
}
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
