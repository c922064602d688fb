// The load generator: a separate process from every server. Reads one JSON config (argv[2]),
// runs one scenario and prints one JSON result line on stdout. Bounded by `config.timeoutMs`.
//
// Modes: fanout (rate phase + saturation phase; `reactionEvery` mixes in reaction toggles), idle (memory per connection), replay, ingest.
import { request } from 'node:http'
import { readFileSync, statSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import { io } from 'socket.io-client'
import { benchMessage, cpuMicros, MARK, percentile, scanMarkers, sleep } from './lib.mjs'

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const now = () => performance.now()
const hardStop = setTimeout(() => {
  process.stderr.write(`client: timed out after ${config.timeoutMs} ms\n`)
  process.exit(3)
}, config.timeoutMs ?? 60_000)
hardStop.unref()

// ---- delivery bookkeeping (shared by all peer kinds) ----

const RING = 1 << 21
const MASK = RING - 1
/** Deliveries seen per message seq (ring). */
const counts = new Uint16Array(RING)
/** Room index of each seq in flight. */
const roomOfSeq = new Int32Array(RING)
let seq = 0
let lastFrameAt = now()
/** Where to record latencies: the current phase, or null (not measured). */
let phase = null
/** Called when a message reached every receiver in its room. */
let onComplete = null

function newPhase(name, capacity) {
  return { name, from: seq, to: Infinity, deliveries: 0, latencies: new Float64Array(capacity), n: 0, completed: 0, sent: 0 }
}

function delivered(sentAt, s, at) {
  const slot = s & MASK
  const count = ++counts[slot]
  const p = phase
  if (p && s >= p.from && s < p.to) {
    p.deliveries++
    if (p.n < p.latencies.length) p.latencies[p.n++] = at - sentAt
  }
  const room = roomOfSeq[slot]
  if (count === rooms[room].expect) {
    if (p && s >= p.from && s < p.to) p.completed++
    onComplete?.(room)
  }
}

function onBytes(data) {
  const at = now()
  lastFrameAt = at
  scanMarkers(data, (sentAt, s) => delivered(sentAt, s, at))
  if (REACTION_EVERY) scanReactionMarks(data, at)
}

// ---- reactions mixed in (fanout with `reactionEvery`): every Nth send toggles a reaction ----

/** Every this many sends, one is a reaction toggle instead of a message (0: messages only). */
const REACTION_EVERY = config.reactionEvery ?? 0
/** A reaction frame carries no text of ours, only its `cid`: `rx<sent µs>-<seq>` (cid characters only). */
const REACTION_MARK = Buffer.from('"cid":"rx')
const ERROR_MARK = Buffer.from('"type":"error"')
let refusals = 0

function reactionCommand(sentAt, s) {
  return JSON.stringify({ type: 'reaction', target: 1, emoji: '👍', cid: `rx${Math.round(sentAt * 1000)}-${s}` })
}

function scanReactionMarks(data, at) {
  // A refused toggle would never complete: count it, and the run fails.
  if (data.includes(ERROR_MARK)) refusals++
  for (let i = data.indexOf(REACTION_MARK); i >= 0; i = data.indexOf(REACTION_MARK, i + 1)) {
    let j = i + REACTION_MARK.length
    let micros = 0
    let s = 0
    for (; data[j] >= 0x30 && data[j] <= 0x39; j++) micros = micros * 10 + data[j] - 0x30
    if (data[j++] !== 0x2D) continue
    for (; data[j] >= 0x30 && data[j] <= 0x39; j++) s = s * 10 + data[j] - 0x30
    delivered(micros / 1000, s, at)
  }
}

function onText(text) {
  const at = now()
  lastFrameAt = at
  const i = typeof text === 'string' ? text.indexOf(MARK) : -1
  if (i < 0) return
  const bar = text.indexOf('|', i)
  const bar2 = text.indexOf('|', bar + 1)
  delivered(Number(text.slice(i + 2, bar)), Number(text.slice(bar + 1, bar2)), at)
}

// ---- peers ----

/** Rooms as given in the config: { expect, senders: peer indexes }. */
const rooms = []

function openWs(spec) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(spec.url, { perMessageDeflate: false })
    ws.binaryType = 'nodebuffer'
    ws.on('message', onBytes)
    ws.once('open', () => resolve({ send: text => ws.send(text), close: () => ws.terminate() }))
    ws.once('error', reject)
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode} for ${spec.url}`)))
  })
}

function openSio(spec) {
  return new Promise((resolve, reject) => {
    const socket = io(spec.url, { transports: ['websocket'], forceNew: true, reconnection: false, query: { room: spec.room } })
    socket.on('chat', frame => onText(frame?.message))
    socket.once('connect', () => resolve({ send: text => socket.emit('chat', text), close: () => socket.disconnect() }))
    socket.once('connect_error', reject)
  })
}

function openSse(spec) {
  return new Promise((resolve, reject) => {
    const req = request(spec.url, { agent: false, headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode} for ${spec.url}`))
      let rest = null
      res.on('data', (chunk) => {
        // An event may straddle two chunks: scan complete events only, keep the rest.
        const data = rest ? Buffer.concat([rest, chunk]) : chunk
        lastFrameAt = now()
        const tail = data.lastIndexOf('\n\n')
        if (tail < 0) {
          rest = data
          return
        }
        const at = now()
        scanMarkers(tail + 2 === data.length ? data : data.subarray(0, tail), (sentAt, s) => delivered(sentAt, s, at))
        rest = tail + 2 < data.length ? data.subarray(tail + 2) : null
      })
      res.on('error', () => {})
      const send = () => {
        throw new Error('SSE readers do not send')
      }
      resolve({ send, close: () => req.destroy() })
    })
    req.on('error', reject)
    req.end()
  })
}

const openers = { ws: openWs, sio: openSio, sse: openSse }

async function connectAll(specs, concurrency = 100) {
  const peers = Array.from({ length: specs.length })
  let next = 0
  const worker = async () => {
    while (next < specs.length) {
      const i = next++
      peers[i] = await openers[specs[i].kind](specs[i])
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, specs.length) }, worker))
  return peers
}

async function waitQuiet(quietMs = 300, maxMs = 30_000) {
  const start = now()
  while (now() - lastFrameAt < quietMs && now() - start < maxMs) await sleep(50)
}

const cpuOf = pids => pids.reduce((sum, pid) => sum + cpuMicros(pid), 0)

function summarise(p, cpu, ms) {
  const lat = Array.from(p.latencies.subarray(0, p.n)).sort((a, b) => a - b)
  return {
    sent: p.sent,
    deliveries: p.deliveries,
    completed: p.completed,
    ms: Math.round(ms),
    deliveriesPerSec: p.deliveries / (ms / 1000),
    cpuUsPerDelivery: cpu / p.deliveries,
    cpuPercent: cpu / (ms * 10),
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
  }
}

// ---- fan-out: fixed rate, then saturation ----

async function fanout() {
  const specs = config.peers
  for (const room of config.rooms) rooms.push({ expect: room.expect, senders: room.senders, next: 0, inflight: 0 })
  const t = now()
  const peers = await connectAll(specs, config.concurrency)
  const connectMs = now() - t
  await waitQuiet()
  // Reactions need a message to react to: id 1 of each room.
  if (REACTION_EVERY) {
    for (const room of rooms) peers[room.senders[0]].send('first message, the reactions\' target')
    await waitQuiet()
  }

  // Round-robin over rooms, then over each room's senders.
  let roomCursor = 0
  const send = (roomIndex) => {
    const room = rooms[roomIndex]
    const s = seq++
    counts[s & MASK] = 0
    roomOfSeq[s & MASK] = roomIndex
    const reaction = REACTION_EVERY && s % REACTION_EVERY === REACTION_EVERY - 1
    peers[room.senders[room.next++ % room.senders.length]].send(reaction ? reactionCommand(now(), s) : benchMessage(now(), s, config.size))
    if (phase) phase.sent++
  }
  const runRate = async (ms) => {
    const start = now()
    let sent = 0
    while (now() - start < ms) {
      const due = Math.floor((now() - start) / 1000 * config.rate)
      while (sent < due) {
        send(roomCursor++ % rooms.length)
        sent++
      }
      await sleep(1)
    }
  }
  const drain = async (p, maxMs = 5000) => {
    const start = now()
    while (p.completed < p.sent && now() - start < maxMs) await sleep(2)
    await sleep(20)
  }

  // Warm-up (not measured).
  phase = newPhase('warm', 0)
  await runRate(config.warmMs)
  await drain(phase)

  // Fixed rate: the same offered load for every server.
  phase = newPhase('rate', 4_000_000)
  let cpu0 = cpuOf(config.pids)
  let t0 = now()
  await runRate(config.measureMs)
  phase.to = seq
  await drain(phase)
  const rate = summarise(phase, cpuOf(config.pids) - cpu0, now() - t0)

  // Saturation: `window` messages in flight per room, each resent as soon as its last copy arrives.
  let saturation = null
  if (config.satMs > 0) {
    phase = newPhase('saturation', 4_000_000)
    let running = true
    onComplete = (roomIndex) => {
      rooms[roomIndex].inflight--
      if (running) {
        rooms[roomIndex].inflight++
        send(roomIndex)
      }
    }
    cpu0 = cpuOf(config.pids)
    t0 = now()
    for (let w = 0; w < config.window; w++) {
      for (let r = 0; r < rooms.length; r++) {
        rooms[r].inflight++
        send(r)
      }
    }
    await sleep(config.satMs)
    running = false
    const satEnd = now()
    phase.to = seq
    await drain(phase)
    saturation = summarise(phase, cpuOf(config.pids) - cpu0, now() - t0)
    saturation.window = config.window
    saturation.sendMs = Math.round(satEnd - t0)
    onComplete = null
  }
  phase = null
  for (const peer of peers) peer.close()
  if (refusals) throw new Error(`${refusals} frames were refused (error frames) with reactions mixed in`)
  return { connections: specs.length, connectMs: Math.round(connectMs), rate, saturation }
}

// ---- idle: memory per connection ----

async function probe(pid, file) {
  const asked = Date.now()
  process.kill(pid, 'SIGUSR2')
  for (let i = 0; i < 250; i++) {
    await sleep(20)
    try {
      if (statSync(file).mtimeMs >= asked - 1) {
        const data = JSON.parse(readFileSync(file, 'utf8'))
        if (data.at >= asked) return data
      }
    }
    catch {
      // Not written yet.
    }
  }
  throw new Error('memory probe did not answer')
}

async function idle() {
  const [pid] = config.pids
  // Warm the server's lazy paths (route chunks, first room) before the baseline.
  const warm = await connectAll(config.peers.slice(0, 20))
  await waitQuiet()
  for (const peer of warm) peer.close()
  await sleep(500)
  const before = await probe(pid, config.probeFile)
  const t = now()
  const peers = await connectAll(config.peers, config.concurrency)
  const connectMs = now() - t
  await waitQuiet(500)
  const after = await probe(pid, config.probeFile)
  for (const peer of peers) peer.close()
  const n = config.peers.length
  return {
    connections: n,
    connectMs: Math.round(connectMs),
    heapPerConn: (after.heapUsed - before.heapUsed) / n,
    rssPerConn: (after.rss - before.rss) / n,
    externalPerConn: (after.external + after.arrayBuffers - before.external - before.arrayBuffers) / n,
    before,
    after,
  }
}

// ---- replay: one reconnecting client gets `count` missed messages ----

async function replay() {
  const base = `${config.url}?room=${config.room}`
  rooms.push({ expect: 1 })
  // The client that will come back, first time round: it had nothing (cursor 0).
  const first = await openWs({ url: `${base}&since=0` })
  first.close()
  const sender = await openWs({ url: base })
  await waitQuiet(200)
  // Fill: pipelined, each message acknowledged by its echo.
  let acked = 0
  const done = new Promise((resolve) => {
    onComplete = () => {
      if (++acked === config.count) resolve()
      else if (seq < config.count) fill()
    }
  })
  const fill = () => {
    const s = seq++
    counts[s & MASK] = 0
    roomOfSeq[s & MASK] = 0
    sender.send(benchMessage(now(), s, config.size))
  }
  for (let i = 0; i < 32 && seq < config.count; i++) fill()
  await done
  onComplete = null
  sender.close()
  await sleep(200)

  const runs = []
  for (let r = 0; r < config.repeats; r++) {
    const result = await new Promise((resolve, reject) => {
      let got = 0
      let upgradeAt = 0
      const t0 = now()
      const ws = new WebSocket(`${base}&since=0`, { perMessageDeflate: false })
      ws.on('upgrade', () => {
        upgradeAt = now()
      })
      ws.on('message', (data) => {
        if (!data.includes('"type":"message"')) return
        if (++got === config.count) {
          const at = now()
          ws.terminate()
          resolve({ upgradeToLast: at - upgradeAt, connectToLast: at - t0 })
        }
      })
      ws.on('error', reject)
    })
    runs.push(result)
    await sleep(100)
  }
  const med = key => runs.map(run => run[key]).sort((a, b) => a - b)[runs.length >> 1]
  return { count: config.count, runs, upgradeToLast: med('upgradeToLast'), connectToLast: med('connectToLast') }
}

// ---- ingest: messages/s stored and broadcast in a 2-peer room ----

async function ingest() {
  rooms.push({ expect: 2 })
  const peers = await connectAll([{ kind: 'ws', url: config.url }, { kind: 'ws', url: config.url }])
  await waitQuiet(200)
  let running = true
  let next = 0
  const send = () => {
    const s = seq++
    counts[s & MASK] = 0
    roomOfSeq[s & MASK] = 0
    peers[next++ & 1].send(benchMessage(now(), s, config.size))
    if (phase) phase.sent++
  }
  onComplete = () => {
    if (running) send()
  }
  phase = newPhase('warm', 0)
  for (let i = 0; i < config.window; i++) send()
  await sleep(config.warmMs)
  phase = newPhase('ingest', 2_000_000)
  const cpu0 = cpuOf(config.pids)
  const t0 = now()
  await sleep(config.measureMs)
  const ms = now() - t0
  const cpu = cpuOf(config.pids) - cpu0
  const p = phase
  running = false
  phase = null
  await sleep(200)
  for (const peer of peers) peer.close()
  const lat = Array.from(p.latencies.subarray(0, p.n)).sort((a, b) => a - b)
  return { stored: p.completed, messagesPerSec: p.completed / (ms / 1000), cpuUsPerMessage: cpu / p.completed, p50: percentile(lat, 50), p99: percentile(lat, 99) }
}

const modes = { fanout, idle, replay, ingest }
try {
  const result = await modes[config.mode]()
  process.stdout.write(JSON.stringify(result) + '\n')
  process.exit(0)
}
catch (error) {
  process.stderr.write(`client: ${error?.stack ?? error}\n`)
  process.exit(1)
}
