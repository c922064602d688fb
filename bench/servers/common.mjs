// Plain HTTP + `ws` server scaffolding shared by the bare baselines: rooms from `?room=`, peer ids.
import { createServer } from 'node:http'
import { WebSocketServer } from 'ws'

/** Start an HTTP server on $PORT whose WebSocket upgrades join `?room=` (default `chat`). */
export function startWsServer(onMessage) {
  const rooms = new Map()
  let nextId = 0
  const server = createServer((req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' }).end('Upgrade required')
  })
  const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 64 * 1024 })
  wss.on('connection', (ws, req) => {
    const room = new URL(req.url, 'http://x').searchParams.get('room') || 'chat'
    let members = rooms.get(room)
    if (!members) rooms.set(room, members = new Set())
    members.add(ws)
    const id = `peer-${++nextId}`
    ws.on('message', (data, isBinary) => {
      if (!isBinary) onMessage(members, id, data.toString())
    })
    ws.on('close', () => {
      members.delete(ws)
      if (!members.size) rooms.delete(room)
    })
  })
  server.listen(Number(process.env.PORT) || 3000, process.env.HOST || '127.0.0.1')
  process.on('SIGTERM', () => process.exit(0))
  return server
}
