import { randomUUID } from 'node:crypto'
import { DatabaseSync } from 'node:sqlite'
import { createDatabase } from 'db0'
import nodeSqlite from 'db0/connectors/node-sqlite'
import postgresql from 'db0/connectors/postgresql'
import { describe, expect, it, onTestFinished } from 'vitest'
import { parseClientFrameV2 } from '../../src/runtime/shared/protocolV2'
import { excerptOf, fts5Match, holdsWords, parseSearchRequest, SEARCH_EXCERPT_MAX, searchWords } from '../../src/runtime/shared/search'
import { createDb0RoomLog } from '../../src/runtime/server/utils/roomLog.db0'
import { RoomLogInputError, type RoomLog, type SearchQuery } from '../../src/runtime/server/utils/roomLog'
import { closedAfterAll, POSTGRES_URL, roomLogBackends, sqlitePath } from '../utils/roomLogs'

/** Inputs a user may type that mean something in FTS5's query language (or SQL). */
const HOSTILE = ['"', '""', 'a"b', 'NEAR(a b)', 'body:secret', '*', 'a*', '^start', '-x', 'a OR b', 'a AND NOT b', '(', ')', '\'; DROP TABLE chat_messages; --', '{body}: x', 'x:y:z', '\\', '%_%']

describe('search words and the FTS5 expression', () => {
  it('keeps letters and digits only, folded, de-duplicated, at most 8 words', () => {
    expect(searchWords('Hello, hello WORLD! Café-42')).toEqual(['hello', 'world', 'cafe', '42'])
    expect(searchWords('a b c d e f g h i j')).toHaveLength(8)
    expect(searchWords('"*^:()-')).toEqual([])
  })

  it('quotes every word, so no FTS5 operator, column filter or quote reaches MATCH', () => {
    for (const text of HOSTILE) {
      const match = fts5Match(searchWords(text))
      for (const term of match ? match.split(' ') : []) expect(term).toMatch(/^"[\p{L}\p{N}]+"$/u)
    }
    expect(fts5Match(['say "hi"'])).toBe('"say ""hi"""')
    expect(fts5Match(searchWords('a OR b NEAR body:x'))).toBe('"a" "or" "b" "near" "body" "x"')
  })

  it('every quoted expression is a valid FTS5 query (SQLite answers, never a syntax error)', () => {
    const db = new DatabaseSync(':memory:')
    db.exec('CREATE VIRTUAL TABLE t USING fts5(body)')
    db.prepare('INSERT INTO t (body) VALUES (?)').run('or and not near body x a b')
    for (const text of HOSTILE) {
      const words = searchWords(text)
      if (!words.length) continue
      expect(() => db.prepare('SELECT rowid FROM t WHERE t MATCH ?').all(fts5Match(words))).not.toThrow()
    }
    // The unquoted text would have been a syntax error: the quoting is what keeps it out.
    expect(() => db.prepare('SELECT rowid FROM t WHERE t MATCH ?').all('a"b')).toThrow()
  })

  it('a request is bounded: query length, words, page size, filters, cursor', () => {
    expect(parseSearchRequest({ q: 'hello' })).toEqual({ q: 'hello', limit: 20 })
    expect(parseSearchRequest({ q: 'x'.repeat(201) })).toMatch(/at most 200/)
    expect(parseSearchRequest({ q: '*"()' })).toMatch(/at least one word/)
    expect(parseSearchRequest({ q: 'a', limit: 51 })).toMatch(/limit/)
    expect(parseSearchRequest({ q: 'a', limit: '10', before: '5', after: 1 })).toEqual({ q: 'a', limit: 10, before: 5, after: 1 })
    expect(parseSearchRequest({ q: 'a', room: 'bad room' })).toMatch(/room/)
    expect(parseSearchRequest({ q: 'a', cursor: '"; DROP' })).toMatch(/cursor/)
    expect(parseSearchRequest({ q: 'a', before: -1 })).toMatch(/before/)
  })

  it('`before` / `after` are times up to the latest Date: a JSON number or at most 16 digits (docs/PROTOCOL.md, "Times")', () => {
    expect(parseSearchRequest({ q: 'a', before: 8.64e15, after: '8640000000000000' })).toEqual({ q: 'a', limit: 20, before: 8.64e15, after: 8.64e15 })
    for (const time of [8.64e15 + 1, '8640000000000001', Number.MAX_SAFE_INTEGER, '9007199254740991', 1.5, '1.5', Infinity, Number.NaN, -1, '-1', '1e3', null]) {
      expect(parseSearchRequest({ q: 'a', before: time }), String(time)).toMatch(/`before` must be a time in epoch milliseconds.*8640000000000000/)
      expect(parseSearchRequest({ q: 'a', after: time }), String(time)).toMatch(/`after` must be a time in epoch milliseconds.*8640000000000000/)
    }
  })

  it('the version 2 `search` command: `room` is a filter (no joined room needed); bad fields are invalid with the ref', () => {
    expect(parseClientFrameV2('{"type":"search","q":"hi there","room":"lobby","ref":"s1"}')).toEqual({ type: 'search', q: 'hi there', room: 'lobby', limit: 20, ref: 's1' })
    expect(parseClientFrameV2('{"type":"search","q":"hi","limit":0,"ref":"s2"}')).toMatchObject({ type: 'invalid', reason: expect.stringMatching(/limit/), ref: 's2' })
    expect(parseClientFrameV2('{"type":"search","ref":"s3"}')).toMatchObject({ type: 'invalid', ref: 's3' })
  })

  it('an excerpt is plain text around the first word found, with the words\' offsets', () => {
    const text = `${'lead '.repeat(40)}the Needle is here and another needle${' tail'.repeat(60)}`
    const { excerpt, highlights } = excerptOf(text, ['needle'])
    expect(excerpt.length).toBeLessThanOrEqual(SEARCH_EXCERPT_MAX)
    expect(excerpt.startsWith('…')).toBe(true)
    expect(excerpt.endsWith('…')).toBe(true)
    expect(highlights.map(([from, to]) => excerpt.slice(from, to))).toEqual(['Needle', 'needle'])
    expect(excerptOf('<b>hi</b> there', ['hi'])).toEqual({ excerpt: '<b>hi</b> there', highlights: [[3, 5]] })
    expect(holdsWords('Déjà vu, again', ['deja', 'again'])).toBe(true)
    expect(holdsWords('dejavu', ['deja'])).toBe(false)
  })
})

const backends = roomLogBackends('nuxt-chat-search-')
const opened = closedAfterAll()

const query = (rooms: string[], text: string, more: Partial<SearchQuery> = {}): SearchQuery => ({ words: searchWords(text), text, rooms, limit: 20, ...more })

describe.each(backends)('store search: %s', (_name, create) => {
  const fresh = () => {
    const log = create()
    opened.push(log)
    return log
  }
  const name = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`
  const send = (log: RoomLog, room: string, message: string, sender = 'u1', ts = Date.now()) => log.append({ room, user: sender, sender, message, ts })

  it('finds an edited message by its new text only, never a deleted one, nor a change', async () => {
    const log = fresh()
    const room = name('edits')
    const word = `w${randomUUID().slice(0, 6)}`
    const original = await send(log, room, `the original ${word}alpha text`)
    await log.append({ room, user: 'u1', sender: 'u1', message: `rewritten ${word}beta text`, ts: Date.now(), kind: 'edit', target: original.message.id })
    const gone = await send(log, room, `doomed ${word}gamma`)
    await log.append({ room, user: 'u1', sender: 'u1', message: '', ts: Date.now(), kind: 'delete', target: gone.message.id })
    expect((await log.search(query([room], `${word}alpha`))).messages).toEqual([])
    const found = await log.search(query([room], `${word}beta`))
    expect(found.messages.map(message => [message.id, message.message])).toEqual([[original.message.id, `rewritten ${word}beta text`]])
    expect((await log.search(query([room], `${word}gamma`))).messages).toEqual([])
    // Edited again: the second text is found, the first edit's is not.
    await log.append({ room, user: 'u1', sender: 'u1', message: `third ${word}delta`, ts: Date.now(), kind: 'edit', target: original.message.id })
    expect((await log.search(query([room], `${word}beta`))).messages).toEqual([])
    expect((await log.search(query([room], `${word}delta`))).messages.map(message => message.id)).toEqual([original.message.id])
    // Reactions change no text.
    await log.append({ room, user: 'u2', sender: 'u2', message: '👍', ts: Date.now(), kind: 'reaction', target: original.message.id })
    expect((await log.search(query([room], `${word}delta`))).messages.map(message => message.id)).toEqual([original.message.id])
  })

  it('searches only the rooms it is given, with author and time filters, a page at a time', async () => {
    const log = fresh()
    const [mine, other] = [name('mine'), name('other')]
    const word = `p${randomUUID().slice(0, 6)}`
    const base = Date.now() - 100_000
    for (let index = 0; index < 5; index++) await send(log, mine, `${word} number ${index}`, index % 2 ? 'u2' : 'u1', base + index * 1000)
    await send(log, other, `${word} secret`, 'u1', base + 10_000)
    const all = await log.search(query([mine], word, { limit: 2 }))
    expect(all.messages.map(message => message.message)).toEqual([`${word} number 4`, `${word} number 3`])
    const second = await log.search(query([mine], word, { limit: 2, cursor: all.cursor }))
    expect(second.messages.map(message => message.message)).toEqual([`${word} number 2`, `${word} number 1`])
    const third = await log.search(query([mine], word, { limit: 2, cursor: second.cursor }))
    expect(third.messages.map(message => message.message)).toEqual([`${word} number 0`])
    expect(third.cursor).toBeUndefined()
    expect((await log.search(query([mine], word, { author: 'u2' }))).messages.map(message => message.message)).toEqual([`${word} number 3`, `${word} number 1`])
    expect((await log.search(query([mine], word, { after: base + 1000, before: base + 3000 }))).messages.map(message => message.message)).toEqual([`${word} number 2`, `${word} number 1`])
    expect((await log.search(query([mine], `${word} 4`))).messages.map(message => message.message)).toEqual([`${word} number 4`])
    expect((await log.search(query([mine, other], word))).messages).toHaveLength(6)
    expect((await log.search(query([], word))).messages).toEqual([])
  })

  it('a hostile query is just a query, and a forged cursor is a bad request', async () => {
    const log = fresh()
    const room = name('hostile')
    await send(log, room, 'or and not near body x a b')
    for (const text of HOSTILE) {
      if (!searchWords(text).length) continue
      await expect(log.search(query([room], text))).resolves.toHaveProperty('messages')
    }
    expect((await log.search(query([room], 'a OR b'))).messages).toHaveLength(1)
    await expect(log.search(query([room], 'a', { cursor: 'bm90IGEgY3Vyc29y' }))).rejects.toBeInstanceOf(RoomLogInputError)
  })

  it('retention removes pruned messages from the index', async () => {
    const log = fresh()
    const room = name('pruned')
    const word = `r${randomUUID().slice(0, 6)}`
    for (let index = 0; index < 4; index++) await send(log, room, `${word} ${index}`)
    await log.prune(room, { max: 1, maxAge: 0 })
    expect((await log.search(query([room], word))).messages.map(message => message.message)).toEqual([`${word} 3`])
  })
})

describe('search index: SQLite catch-up', () => {
  const indexedTo = (path: string) => {
    const raw = new DatabaseSync(path, { readOnly: true })
    try {
      return (raw.prepare('SELECT indexed_to FROM chat_search_state').get() as { indexed_to: number }).indexed_to
    }
    finally {
      raw.close()
    }
  }
  const send = (log: RoomLog, message: string) => log.append({ room: 'r', user: 'u1', sender: 'u1', message, ts: Date.now() })

  it('the store indexes new messages behind the appends; edits and deletes after that keep the index current', async () => {
    const path = sqlitePath('nuxt-chat-search-')
    const log = createDb0RoomLog(() => createDatabase(nodeSqlite({ path })))
    opened.push(log)
    const first = await send(log, 'first apple')
    await send(log, 'second pear')
    const deadline = Date.now() + 5000
    while (indexedTo(path) < 2 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
    expect(indexedTo(path)).toBeGreaterThanOrEqual(2)
    await log.append({ room: 'r', user: 'u1', sender: 'u1', message: 'first banana', ts: Date.now(), kind: 'edit', target: first.message.id })
    await log.append({ room: 'r', user: 'u1', sender: 'u1', message: '', ts: Date.now(), kind: 'delete', target: 2 })
    expect((await log.search(query(['r'], 'apple'))).messages).toEqual([])
    expect((await log.search(query(['r'], 'pear'))).messages).toEqual([])
    expect((await log.search(query(['r'], 'banana'))).messages.map(message => message.id)).toEqual([1])
  })

  it('a message that takes the rowid of a deleted newest row is still indexed', async () => {
    const path = sqlitePath('nuxt-chat-search-')
    const log = createDb0RoomLog(() => createDatabase(nodeSqlite({ path })))
    opened.push(log)
    await send(log, 'one cherry')
    await send(log, 'two cherry')
    expect((await log.search(query(['r'], 'cherry'))).messages).toHaveLength(2)
    // Retention takes every message of the room: the newest rowid goes, the next message may take it again.
    await log.prune('r', { max: 0, maxAge: 1 })
    await new Promise(resolve => setTimeout(resolve, 5))
    await log.prune('r', { max: 0, maxAge: 1 })
    expect((await log.search(query(['r'], 'cherry'))).messages).toEqual([])
    await send(log, 'three cherry')
    expect((await log.search(query(['r'], 'cherry'))).messages.map(message => message.message)).toEqual(['three cherry'])
  })
})

/** 25,000 messages holding `word` in room `busy` (ids 1-25,000, newer than anything in `quiet`), written straight into the tables (a fast fill). */
const fills: [string, (word: string, rooms: { quiet: string, busy: string }) => Promise<RoomLog>][] = [
  ['sqlite', async (word, { quiet, busy }) => {
    const path = sqlitePath('nuxt-chat-search-')
    const first = createDb0RoomLog(() => createDatabase(nodeSqlite({ path })))
    await first.append({ room: quiet, user: 'u1', sender: 'u1', message: `${word} words here`, ts: 1 })
    await first.close()
    // With the index, as its catch-up would.
    const raw = new DatabaseSync(path)
    raw.exec('BEGIN')
    const insert = raw.prepare('INSERT INTO chat_messages (room, id, sender, name, body, ts) VALUES (?, ?, \'u2\', \'u2\', ?, ?)')
    for (let id = 1; id <= 25_000; id++) insert.run(busy, id, `${word} chatter ${id}`, 1000 + id)
    raw.exec('INSERT INTO chat_messages_fts (rowid, body) SELECT rowid, body FROM chat_messages WHERE rowid > (SELECT indexed_to FROM chat_search_state)')
    raw.exec('UPDATE chat_search_state SET indexed_to = (SELECT MAX(rowid) FROM chat_messages)')
    raw.exec('COMMIT')
    raw.close()
    return createDb0RoomLog(() => createDatabase(nodeSqlite({ path })))
  }],
  ['postgresql', async (word, { quiet, busy }) => {
    const log = createDb0RoomLog(() => createDatabase(postgresql({ url: POSTGRES_URL })))
    await log.append({ room: quiet, user: 'u1', sender: 'u1', message: `${word} words here`, ts: 1 })
    const db = createDatabase(postgresql({ url: POSTGRES_URL }))
    // The shared database: the word and rooms are this run's own, and its rows go when the file ends.
    onTestFinished(async () => {
      await db.sql`DELETE FROM chat_messages WHERE room IN (${quiet}, ${busy})`
      await db.dispose()
    })
    await db.sql`INSERT INTO chat_messages (room, id, sender, name, body, ts) SELECT ${busy}, n, 'u2', 'u2', ${word} || ' chatter ' || n, 1000 + n FROM generate_series(1, 25000) AS n`
    return log
  }],
]

describe.each(fills)('search on %s: a page reads a bounded part of the matches', (_name, fill) => {
  it('a common word in rooms the searcher may not read costs one bounded scan a page: no hits, a cursor, and the next page goes on where it stopped', async () => {
    const word = `common${randomUUID().slice(0, 8)}`
    const quiet = `quiet-${randomUUID().slice(0, 8)}`
    const busy = `busy-${randomUUID().slice(0, 8)}`
    // The oldest message of all is the only one in the searcher's room.
    const log = await fill(word, { quiet, busy })
    opened.push(log)
    // Before, one page walked every match of the word (SQLite: a synchronous read on the event loop; PostgreSQL: the store's one connection) and found the message at once.
    const pages: { ids: number[], cursor?: string }[] = []
    let cursor: string | undefined
    do {
      const page = await log.search(query([quiet], word, cursor === undefined ? {} : { cursor }))
      pages.push({ ids: page.messages.map(message => message.id), ...(page.cursor === undefined ? {} : { cursor: page.cursor }) })
      cursor = page.cursor
    } while (cursor !== undefined && pages.length < 10)
    expect(pages.map(page => page.ids)).toEqual([[], [], [1]])
    // A page that fills before its scan ends is cut by `limit`, as before.
    const full = await log.search(query([busy], word, { limit: 5 }))
    expect(full.messages.map(message => message.id)).toEqual([25_000, 24_999, 24_998, 24_997, 24_996])
    expect(full.cursor).toBeDefined()
    const next = await log.search(query([busy], word, { limit: 2, cursor: full.cursor! }))
    expect(next.messages.map(message => message.id)).toEqual([24_995, 24_994])
    // Nothing can match (`before` the first message): still a bounded scan a page, and the last page has no cursor.
    let empty = 0
    cursor = undefined
    do {
      const page = await log.search(query([quiet, busy], word, { before: 1, ...(cursor === undefined ? {} : { cursor }) }))
      expect(page.messages).toEqual([])
      cursor = page.cursor
      empty++
    } while (cursor !== undefined && empty < 10)
    expect(empty).toBe(3)
  })
})

describe('search index: SQLite upgrade in place', () => {
  it('a database made before the index is indexed when it opens', async () => {
    const path = sqlitePath('nuxt-chat-search-')
    const first = createDb0RoomLog(() => createDatabase(nodeSqlite({ path })))
    await first.append({ room: 'old', user: 'u1', sender: 'u1', message: 'stored before search existed', ts: Date.now() })
    await first.close()
    // As an older version left it: no index, no triggers.
    const raw = new DatabaseSync(path)
    for (const trigger of ['delete', 'update']) raw.exec(`DROP TRIGGER chat_messages_fts_${trigger}`)
    raw.exec('DROP TABLE chat_messages_fts')
    raw.exec('DROP TABLE chat_search_state')
    raw.exec('INSERT INTO chat_messages (room, id, sender, name, body, ts) VALUES (\'old\', 2, \'u1\', \'u1\', \'also before search\', 1)')
    raw.close()
    const second = createDb0RoomLog(() => createDatabase(nodeSqlite({ path })))
    opened.push(second)
    expect((await second.search(query(['old'], 'before'))).messages.map(message => message.id)).toEqual([2, 1])
    await second.append({ room: 'old', user: 'u1', sender: 'u1', message: 'after the upgrade', ts: Date.now() })
    expect((await second.search(query(['old'], 'upgrade'))).messages.map(message => message.id)).toEqual([3])
  })
})
