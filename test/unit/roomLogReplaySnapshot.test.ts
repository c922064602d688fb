/**
 * A replay after a cursor (revision 5) reads the new messages and the changed ones. Another
 * instance writing while it reads must not give a state numbered past a new message the replay
 * lacks: the client's cursor would jump over that message for good (the chaos test's rare
 * "one message missing" after a reconnect).
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { createDatabase, type Database } from 'db0'
import nodeSqlite from 'db0/connectors/node-sqlite'
import postgresql from 'db0/connectors/postgresql'
import { afterAll, describe, expect, it } from 'vitest'
import { createDb0RoomLog } from '../../src/runtime/server/utils/roomLog.db0'
import { sequenceOf, type RoomLog } from '../../src/runtime/server/utils/roomLog'

const POSTGRES_URL = 'postgresql://postgres@127.0.0.1:5432/test'

/**
 * `db`, but once `pause.armed` is set, its first read of new messages (`kind IS NULL AND id > ?`)
 * runs `pause.during` after it was answered and before its rows are handed back. Statements go
 * through db0 (not node:sqlite's own handle), where the hook can wait.
 */
function pausingDatabase(db: Database, pause: { armed: boolean, during: () => Promise<void> }): Database {
  const bound = <T extends object>(target: T) => (key: string | symbol) => {
    const value = Reflect.get(target, key)
    return typeof value === 'function' ? value.bind(target) : value
  }
  return new Proxy(db, {
    get(target, key) {
      if (key === 'getInstance') return async () => ({})
      if (key !== 'prepare') return bound(target)(key)
      return (sql: string) => {
        const statement = target.prepare(sql)
        if (!/kind IS NULL AND id > \?/.test(sql)) return statement
        return new Proxy(statement, {
          get(inner, name) {
            if (name !== 'all') return bound(inner)(name)
            return async (...params: unknown[]) => {
              const rows = await inner.all(...(params as Parameters<typeof inner.all>))
              if (pause.armed) {
                pause.armed = false
                await pause.during()
              }
              return rows
            }
          },
        })
      }
    },
  })
}

const backends: [string, () => Database][] = [
  ['sqlite', (() => {
    const path = join(mkdtempSync(join(tmpdir(), 'nuxt-chat-replay-')), 'chat.sqlite')
    return () => createDatabase(nodeSqlite({ path }))
  })()],
  ['postgresql', () => createDatabase(postgresql({ url: POSTGRES_URL }))],
]

const opened: RoomLog[] = []
afterAll(async () => {
  await Promise.all(opened.map(log => log.close()))
})

describe.each(backends)('a replay read while another instance writes: %s', (_name, open) => {
  it('holds no state numbered past a new message it lacks', async () => {
    const room = `replay-${randomUUID().slice(0, 8)}`
    const pause = { armed: false, during: async () => {} }
    const reader = createDb0RoomLog(() => pausingDatabase(open(), pause))
    const writer = createDb0RoomLog(open)
    opened.push(reader, writer)
    const message = (text: string, sender: string) => ({ room, user: sender, sender, message: text, ts: Date.now() })
    await reader.append(message('one', 'alice'))
    await reader.append(message('two', 'bob'))
    const written: number[] = []
    // The other instance stores message 3, then a reaction to message 1 (change 4), while the replay after 2 is read.
    pause.during = async () => {
      written.push((await writer.append(message('three', 'carol'))).message.id)
      written.push((await writer.append({ ...message('👍', 'carol'), kind: 'reaction', target: 1 })).message.id)
    }
    pause.armed = true
    const replayed = await reader.replaySince(room, 2, 100)
    expect(written, 'the other instance wrote during the replay').toEqual([3, 4])
    const reachedTo = Math.max(2, ...replayed.map(sequenceOf))
    const lacking = [3].filter(id => id <= reachedTo && !replayed.some(stored => stored.id === id))
    expect(lacking, `new messages at or below the replay's last number ${reachedTo} that it lacks`).toEqual([])
    // What the replay did not carry comes live: the next replay after it has message 3 and message 1's change.
    expect((await reader.replaySince(room, reachedTo, 100)).map(stored => [stored.id, sequenceOf(stored)]).filter(([, position]) => position! > reachedTo)).toEqual(reachedTo === 2 ? [[3, 3], [1, 4]] : [])
  })
})
