// Baseline (d): Socket.IO 4, websocket transport only; rooms from the handshake query.
import { createServer } from 'node:http'
import { Server } from 'socket.io'

const server = createServer((req, res) => {
  if (!req.url.startsWith('/socket.io')) res.writeHead(426, { 'content-type': 'text/plain' }).end('Upgrade required')
})
const io = new Server(server, { transports: ['websocket'], perMessageDeflate: false, serveClient: false })
io.on('connection', (socket) => {
  const room = socket.handshake.query.room || 'chat'
  socket.join(room)
  socket.on('chat', (message) => {
    io.to(room).emit('chat', { user: socket.id, message })
  })
})
server.listen(Number(process.env.PORT) || 3000, process.env.HOST || '127.0.0.1')
process.on('SIGTERM', () => process.exit(0))
