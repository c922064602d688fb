/**
 * Streaming messages in the store (docs/PROTOCOL.md, "Streaming messages"): an open stream's
 * owner, heartbeat and checkpointed text, its end (once, by its owner or a sweep), and the columns
 * added in place to a table an earlier version made. Memory, SQLite and PostgreSQL.
 */
import { randomUUID } from 'node:crypto'
import { createDatabase } from 'db0'
import nodeSqlite from 'db0/connectors/node-sqlite'
import { describe, expect, it } from 'vitest'
import { createDb0RoomLog } from '../../src/runtime/server/utils/roomLog.db0'
import { closedAfterAll, roomLogBackends, sqlitePath } from '../utils/roomLogs'

const opened = closedAfterAll()

describe.each(roomLogBackends('nuxt-chat-streams-'))('open streams in the store: %s', (_name, create) => {
  it('marks a message streaming, checkpoints it for its owner only, finds it stale, and ends it once', async () => {
    const log = create()
    opened.push(log)
    const room = `streams-${randomUUID().slice(0, 8)}`
    const beat = Date.now()
    const { message } = await log.append({ room, user: 'Assistant', sender: 'bot', message: '', ts: beat, streamOwner: 'instance-a' })
    expect(message.streaming).toBe(true)
    const id = message.id
    expect(await log.message(room, id)).toMatchObject({ id, streaming: true, message: '' })
    expect((await log.replaySince(room, undefined, 10))[0]).toMatchObject({ id, streaming: true })

    expect(await log.streamCheckpoint(room, id, 'instance-b', 'not mine', beat + 1)).toBe(false)
    expect(await log.streamCheckpoint(room, id, 'instance-a', 'Hello so far', beat + 1)).toBe(true)
    expect(await log.message(room, id)).toMatchObject({ message: 'Hello so far', streaming: true })

    const staleOf = async (at: number) => (await log.staleStreams(at, 1000)).filter(open => open.room === room)
    expect(await staleOf(beat + 1)).toEqual([])
    expect(await staleOf(beat + 2)).toEqual([{ room, id, owner: 'instance-a', user: 'Assistant', uid: 'bot', message: 'Hello so far' }])

    // Of an owner's end and a sweep, one closes it.
    expect(await log.streamEnd(room, id, 'instance-b', 'interrupted')).toBe(false)
    expect(await log.streamEnd(room, id, 'instance-a', 'interrupted')).toBe(true)
    expect(await log.streamEnd(room, id, 'instance-a', 'interrupted')).toBe(false)
    const ended = await log.message(room, id)
    expect(ended).toMatchObject({ incomplete: 'interrupted', message: 'Hello so far' })
    expect(ended!.streaming).toBeUndefined()
    expect(await staleOf(Date.now() + 1000)).toEqual([])
    expect(await log.streamCheckpoint(room, id, 'instance-a', 'too late', beat + 3)).toBe(false)

    // Its final text is an edit of it, as any edit; a stream ended without a cut has no `incomplete`.
    await log.append({ room, user: 'Assistant', sender: 'bot', message: 'Hello, final', ts: Date.now(), kind: 'edit', target: id })
    expect(await log.message(room, id)).toMatchObject({ message: 'Hello, final', incomplete: 'interrupted' })
    const second = (await log.append({ room, user: 'Assistant', sender: 'bot', message: '', ts: beat, streamOwner: 'instance-a' })).message.id
    expect(await log.streamEnd(room, second, 'instance-a')).toBe(true)
    const done = await log.message(room, second)
    expect(done!.streaming).toBeUndefined()
    expect(done!.incomplete).toBeUndefined()
    // A deleted stream takes no more checkpoints: its owner stops it.
    const third = (await log.append({ room, user: 'Assistant', sender: 'bot', message: '', ts: beat, streamOwner: 'instance-a' })).message.id
    await log.append({ room, user: 'Mod', sender: 'mod', message: '', ts: beat, kind: 'delete', target: third })
    expect(await log.streamCheckpoint(room, third, 'instance-a', 'after the delete', beat + 1)).toBe(false)
    expect(await log.streamEnd(room, third, 'instance-a', 'interrupted')).toBe(true)
  })
})

describe('streams on a table an earlier version made (SQLite)', () => {
  it('adds the stream columns in place; the old rows are no streams', async () => {
    const path = sqlitePath('nuxt-chat-streams-old-')
    const old = createDatabase(nodeSqlite({ path }))
    await old.exec(`CREATE TABLE chat_messages (room TEXT NOT NULL, id BIGINT NOT NULL, sender TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL, ts BIGINT NOT NULL, cid TEXT, PRIMARY KEY (room, id))`)
    await old.exec(`INSERT INTO chat_messages (room, id, sender, name, body, ts) VALUES ('lobby', 1, 'bob', 'Bob', 'hello', 1)`)
    await old.dispose()
    const log = createDb0RoomLog(() => createDatabase(nodeSqlite({ path })))
    opened.push(log)
    const first = await log.message('lobby', 1)
    expect(first).toMatchObject({ message: 'hello' })
    expect(first!.streaming).toBeUndefined()
    expect(await log.staleStreams(Date.now(), 10)).toEqual([])
    const { message } = await log.append({ room: 'lobby', user: 'Assistant', sender: 'bot', message: '', ts: 5, streamOwner: 'instance-a' })
    expect(await log.staleStreams(6, 10)).toEqual([{ room: 'lobby', id: message.id, owner: 'instance-a', user: 'Assistant', uid: 'bot', message: '' }])
  })
})
