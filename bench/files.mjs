// Attachments' throughput on loopback (issue 25): N uploads of S bytes each to the built test fixture
// (SQLite, filesystem mount), one at a time and C at once, then the same files fetched back.
// Usage: node bench/files.mjs [--count=20] [--size=5242880] [--concurrency=4]
// Prints MB/s (1 MB = 10^6 bytes) and the server's CPU time per MB; loopback only, hard timeout.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cpuMicros, freePort, sleep } from './lib.mjs'

const args = Object.fromEntries(process.argv.slice(2).map(arg => arg.replace(/^--/, '').split('=')))
const count = Number(args.count ?? 20)
const size = Number(args.size ?? 5 * 1024 * 1024)
const concurrency = Number(args.concurrency ?? 4)
const entry = fileURLToPath(new URL('../test/fixtures/basic/.output/server/index.mjs', import.meta.url))
const hardTimeout = setTimeout(() => {
  console.error('bench/files.mjs: timed out')
  process.exit(1)
}, 300_000)

const port = await freePort()
const cwd = mkdtempSync(join(tmpdir(), 'nuxt-chat-files-bench-'))
const server = spawn(process.execPath, [entry], {
  cwd,
  env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', NODE_ENV: 'production', NUXT_CHAT_DATABASE_OPTIONS_CWD: cwd, NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_FILES_BYTES_PER_DAY: '0', NUXT_CHAT_FILES_MAX_SIZE: String(Math.max(size, 10 * 1024 * 1024)), NUXT_CHAT_MAX_CONNECTIONS_PER_USER: '0' },
  stdio: ['ignore', 'ignore', 'inherit'],
})
const base = `http://127.0.0.1:${port}`
for (let tries = 0; ; tries++) {
  try {
    await fetch(`${base}/_ws`)
    break
  }
  catch {
    if (tries > 200) throw new Error('server did not start')
    await sleep(50)
  }
}

const headers = { cookie: 'session=user-bench.Bench' }
/** Two kinds of file: a PNG signature followed by filler (the type check reads the head), and UTF-8 text (validated in full). */
const kinds = {
  png: Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d4948445200000400000003000802000000', 'hex'), Buffer.alloc(size - 29, 7)]),
  text: Buffer.alloc(size, 'lorem ipsum dolor sit amet\n'),
}

async function upload(bytes, index) {
  const response = await fetch(`${base}/_chat/files?room=bench-files&name=f${index}`, { method: 'POST', headers, body: bytes })
  const body = await response.json()
  if (response.status !== 201) throw new Error(`upload ${index}: ${response.status} ${JSON.stringify(body)}`)
  return body.id
}

async function run(label, task, total) {
  const cpuBefore = cpuMicros(server.pid)
  const started = performance.now()
  const results = await task()
  const seconds = (performance.now() - started) / 1000
  const cpu = (cpuMicros(server.pid) - cpuBefore) / 1e6
  const megabytes = total / 1e6
  console.log(`${label.padEnd(44)} ${(megabytes / seconds).toFixed(0).padStart(5)} MB/s  ${seconds.toFixed(2)} s  server CPU ${(cpu * 1000 / megabytes).toFixed(1)} ms/MB`)
  return results
}

async function inParallel(items, limit, work) {
  const results = []
  let next = 0
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) {
      const index = next++
      results[index] = await work(items[index], index)
    }
  }))
  return results
}

console.log(`${count} × ${(size / 1e6).toFixed(1)} MB on loopback, Node ${process.versions.node}, ${(await import('node:os')).cpus().length} cores`)
await upload(kinds.png.subarray(0, 4096), -1)
let ids = []
for (const [kind, bytes] of Object.entries(kinds)) {
  await run(`upload ${kind}, one at a time`, () => inParallel(Array.from({ length: count }), 1, (_, index) => upload(bytes, index)), count * size)
  ids = await run(`upload ${kind}, ${concurrency} at once`, () => inParallel(Array.from({ length: count }), concurrency, (_, index) => upload(bytes, index)), count * size)
}
await run(`fetch, ${concurrency} at once`, () => inParallel(ids, concurrency, async (id) => {
  const response = await fetch(`${base}/_chat/files/${id}`, { headers })
  const bytes = await response.arrayBuffer()
  if (response.status !== 200 || bytes.byteLength !== size) throw new Error(`fetch ${id}: ${response.status}`)
}), count * size)

server.kill('SIGTERM')
await new Promise(resolve => server.once('exit', resolve))
rmSync(cwd, { recursive: true, force: true })
clearTimeout(hardTimeout)
