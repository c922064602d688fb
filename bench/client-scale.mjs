// One load-generator process of the scale scenario, forked by bench/run.mjs (IPC, advanced
// serialization). It owns whole rooms (every member of a room is here), so it counts each
// message's deliveries itself; the orchestrator adds up the processes' answers and the server's
// CPU. Commands: connect, rate, fill, storm, close. Bounded by `timeoutMs` (it exits by itself).
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import { benchMessage, scanMarkers, sleep } from './lib.mjs'

const now = () => performance.now()
let config
let peers = []
/** Payload bytes received by every socket of this process (join storm: what the joins cost the room). */
let bytes = 0
let lastFrameAt = now()

// ---- delivery bookkeeping: deliveries per message seq (ring) ----
const RING = 1 << 20
const MASK = RING - 1
const counts = new Uint16Array(RING)
const expectOf = new Uint16Array(RING)
let seq = 0
let phase = null

function onBytes(data) {
  const at = now()
  lastFrameAt = at
  bytes += data.length
  scanMarkers(data, (sentAt, s) => {
    const slot = s & MASK
    const p = phase
    const count = ++counts[slot]
    if (!p || s < p.from || s >= p.to) return
    p.deliveries++
    if (p.n < p.latencies.length) p.latencies[p.n++] = at - sentAt
    if (count === expectOf[slot]) p.completed++
  })
}

function openWs(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false })
    ws.binaryType = 'nodebuffer'
    ws.on('message', onBytes)
    ws.once('open', () => resolve(ws))
    ws.once('error', reject)
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode} for ${url}`)))
  })
}

async function connectAll(urls, concurrency) {
  const opened = Array.from({ length: urls.length })
  let next = 0
  const worker = async () => {
    while (next < urls.length) {
      const i = next++
      opened[i] = await openWs(urls[i])
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, urls.length) }, worker))
  return opened
}

async function waitQuiet(quietMs, maxMs = 20_000) {
  const start = now()
  while (now() - lastFrameAt < quietMs && now() - start < maxMs) await sleep(25)
}

function send(room, from = config.rooms[room].members[seq % 2]) {
  const s = seq++
  counts[s & MASK] = 0
  expectOf[s & MASK] = config.rooms[room].members.length
  peers[from].send(benchMessage(now(), s, config.size))
  if (phase) phase.sent++
}

const commands = {
  async connect({ concurrency }) {
    const t = now()
    peers = await connectAll(config.rooms.flatMap(room => room.members.map(() => `${config.url}?room=${room.name}`)), concurrency)
    const ms = now() - t
    await waitQuiet(300)
    return { connections: peers.length, ms }
  },
  /** `rate` msg/s (this process's share) for `ms`, round-robin over its rooms; then wait for the last copies. */
  async rate({ rate, ms }) {
    phase = { from: seq, to: Infinity, sent: 0, deliveries: 0, completed: 0, latencies: new Float64Array(Math.ceil(rate * ms / 1000 * 20 * 1.2) + 1000), n: 0 }
    const start = now()
    let sent = 0
    let room = 0
    while (now() - start < ms) {
      const due = Math.floor((now() - start) / 1000 * rate)
      for (; sent < due; sent++) send(room++ % config.rooms.length)
      await sleep(1)
    }
    phase.to = seq
    const drainStart = now()
    while (phase.completed < phase.sent && now() - drainStart < 5000) await sleep(2)
    const p = phase
    phase = null
    return { sent: p.sent, deliveries: p.deliveries, completed: p.completed, latencies: p.latencies.subarray(0, p.n) }
  },
  /** Give room `room` a history of `count` messages (16 in flight), each done when all members have it. */
  async fill({ room, count }) {
    phase = { from: seq, to: Infinity, sent: 0, deliveries: 0, completed: 0, latencies: new Float64Array(0), n: 0 }
    while (phase.sent < count) {
      while (phase.sent - phase.completed < 16 && phase.sent < count) send(room, config.rooms[room].members[0])
      await sleep(1)
    }
    while (phase.completed < phase.sent) await sleep(2)
    phase = null
    await waitQuiet(200)
    return {}
  },
  /** `count` newcomers join room `room` at once; bytes every socket here received until the room is quiet. */
  async storm({ room, count }) {
    await waitQuiet(200)
    bytes = 0
    const t = now()
    const url = `${config.url}?room=${config.rooms[room].name}`
    const joined = await connectAll(Array.from({ length: count }, () => url), count)
    const openMs = now() - t
    await waitQuiet(300)
    const result = { openMs, bytes, quietMs: now() - t }
    for (const ws of joined) ws.terminate()
    return result
  },
  async close() {
    for (const ws of peers) ws.terminate()
    peers = []
    return {}
  },
}

process.on('message', async (message) => {
  if (message.cmd === 'config') {
    config = message.config
    setTimeout(() => {
      process.stderr.write(`client-scale: timed out after ${config.timeoutMs} ms\n`)
      process.exit(3)
    }, config.timeoutMs).unref()
    process.send({ id: message.id, ok: true })
    return
  }
  try {
    process.send({ id: message.id, ok: true, result: await commands[message.cmd](message) })
  }
  catch (error) {
    process.send({ id: message.id, ok: false, error: String(error?.stack ?? error) })
  }
})
process.on('disconnect', () => process.exit(0))
