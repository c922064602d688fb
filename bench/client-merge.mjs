// Client-side row: useChat's message merge (createChatConnection with a stubbed WebSocket)
// taking 10,000 incoming message frames. Imports the TypeScript source directly: Node 24 strips
// types, and a tiny resolve hook adds the `.ts` the source's extensionless imports leave out.
import { registerHooks } from 'node:module'
import { performance } from 'node:perf_hooks'

registerHooks({
  resolve(specifier, context, next) {
    try {
      return next(specifier, context)
    }
    catch (error) {
      if (specifier.startsWith('.') && !/\.[cm]?[jt]s$/.test(specifier)) return next(`${specifier}.ts`, context)
      throw error
    }
  },
})

const { createChatConnection } = await import('../src/runtime/app/chatConnection.ts')
const { createMessageLog } = await import('../src/runtime/app/messageLog.ts')

const FRAMES = Number(process.argv[2]) || 10_000
const REPEATS = Number(process.argv[3]) || 5
const room = 'bench'

/** A WebSocket stand-in: the connection under test sets its handlers, the bench calls them. */
class StubSocket {
  static last
  readyState = 0
  onopen = null
  onmessage = null
  onclose = null
  constructor(url) {
    this.url = url
    StubSocket.last = this
  }

  send() {}
  close() {
    this.readyState = 3
  }
}
globalThis.WebSocket = StubSocket

const frames = Array.from({ length: FRAMES }, (_, i) => JSON.stringify({
  type: 'message', id: i + 1, room, user: `user-${i % 20}`, message: `message number ${i} `.padEnd(64, 'x'), ts: 1_760_000_000_000 + i,
}))

function openConnection() {
  const connection = createChatConnection({
    room, transport: 'ws', route: '/_ws', sseRoute: '/api/sse', baseURL: 'http://127.0.0.1:3000/',
    maxMessages: 500, maxQueue: 100, maxLength: 2000, autoReconnect: false, heartbeat: false, typingTimeout: 3000,
  })
  connection.open()
  const socket = StubSocket.last
  socket.readyState = 1
  socket.onopen()
  socket.onmessage({ data: JSON.stringify({ type: 'system', event: 'welcome', room, user: 'server', message: 'Welcome!', peer: { id: 'me', name: 'me' } }) })
  return { connection, socket }
}

const tick = () => new Promise(resolve => setImmediate(resolve))

/** All frames in one task (a replay read in one go): one flush at the end. */
async function burst() {
  const { connection, socket } = openConnection()
  await tick()
  const t0 = performance.now()
  for (const data of frames) socket.onmessage({ data })
  await Promise.resolve()
  await Promise.resolve()
  const ms = performance.now() - t0
  if (connection.messages.value.length !== 500) throw new Error(`expected 500 messages, got ${connection.messages.value.length}`)
  connection.close()
  return ms
}

/** One frame per task, as a browser dispatches WebSocket messages: a flush after each. */
async function perTask() {
  const { connection, socket } = openConnection()
  await tick()
  const t0 = performance.now()
  for (const data of frames) {
    socket.onmessage({ data })
    await tick()
  }
  const ms = performance.now() - t0
  if (connection.messages.value.at(-1)?.id !== FRAMES) throw new Error('last frame missing')
  connection.close()
  return ms
}

/** The scheduling alone (setImmediate per frame), to subtract from perTask. */
async function schedulingOnly() {
  const t0 = performance.now()
  for (let i = 0; i < FRAMES; i++) await tick()
  return performance.now() - t0
}

/** The message log alone: parsed frames merged into createMessageLog, then published once. */
function logOnly() {
  const parsed = frames.map(data => JSON.parse(data))
  const log = createMessageLog(500)
  const t0 = performance.now()
  for (const frame of parsed) log.add(frame)
  log.trim()
  log.entries()
  return performance.now() - t0
}

const median = list => list.sort((a, b) => a - b)[list.length >> 1]
const results = { frames: FRAMES, burst: [], perTask: [], scheduling: [], logOnly: [] }
// The first pass is cold (a page's first replay); the timed ones after it are warm.
const coldBurstMs = await burst()
for (let r = 0; r < REPEATS; r++) {
  results.burst.push(await burst())
  results.perTask.push(await perTask())
  results.scheduling.push(await schedulingOnly())
  results.logOnly.push(logOnly())
}
const out = {
  frames: FRAMES,
  burstMs: median(results.burst),
  perTaskMs: median(results.perTask),
  schedulingMs: median(results.scheduling),
  logOnlyMs: median(results.logOnly),
  coldBurstMs,
}
out.perTaskNetMs = out.perTaskMs - out.schedulingMs
process.stdout.write(JSON.stringify(out) + '\n')
