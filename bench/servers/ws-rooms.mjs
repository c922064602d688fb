// Baseline (b2) for protocol version 2's shape (one socket, many rooms): bare `ws`, a Set per room,
// a tiny `join` answered `caught_up`, `leave`, and a room's `message`: JSON.stringify once, `send`
// per member. No history, presence or admission: the least a multi-room server must do.
import { createServer } from 'node:http'
import { WebSocketServer } from 'ws'

const rooms = new Map()
let nextId = 0
const server = createServer((req, res) => {
  res.writeHead(426, { 'content-type': 'text/plain' }).end('Upgrade required')
})
// The same subprotocol the module's version 2 answers, so clients offer and get the same handshake.
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 64 * 1024, handleProtocols: offered => offered.has('nuxt-chat.2') ? 'nuxt-chat.2' : false })

function leave(ws, joined, room) {
  if (!joined.delete(room)) return
  const members = rooms.get(room)
  members.delete(ws)
  if (!members.size) rooms.delete(room)
}

wss.on('connection', (ws) => {
  const joined = new Set()
  const id = `peer-${++nextId}`
  ws.on('message', (data, isBinary) => {
    if (isBinary) return
    let command
    try {
      command = JSON.parse(data.toString())
    }
    catch {
      return
    }
    const room = typeof command?.room === 'string' ? command.room : undefined
    if (!room) return
    if (command.type === 'join') {
      if (!joined.has(room)) {
        joined.add(room)
        let members = rooms.get(room)
        if (!members) rooms.set(room, members = new Set())
        members.add(ws)
      }
      ws.send(JSON.stringify({ type: 'caught_up', room }))
    }
    else if (command.type === 'leave') leave(ws, joined, room)
    else if (command.type === 'message' && joined.has(room)) {
      const text = JSON.stringify({ type: 'message', room, user: id, message: command.message })
      for (const member of rooms.get(room)) member.send(text)
    }
  })
  ws.on('close', () => {
    for (const room of [...joined]) leave(ws, joined, room)
  })
})
server.listen(Number(process.env.PORT) || 3000, process.env.HOST || '127.0.0.1')
process.on('SIGTERM', () => process.exit(0))
