/**
 * A bad-input run against the built fixture: thousands of malformed frames and requests from
 * many peers at once. Every one must get the answer the protocol documents, earlier messages
 * must replay intact, and the server must stay up and about as big as it was.
 */
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { ChatSocket, ChatStream, postMessage, until } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

let server: TestServer
let http: string
let ws: string

beforeAll(async () => {
  // Defaults: rate limit on, maxLength 2000, maxPayload 64 KiB.
  // Every peer here comes from 127.0.0.1: the per-address budget would refuse storable frames.
  // Forty peers, each in a new room, from one address: no per-address limit on messages or new rooms.
  server = await startServer({ env: { NUXT_CHAT_RATE_LIMIT_PER_IP: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT_PER_IP: 'false' } })
  http = server.url('').replace(/\/$/, '')
  ws = `ws://127.0.0.1:${server.port}`
})

afterAll(async () => {
  await server?.stop()
})

const rss = () => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${server.process()!.pid}/status`, 'utf8'))![1]) * 1024
const nested = (depth: number, inner = '1') => '{"a":'.repeat(depth) + inner + '}'.repeat(depth)

type Answer = 'message' | 'pong' | 'bad_request' | 'too_long' | 'empty'
/** One WebSocket frame and its documented answer; `stored` is the text a `message` answer carries. */
interface BadFrame {
  data: string | Buffer
  binary?: boolean
  answer: Answer
  stored?: string
}

// Ordinary text as far as the protocol goes: stored (as the text, or as the command's message).
const storable: BadFrame[] = [
  { data: '{not json', answer: 'message', stored: '{not json' },
  { data: '{"type":"message","message":', answer: 'message', stored: '{"type":"message","message":' },
  { data: '<script>alert("x")</script>', answer: 'message', stored: '<script>alert("x")</script>' },
  { data: '<img src=x onerror=alert(1)>', answer: 'message', stored: '<img src=x onerror=alert(1)>' },
  { data: '{"__proto__":{"type":"ping"},"message":"x"}', answer: 'message', stored: '{"__proto__":{"type":"ping"},"message":"x"}' },
  { data: '{"type":"message","message":"proto","__proto__":{"cid":"evil"}}', answer: 'message', stored: 'proto' },
  { data: '{"type":"message","message":"ok","constructor":{"prototype":{"polluted":"yes"}}}', answer: 'message', stored: 'ok' },
  { data: '{"type":"message","message":"\\ud800 lone high"}', answer: 'message', stored: '\uFFFD lone high' },
  { data: '{"type":"message","message":"lone low \\udc00"}', answer: 'message', stored: 'lone low \uFFFD' },
  // The client's UTF-8 encoder already replaces a lone surrogate in raw text.
  { data: 'raw lone \uD800', answer: 'message', stored: 'raw lone \uFFFD' },
  { data: '\u0001\u0002 control \u001B[31m red', answer: 'message', stored: '\u0001\u0002 control \u001B[31m red' },
  { data: 'nul\u0000inside', answer: 'message', stored: 'nulinside' },
  { data: nested(300), answer: 'message', stored: nested(300) },
  { data: '{"type":"admin","message":"sudo"}', answer: 'message', stored: '{"type":"admin","message":"sudo"}' },
  { data: '[1,2,3]', answer: 'message', stored: '[1,2,3]' },
  { data: '\u202Eoverride bidi', answer: 'message', stored: '\u202Eoverride bidi' },
]

// Refused (or answered) without storing anything, and without using a rate-limit token.
const refused: BadFrame[] = [
  { data: '{"type":"message","message":42}', answer: 'bad_request' },
  { data: '{"type":"message","message":null}', answer: 'bad_request' },
  { data: '{"type":"message","message":["a"]}', answer: 'bad_request' },
  { data: '{"type":"message","message":true}', answer: 'bad_request' },
  { data: '{"type":"message"}', answer: 'bad_request' },
  { data: `{"type":"message","message":${nested(500)}}`, answer: 'bad_request' },
  { data: '{"type":"message","message":"x","cid":5}', answer: 'bad_request' },
  { data: '{"type":"message","message":"x","cid":""}', answer: 'bad_request' },
  { data: `{"type":"message","message":"x","cid":"${'c'.repeat(65)}"}`, answer: 'bad_request' },
  { data: Buffer.from('binary hello'), binary: true, answer: 'bad_request' },
  { data: Buffer.from('{"type":"message","message":"binary json"}'), binary: true, answer: 'bad_request' },
  { data: Buffer.from([0xFF, 0x00, 0xFE]), binary: true, answer: 'bad_request' },
  { data: 'x'.repeat(2001), answer: 'too_long' },
  { data: 'y'.repeat(30_000), answer: 'too_long' },
  { data: JSON.stringify({ type: 'message', message: 'z'.repeat(5000), cid: 'long' }), answer: 'too_long' },
  { data: nested(1000), answer: 'too_long' },
  { data: '{'.repeat(3000), answer: 'too_long' },
  { data: '👍'.repeat(1001), answer: 'too_long' }, // 2002 UTF-16 code units
  { data: '', answer: 'empty' },
  { data: '   ', answer: 'empty' },
  { data: '\n\t\r', answer: 'empty' },
  { data: '\u0000\u0000', answer: 'empty' },
  { data: '{"type":"message","message":"  "}', answer: 'empty' },
  { data: 'ping', answer: 'pong' },
  { data: '{"type":"ping"}', answer: 'pong' },
  { data: '{"type":"ping","message":"<script>"}', answer: 'pong' },
]

// Already percent-encoded: controls, a very long name, markup, a UTF-8-encoded lone surrogate
// and other invalid UTF-8, a bidi override, blanks.
const badNames = ['%00%01', 'x'.repeat(4000), '%3Cscript%3Ealert(1)%3C%2Fscript%3E', '%ED%A0%80', '%E2%80%AEevil', '%20%20%20', '%FF%FE', 'a%00b%7Fc']
const badCursors = ['-1', 'abc', '1e99', '99999999999999999999', '0x10', '', '1.5', '%00']
const badRooms = ['has space', 'x'.repeat(65), 'été', '', '../../etc/passwd', 'a/b', '<script>', 'room\u0000', '%', 'a?b']

const PEERS = 40
const FRAMES_PER_PEER = 50
const STORED_PER_PEER = 6 // below the burst of 10: every storable frame must be stored

/** A peer's frames: 6 storable ones and 44 refused ones, interleaved. */
function framesFor(peer: number): BadFrame[] {
  const good = Array.from({ length: STORED_PER_PEER }, (_, i) => storable[(peer * STORED_PER_PEER + i) % storable.length]!)
  const bad = Array.from({ length: FRAMES_PER_PEER - STORED_PER_PEER }, (_, i) => refused[(peer * 7 + i) % refused.length]!)
  const frames: BadFrame[] = []
  while (good.length || bad.length) {
    if (bad.length) frames.push(...bad.splice(0, 7))
    if (good.length) frames.push(good.shift()!)
  }
  return frames
}

const bump = (counts: Record<string, number>, key: string, by = 1) => {
  counts[key] = (counts[key] ?? 0) + by
}

/** One WebSocket peer: send everything, wait for one answer per frame, compare. */
async function runPeer(peer: number, outcomes: Record<string, number>, expected: Record<string, number>) {
  const room = `bad-${randomUUID().slice(0, 8)}`
  const query = `room=${room}&name=${badNames[peer % badNames.length]}&since=${encodeURIComponent(badCursors[peer % badCursors.length]!)}`
  const socket = new ChatSocket(new WebSocket(`${ws}/_ws?${query}`))
  await new Promise<void>((resolve, reject) => {
    socket.ws.once('open', () => resolve())
    socket.ws.once('error', reject)
  })
  const welcome = await socket.waitFor(frame => frame.type === 'system')
  const name = String(welcome.message).slice('Welcome '.length, -1)
  // The name wish is cleaned: 1-32 printable characters, or `guest-…` (and `name_refused`) when nothing visible was left.
  expect(Array.from(name).length).toBeGreaterThan(0)
  expect(Array.from(name).length).toBeLessThanOrEqual(32)
  // eslint-disable-next-line no-control-regex
  expect(name).not.toMatch(/[\u0000-\u001F\u007F-\u009F\u202A-\u202E\uD800-\uDFFF]/)

  const frames = framesFor(peer)
  for (const frame of frames) {
    socket.ws.send(frame.data, { binary: frame.binary ?? false })
    bump(expected, frame.answer)
  }
  // `name_refused` answers the name wish, not a frame.
  const answers = () => socket.frames.filter(frame => frame.type === 'message' || (frame.type === 'error' && frame.code !== 'name_refused') || frame.type === 'pong')
  await until(() => answers().length >= frames.length, `peer ${peer}: ${frames.length} answers`, 30_000)
  for (const answer of answers()) bump(outcomes, answer.type === 'error' ? String(answer.code) : answer.type)
  // Stored texts, exactly and in order; the `__proto__` key in the command did not smuggle a cid in.
  expect(socket.messages.map(frame => frame.message)).toEqual(frames.filter(frame => frame.stored !== undefined).map(frame => frame.stored))
  expect(socket.messages.filter(frame => frame.cid !== undefined)).toEqual([])
  expect(socket.closed).toBeUndefined()
  expect(socket.raw.every(frame => !frame.binary)).toBe(true)
  await socket.close()
}

/** A peer whose one frame is beyond any limit or not UTF-8: the transport closes it. */
async function runCloser(kind: 'huge' | 'deep' | 'utf8', outcomes: Record<string, number>, expected: Record<string, number>) {
  const room = `bad-${randomUUID().slice(0, 8)}`
  const socket = await ChatSocket.open(ws, { room })
  await socket.waitFor(frame => frame.type === 'presence')
  socket.send('before the bad frame')
  await socket.waitFor(frame => frame.type === 'message')
  if (kind === 'huge') socket.ws.send('h'.repeat(100 * 1024))
  if (kind === 'deep') socket.ws.send(nested(20_000))
  if (kind === 'utf8') socket.ws.send(Buffer.from([0x68, 0x69, 0xFF, 0xFE, 0xC0]), { binary: false })
  const code = kind === 'utf8' ? 1007 : 1009
  bump(expected, `close ${code}`)
  await until(() => socket.closed, `${kind}: close`)
  bump(outcomes, `close ${socket.closed!.code}`)
}

/** The status (and error code) of one raw HTTP request. */
async function httpOutcome(method: 'GET' | 'POST', path: string, body?: string, contentType = 'application/json') {
  const response = await fetch(`${http}${path}`, { method, body, headers: body === undefined ? {} : { 'content-type': contentType } })
  const text = await response.text()
  let code = ''
  try {
    code = JSON.parse(text).code ?? ''
  }
  catch {
    // Plain text answers carry no code.
  }
  return code ? `${response.status} ${code}` : String(response.status)
}

function upgradeOutcome(query: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = new WebSocket(`${ws}/_ws?${query}`)
    socket.on('open', () => {
      socket.close()
      resolve('101')
    })
    socket.on('unexpected-response', (_request, response) => {
      response.resume()
      resolve(String(response.statusCode))
    })
    socket.on('error', () => resolve('error'))
  })
}

/** A POST body sent in chunks with no content-length. */
function chunkedPost(room: string, size: number): Promise<string> {
  return new Promise((resolve) => {
    const req = request(`${http}/api/sse?room=${room}`, { method: 'POST', headers: { 'content-type': 'text/plain' } }, (res) => {
      let body = ''
      res.on('data', (chunk) => {
        body += chunk
      })
      res.on('end', () => resolve(`${res.statusCode} ${JSON.parse(body).code}`))
    })
    req.on('error', () => resolve('error'))
    for (let sent = 0; sent < size; sent += 8192) req.write('c'.repeat(8192))
    req.end()
  })
}

/** Every bad HTTP request (upgrade, SSE, POST) with its documented answer. */
function httpCases(): { run: () => Promise<string>, answer: string }[] {
  const room = `bad-http-${randomUUID().slice(0, 8)}`
  const cases: { run: () => Promise<string>, answer: string }[] = []
  for (let round = 0; round < 5; round++) {
    for (const bad of badRooms) {
      const q = `room=${encodeURIComponent(bad)}`
      cases.push({ run: () => upgradeOutcome(q), answer: '400' })
      cases.push({ run: () => httpOutcome('GET', `/api/sse?${q}`), answer: '400 bad_request' })
      cases.push({ run: () => httpOutcome('POST', `/api/sse?${q}`, '{"message":"hi"}'), answer: '400 bad_request' })
    }
    const post = (body: string, contentType?: string) => () => httpOutcome('POST', `/api/sse?room=${room}&name=%00`, body, contentType)
    cases.push(
      { run: post('{"message": "x"'), answer: '400 bad_request' },
      { run: post('not json at all'), answer: '400 bad_request' },
      { run: post(''), answer: '400 bad_request' },
      { run: post('["x"]'), answer: '400 bad_request' },
      { run: post('"just a string"'), answer: '400 bad_request' },
      { run: post('42'), answer: '400 bad_request' },
      { run: post('null'), answer: '400 bad_request' },
      { run: post('{"message":42}'), answer: '400 bad_request' },
      { run: post('{"message":{"a":1}}'), answer: '400 bad_request' },
      { run: post('{"message":"x","cid":""}'), answer: '400 bad_request' },
      { run: post(`{"message":"x","cid":"${'c'.repeat(65)}"}`), answer: '400 bad_request' },
      { run: post('{"__proto__":{"message":"smuggled"}}'), answer: '400 bad_request' },
      { run: post(nested(2000)), answer: '400 bad_request' },
      { run: post(`{"message":${nested(2000)}}`), answer: '400 bad_request' },
      { run: post('{"message":"   "}'), answer: '400 empty' },
      { run: post('', 'text/plain'), answer: '400 empty' },
      { run: post('\u0000\u0000', 'text/plain'), answer: '400 empty' },
      { run: post(JSON.stringify({ message: 'm'.repeat(2001) })), answer: '413 too_long' },
      { run: post('t'.repeat(2001), 'text/plain'), answer: '413 too_long' },
      { run: post('b'.repeat(70_000), 'text/plain'), answer: '413 too_long' },
      { run: () => chunkedPost(room, 100_000), answer: '413 too_long' },
    )
    // Bad cursors and names with a good room: a normal stream (the cursor counts as none).
    for (const cursor of badCursors) {
      cases.push({
        run: async () => {
          const stream = await ChatStream.open(http, { room }, { 'last-event-id': cursor })
          if (stream.status !== 200) return String(stream.status)
          await stream.waitFor(frame => frame.type === 'presence')
          await stream.close()
          return '200 stream'
        },
        answer: '200 stream',
      })
      cases.push({ run: () => upgradeOutcome(`room=${room}&since=${encodeURIComponent(cursor)}&name=${badNames[round]}`), answer: '101' })
    }
  }
  return cases
}

/** Run `tasks` with at most `limit` at once. */
async function pool<T>(tasks: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = Array.from({ length: tasks.length })
  let next = 0
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < tasks.length) {
      const index = next++
      results[index] = await tasks[index]!()
    }
  }))
  return results
}

describe('bad input', () => {
  it('answers every malformed frame and request as documented, and the server stays healthy', async () => {
    // Before: a room with some history.
    const keepRoom = `keep-${randomUUID().slice(0, 8)}`
    const writer = await ChatSocket.open(ws, { room: keepRoom, name: 'Keeper' })
    for (let i = 0; i < 5; i++) writer.send({ type: 'message', message: `keep ${i} <b>é👍</b>`, cid: `k-${i}` })
    await until(() => writer.messages.length === 5, 'the history')
    const history = writer.messages.map(frame => ({ ...frame }))
    await writer.close()
    await new Promise(resolve => setTimeout(resolve, 200))
    const rssBefore = rss()

    // The run: WebSocket peers, closers and HTTP requests all at once.
    const outcomes: Record<string, number> = {}
    const expected: Record<string, number> = {}
    const requests = httpCases()
    const httpResults = pool(requests.map(item => item.run), 16)
    await Promise.all([
      ...Array.from({ length: PEERS }, (_, peer) => runPeer(peer, outcomes, expected)),
      ...(['huge', 'huge', 'huge', 'deep', 'deep', 'utf8', 'utf8', 'utf8'] as const).map(kind => runCloser(kind, outcomes, expected)),
    ])
    const results = await httpResults
    results.forEach((result, index) => {
      bump(outcomes, `http ${result}`)
      bump(expected, `http ${requests[index]!.answer}`)
    })

    // POST bodies that are fine but odd are stored as they are (a few: POST is limited per address).
    const odd = [
      ['<script>alert(1)</script>', 'text/plain', '<script>alert(1)</script>'],
      ['{"message":"\\udfff lone","__proto__":{"cid":"evil"}}', 'application/json', '\uFFFD lone'],
      [Buffer.from([0x6F, 0x6B, 0xFF, 0xFE]), 'text/plain', 'ok\uFFFD\uFFFD'],
      ['{"message":"x","cid":"c-odd"}', 'text/plain', '{"message":"x","cid":"c-odd"}'],
    ] as const
    const oddRoom = `odd-${randomUUID().slice(0, 8)}`
    for (const [body, type, stored] of odd) {
      const response = await fetch(`${http}/api/sse?room=${oddRoom}`, { method: 'POST', headers: { 'content-type': type }, body })
      expect(response.status).toBe(200)
      const frame = await response.json() as Record<string, unknown>
      expect(frame.message).toBe(stored)
      expect(frame.cid).toBeUndefined()
      bump(outcomes, 'http 200 message')
      bump(expected, 'http 200 message')
    }

    const total = Object.values(outcomes).reduce((sum, count) => sum + count, 0)
    console.log(`[bad input] ${total} inputs from ${PEERS + 8} sockets + ${requests.length + odd.length} requests: ${Object.entries(outcomes).sort().map(([key, count]) => `${key}=${count}`).join(', ')}`)
    expect(total).toBeGreaterThanOrEqual(2000)
    expect(outcomes).toEqual(expected)

    // After: the server is up, answers normally, and the history replays intact.
    expect(server.process()!.exitCode).toBeNull()
    expect(server.process()!.signalCode).toBeNull()
    const reader = await ChatSocket.open(ws, { room: keepRoom })
    await until(() => reader.messages.length === 5, 'the history again')
    expect(reader.messages).toEqual(history)
    reader.send('hello after the storm')
    await reader.waitFor(frame => frame.type === 'message' && frame.message === 'hello after the storm')
    const stream = await ChatStream.open(http, { room: keepRoom })
    await until(() => stream.messages.length === 6, 'SSE replay')
    expect(stream.messages.slice(0, 5)).toEqual(history)
    const post = await postMessage(http, { message: 'post after the storm' }, { room: keepRoom })
    expect(post.status).toBe(200)
    await reader.waitFor(frame => frame.type === 'message' && frame.message === 'post after the storm')
    await Promise.all([reader.close(), stream.close()])

    await new Promise(resolve => setTimeout(resolve, 500))
    const grown = rss() - rssBefore
    console.log(`[bad input] server RSS ${(rssBefore / 2 ** 20).toFixed(0)} MiB -> ${(rss() / 2 ** 20).toFixed(0)} MiB`)
    expect(grown).toBeLessThan(64 * 2 ** 20)
    expect(server.logs()).not.toMatch(/unhandledRejection|uncaughtException/)
  })
})
