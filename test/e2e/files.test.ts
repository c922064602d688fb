/**
 * Attachments (issue 25, docs/PROTOCOL.md "Attachments") end to end, with real sockets, on SQLite
 * and on the memory store with the module's default filesystem mount, and on two PostgreSQL instances over Redis whose
 * mount is unstorage's Redis driver (so both serve the same files): types read from the bytes (a
 * renamed ELF or PE refused), the size bound enforced while the body is read, the daily quota,
 * only the room's members fetch, a send takes only the sender's own free uploads, a deleted
 * message's files go, retention takes files with their messages, and an upload orphaned by a
 * SIGKILL between upload and send is swept after the (short) timeout.
 */
import { randomUUID } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { request } from 'node:http'
import { join } from 'node:path'
import Redis from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ChatErrorFrame, ChatFile, ChatMessageFrame } from '../../src/runtime/shared/protocol'
import { ChatSocketV2, until, untilOnOneBus } from '../utils/clients'
import { elf, pe, png } from '../utils/files'
import { callServer, ownPostgresDatabase, REDIS_URL, startServer, type TestServer } from '../utils/server'

const tag = randomUUID().slice(0, 8)
let users = 0
/** A signed-in user of this file's own (the fixture's `user-….Name` sessions). */
const newUser = (name: string) => {
  const id = `user-files-${tag}-${++users}`
  return { id, name, headers: { cookie: `session=${id}.${name}` } }
}
type User = ReturnType<typeof newUser>

const MAX_SIZE = 1024 * 1024
const FILES_ENV = {
  NUXT_CHAT_RATE_LIMIT: 'false',
  NUXT_CHAT_FILES_MAX_SIZE: String(MAX_SIZE),
  NUXT_CHAT_FILES_MAX_FILES: '3',
  NUXT_CHAT_FILES_BYTES_PER_DAY: String(3 * MAX_SIZE),
  NUXT_CHAT_FILES_ORPHAN_TIMEOUT: '1500',
  NUXT_CHAT_FILES_SWEEP_INTERVAL: '250',
}

interface Setup {
  a: TestServer
  b: TestServer
  /** Are the file's bytes in the storage mount? */
  stored: (id: string) => Promise<boolean>
  /** Messages outlive a restart (not the memory store, whose restart empties the mount). */
  durable: boolean
  stop: () => Promise<void>
}

const setups: [string, () => Promise<Setup>][] = [
  ['SQLite, filesystem mount', async () => {
    const server = await startServer({ env: FILES_ENV })
    return { a: server, b: server, stored: async id => existsSync(join(server.cwd, '.data/chat-files', id)), durable: true, stop: () => server.stop() }
  }],
  ['memory store, filesystem mount', async () => {
    const server = await startServer({ env: { ...FILES_ENV, NUXT_CHAT_STORAGE: 'memory' } })
    return { a: server, b: server, stored: async id => existsSync(join(server.cwd, '.data/chat-files', id)), durable: false, stop: () => server.stop() }
  }],
  ['two PostgreSQL instances on Redis, Redis mount', async () => {
    const database = ownPostgresDatabase('nuxt_chat_files')
    const base = `nuxt-chat-files-${tag}`
    const env = { ...database.env, ...FILES_ENV, NUXT_CHAT_REDIS_URL: REDIS_URL, NUXT_CHAT_REDIS_CHANNEL: `nuxt-chat-files-${tag}`, CHAT_TEST_FILES_REDIS: `${REDIS_URL}#${base}` }
    const [a, b] = await Promise.all([startServer({ output: 'postgresql', env }), startServer({ output: 'postgresql', env })])
    await untilOnOneBus(a, b)
    const redis = new Redis(REDIS_URL)
    return {
      a,
      b,
      stored: async id => (await redis.exists(`${base}:${id}`)) === 1,
      durable: true,
      stop: async () => {
        await Promise.all([a.stop(), b.stop()])
        const keys = await redis.keys(`${base}:*`)
        if (keys.length) await redis.del(...keys)
        redis.disconnect()
        database.drop()
      },
    }
  }],
]

/** Upload `bytes` as `name` into `room`: the status and the JSON answer. */
async function upload(server: TestServer, user: User | undefined, room: string, bytes: Uint8Array, name: string, headers: Record<string, string> = {}) {
  const response = await fetch(server.url(`/_chat/files?room=${room}`), { method: 'POST', headers: { ...user?.headers, 'x-file-name': encodeURIComponent(name), ...headers }, body: bytes as unknown as BodyInit })
  return { status: response.status, body: await response.json() as ChatFile & Omit<ChatErrorFrame, 'type' | 'user'> & { type: string } }
}

/** POST a command into `room` as `user`. */
async function post(server: TestServer, user: User, room: string, body: Record<string, unknown>) {
  const response = await fetch(server.url(`/api/sse?room=${room}`), { method: 'POST', headers: { ...user.headers, 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: response.status, body: await response.json() as ChatMessageFrame & Omit<ChatErrorFrame, 'type' | 'message' | 'user'> }
}

const fetchFile = (server: TestServer, user: User | undefined, id: string) => fetch(server.url(`/_chat/files/${id}`), { headers: { ...user?.headers } })

describe.each(setups)('attachments: %s', (_name, setup) => {
  let a: TestServer
  let b: TestServer
  let stored: Setup['stored']
  let durable: boolean
  let stop: (() => Promise<void>) | undefined
  const opened: ChatSocketV2[] = []
  beforeAll(async () => {
    ;({ a, b, stored, durable, stop } = await setup())
  }, 60_000)
  afterAll(async () => {
    for (const socket of opened) await socket.close()
    await stop?.()
  })

  const connect = async (server: TestServer, user: User) => {
    const socket = await ChatSocketV2.openV2(server.wsUrl(''), {}, { headers: user.headers })
    opened.push(socket)
    return socket
  }
  const newRoom = () => `files-${randomUUID().slice(0, 8)}`

  it('an image is uploaded with its size read from the bytes, sent (text optional), delivered live and replayed with its metadata, and served inline by both instances', async () => {
    const room = newRoom()
    const [ann, bob] = [newUser('Ann'), newUser('Bob')]
    const reader = await connect(b, bob)
    expect((await reader.join(room)).type).toBe('caught_up')
    const image = png(40, 30)
    // The declared type is ignored: the bytes say PNG.
    const uploaded = await upload(a, ann, room, image, 'holiday photo 🌴.png', { 'content-type': 'application/octet-stream' })
    expect(uploaded.status).toBe(201)
    expect(uploaded.body).toEqual({ id: expect.stringMatching(/^[\w-]{22}$/), name: 'holiday photo 🌴.png', size: image.length, type: 'image/png', width: 40, height: 30 })
    const file = uploaded.body
    expect(await stored(file.id)).toBe(true)

    const sent = await post(a, ann, room, { message: '', files: [file.id], cid: 'f-1' })
    expect(sent.status).toBe(200)
    expect(sent.body.files).toEqual([file])
    const live = await reader.waitFor(frame => frame.type === 'message' && frame.room === room && frame.cid === 'f-1', 'the message on the other instance') as unknown as ChatMessageFrame
    expect(live.files).toEqual([file])
    const late = await connect(a, bob)
    await late.join(room)
    expect((await late.waitFor(frame => frame.type === 'message' && frame.room === room && frame.id === sent.body.id, 'the replay')).files).toEqual([file])

    for (const server of [a, b]) {
      const response = await fetchFile(server, bob, file.id)
      expect(response.status).toBe(200)
      expect(response.headers.get('content-type')).toBe('image/png')
      expect(response.headers.get('x-content-type-options')).toBe('nosniff')
      expect(response.headers.get('content-disposition')).toMatch(/^inline; /)
      expect(response.headers.get('content-security-policy')).toContain('sandbox')
      expect(Buffer.from(await response.arrayBuffer()).equals(image)).toBe(true)
    }
  })

  it('the type is read from the bytes: an ELF and a PE named cat.png are refused; HTML and SVG are text, served as downloads', async () => {
    const room = newRoom()
    const ann = newUser('Ann')
    for (const program of [elf(), pe()]) {
      const refused = await upload(a, ann, room, program, 'cat.png', { 'content-type': 'image/png' })
      expect(refused.status).toBe(415)
      expect(refused.body).toMatchObject({ type: 'error', code: 'bad_request' })
      expect(refused.body.message).toMatch(/application\/(x-elf|x-msdownload|vnd\.microsoft\.portable-executable)/)
    }
    for (const [name, text] of [['page.html', '<!doctype html><script>alert(document.cookie)</script>'], ['logo.svg', '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="10" height="10"/></svg>']] as const) {
      const uploaded = await upload(a, ann, room, Buffer.from(text), name, { 'content-type': name.endsWith('svg') ? 'image/svg+xml' : 'text/html' })
      expect(uploaded.status).toBe(201)
      expect(uploaded.body.type).toBe('text/plain')
      const response = await fetchFile(b, ann, uploaded.body.id)
      expect(response.status).toBe(200)
      expect(response.headers.get('content-type')).toBe('text/plain')
      expect(response.headers.get('content-disposition')).toBe(`attachment; filename="${name}"; filename*=UTF-8''${name}`)
      expect(response.headers.get('x-content-type-options')).toBe('nosniff')
    }
    // A path that is no file id: 404, like an unknown id; not even valid percent-encoding: 404 (Nitro 3 refuses such a URL itself, 400).
    for (const path of ['..%2F..%2Fchat.sqlite', 'x'.repeat(22)]) expect((await fetch(b.url(`/_chat/files/${path}`), { headers: ann.headers })).status).toBe(404)
    expect([400, 404]).toContain((await fetch(b.url('/_chat/files/%E0%A4%A'), { headers: ann.headers })).status)
    // Bytes that are neither a known type nor text.
    expect((await upload(a, ann, room, Buffer.from([0, 1, 2, 3, 0xFF, 0xFE, 0, 7]), 'blob.bin')).status).toBe(415)
  })

  it('an image\'s small preview is checked by its bytes and travels with the message; a bad preview is refused', async () => {
    const room = newRoom()
    const ann = newUser('Ann')
    const preview = png(16, 12, 3)
    const uploaded = await upload(a, ann, room, png(400, 300), 'big.png', { 'x-file-preview': preview.toString('base64') })
    expect(uploaded.status).toBe(201)
    expect(uploaded.body.preview).toBe(`data:image/png;base64,${preview.toString('base64')}`)
    const sent = await post(a, ann, room, { message: 'with a preview', files: [uploaded.body.id] })
    expect(sent.body.files).toEqual([uploaded.body])
    const page = await fetch(b.url(`/api/sse?room=${room}&before=${sent.body.id + 1}`), { headers: ann.headers })
    expect(JSON.stringify(await page.json())).toContain(uploaded.body.preview)

    const refusals: [Buffer, string, Buffer][] = [
      [png(400, 300), 'a preview larger than 64 pixels a side', png(65, 10)],
      [png(400, 300), 'a preview that is not a raster image', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>')],
      [Buffer.from('plain words'), 'a preview of a file that is not an image', preview],
      [png(400, 300), 'a preview over 4,096 bytes', Buffer.alloc(5000, 1)],
    ]
    for (const [file, why, bad] of refusals) {
      const refused = await upload(a, ann, room, file, 'x.png', { 'x-file-preview': bad.toString('base64') })
      expect(refused.status, why).toBe(400)
      expect(refused.body, why).toMatchObject({ type: 'error', code: 'bad_request' })
    }
    expect((await upload(a, ann, room, png(40, 30), 'x.png', { 'x-file-preview': 'not base64!' })).status).toBe(400)
  })

  it('a file over maxSize is refused 413, by its declared length or while it streams in, and nothing is stored', async () => {
    const room = newRoom()
    const ann = newUser('Ann')
    const declared = await upload(a, ann, room, Buffer.alloc(MAX_SIZE + 1, 'a'), 'big.txt')
    expect(declared.status).toBe(413)
    expect(declared.body.code).toBe('too_long')
    // Chunked, no length, and never ended: a server that waited for the whole body would never answer; this one answers once past the bound.
    const past = MAX_SIZE + 128 * 1024
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(a.url(`/_chat/files?room=${room}&name=stream.txt`), { method: 'POST', headers: { ...ann.headers, 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume()
        req.destroy()
        resolve(res.statusCode ?? 0)
      })
      req.on('error', reject)
      const chunk = Buffer.alloc(64 * 1024, 'b')
      let sent = 0
      const write = () => {
        while (sent < past) {
          sent += chunk.length
          if (!req.write(chunk)) return void req.once('drain', write)
        }
      }
      write()
    })
    expect(status).toBe(413)
    // Still serving, and the person's quota untouched by what was refused.
    const fine = await upload(a, ann, room, Buffer.from('fine'), 'ok.txt')
    expect(fine.status, JSON.stringify(fine.body)).toBe(201)
  })

  it('a person\'s bytes per day are bounded (429), on every instance', async () => {
    const room = newRoom()
    const ann = newUser('Ann')
    const part = Buffer.alloc(MAX_SIZE - 100, 'q')
    for (const server of [a, b, a]) expect((await upload(server, ann, room, part, 'part.txt')).status).toBe(201)
    const refused = await upload(b, ann, room, Buffer.alloc(1000, 'q'), 'more.txt')
    expect(refused.status).toBe(429)
    expect(refused.body).toMatchObject({ code: 'rate_limited', scope: 'person' })
    // Someone else still may.
    expect((await upload(b, newUser('Bob'), room, Buffer.alloc(1000, 'q'), 'more.txt')).status).toBe(201)
  })

  it('guests\' bytes per day are counted by their address, and one person\'s uploads sent at once see each other', async () => {
    const room = newRoom()
    const part = Buffer.alloc(MAX_SIZE - 100, 'g')
    // Guests without a key: a new guest id each time, from one address. Before, none was ever refused.
    const guests = []
    for (let index = 0; index < 4; index++) guests.push((await upload(a, undefined, room, part, 'guest.txt')).status)
    expect(guests).toEqual([201, 201, 201, 429])
    // Ten uploads at once by one person: three fit the day's bytes. Before, each checked what was stored before any was read: up to ten were.
    const ann = newUser('Ann')
    const statuses = await Promise.all(Array.from({ length: 10 }, () => upload(a, ann, room, part, 'burst.txt').then(answer => answer.status)))
    expect(statuses.filter(status => status === 201)).toHaveLength(3)
    expect(statuses.filter(status => status === 429)).toHaveLength(7)
  })

  it('only those admitted to the room upload and fetch its files', async () => {
    const room = `files-private-${randomUUID().slice(0, 8)}`
    const [ann, bob, eve] = [newUser('Ann'), newUser('Bob'), newUser('Eve')]
    expect((await callServer(a, { call: 'createRoom', input: { id: room, title: 'Private', visibility: 'private', owner: ann.id, members: [bob.id] } })).status).toBe(200)
    const uploaded = await upload(a, ann, room, png(8, 8), 'secret.png')
    expect(uploaded.status).toBe(201)
    expect((await post(a, ann, room, { message: 'look', files: [uploaded.body.id] })).status).toBe(200)
    for (const server of [a, b]) {
      expect((await fetchFile(server, bob, uploaded.body.id)).status).toBe(200)
      const refused = await fetchFile(server, eve, uploaded.body.id)
      expect(refused.status).toBe(403)
      expect(Buffer.from(await refused.arrayBuffer()).toString()).not.toContain('PNG')
      expect([401, 403]).toContain((await fetchFile(server, undefined, uploaded.body.id)).status)
    }
    expect((await upload(b, eve, room, png(8, 8), 'intruder.png')).status).toBe(403)
    // An <img> or a link of the app's own pages is let in; one on another site is not (it would carry the member's cookie).
    const asImage = (site: string) => fetch(a.url(`/_chat/files/${uploaded.body.id}`), { headers: { ...bob.headers, 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'image', 'sec-fetch-site': site } })
    expect((await asImage('same-origin')).status).toBe(200)
    expect((await asImage('cross-site')).status).toBe(403)
    expect((await fetchFile(a, ann, 'A'.repeat(22))).status).toBe(404)
    expect((await fetchFile(a, ann, '..%2F..%2Fetc%2Fpasswd')).status).toBe(404)
  })

  it('a message takes only the sender\'s own uploads to that room, each once, at most maxFiles; a resend with its cid is answered as stored', async () => {
    const room = newRoom()
    const [ann, bob] = [newUser('Ann'), newUser('Bob')]
    const ids = []
    for (let index = 0; index < 4; index++) ids.push((await upload(a, ann, room, Buffer.from(`note ${index}`), `note${index}.txt`)).body.id)
    const elsewhere = (await upload(a, ann, newRoom(), Buffer.from('other room'), 'other.txt')).body.id
    const refusals = [
      await post(b, bob, room, { message: 'mine now', files: [ids[0]] }),
      await post(b, ann, room, { message: 'wrong room', files: [elsewhere] }),
      await post(b, ann, room, { message: 'too many', files: ids }),
      await post(b, ann, room, { message: 'unknown', files: ['B'.repeat(22)] }),
      await post(b, ann, room, { message: 'repeated', files: [ids[0], ids[0]] }),
      await post(b, ann, room, { type: 'edit', target: 1, message: 'edit', files: [ids[0]] }),
    ]
    for (const refused of refusals) {
      expect(refused.status).toBe(400)
      expect(refused.body.code).toBe('bad_request')
    }
    const sent = await post(b, ann, room, { message: 'three notes', files: ids.slice(0, 3), cid: 'notes-1' })
    expect(sent.status).toBe(200)
    expect(sent.body.files!.map(file => file.id)).toEqual(ids.slice(0, 3))
    const resent = await post(a, ann, room, { message: 'three notes', files: ids.slice(0, 3), cid: 'notes-1' })
    expect(resent.status).toBe(200)
    expect(resent.body).toMatchObject({ id: sent.body.id, duplicate: true })
    const again = await post(a, ann, room, { message: 'same notes', files: [ids[0]], cid: 'notes-2' })
    expect(again.status).toBe(400)
    // Nothing was stored by the refusals: the room holds the one message.
    const reader = await connect(a, bob)
    await reader.join(room)
    await until(() => reader.messagesOf(room).length === 1 && reader.messagesOf(room), 'the room\'s one message')
  })

  it('server code sends files (useChatServer().send): their type checked from the bytes, then served to the room\'s members', async () => {
    const room = newRoom()
    const bob = newUser('Bob')
    const report = png(12, 10, 2)
    const sent = await callServer<ChatMessageFrame>(a, { call: 'send', room, message: '', user: { id: 'deploy-bot', name: 'Deploy bot' }, files: [{ name: 'chart.png', base64: report.toString('base64') }] })
    expect(sent.status).toBe(200)
    expect(sent.body.files).toEqual([{ id: expect.stringMatching(/^[\w-]{22}$/), name: 'chart.png', size: report.length, type: 'image/png', width: 12, height: 10 }])
    const response = await fetchFile(b, bob, sent.body.files![0]!.id)
    expect(response.status).toBe(200)
    expect(Buffer.from(await response.arrayBuffer()).equals(report)).toBe(true)
    const refused = await callServer<{ data?: ChatErrorFrame }>(a, { call: 'send', room, message: 'a program', files: [{ name: 'tool.png', base64: elf().toString('base64') }] })
    expect(refused.status).toBe(415)
  })

  it('a file\'s name loses bidi controls and invisible characters, uploaded or sent by server code; nothing visible left is refused', async () => {
    const room = newRoom()
    const bob = newUser('Bob')
    const image = png(4, 4, 1)
    const fromServer = await callServer<ChatMessageFrame>(a, { call: 'send', room, message: '', files: [{ name: 'chart\u202Egnp.exe', base64: image.toString('base64') }] })
    expect(fromServer.body.files?.[0]?.name).toBe('chartgnp.exe')
    const uploaded = await upload(a, bob, room, image, 'photo\u2066\u200B \u05E9\u05DC\u05D5\u05DD\uFEFF.png')
    expect(uploaded.status).toBe(201)
    expect(uploaded.body.name).toBe('photo \u05E9\u05DC\u05D5\u05DD.png')
    expect((await upload(a, bob, room, image, '\u202E\u200B')).body).toMatchObject({ code: 'bad_request' })
    expect((await callServer(a, { call: 'send', room, message: '', files: [{ name: '\u2066', base64: image.toString('base64') }] })).status).toBe(400)
  })

  it('deleting a message deletes its files on every instance', async () => {
    const room = newRoom()
    const ann = newUser('Ann')
    const file = (await upload(a, ann, room, png(16, 16, 3), 'gone.png')).body
    const sent = await post(a, ann, room, { message: 'soon gone', files: [file.id] })
    expect((await fetchFile(b, ann, file.id)).status).toBe(200)
    expect((await post(b, ann, room, { type: 'delete', target: sent.body.id })).status).toBe(200)
    await until(async () => !await stored(file.id), 'the bytes removed')
    for (const server of [a, b]) expect((await fetchFile(server, ann, file.id)).status).toBe(404)
  })

  it('a SIGKILL between upload and send leaves no orphan after the timeout; files in messages stay (with their messages)', async () => {
    const room = newRoom()
    const ann = newUser('Ann')
    const kept = (await upload(a, ann, room, png(4, 4), 'kept.png')).body
    expect((await post(a, ann, room, { message: 'kept', files: [kept.id] })).status).toBe(200)
    const orphan = (await upload(a, ann, room, png(4, 4, 9), 'orphan.png')).body
    expect(await stored(orphan.id)).toBe(true)
    await a.stop('SIGKILL')
    // The survivor (or the restarted server) sweeps it.
    if (a === b) await a.start()
    await until(async () => !await stored(orphan.id), 'the orphan removed', 15_000)
    expect((await fetchFile(b, ann, orphan.id)).status).toBe(404)
    // The memory store's messages went with the process, and their files with them.
    expect((await fetchFile(b, ann, kept.id)).status).toBe(durable ? 200 : 404)
    expect(await stored(kept.id)).toBe(durable)
    if (a !== b) {
      await a.start()
      await untilOnOneBus(a, b)
    }
  }, 40_000)
})

describe('attachments and retention', () => {
  let server: TestServer | undefined
  afterAll(async () => {
    await server?.stop()
  })

  it('retention removes files with their messages', async () => {
    server = await startServer({ env: { ...FILES_ENV, NUXT_CHAT_HISTORY_MAX: '2', NUXT_CHAT_HISTORY_INTERVAL: '200' } })
    const room = `files-retention-${randomUUID().slice(0, 8)}`
    const ann = newUser('Ann')
    const ids: string[] = []
    for (let index = 0; index < 3; index++) {
      const file = (await upload(server, ann, room, png(4, 4, index), `n${index}.png`)).body
      expect((await post(server, ann, room, { message: `n${index}`, files: [file.id] })).status).toBe(200)
      ids.push(file.id)
    }
    const path = (id: string) => join(server!.cwd, '.data/chat-files', id)
    await until(() => !existsSync(path(ids[0]!)), 'the oldest message\'s file removed')
    expect((await fetchFile(server, ann, ids[0]!)).status).toBe(404)
    for (const id of ids.slice(1)) expect(existsSync(path(id))).toBe(true)
  })
})

describe('attachments and the rate limit', () => {
  let server: TestServer | undefined
  afterAll(async () => {
    await server?.stop()
  })

  it('each upload takes a token of the person\'s messages limit: past it, 429 rate_limited and nothing stored', async () => {
    const { NUXT_CHAT_RATE_LIMIT: _off, ...limited } = FILES_ENV
    server = await startServer({ env: { ...limited, NUXT_CHAT_RATE_LIMIT_MESSAGES: '1', NUXT_CHAT_RATE_LIMIT_INTERVAL: '60000', NUXT_CHAT_RATE_LIMIT_BURST: '2' } })
    const room = `files-limit-${randomUUID().slice(0, 8)}`
    const ann = newUser('Ann')
    for (let index = 0; index < 2; index++) expect((await upload(server, ann, room, Buffer.from(`n${index}`), `n${index}.txt`)).status).toBe(201)
    const refused = await upload(server, ann, room, Buffer.from('n2'), 'n2.txt')
    expect(refused.status).toBe(429)
    expect(refused.body).toMatchObject({ code: 'rate_limited', limit: 'messages', scope: 'person' })
    // Another person is not held by Ann's count.
    expect((await upload(server, newUser('Bob'), room, Buffer.from('b'), 'b.txt')).status).toBe(201)
  })
})

describe('attachments when the database fails', () => {
  const database = ownPostgresDatabase('nuxt_chat_files_fault')
  let server: TestServer | undefined
  afterAll(async () => {
    await server?.stop()
    database.drop()
  })

  it('an upload while the database is down answers 503 unavailable and keeps no bytes; the server lives on, and once it is back uploads and sends work', async () => {
    // Its uploads wait out an outage and a reconnect before a message takes them: no orphan sweep meanwhile (1.5 s elsewhere, outlived on a loaded machine).
    server = await startServer({ output: 'postgresql', env: { ...database.env, ...FILES_ENV, NUXT_CHAT_FILES_ORPHAN_TIMEOUT: '600000' } })
    const room = `files-fault-${randomUUID().slice(0, 8)}`
    const ann = newUser('Ann')
    const first = await upload(server, ann, room, png(4, 4), 'before.png')
    expect(first.status).toBe(201)
    const files = () => readdirSync(join(server!.cwd, '.data/chat-files'))
    const admin = (sql: string) => execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'test', '-tAc', sql], { stdio: 'pipe' })
    // The database refuses connections and ends the server's sessions (its room log's and its files'): down, as far as the server can tell.
    admin(`ALTER DATABASE ${database.name} ALLOW_CONNECTIONS false`)
    admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${database.name}'`)
    const failed = await upload(server, ann, room, png(4, 4, 5), 'during.png')
    expect(failed.status).toBe(503)
    expect(failed.body.code).toBe('unavailable')
    expect(files()).toEqual([first.body.id])
    expect(server.process()!.exitCode).toBe(null)
    admin(`ALTER DATABASE ${database.name} ALLOW_CONNECTIONS true`)
    const after = await until(async () => {
      const answer = await upload(server!, ann, room, png(4, 4, 6), 'after.png')
      return answer.status === 201 && answer
    }, 'an upload once the database is back')
    // The room log reconnects on its own next call; on a loaded machine that took over 10 s once (CI), so 30 s, and the last answer if not.
    let last: unknown
    const sent = await until(async () => {
      const answer = await post(server!, ann, room, { message: 'with files', files: [first.body.id, after.body.id], cid: 'fault-1' })
      last = answer
      return answer.status === 200 && answer
    }, 'the message once the database is back', 30_000).catch((error: Error) => {
      throw new Error(`${error.message}; the last answer: ${JSON.stringify(last)}`)
    })
    expect(sent.body.files!.map(file => file.id)).toEqual([first.body.id, after.body.id])
    expect((await fetchFile(server, ann, first.body.id)).status).toBe(200)
  })
})
