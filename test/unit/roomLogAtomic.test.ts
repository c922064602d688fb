/**
 * An edit, delete or reaction is stored and applied to its message in one transaction
 * (SQLite, PostgreSQL): a trigger in the test's own database makes the second statement fail
 * for real, and nothing is left half-applied (no event without its effect).
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { DatabaseSync } from 'node:sqlite'
import { createDatabase } from 'db0'
import nodeSqlite from 'db0/connectors/node-sqlite'
import postgresql from 'db0/connectors/postgresql'
import { afterAll, describe, expect, it } from 'vitest'
import { createDb0RoomLog } from '../../src/runtime/server/utils/roomLog.db0'
import type { AppendInput, RoomLog } from '../../src/runtime/server/utils/roomLog'
import { POSTGRES_URL } from '../utils/server'

const FAILING = 'apply failed (test trigger)'
const cleanups: (() => Promise<unknown>)[] = []
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
})

/** A room log on a database of the test's own, with triggers that refuse the apply step of chosen events. */
const backends: [string, () => Promise<RoomLog & { sabotage: () => Promise<void> }>][] = [
  ['sqlite', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'nuxt-chat-atomic-')), 'chat.sqlite')
    const log = createDb0RoomLog(() => createDatabase(nodeSqlite({ path })))
    cleanups.push(() => log.close())
    return Object.assign(log, {
      async sabotage() {
        const db = new DatabaseSync(path)
        db.exec(`CREATE TRIGGER fail_update BEFORE UPDATE ON chat_messages WHEN NEW.body = 'boom' OR (NEW.deleted = 1 AND OLD.body = 'undeletable') BEGIN SELECT RAISE(ABORT, '${FAILING}'); END`)
        db.exec(`CREATE TRIGGER fail_reaction BEFORE INSERT ON chat_reactions WHEN NEW.emoji = '💥' BEGIN SELECT RAISE(ABORT, '${FAILING}'); END`)
        db.close()
      },
    })
  }],
  ['postgresql', async () => {
    const schema = `atomic_${randomUUID().slice(0, 8)}`
    const admin = createDatabase(postgresql({ url: POSTGRES_URL }))
    await admin.exec(`CREATE SCHEMA ${schema}`)
    const log = createDb0RoomLog(() => createDatabase(postgresql({ url: `${POSTGRES_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}` })))
    cleanups.push(async () => {
      await log.close()
      await admin.exec(`DROP SCHEMA ${schema} CASCADE`)
      await admin.dispose()
    })
    return Object.assign(log, {
      async sabotage() {
        await admin.exec(`CREATE FUNCTION ${schema}.fail() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION '${FAILING}'; END $$ LANGUAGE plpgsql`)
        await admin.exec(`CREATE TRIGGER fail_update BEFORE UPDATE ON ${schema}.chat_messages FOR EACH ROW WHEN (NEW.body = 'boom' OR (NEW.deleted = 1 AND OLD.body = 'undeletable')) EXECUTE FUNCTION ${schema}.fail()`)
        await admin.exec(`CREATE TRIGGER fail_reaction BEFORE INSERT ON ${schema}.chat_reactions FOR EACH ROW WHEN (NEW.emoji = '💥') EXECUTE FUNCTION ${schema}.fail()`)
      },
    })
  }],
]

describe.each(backends)('an event and its effect are one transaction: %s', (_name, create) => {
  it('a failure while applying an edit, a delete or a reaction stores no event, and the store goes on working', async () => {
    const log = await create()
    const room = `atomic-${randomUUID().slice(0, 8)}`
    const input = (message: string, extra: Partial<AppendInput> = {}): AppendInput => ({ room, user: 'alice', sender: 'u1', message, ts: Date.now(), ...extra })
    await log.append(input('hello'))
    await log.append(input('undeletable'))
    await log.sabotage()

    await expect(log.append(input('boom', { kind: 'edit', target: 1, cid: 'e-1' }))).rejects.toThrow(FAILING)
    await expect(log.append(input('', { kind: 'delete', target: 2, cid: 'd-1' }))).rejects.toThrow(FAILING)
    await expect(log.append(input('💥', { kind: 'reaction', target: 1, cid: 'r-1' }))).rejects.toThrow(FAILING)

    // Nothing half-applied: no event rows, no cids taken, the messages as they were.
    expect(await log.lastId(room)).toBe(2)
    for (const cid of ['e-1', 'd-1', 'r-1']) expect(await log.byCid(room, 'u1', cid)).toBeUndefined()
    const [hello, undeletable] = await log.replaySince(room, undefined, 10)
    expect(hello).not.toHaveProperty('edited')
    expect(hello).not.toHaveProperty('reactions')
    expect(hello!.message).toBe('hello')
    expect(undeletable).not.toHaveProperty('deleted')
    expect(undeletable!.message).toBe('undeletable')

    // The next event takes the next id and is applied.
    expect((await log.append(input('fine', { kind: 'edit', target: 1, cid: 'e-1' }))).message.id).toBe(3)
    expect(await log.message(room, 1)).toMatchObject({ message: 'fine', edited: 3 })
  })
})
