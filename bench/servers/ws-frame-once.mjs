// Baseline (c): bare `ws`, each broadcast framed once and the same bytes written to every socket.
import { Sender } from 'ws'
import { startWsServer } from './common.mjs'

startWsServer((members, user, message) => {
  const payload = Buffer.from(JSON.stringify({ user, message }))
  const parts = Sender.frame(payload, { fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false })
  const frame = parts.length === 1 ? parts[0] : Buffer.concat(parts)
  for (const ws of members) {
    // Straight to TCP unless ws has its own frames queued (then keep order through ws).
    if (ws._sender._queue.length || ws._sender._state || ws.readyState !== 1) ws.send(payload)
    else ws._socket.write(frame)
  }
})
