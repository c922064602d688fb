import { execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChatSocket, ChatStream, postMessage, until } from '../utils/clients'
import { holdSqliteLock, ownPostgres, setImmutable } from '../utils/faults'
import { startServer, type TestServer } from '../utils/server'

// Store faults against a built server: each costs at most the requests that met it (a clear
// error, never silence), the first request after the cause is gone succeeds within 2 s,
// nothing acknowledged is lost, and no unhandled rejection is logged.

const newRoom = (tag: string) => `${tag}-${randomUUID().slice(0, 8)}`
const base = (server: TestServer) => server.url('').replace(/\/$/, '')
// Many sends at once from one address: neither the rate limits nor the per-address connection cap (a POST holds a slot) are under test here.
const env = { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_MAX_CONNECTIONS_PER_IP: '0' }

/** One row of the table: fault | what the client saw | time to recover | messages lost. */
function report(fault: string, saw: string, recoverMs: number, lost: number) {
  console.log(`[faults] ${fault} | ${saw} | ${Math.round(recoverMs)} ms | ${lost}`)
}

/** The message a socket last got `unavailable` for: the server holds later cids until it comes again (docs/PROTOCOL.md). */
const refusedOn = new WeakMap<ChatSocket, { message: string, cid: string }>()

/** Send over WebSocket; resolves with the ack or the error frame for `cid`. */
async function sendWs(socket: ChatSocket, message: string, cid: string, timeout = 10_000) {
  // Only answers to this send: a resent cid's earlier refusal is already in `frames`.
  const start = socket.frames.length
  socket.send({ type: 'message', message, cid })
  const answer = await until(() => socket.frames.slice(start).find(frame => frame.cid === cid && (frame.type === 'message' || frame.type === 'error')), `an answer to ${cid}`, timeout)
  if (answer.type === 'error' && answer.code === 'unavailable') refusedOn.set(socket, { message, cid })
  else if (refusedOn.get(socket)?.cid === cid) refusedOn.delete(socket)
  return answer
}

/** POST, timing the answer. */
async function timedPost(server: TestServer, room: string, message: string, cid?: string) {
  const started = performance.now()
  const result = await postMessage(base(server), cid ? { message, cid } : message, { room })
  return { ...result, ms: performance.now() - started }
}

/** Every acknowledged `[id, cid]` is in the room's log, and the room's ids have no hole; returns how many were lost. */
async function lostOf(server: TestServer, room: string, acked: [number, string][]) {
  const reader = await ChatStream.open(base(server), { room, since: 0 })
  const last = Math.max(0, ...acked.map(([id]) => id))
  await until(() => reader.messages.some(frame => frame.id >= last), `the replay of ${room}`, 5000).catch(() => undefined)
  await reader.close()
  const ids = reader.messages.map(frame => frame.id)
  expect(ids, 'ids without a hole').toEqual(ids.map((_, index) => index + 1))
  return acked.filter(([id, cid]) => !reader.messages.some(frame => frame.id === id && frame.cid === cid)).length
}

function expectCleanLogs(server: TestServer) {
  expect(server.process()?.exitCode ?? null, 'the server is still running').toBeNull()
  expect(server.logs()).not.toMatch(/unhandledRejection|uncaughtException/)
}

/**
 * Right after the cause is gone: a POST succeeds within 2 s, then a WebSocket send; every
 * acknowledged message is in the log. Returns the POST's time and how many acked were lost.
 */
async function expectRecovered(server: TestServer, socket: ChatSocket, room: string, tag: string, acked: [number, string][] = []) {
  const after = await timedPost(server, room, 'after', `${tag}-after`)
  expect(after.status).toBe(200)
  expect(after.ms).toBeLessThan(2000)
  acked.push([after.json!.id as number, `${tag}-after`])
  // A client resends what was refused first, as the server holds later messages behind it.
  const refused = refusedOn.get(socket)
  if (refused) {
    const retried = await sendWs(socket, refused.message, refused.cid)
    expect(retried).toMatchObject({ type: 'message' })
    acked.push([retried.id as number, refused.cid])
  }
  const ws = await sendWs(socket, 'after ws', `${tag}-after-ws`)
  expect(ws).toMatchObject({ type: 'message' })
  acked.push([ws.id as number, `${tag}-after-ws`])
  const lost = await lostOf(server, room, acked)
  expect(lost).toBe(0)
  await socket.close()
  expectCleanLogs(server)
  return { ms: after.ms, lost }
}

describe('faults: SQLite store', () => {
  let server: TestServer
  let sqlite: string
  beforeAll(async () => {
    server = await startServer({ env })
    sqlite = join(server.cwd, '.data/chat.sqlite')
  })
  afterAll(() => server?.stop())

  it('another process holding BEGIN IMMEDIATE: senders get unavailable, other HTTP requests stay fast, the next send after it works', async () => {
    const room = newRoom('lock')
    const other = newRoom('lock-other')
    const socket = await ChatSocket.open(server.wsUrl(''), { room })
    const acked: [number, string][] = []
    const before = await sendWs(socket, 'before', 'before')
    expect(before.type).toBe('message')
    acked.push([before.id as number, 'before'])

    const lock = await holdSqliteLock(sqlite, 3000)
    const locked = performance.now()
    const duringWs = sendWs(socket, 'during ws', 'during-ws')
    const duringPost = timedPost(server, other, 'during post', 'during-post')
    // An unrelated request while both wait for the lock.
    await new Promise(resolve => setTimeout(resolve, 200))
    const probeStarted = performance.now()
    expect((await fetch(server.url('/_ws'))).status).toBeLessThan(500)
    const probeMs = performance.now() - probeStarted
    // Held by the lock, it would wait out the 2 s busy timeout; 1 s is room for a loaded machine.
    expect(probeMs, 'an unrelated HTTP request during the lock').toBeLessThan(1000)
    const [ws, post] = await Promise.all([duringWs, duringPost])
    expect(ws).toMatchObject({ type: 'error', code: 'unavailable', cid: 'during-ws' })
    expect(post.status).toBe(503)
    expect(post.json).toMatchObject({ type: 'error', code: 'unavailable', cid: 'during-post' })
    expect(performance.now() - locked, 'answered before the lock went away').toBeLessThan(3000)

    await lock.released
    const after = await timedPost(server, room, 'after', 'after')
    expect(after.status).toBe(200)
    expect(after.ms).toBeLessThan(2000)
    acked.push([after.json!.id as number, 'after'])
    // The client's retry of what was refused is stored once.
    const retried = await sendWs(socket, 'during ws', 'during-ws')
    expect(retried).toMatchObject({ type: 'message' })
    acked.push([retried.id as number, 'during-ws'])
    const lost = await lostOf(server, room, acked)
    expect(lost).toBe(0)
    report('SQLite write lock held 3 s by another process', `WS error unavailable, POST 503 (after ~2 s); unrelated GET ${Math.round(probeMs)} ms`, after.ms, lost)
    await socket.close()
    expectCleanLogs(server)
  })

  /**
   * A socket in a new room with one message acknowledged, then `during` while the database file and its WAL cannot be
   * written, then the checks of `expectRecovered` once they can. The first send meanwhile is refused `unavailable`.
   */
  async function readOnlyWhile(tag: string, during: (room: string, before: Record<string, unknown>) => Promise<void>) {
    const room = newRoom(tag)
    const socket = await ChatSocket.open(server.wsUrl(''), { room })
    const acked: [number, string][] = []
    const before = await sendWs(socket, 'before', `${tag}-before`)
    acked.push([before.id as number, `${tag}-before`])
    const files = [sqlite, `${sqlite}-wal`]
    setImmutable(files, true)
    try {
      expect(await sendWs(socket, 'during', `${tag}-during`)).toMatchObject({ type: 'error', code: 'unavailable' })
      await during(room, before)
    }
    finally {
      setImmutable(files, false)
    }
    return expectRecovered(server, socket, room, tag, acked)
  }

  it('the database file turns read-only while running: senders get unavailable, the next send after it works', async () => {
    const { ms, lost } = await readOnlyWhile('ro', async (room) => {
      const post = await timedPost(server, room, 'during post', 'ro-during-post')
      expect(post.status).toBe(503)
    })
    report('SQLite file read-only while running', 'WS error unavailable, POST 503', ms, lost)
  })

  it('a read while the file is read-only opens it for reading only: that connection is replaced once it is writable, and the next send works', async () => {
    // The failed write drops the connection; the next read opens the file again, which SQLite can only read now.
    const { ms, lost } = await readOnlyWhile('ror', async (room, before) => {
      const page = await fetch(`${base(server)}/api/sse?room=${room}&before=${before.id as number + 1}&limit=5`)
      expect(await page.text()).toContain('"message":"before"')
    })
    report('SQLite file read-only while running, read meanwhile', 'WS error unavailable; reads served', ms, lost)
  })
})

describe('faults: SQLite unusable at boot', () => {
  const cases: [string, (data: string) => void, (data: string) => void][] = [
    ['a corrupted header', (data) => {
      writeFileSync(join(data, 'chat.sqlite'), Buffer.alloc(8192, 'x'))
    }, (data) => {
      rmSync(join(data, 'chat.sqlite'))
    }],
    ['a read-only database file', (data) => {
      execFileSync('sqlite3', [join(data, 'chat.sqlite'), 'PRAGMA user_version = 1'])
      setImmutable([join(data, 'chat.sqlite')], true)
    }, (data) => {
      setImmutable([join(data, 'chat.sqlite')], false)
    }],
    ['an unwritable .data/', (data) => {
      setImmutable([data], true)
    }, (data) => {
      setImmutable([data], false)
    }],
  ]

  it.each(cases)('%s: every send gets unavailable; once fixed, the next send works without a restart', async (fault, breakIt, fixIt) => {
    const cwd = mkdtempSync(join(tmpdir(), 'nuxt-chat-boot-'))
    const data = join(cwd, '.data')
    mkdirSync(data)
    breakIt(data)
    let server: TestServer | undefined
    try {
      server = await startServer({ cwd, env })
      const room = newRoom('boot')
      const socket = await ChatSocket.open(server.wsUrl(''), { room })
      expect(await sendWs(socket, 'while broken', 'broken-ws')).toMatchObject({ type: 'error', code: 'unavailable' })
      for (let i = 0; i < 2; i++) expect((await timedPost(server, room, 'while broken', `broken-${i}`)).status).toBe(503)
      fixIt(data)
      const { ms, lost } = await expectRecovered(server, socket, room, 'fixed')
      report(`SQLite: ${fault} at boot`, 'WS error unavailable, POST 503', ms, lost)
    }
    finally {
      fixIt(data)
      await server?.stop()
    }
  })
})

describe('faults: PostgreSQL (a cluster of this test\'s own)', () => {
  let pg: Awaited<ReturnType<typeof ownPostgres>>
  let server: TestServer
  beforeAll(async () => {
    pg = await ownPostgres()
  })
  afterAll(async () => {
    await server?.stop()
    await pg?.stop('immediate')
    pg?.remove()
  })

  it('down at boot: sends get unavailable; serving starts as soon as it answers', async () => {
    server = await startServer({ output: 'postgresql', env: { ...env, NUXT_CHAT_DATABASE_OPTIONS_URL: pg.url } })
    const room = newRoom('pg-boot')
    for (let i = 0; i < 2; i++) {
      const down = await timedPost(server, room, 'while down', `down-${i}`)
      expect(down.status).toBe(503)
      expect(down.json).toMatchObject({ code: 'unavailable' })
    }
    await pg.start()
    const after = await timedPost(server, room, 'up', 'up')
    expect(after.status).toBe(200)
    expect(after.ms).toBeLessThan(2000)
    const lost = await lostOf(server, room, [[after.json!.id as number, 'up']])
    expect(lost).toBe(0)
    report('PostgreSQL down at boot, then started', 'POST 503 unavailable', after.ms, lost)
    expectCleanLogs(server)
  })

  it('killed mid-run: the requests that met it get unavailable, the first one after restart works', async () => {
    const room = newRoom('pg-kill')
    const socket = await ChatSocket.open(server.wsUrl(''), { room })
    const acked: [number, string][] = []
    for (let i = 0; i < 3; i++) {
      const ack = await sendWs(socket, `before ${i}`, `k-before-${i}`)
      expect(ack.type).toBe('message')
      acked.push([ack.id as number, `k-before-${i}`])
    }
    await pg.stop('immediate')
    expect(await sendWs(socket, 'during', 'k-during')).toMatchObject({ type: 'error', code: 'unavailable' })
    expect((await timedPost(server, room, 'during', 'k-during-post')).status).toBe(503)
    await pg.start()
    const { ms, lost } = await expectRecovered(server, socket, room, 'k', acked)
    report('PostgreSQL killed mid-run (immediate), restarted', 'WS error unavailable, POST 503', ms, lost)
  })

  it('20 senders with NUL in their cid get bad_request and cost no other room a send', async () => {
    const prefix = newRoom('pg-nul')
    const bad = Array.from({ length: 20 }, (_, i) => postMessage(base(server), { message: `bad ${i}`, cid: 'x\u0000' }, { room: `${prefix}-bad`, name: `bad${i}` }))
    const good = Array.from({ length: 250 }, (_, i) => postMessage(base(server), { message: `good ${i}`, cid: `good-${i}` }, { room: `${prefix}-${i % 10}` }))
    const [badResults, goodResults] = await Promise.all([Promise.all(bad), Promise.all(good)])
    expect(goodResults.filter(result => result.status !== 200).map(result => result.status)).toEqual([])
    for (const result of badResults) {
      expect(result.status).toBe(400)
      expect(result.json).toMatchObject({ code: 'bad_request' })
    }
    let lost = 0
    for (let index = 0; index < 10; index++) {
      const room = `${prefix}-${index}`
      lost += await lostOf(server, room, goodResults.flatMap(result => result.json?.room === room ? [[result.json.id as number, result.json.cid as string] as [number, string]] : []))
    }
    expect(lost).toBe(0)
    report('20 senders with "x\\u0000" cids (PostgreSQL)', 'those 20: 400 bad_request; 250 other sends: 200', 0, lost)
    expectCleanLogs(server)
  })
})

describe('retention on a timer', () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startServer({ env: { ...env, NUXT_CHAT_HISTORY_MAX_AGE: '500', NUXT_CHAT_HISTORY_INTERVAL: '200' } })
  })
  afterAll(() => server?.stop())

  it('prunes a quiet room by age without a new message, every message of it (the room keeps only its last number), and its ids go on', async () => {
    const room = newRoom('quiet')
    for (let i = 1; i <= 3; i++) expect((await timedPost(server, room, `old ${i}`, `old-${i}`)).status).toBe(200)
    // Nothing is sent to the room meanwhile: only the timer can prune it.
    let replayed: number[] = [1, 2, 3]
    const deadline = Date.now() + 5000
    while (Date.now() < deadline) {
      const reader = await ChatStream.open(base(server), { room, since: 0 })
      // The replay follows the presence list at once.
      await until(() => reader.frames.some(frame => frame.type === 'presence'), 'the presence list')
      await new Promise(resolve => setTimeout(resolve, 100))
      await reader.close()
      replayed = reader.messages.map(frame => frame.id)
      if (!replayed.length) break
      await new Promise(resolve => setTimeout(resolve, 200))
    }
    expect(replayed).toEqual([])
    const next = await timedPost(server, room, 'new', 'new')
    expect(next.json?.id).toBe(4)
    expectCleanLogs(server)
  })
})
