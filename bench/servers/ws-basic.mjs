// Baseline (b): bare `ws`, one JSON.stringify per broadcast, `send` per socket.
import { startWsServer } from './common.mjs'

startWsServer((members, user, message) => {
  const text = JSON.stringify({ user, message })
  for (const ws of members) ws.send(text)
})
