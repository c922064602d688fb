// One load-generator process of the scale scenario, forked by bench/run.mjs (IPC, advanced
// serialization). It owns whole rooms (every member of a room is here), so it counts each
// message's deliveries itself; the orchestrator adds up the processes' answers and the server's
// CPU. Commands: connect, rate, fill, storm, close; with `config.v2` (protocol version 2: one
// socket per connection, `config.subs[i]` its rooms) also joinRest, fillQuiet, joinMany.
// Bounded by `timeoutMs` (it exits by itself).
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

// Version 2 join answers, found in the raw bytes before any parse (bench messages never hold them).
const CAUGHT_UP = Buffer.from('"caught_up"')
const JOIN_REFUSED = Buffer.from('"join_refused"')

/** A version 2 socket's frames: join answers to their waiters; with `tally`, frames, bytes and bench markers counted. */
function onV2Frame(ws, data) {
  onBytes(data)
  if (ws.tally) {
    ws.tally.frames++
    ws.tally.bytes += data.length
    if (data.includes(64)) scanMarkers(data, () => ws.tally.marks++)
  }
  if (!ws.waits.size || (!data.includes(CAUGHT_UP) && !data.includes(JOIN_REFUSED))) return
  const frame = JSON.parse(data.toString())
  const waiter = ws.waits.get(frame.room)
  ws.waits.delete(frame.room)
  if (frame.type === 'caught_up') waiter?.resolve()
  else waiter?.reject(new Error(`join_refused ${frame.code} for ${frame.room}: ${frame.message}`))
}

/** Join `room` on a version 2 socket: resolves on its `caught_up`. */
function joinRoom(ws, room) {
  return new Promise((resolve, reject) => {
    ws.waits.set(room, { resolve, reject })
    ws.send(JSON.stringify({ type: 'join', room }))
  })
}

function openWs(url) {
  return new Promise((resolve, reject) => {
    const ws = config.v2 ? new WebSocket(url, 'nuxt-chat.2', { perMessageDeflate: false }) : new WebSocket(url, { perMessageDeflate: false })
    ws.binaryType = 'nodebuffer'
    if (config.v2) {
      ws.waits = new Map()
      ws.tally = null
      ws.on('message', data => onV2Frame(ws, data))
    }
    else ws.on('message', onBytes)
    ws.once('open', () => resolve(ws))
    ws.once('error', reject)
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode} for ${url}`)))
  })
}

/** Open every url, `concurrency` at a time; version 2: each socket then joins `firstRooms[i]` (counted in its opening). */
async function connectAll(urls, concurrency, firstRooms) {
  const opened = Array.from({ length: urls.length })
  let next = 0
  const worker = async () => {
    while (next < urls.length) {
      const i = next++
      opened[i] = await openWs(urls[i])
      if (firstRooms) await joinRoom(opened[i], firstRooms[i])
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, urls.length) }, worker))
  return opened
}

/** Run `task(i)` for i < count, `concurrency` at a time. */
async function eachLimited(count, concurrency, task) {
  let next = 0
  const worker = async () => {
    while (next < count) await task(next++)
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
}

async function waitQuiet(quietMs, maxMs = 20_000) {
  const start = now()
  while (now() - lastFrameAt < quietMs && now() - start < maxMs) await sleep(25)
}

function send(room, from = config.rooms[room].members[seq % 2]) {
  const s = seq++
  counts[s & MASK] = 0
  expectOf[s & MASK] = config.rooms[room].members.length
  const text = benchMessage(now(), s, config.size)
  peers[from].send(config.v2 ? JSON.stringify({ type: 'message', room: config.rooms[room].name, message: text }) : text)
  if (phase) phase.sent++
}

const roomName = index => config.rooms[index].name

const commands = {
  async connect({ concurrency }) {
    const t = now()
    peers = config.v2
      ? await connectAll(config.subs.map(() => config.url), concurrency, config.subs.map(rooms => roomName(rooms[0])))
      : await connectAll(config.rooms.flatMap(room => room.members.map(() => `${config.url}?room=${room.name}`)), concurrency)
    const ms = now() - t
    await waitQuiet(300)
    return { connections: peers.length, ms }
  },
  /** Version 2: every connection joins the rest of its rooms (all of one connection's at once). */
  async joinRest({ concurrency }) {
    const t = now()
    let joins = 0
    await eachLimited(peers.length, concurrency, async (i) => {
      const rest = config.subs[i].slice(1)
      joins += rest.length
      await Promise.all(rest.map(room => joinRoom(peers[i], roomName(room))))
    })
    const ms = now() - t
    await waitQuiet(300)
    return { joins, ms }
  },
  /** Version 2: `rooms` no one follows get `count` messages each (from one socket that then goes). */
  async fillQuiet({ rooms, count }) {
    const [filler] = await connectAll([config.url], 1)
    await Promise.all(rooms.map(room => joinRoom(filler, room)))
    filler.tally = { frames: 0, bytes: 0, marks: 0 }
    for (const room of rooms) {
      for (let i = 0; i < count; i++) filler.send(JSON.stringify({ type: 'message', room, message: benchMessage(now(), 0, config.size) }))
    }
    const start = now()
    while (filler.tally.marks < rooms.length * count && now() - start < 20_000) await sleep(5)
    const echoed = filler.tally.marks
    filler.terminate()
    await waitQuiet(300)
    return { echoed }
  },
  /** Version 2: one open socket joins every room of `rooms` at once; ms until the last `caught_up`, frames and bytes it got. */
  async joinMany({ rooms }) {
    const [ws] = await connectAll([config.url], 1)
    await waitQuiet(200)
    ws.tally = { frames: 0, bytes: 0, marks: 0 }
    const t = now()
    await Promise.all(rooms.map(room => joinRoom(ws, room)))
    const ms = now() - t
    const result = { ms, ...ws.tally }
    await waitQuiet(200)
    ws.terminate()
    return result
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
    const url = config.v2 ? config.url : `${config.url}?room=${config.rooms[room].name}`
    const joined = await connectAll(Array.from({ length: count }, () => url), count, config.v2 && Array.from({ length: count }, () => roomName(room)))
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
