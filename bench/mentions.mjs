// Mentions row (issue 24): resolving a message's `@name`s in a room of 10,000 members, with the
// server's own resolver (src/runtime/server/utils/mentions.ts) over the SQLite room log: the first
// message reads the room's names once (cold), every later one resolves from the in-memory index.
// Imports the TypeScript source through jiti (the server's files use syntax Node's type stripping does not take).
//   node bench/mentions.mjs [members] [messages]
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { createJiti } from 'jiti'

const jiti = createJiti(import.meta.url)
const { createDatabase } = await import('db0')
const { default: nodeSqlite } = await import('db0/connectors/node-sqlite')
const { createDb0RoomLog } = await jiti.import('../src/runtime/server/utils/roomLog.db0.ts')
const { createMentionResolver } = await jiti.import('../src/runtime/server/utils/mentions.ts')

const MEMBERS = Number(process.argv[2]) || 10_000
const MESSAGES = Number(process.argv[3]) || 20_000
const room = 'bench-mentions'
const FIRST = ['Ann', 'Bob', 'Chloé', 'Dmitri', 'Eve', 'Fatima', 'Günter', 'Hiro', 'Ines', 'José', 'Kim', 'Lars', 'Mei', 'Nia', 'Omar', 'Priya']
const LAST = ['Lee', 'Smith', 'García', 'Müller', 'Tanaka', 'Nowak', 'Ivanova', 'Silva', 'Chen', 'Okafor']
// Names as people have them: first + last (+ a number where they would collide), some with spaces, accents and emoji.
const nameOf = i => `${FIRST[i % FIRST.length]} ${LAST[Math.floor(i / FIRST.length) % LAST.length]}${i >= FIRST.length * LAST.length ? ` ${Math.floor(i / (FIRST.length * LAST.length))}` : ''}${i % 97 === 0 ? ' 🌸' : ''}`

const dir = mkdtempSync(join(tmpdir(), 'nuxt-chat-bench-mentions-'))
const log = createDb0RoomLog(() => createDatabase(nodeSqlite({ path: join(dir, 'chat.sqlite') })))
try {
  for (let i = 0; i < MEMBERS; i++) {
    await log.saveMember({ room, uid: `user-${i}`, role: 'member', joinedAt: 1 })
    await log.saveUserName(`user-${i}`, nameOf(i), 1)
  }
  const resolver = createMentionResolver({ store: log })
  const pick = i => nameOf((i * 7919) % MEMBERS)
  // The shapes of messages a room sees: most without `@`, some naming one or three people, an e-mail, a long one naming 20.
  const texts = Array.from({ length: 1000 }, (_, i) => {
    switch (i % 10) {
      case 0: return `@${pick(i)} can you look at this?`
      case 1: return `thanks @${pick(i)}, @${pick(i + 1).toLowerCase()} and @${pick(i + 2).toUpperCase()}!`
      case 2: return `mail me at someone@example.com or ping @${pick(i)}`
      case 3: return `${Array.from({ length: 20 }, (_, j) => `@${pick(i + j)}`).join(' ')} ${'x'.repeat(1400)}`
      case 4: return `@nobody-by-that-name and @ alone`
      default: return `just a message number ${i} without any at sign`.padEnd(120, '.')
    }
  })

  let started = performance.now()
  const cold = await resolver.resolve(room, texts[0], 'user-x', false)
  const coldMs = performance.now() - started
  if (!cold.uids.length) throw new Error('the first message resolved to no one')

  const samples = new Float64Array(MESSAGES)
  let found = 0
  // Warm up the JIT on the same work first (not measured).
  for (let i = 0; i < 2000; i++) resolver.resolve(room, texts[i % texts.length], 'user-x', false)
  started = performance.now()
  for (let i = 0; i < MESSAGES; i++) {
    const before = performance.now()
    const result = resolver.resolve(room, texts[i % texts.length], 'user-x', false)
    samples[i] = performance.now() - before
    if (result instanceof Promise) throw new Error('the index was not kept')
    found += result.uids.length
  }
  const totalMs = performance.now() - started
  samples.sort()
  const at = q => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]
  const row = {
    members: MEMBERS,
    messages: MESSAGES,
    coldFirstMessageMs: Number(coldMs.toFixed(2)),
    meanUs: Number((totalMs * 1000 / MESSAGES).toFixed(2)),
    p50Us: Number((at(0.5) * 1000).toFixed(2)),
    p99Us: Number((at(0.99) * 1000).toFixed(2)),
    p999Us: Number((at(0.999) * 1000).toFixed(2)),
    maxUs: Number((samples[samples.length - 1] * 1000).toFixed(1)),
    mentionsFound: found,
    heapMiB: Number((process.memoryUsage().heapUsed / 2 ** 20).toFixed(1)),
  }
  console.log(JSON.stringify(row))
}
finally {
  await log.close()
  rmSync(dir, { recursive: true, force: true })
}
