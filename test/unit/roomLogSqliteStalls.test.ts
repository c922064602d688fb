import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { DatabaseSync } from 'node:sqlite'
import { createDatabase } from 'db0'
import nodeSqlite from 'db0/connectors/node-sqlite'
import { afterAll, describe, expect, it } from 'vitest'
import { createDb0RoomLog } from '../../src/runtime/server/utils/roomLog.db0'
import { createMemoryRoomLog } from '../../src/runtime/server/utils/roomLog.memory'
import type { RoomLog } from '../../src/runtime/server/utils/roomLog'
import { holdSqliteLock } from '../utils/faults'
import { longestStall } from '../utils/stalls'

// node:sqlite is synchronous: no store call may hold the event loop for long, whatever the room's size.

const sqlitePath = () => join(mkdtempSync(join(tmpdir(), 'nuxt-chat-stalls-')), 'chat.sqlite')
const opened: RoomLog[] = []
const open = (path = sqlitePath()) => {
  const log = createDb0RoomLog(() => createDatabase(nodeSqlite({ path })))
  opened.push(log)
  return log
}
afterAll(async () => {
  await Promise.all(opened.map(log => log.close()))
})
const message = (room: string, text: string, cid?: string) => ({ room, user: 'a', sender: 's', message: text, ts: Date.now(), cid })

/** A database file as an earlier version left it (no index of edits by target): 200,000 messages in room `long`, every 10th an edit. */
function seedOldDatabase(path: string) {
  const seed = new DatabaseSync(path)
  seed.exec(`CREATE TABLE chat_messages (room TEXT NOT NULL, id BIGINT NOT NULL, sender TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, ts BIGINT NOT NULL,
    cid TEXT, guest SMALLINT NOT NULL DEFAULT 0, kind TEXT, target BIGINT, edited BIGINT, deleted SMALLINT NOT NULL DEFAULT 0, PRIMARY KEY (room, id))`)
  seed.exec('BEGIN')
  const insert = seed.prepare('INSERT INTO chat_messages (room, id, sender, name, body, ts, kind, target) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
  for (let id = 1; id <= 200_000; id++) {
    const edit = id % 10 === 0
    insert.run('long', id, 's', 'a', `m${id}`, 1, edit ? 'edit' : null, edit ? id - 9 : null)
  }
  seed.exec('COMMIT')
  seed.close()
}

describe('room log: sqlite stalls', () => {
  // First: the big room's garbage of the next test would be collected during this one's measurement.
  it('appends while another process holds the write lock: the event loop idles (under 5 % busy) until they fail', async () => {
    const path = sqlitePath()
    const log = open(path)
    await log.append(message('r', 'before'))
    const lock = await holdSqliteLock(path, 2600)
    const start = performance.eventLoopUtilization()
    const during = await Promise.allSettled([log.append(message('r', 'during 1')), log.append(message('r', 'during 2'))])
    const busy = performance.eventLoopUtilization(start).utilization
    expect(during.map(result => result.status)).toEqual(['rejected', 'rejected'])
    expect(String((during[0] as PromiseRejectedResult).reason)).toMatch(/locked/)
    // Before: each retry waited SQLite's busy timeout (10 ms) inside the call, ~12 % busy.
    expect(busy).toBeLessThan(0.05)
    await lock.released
    expect((await log.append(message('r', 'after'))).message.id).toBe(2)
  })

  it('64 delete events in a room of 200,000 messages (an existing file): the event loop never stalls 250 ms, and the targets\' edits are deleted too', async () => {
    const path = sqlitePath()
    seedOldDatabase(path)
    const log = open(path)
    expect(await log.lastId('long')).toBe(200_000)
    const delay = await longestStall(() => Promise.all(Array.from({ length: 64 }, (_, i) => log.append({ ...message('long', ''), kind: 'delete', target: 1 + i * 1000 }))))
    // Before the index of edits by target: ~20 ms per delete, 1.3 s in one task (counted in CPU time: test/utils/stalls.ts).
    expect(delay).toBeLessThan(250)
    expect(await log.message('long', 1001)).toMatchObject({ message: '', deleted: true })
    expect((await log.between('long', 1009, 1011))[0]).toMatchObject({ id: 1010, message: '', deleted: true, kind: 'edit', target: 1001 })
    expect((await log.between('long', 1019, 1021))[0]).toMatchObject({ id: 1020, kind: 'edit', message: 'm1020' })
    expect(await log.lastId('long')).toBe(200_064)
  })

  it('reads see every write that resolved: read positions, events, prunes', async () => {
    const log = open()
    for (let i = 0; i < 5; i++) await log.append(message('rw', `m${i}`))
    expect((await log.joinRead('rw', 'u')).created).toBe(true)
    expect((await log.readState('rw', 'u'))?.read).toBe(5)
    await log.append(message('rw', 'm5'))
    expect(await log.markRead('rw', 'u')).toBe(6)
    const edit = await log.append({ ...message('rw', 'edited'), kind: 'edit', target: 1 })
    expect((await log.message('rw', 1))).toMatchObject({ message: 'edited', edited: edit.message.id })
    await log.append({ ...message('rw', '👍'), kind: 'reaction', target: 2 })
    expect((await log.message('rw', 2))?.reactions).toEqual({ '👍': ['s'] })
    expect(await log.prune('rw', { max: 2, maxAge: 0 })).toBe(4)
    expect((await log.replaySince('rw', 0, 10)).map(m => m.id)).toEqual([5, 6])
    expect(await log.forgetRead('rw', 'u')).toBe(true)
    expect(await log.readState('rw', 'u')).toBeUndefined()
  })
})

describe('room log: memory stalls', () => {
  it('64 delete events in a room of 200,000 messages: the event loop never stalls 50 ms, and the targets\' edits are deleted too', async () => {
    const log = createMemoryRoomLog()
    for (let id = 1; id <= 200_000; id++) {
      const edit = id % 10 === 0
      await log.append(edit ? { ...message('long', `m${id}`), kind: 'edit', target: id - 9 } : message('long', `m${id}`))
    }
    const delay = await longestStall(() => Promise.all(Array.from({ length: 64 }, (_, i) => log.append({ ...message('long', ''), kind: 'delete', target: 1 + i * 1000 }))))
    // Before: every delete looked at every message of the room for the target's edits.
    expect(delay).toBeLessThan(50)
    expect(await log.message('long', 1001)).toMatchObject({ message: '', deleted: true })
    expect((await log.between('long', 1009, 1011))[0]).toMatchObject({ id: 1010, message: '', deleted: true, kind: 'edit', target: 1001 })
    expect((await log.between('long', 1019, 1021))[0]).toMatchObject({ id: 1020, kind: 'edit', message: 'm1020' })
    await log.close()
  })

  it('paging through 20,000 rooms 100 at a time (a retention pass) takes milliseconds, not a sort of every name per page', async () => {
    const log = createMemoryRoomLog()
    for (let i = 0; i < 20_000; i++) await log.append(message(`room-${(i * 7919) % 20_000}`, 'm'))
    const started = performance.now()
    const names: string[] = []
    for (let page = await log.rooms(undefined, 100); page.length; page = await log.rooms(page.at(-1), 100)) names.push(...page)
    // Before: each page sorted all 20,000 names, ~2 s in all.
    expect(performance.now() - started).toBeLessThan(200)
    expect(names).toHaveLength(20_000)
    expect(names).toEqual([...names].sort())
    await log.close()
  })
})
