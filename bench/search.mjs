// The `search` scenario (docs/PROTOCOL.md, "Search"), run by bench/run.mjs or alone:
//
//   node bench/search.mjs [messages=1000000] [queries=200] [ingest=30000]
//
// Fills a fresh SQLite file and a fresh PostgreSQL database (on this machine's server) with
// `messages` messages in 200 rooms, straight into the store's tables (the search index dropped
// first, so the fill is fast), then opens the store: the index is built over them as on an
// upgrade (timed). Then `queries` one-word searches through the store's `search` (a person in 20
// of the rooms, 20 hits a page), twice: words picked as often as they occur in the text (Zipf),
// and words picked uniformly from the vocabulary; then the 20 most common words under a filter nothing passes
// (the worst page: no hit to stop at). Last, SQLite ingest through `append` (16 in
// flight, as the ingest scenario) with and without the index, alternating, 3 rounds each, and the
// same on PostgreSQL (fresh databases, a tenth as many messages).
// Prints one JSON line. Loopback only; drops its database and files at the end.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { fileURLToPath } from 'node:url'
import { createDatabase } from 'db0'
import nodeSqlite from 'db0/connectors/node-sqlite'
import postgresql from 'db0/connectors/postgresql'
import { createJiti } from 'jiti'
import { median, percentile } from './lib.mjs'

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)))
const jiti = createJiti(import.meta.url)
const { createDb0RoomLog } = await jiti.import(join(ROOT, 'src/runtime/server/utils/roomLog.db0.ts'))
const { searchWords } = await jiti.import(join(ROOT, 'src/runtime/shared/search.ts'))

const MESSAGES = Number(process.argv[2] ?? 1_000_000)
const QUERIES = Number(process.argv[3] ?? 200)
const INGEST = Number(process.argv[4] ?? 30_000)
const ROOMS = 200
const SEARCHER_ROOMS = 20
const VOCABULARY = 20_000
const BATCH = 20_000
const PG_ADMIN = 'postgresql://postgres@127.0.0.1:5432/test'
const PG_DATABASE = `nuxt_chat_bench_search_${process.pid}`

// ---- words: a deterministic vocabulary, drawn with Zipf frequencies ----

let seed = 42
const random = () => {
  // mulberry32: the same messages every run.
  seed = (seed + 0x6D2B79F5) | 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const SYLLABLES = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'ti', 'vo', 'ze', 'pa', 'do', 'fi', 'gu', 'he', 'ja', 'ko', 'li', 'mo', 'nu', 'pe']
const words = Array.from({ length: VOCABULARY }, (_, index) => {
  let word = ''
  for (let rest = index + 1; rest > 0; rest = Math.floor(rest / SYLLABLES.length)) word += SYLLABLES[rest % SYLLABLES.length]
  return `${word}x`
})
// Cumulative Zipf (s = 1) weights: word r is drawn with probability ∝ 1 / r.
const cumulative = new Float64Array(VOCABULARY)
for (let index = 0, sum = 0; index < VOCABULARY; index++) cumulative[index] = sum += 1 / (index + 1)
const zipfWord = () => {
  const target = random() * cumulative[VOCABULARY - 1]
  let low = 0
  let high = VOCABULARY - 1
  while (low < high) {
    const middle = (low + high) >> 1
    if (cumulative[middle] < target) low = middle + 1
    else high = middle
  }
  return words[low]
}
const text = () => Array.from({ length: 4 + Math.floor(random() * 9) }, zipfWord).join(' ')

/** Message k of the fill: room k mod ROOMS, its id there, a time 10 ms after the previous one. */
const BASE_TS = Date.now() - MESSAGES * 10
function batchRows(from, to) {
  const rows = { room: [], id: [], sender: [], name: [], body: [], ts: [] }
  for (let k = from; k < to; k++) {
    const sender = `u${k % 500}`
    rows.room.push(`room-${String(k % ROOMS).padStart(3, '0')}`)
    rows.id.push(Math.floor(k / ROOMS) + 1)
    rows.sender.push(sender)
    rows.name.push(sender)
    rows.body.push(text())
    rows.ts.push(BASE_TS + k * 10)
  }
  return rows
}

/** The SQLite store's search index gone (as before search existed): its triggers, table and mark. */
function dropSqliteIndex(db) {
  for (const trigger of ['delete', 'update']) db.exec(`DROP TRIGGER IF EXISTS chat_messages_fts_${trigger}`)
  db.exec('DROP TABLE IF EXISTS chat_messages_fts')
  db.exec('DROP TABLE IF EXISTS chat_search_state')
}

const seconds = since => (performance.now() - since) / 1000
const log = line => process.stderr.write(`  search: ${line}\n`)

// ---- fills ----

async function fillSqlite(path) {
  // The schema as the store makes it, then without its search index: the fill is a plain bulk insert.
  const first = createDb0RoomLog(() => createDatabase(nodeSqlite({ path })))
  await first.lastId('room-000')
  await first.close()
  const db = new DatabaseSync(path)
  dropSqliteIndex(db)
  db.exec('PRAGMA journal_mode = WAL')
  db.exec('PRAGMA synchronous = OFF')
  const insert = db.prepare('INSERT INTO chat_messages (room, id, sender, name, body, ts) VALUES (?, ?, ?, ?, ?, ?)')
  const started = performance.now()
  for (let from = 0; from < MESSAGES; from += BATCH) {
    const rows = batchRows(from, Math.min(MESSAGES, from + BATCH))
    db.exec('BEGIN')
    for (let index = 0; index < rows.room.length; index++) insert.run(rows.room[index], rows.id[index], rows.sender[index], rows.name[index], rows.body[index], rows.ts[index])
    db.exec('COMMIT')
  }
  db.exec('PRAGMA wal_checkpoint(TRUNCATE)')
  db.close()
  const fill = seconds(started)
  // Opening the store makes the index; its worker indexes what is there behind the writes (the upgrade path), timed to the end.
  const indexing = performance.now()
  const log = createDb0RoomLog(() => createDatabase(nodeSqlite({ path })))
  await log.lastId('room-000')
  const watch = new DatabaseSync(path, { readOnly: true })
  const newest = watch.prepare('SELECT MAX(rowid) AS n FROM chat_messages').get().n
  while (watch.prepare('SELECT indexed_to AS n FROM chat_search_state').get().n < newest) await new Promise(resolve => setTimeout(resolve, 50))
  watch.close()
  return { log, fillSeconds: fill, indexSeconds: seconds(indexing) }
}

function psql(sql, database = 'test') {
  execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', database, '-tAc', sql], { stdio: 'pipe' })
}

async function fillPostgres() {
  psql(`CREATE DATABASE ${PG_DATABASE}`)
  const url = PG_ADMIN.replace(/\/test$/, `/${PG_DATABASE}`)
  const first = createDb0RoomLog(() => createDatabase(postgresql({ url })))
  await first.lastId('room-000')
  await first.close()
  psql('DROP INDEX IF EXISTS chat_messages_words; DROP INDEX IF EXISTS chat_messages_recent; ALTER TABLE chat_messages DROP COLUMN IF EXISTS body_words', PG_DATABASE)
  const db = createDatabase(postgresql({ url }))
  const client = await db.getInstance()
  const started = performance.now()
  for (let from = 0; from < MESSAGES; from += BATCH) {
    const rows = batchRows(from, Math.min(MESSAGES, from + BATCH))
    await client.query('INSERT INTO chat_messages (room, id, sender, name, body, ts) SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[])', [rows.room, rows.id, rows.sender, rows.name, rows.body, rows.ts])
  }
  const fill = seconds(started)
  await db.dispose()
  const indexing = performance.now()
  const log = createDb0RoomLog(() => createDatabase(postgresql({ url })))
  await log.lastId('room-000')
  const indexSeconds = seconds(indexing)
  psql('ANALYZE chat_messages', PG_DATABASE)
  return { log, fillSeconds: fill, indexSeconds }
}

// ---- queries ----

const searcherRooms = Array.from({ length: SEARCHER_ROOMS }, (_, index) => `room-${String(index * (ROOMS / SEARCHER_ROOMS)).padStart(3, '0')}`)

/** `picks` searched one after another (with the filters of `more`): each page's time, and how many hits it found. */
async function timeQueries(log, picks, more = {}) {
  const times = []
  let hits = 0
  // Warm: a few queries first (statement caches, pages).
  for (const word of picks.slice(0, 5)) await log.search({ words: searchWords(word), text: word, rooms: searcherRooms, limit: 20, ...more })
  for (const word of picks) {
    const started = performance.now()
    const page = await log.search({ words: searchWords(word), text: word, rooms: searcherRooms, limit: 20, ...more })
    times.push(performance.now() - started)
    hits += page.messages.length
  }
  times.sort((a, b) => a - b)
  return { p50: percentile(times, 50), p95: percentile(times, 95), max: times.at(-1), meanHits: hits / picks.length }
}

// ---- ingest with and without the index ----

async function ingestRate(withIndex) {
  const dir = mkdtempSync(join(tmpdir(), 'nuxt-chat-bench-ingest-'))
  const path = join(dir, 'chat.sqlite')
  try {
    const log = createDb0RoomLog(() => createDatabase(nodeSqlite({ path })))
    await log.lastId('r')
    if (!withIndex) {
      // The same store without the index: its triggers and table gone (the statements re-prepare).
      const db = new DatabaseSync(path)
      dropSqliteIndex(db)
      db.close()
    }
    const bodies = Array.from({ length: INGEST }, text)
    let next = 0
    const started = performance.now()
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < INGEST) {
        const index = next++
        await log.append({ room: `ingest-${index % 20}`, user: 'u1', sender: 'u1', message: bodies[index], ts: Date.now() })
      }
    }))
    const rate = INGEST / seconds(started)
    await log.close()
    return rate
  }
  finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** PostgreSQL appends/s (16 in flight) on a fresh database, with the search column and indexes or without them: what they cost (no goal). */
async function pgIngestRate(withIndex, count) {
  const name = `${PG_DATABASE}_ingest`
  psql(`CREATE DATABASE ${name}`)
  try {
    const url = PG_ADMIN.replace(/\/test$/, `/${name}`)
    const log = createDb0RoomLog(() => createDatabase(postgresql({ url })))
    await log.lastId('r')
    if (!withIndex) psql('DROP INDEX chat_messages_words; DROP INDEX chat_messages_recent; ALTER TABLE chat_messages DROP COLUMN body_words', name)
    const bodies = Array.from({ length: count }, text)
    let next = 0
    const started = performance.now()
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < count) {
        const index = next++
        await log.append({ room: `ingest-${index % 20}`, user: 'u1', sender: 'u1', message: bodies[index], ts: Date.now() })
      }
    }))
    const rate = count / seconds(started)
    await log.close()
    return rate
  }
  finally {
    psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  }
}

// ---- run ----

const dir = mkdtempSync(join(tmpdir(), 'nuxt-chat-bench-search-'))
const result = { messages: MESSAGES, rooms: ROOMS, searcherRooms: SEARCHER_ROOMS, vocabulary: VOCABULARY, queries: QUERIES, stores: {}, ingest: {} }
let pg
try {
  const zipfPicks = Array.from({ length: QUERIES }, zipfWord)
  const uniformPicks = Array.from({ length: QUERIES }, () => words[Math.floor(random() * VOCABULARY)])
  // The worst page: the 20 most common words under a filter no message passes (older than all), so nothing is found.
  const missing = [words.slice(0, 20), { before: 1 }]
  const sqlite = await fillSqlite(join(dir, 'chat.sqlite'))
  log(`SQLite: ${MESSAGES} messages in ${sqlite.fillSeconds.toFixed(1)} s, index built on open in ${sqlite.indexSeconds.toFixed(1)} s`)
  result.stores.sqlite = { fillSeconds: sqlite.fillSeconds, indexSeconds: sqlite.indexSeconds, zipf: await timeQueries(sqlite.log, zipfPicks), uniform: await timeQueries(sqlite.log, uniformPicks), commonWordNoHit: await timeQueries(sqlite.log, ...missing) }
  await sqlite.log.close()
  pg = await fillPostgres()
  log(`PostgreSQL: ${MESSAGES} messages in ${pg.fillSeconds.toFixed(1)} s, index built on open in ${pg.indexSeconds.toFixed(1)} s`)
  result.stores.postgresql = { fillSeconds: pg.fillSeconds, indexSeconds: pg.indexSeconds, zipf: await timeQueries(pg.log, zipfPicks), uniform: await timeQueries(pg.log, uniformPicks), commonWordNoHit: await timeQueries(pg.log, ...missing) }
  await pg.log.close()
  const rates = { with: [], without: [] }
  for (let round = 0; round < 3; round++) {
    for (const withIndex of round % 2 ? [true, false] : [false, true]) rates[withIndex ? 'with' : 'without'].push(await ingestRate(withIndex))
  }
  result.ingest = { messages: INGEST, withIndex: median(rates.with), withoutIndex: median(rates.without), ratio: median(rates.with) / median(rates.without), rounds: rates }
  const pgRates = { with: [], without: [] }
  const pgCount = Math.max(500, Math.round(INGEST / 10))
  for (let round = 0; round < 3; round++) {
    for (const withIndex of round % 2 ? [true, false] : [false, true]) pgRates[withIndex ? 'with' : 'without'].push(await pgIngestRate(withIndex, pgCount))
  }
  result.pgIngest = { messages: pgCount, withIndex: median(pgRates.with), withoutIndex: median(pgRates.without), ratio: median(pgRates.with) / median(pgRates.without), rounds: pgRates }
  console.log(JSON.stringify(result))
}
finally {
  rmSync(dir, { recursive: true, force: true })
  try {
    psql(`DROP DATABASE IF EXISTS ${PG_DATABASE} WITH (FORCE)`)
  }
  catch {
    // Never made.
  }
}
