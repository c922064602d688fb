// The `stream` scenario's load generator (bench/run.mjs --scenario=stream): `members` WebSocket
// members in one room of the fixture server; first `tokens` ordinary messages from one member at the
// token rate (the fan-out baseline), then one stream of `tokens` chunks (each the time the source
// yielded it) through the fixture's /_test/stream route, after a short warm-up stream. Server CPU from /proc, per delivery and
// per byte delivered; what each member received of the stream; when each token reached each member.
import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import { cpuMicros, percentile, sleep } from './lib.mjs'

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const { port, pid, members, tokens, delayMs, timeoutMs } = config
const room = `bench-stream-${Date.now().toString(36)}`
const now = () => performance.timeOrigin + performance.now()
setTimeout(() => {
  console.error('stream-client: timed out')
  process.exit(3)
}, timeoutMs).unref()

/** One member: its frames as they came (parsed lazily), and their sizes. */
function openMember(index) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/_ws?room=${room}&name=m${index}&deltas=1`)
    const member = { ws, frames: [], bytes: 0, phase: 'join' }
    ws.on('message', (data) => {
      const at = now()
      const text = data.toString()
      member.frames.push({ text, at, phase: member.phase })
      member.bytes += data.length
    })
    ws.once('open', () => resolve(member))
    ws.once('error', reject)
  })
}

const cpu = () => cpuMicros(pid)
const all = []
for (let index = 0; index < members; index += 50) all.push(...await Promise.all(Array.from({ length: Math.min(50, members - index) }, (_, offset) => openMember(index + offset))))
await sleep(1500)

/** Start a stream of `count` stamped chunks; resolves to its message id. */
async function startStream(count) {
  const response = await fetch(`http://127.0.0.1:${port}/_test/stream`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room, chunks: [], stamps: count, delay: delayMs, as: { id: 'bench-bot', name: 'Bench bot' } }) })
  if (!response.ok) throw new Error(`stream refused: ${response.status} ${await response.text()}`)
  return (await response.json()).id
}
const ended = id => member => member.frames.some(frame => frame.text.startsWith('{"type":"edit"') && frame.text.includes(`"target":${id},`))

// A warm-up stream (not measured): the first stream of a process pays for compiling its code paths once.
const warmUp = await startStream(50)
while (!all.every(ended(warmUp))) await sleep(50)
await sleep(500)

// ---- baseline: ordinary messages of the same size as a token's delta text, at the token rate ----
const sample = `${now().toFixed(3)} `
for (const member of all) member.phase = 'messages'
const messageCpuStart = cpu()
const sender = all[0]
for (let index = 0; index < tokens; index++) {
  sender.ws.send(JSON.stringify({ type: 'message', message: sample, cid: `b-${index}` }))
  if (delayMs) await sleep(delayMs)
}
const counted = text => text.startsWith('{"type":"message"')
const deadline = Date.now() + 60_000
while (Date.now() < deadline && !all.every(member => member.frames.filter(frame => frame.phase === 'messages' && counted(frame.text)).length >= tokens)) await sleep(50)
const messageCpu = cpu() - messageCpuStart
const messageFrames = all.flatMap(member => member.frames.filter(frame => frame.phase === 'messages' && counted(frame.text)))
const messageBytes = messageFrames.reduce((sum, frame) => sum + Buffer.byteLength(frame.text), 0)
await sleep(500)

// ---- the stream ----
for (const member of all) member.phase = 'stream'
const streamCpuStart = cpu()
const id = await startStream(tokens)
const streamDeadline = Date.now() + 120_000
while (Date.now() < streamDeadline && !all.every(ended(id))) await sleep(50)
const streamCpu = cpu() - streamCpuStart

let finalText = ''
let deltaFrames = 0
let deltaBytes = 0
let storedFrames = 0
let fullTexts = 0
const firstTokenMs = []
const tokenMs = []
const receivedRatio = []
for (const member of all) {
  let chars = 0
  let first = true
  for (const frame of member.frames) {
    if (frame.phase !== 'stream') continue
    const parsed = JSON.parse(frame.text)
    if (parsed.type === 'delta' && parsed.id === id) {
      deltaFrames++
      deltaBytes += Buffer.byteLength(frame.text)
      chars += parsed.text.length
      if (parsed.offset === 0 && !first) fullTexts++
      const stamps = parsed.text.trim().split(' ').map(Number)
      if (first) firstTokenMs.push(frame.at - stamps[0])
      first = false
      for (const stamp of stamps) tokenMs.push(frame.at - stamp)
    }
    else if (parsed.type === 'edit' && parsed.target === id) {
      finalText = parsed.message
      fullTexts++
      storedFrames++
    }
    else if (parsed.type === 'message' && parsed.id === id) {
      storedFrames++
    }
  }
  receivedRatio.push(chars / Math.max(1, finalText.length))
}
for (const member of all) member.ws.terminate()
const sorted = list => [...list].sort((a, b) => a - b)
const streamDeliveries = deltaFrames + storedFrames
const result = {
  members,
  tokens,
  delayMs,
  finalLength: finalText.length,
  finalTokens: finalText.trim().split(' ').length,
  messages: { deliveries: messageFrames.length, bytes: messageBytes, cpuUs: messageCpu, cpuUsPerDelivery: messageCpu / messageFrames.length, cpuNsPerByte: messageCpu * 1000 / messageBytes },
  stream: { deltas: deltaFrames / members, deliveries: streamDeliveries, bytes: deltaBytes, cpuUs: streamCpu, cpuUsPerDelivery: streamCpu / streamDeliveries, cpuNsPerByte: streamCpu * 1000 / deltaBytes },
  // Each member's delta characters over the final text (1: every character once), and full texts beyond the final edit.
  deltaCharsOverText: { max: Math.max(...receivedRatio), min: Math.min(...receivedRatio) },
  fullTextsPerMember: fullTexts / members,
  firstTokenMs: { p50: percentile(sorted(firstTokenMs), 50), p99: percentile(sorted(firstTokenMs), 99), max: Math.max(...firstTokenMs) },
  tokenMs: { p50: percentile(sorted(tokenMs), 50), p99: percentile(sorted(tokenMs), 99) },
}
result.ratio = { cpuPerDelivery: result.stream.cpuUsPerDelivery / result.messages.cpuUsPerDelivery, cpuPerByte: result.stream.cpuNsPerByte / result.messages.cpuNsPerByte }
console.log(JSON.stringify(result))
process.exit(0)
