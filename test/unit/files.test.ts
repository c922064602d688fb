/**
 * Attachments' parts below the routes (docs/PROTOCOL.md, "Attachments"): the `files` field of a
 * `message` command, the type read from the bytes, and the uploads' records on every store
 * (memory, SQLite, PostgreSQL): reservation by one send at a time, the sweep's choice, the quota.
 */
import { resolveObjectURL } from 'node:buffer'
import { execFileSync } from 'node:child_process'
import { DatabaseSync } from 'node:sqlite'
import { randomUUID } from 'node:crypto'
import { createDatabase } from 'db0'
import nodeSqlite from 'db0/connectors/node-sqlite'
import postgresql from 'db0/connectors/postgresql'
import { afterAll, describe, expect, it } from 'vitest'
import { isFileId, parseSendCommand } from '../../src/runtime/shared/protocol'
import { createMessageLog } from '../../src/runtime/app/messageLog'
import { claimFilesWith, createMemoryFileRecords, type FileRecords } from '../../src/runtime/server/files/fileRecords'
import { createDb0FileRecords } from '../../src/runtime/server/files/fileRecords.db0'
import { sniffFile } from '../../src/runtime/server/files/fileType'
import { createDb0RoomLog } from '../../src/runtime/server/utils/roomLog.db0'
import { createMemoryRoomLog } from '../../src/runtime/server/utils/roomLog.memory'
import type { RoomLog } from '../../src/runtime/server/utils/roomLog'
import { setImmutable } from '../utils/faults'
import { elf, pe, png } from '../utils/files'
import { POSTGRES_URL, sqlitePath } from '../utils/roomLogs'
import { ownPostgresDatabase } from '../utils/server'

const fileId = () => randomUUID().replaceAll('-', '').slice(0, 22)
/** A reservation's token, unique like the pipeline's (the PostgreSQL database is shared with earlier runs). */
const tokens = new Map<string, string>()
const token = (name: string) => tokens.get(name) ?? tokens.set(name, `${name}-${randomUUID()}`).get(name)!

describe('the files field of a message command', () => {
  const id = fileId()
  it('takes 1-100 distinct file ids on a message only', () => {
    expect(isFileId(id)).toBe(true)
    expect(parseSendCommand({ message: '', files: [id] })).toEqual({ type: 'message', message: '', files: [id] })
    for (const files of ['x', [], [id, id], ['short'], [42], Array.from({ length: 101 }, fileId)]) {
      expect(parseSendCommand({ message: 'x', files })).toMatch(/`files` must be 1-100 distinct attachment ids/)
    }
    expect(parseSendCommand({ type: 'edit', target: 1, message: 'x', files: [id] })).toBe('`files` is for messages, not edits')
  })
})

describe('a pending message with files, in the client\'s log', () => {
  it('its echo replaces the local previews with the server\'s metadata and lets their bytes go', () => {
    const log = createMessageLog(100)
    const url = URL.createObjectURL(new Blob(['picture bytes']))
    log.addPending({ room: 'r', user: 'Ann', message: '', ts: 1, cid: 'c-1', files: [{ id: '', name: 'a.png', size: 13, type: 'image/png', url }] })
    expect(resolveObjectURL(url)).toBeDefined()
    const file = { id: 'x'.repeat(22), name: 'a.png', size: 13, type: 'image/png' }
    log.add({ type: 'message', id: 1, room: 'r', user: 'Ann', message: '', ts: 2, cid: 'c-1', files: [file] })
    expect(log.get(1)!.files).toEqual([file])
    expect(resolveObjectURL(url)).toBeUndefined()
  })
})

describe('the type of a file, from its bytes', () => {
  it('knows images (with their size), programs, text and the rest', async () => {
    expect(await sniffFile(png(33, 12))).toEqual({ type: 'image/png', width: 33, height: 12 })
    expect((await sniffFile(elf())).type).toBe('application/x-elf')
    expect((await sniffFile(pe())).type).toMatch(/^application\/(x-msdownload|vnd\.microsoft\.portable-executable)$/)
    expect(await sniffFile(Buffer.from('<svg onload="alert(1)"/>'))).toEqual({ type: 'text/plain' })
    expect(await sniffFile(Buffer.from('héllo 🌍\n'))).toEqual({ type: 'text/plain' })
    expect(await sniffFile(Buffer.from([0xC3, 0x28, 0x41]))).toEqual({ type: 'application/octet-stream' })
    expect(await sniffFile(Buffer.from([0x41, 0, 0x42]))).toEqual({ type: 'application/octet-stream' })
    // A PNG signature with a broken header: the type stands, without a size.
    expect(await sniffFile(Buffer.concat([png(2, 2).subarray(0, 16), Buffer.alloc(8)]))).toMatchObject({ type: 'image/png' })
  })
})

const opened: { log: RoomLog, records: FileRecords }[] = []
afterAll(async () => {
  await Promise.all(opened.flatMap(({ log, records }) => [log.close(), records.close()]))
})

const backends: [string, () => { log: RoomLog, records: FileRecords }][] = [
  ['memory', () => {
    const log = createMemoryRoomLog()
    return { log, records: createMemoryFileRecords(log) }
  }],
  ['sqlite', () => {
    const path = sqlitePath('nuxt-chat-files-')
    return { log: createDb0RoomLog(() => createDatabase(nodeSqlite({ path }))), records: createDb0FileRecords(() => createDatabase(nodeSqlite({ path }))) }
  }],
  ['postgresql', () => ({ log: createDb0RoomLog(() => createDatabase(postgresql({ url: POSTGRES_URL }))), records: createDb0FileRecords(() => createDatabase(postgresql({ url: POSTGRES_URL }))) })],
]

describe.each(backends)('the uploads\' records: %s', (_name, create) => {
  const setup = () => {
    const store = create()
    opened.push(store)
    const room = `files-${randomUUID().slice(0, 8)}`
    const uid = `u-${randomUUID().slice(0, 8)}`
    const add = async (created = Date.now(), owner = uid, inRoom = room) => {
      const id = fileId()
      await store.records.add({ id, room: inRoom, uid: owner, quota: owner, name: `${id}.png`, size: 100, type: 'image/png', width: 2, height: 3, created })
      return id
    }
    return { ...store, room, uid, add }
  }

  it('one send at a time reserves an upload: only the uploader\'s, in its room, not taken; released or attached', async () => {
    const { records, room, uid, add } = setup()
    const [mine, other, elsewhere] = [await add(), await add(Date.now(), 'u-other'), await add(Date.now(), uid, `${room}-x`)]
    const now = Date.now()
    expect((await records.claim([mine, other, elsewhere], room, uid, token('t1'), now, now - 60_000)).map(record => record.id)).toEqual([mine])
    // Held by t1: nobody else takes it, until t1 lets go.
    expect(await records.claim([mine], room, uid, token('t2'), now, now - 60_000)).toEqual([])
    await records.release(token('t1'))
    expect(await records.claim([mine], room, uid, token('t2'), now, now - 60_000)).toMatchObject([{ id: mine, name: `${mine}.png`, size: 100, type: 'image/png', width: 2, height: 3 }])
    await records.attach(token('t2'), 7)
    expect(await records.get(mine)).toMatchObject({ id: mine, room, uid, message: 7 })
    expect(await records.ofMessage(room, 7)).toEqual([mine])
    // Taken by a message: no send takes it again.
    expect(await records.claim([mine], room, uid, token('t3'), now, now)).toEqual([])
  })

  it('a send retried with its cid takes back the reservation its failed try could not let go (the store down), and only that send', async () => {
    const { records, room, uid, add } = setup()
    const id = await add()
    const claim = claimFilesWith(records, 10)
    const input = { room, user: { id: uid, name: 'Ann' }, sender: uid, message: 'with a file', cid: `c-${randomUUID()}`, files: [id] }
    expect(await claim(input)).toMatchObject({ files: [{ id }] })
    // Its release never reached the store: the reservation stays, as after a fault. The retry (same cid) takes it back.
    expect(await claim(input)).toMatchObject({ files: [{ id }] })
    // Another send still may not take it.
    expect(await claim({ ...input, cid: `c-${randomUUID()}` })).toEqual([400, 'bad_request', expect.stringContaining(id)])
  })

  it('a reservation older than the claim timeout is free again (a send that died holding it)', async () => {
    const { records, room, uid, add } = setup()
    const id = await add()
    await records.claim([id], room, uid, token('dead'), Date.now() - 120_000, 0)
    expect(await records.claim([id], room, uid, token('late'), Date.now(), Date.now() - 60_000)).toMatchObject([{ id }])
  })

  it('the sweep takes orphans past the timeout and the files of deleted messages, not the files of live ones; gone files still count for the quota', async () => {
    const { log, records, room, uid, add } = setup()
    const old = Date.now() - 10_000
    const [orphan, fresh, kept, deleted] = [await add(old), await add(), await add(old), await add(old)]
    const live = (await log.append({ room, user: 'Ann', sender: uid, message: 'kept', ts: Date.now() })).message
    const doomed = (await log.append({ room, user: 'Ann', sender: uid, message: 'doomed', ts: Date.now() })).message
    await records.claim([kept], room, uid, token('k'), Date.now(), 0)
    await records.attach(token('k'), live.id)
    await records.claim([deleted], room, uid, token('d'), Date.now(), 0)
    await records.attach(token('d'), doomed.id)
    await log.append({ room, user: 'Ann', sender: uid, message: '', ts: Date.now(), kind: 'delete', target: doomed.id })
    const mine = new Set([orphan, fresh, kept, deleted])
    const swept = (await records.sweepable(Date.now() - 5_000, Date.now() - 60_000, 100_000)).filter(id => mine.has(id))
    expect(swept.sort()).toEqual([orphan, deleted].sort())
    await records.markGone(swept)
    expect(await records.get(orphan)).toBeUndefined()
    expect(await records.get(kept)).toMatchObject({ id: kept })
    expect(await records.usedSince(uid, 0)).toBe(400)
    await records.forget(Date.now())
    expect(await records.usedSince(uid, 0)).toBe(200)
  })
})

describe('the uploads\' records made before guests were counted by address', () => {
  it('are migrated in place: each old upload counts against its uploader, as before', async () => {
    const path = sqlitePath('nuxt-chat-files-quota-')
    const raw = new DatabaseSync(path)
    // The table as the last release made it: no `quota` column.
    raw.exec('CREATE TABLE chat_files (id TEXT NOT NULL PRIMARY KEY, room TEXT NOT NULL, uid TEXT NOT NULL, name TEXT NOT NULL, size BIGINT NOT NULL, type TEXT NOT NULL, width INTEGER, height INTEGER, preview TEXT, message BIGINT, claim TEXT, claimed_at BIGINT, gone SMALLINT NOT NULL DEFAULT 0, created BIGINT NOT NULL)')
    const old = fileId()
    raw.prepare('INSERT INTO chat_files (id, room, uid, name, size, type, created) VALUES (?, \'r\', \'u-old\', \'a.txt\', 300, \'text/plain\', ?)').run(old, Date.now())
    raw.close()
    const records = createDb0FileRecords(() => createDatabase(nodeSqlite({ path })))
    opened.push({ log: createMemoryRoomLog(), records })
    expect(await records.get(old)).toMatchObject({ id: old, uid: 'u-old', quota: 'u-old', size: 300 })
    expect(await records.usedSince('u-old', 0)).toBe(300)
    await records.add({ id: fileId(), room: 'r', uid: 'guest:x', quota: 'address:10.0.0.9', name: 'b.txt', size: 50, type: 'text/plain', created: Date.now() })
    expect([await records.usedSince('address:10.0.0.9', 0), await records.usedSince('guest:x', 0)]).toEqual([50, 0])
  })
})

describe('the uploads\' records on a SQLite file that could not be written when they opened it', () => {
  it('are read meanwhile, and the first write once the file can be written again works', async () => {
    const path = sqlitePath('nuxt-chat-files-ro-')
    const record = (id: string) => ({ id, room: 'files-ro', uid: 'u-ro', quota: 'u-ro', name: `${id}.png`, size: 100, type: 'image/png', created: Date.now() })
    const kept = fileId()
    const first = createDb0FileRecords(() => createDatabase(nodeSqlite({ path })))
    await first.add(record(kept))
    await first.close()
    const records = createDb0FileRecords(() => createDatabase(nodeSqlite({ path })))
    opened.push({ log: createMemoryRoomLog(), records })
    // SQLite opens a file it cannot write for reading only, and keeps that handle so.
    setImmutable([path, `${path}-wal`], true)
    try {
      expect(await records.get(kept)).toMatchObject({ id: kept })
    }
    finally {
      setImmutable([path, `${path}-wal`], false)
    }
    const added = fileId()
    await records.add(record(added))
    expect(await records.get(added)).toMatchObject({ id: added })
  })
})

describe('the uploads\' records on PostgreSQL whose table was dropped under them', () => {
  it('fail the call that met it, and the next call makes the table again', async () => {
    const database = ownPostgresDatabase('nuxt_chat_files_gone')
    const records = createDb0FileRecords(() => createDatabase(postgresql({ url: database.env.NUXT_CHAT_DATABASE_OPTIONS_URL })))
    const record = (id: string) => ({ id, room: 'files-gone', uid: 'u-gone', quota: 'u-gone', name: `${id}.png`, size: 100, type: 'image/png', created: Date.now() })
    try {
      await records.add(record(fileId()))
      execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', database.name, '-qc', 'DROP TABLE chat_files'])
      await expect(records.add(record(fileId()))).rejects.toThrow(/chat_files/)
      const added = fileId()
      await records.add(record(added))
      expect(await records.get(added)).toMatchObject({ id: added })
    }
    finally {
      await records.close()
      database.drop()
    }
  })
})
