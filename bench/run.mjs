// `npm run bench`: builds what it needs (its own output dirs), starts each server as a child
// process, drives it from a separate load-generator process (bench/client.mjs), alternates the
// servers over several rounds and reports medians and ratios to bare `ws`.
//
//   node bench/run.mjs [--quick] [--nuxt5] [--only=room200,rooms100,reactions,idle,sse,replay,older,ingest,cross,client,scale,scale2,search,stream] [--scenario=scale|scale2|search|stream] [--rounds=N] [--no-build] [--cpu-prof] [--sqlite-entry=path] [--baseline-entry=path]
//
// Everything is bounded: each client has a hard timeout, the whole run has one, and every child
// process is killed on exit or failure.
import { execFileSync, fork, spawn, spawnSync } from 'node:child_process'
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cpuMicros, freePort, median, percentile, sleep, writeCalls } from './lib.mjs'
import { threeRoomLayout } from './scale-layout.mjs'

const BENCH = dirname(fileURLToPath(import.meta.url))
const ROOT = dirname(BENCH)
const args = process.argv.slice(2)
const flag = name => args.includes(`--${name}`)
const option = name => args.find(arg => arg.startsWith(`--${name}=`))?.split('=')[1]
const QUICK = flag('quick')
// `scale2` (protocol version 2, one socket in 3 rooms) and `search` (1,000,000 stored messages) run only when asked for: `npm run bench` stays as it was.
const ALL = ['room200', 'rooms100', 'reactions', 'idle', 'sse', 'replay', 'older', 'ingest', 'cross', 'client', 'scale']
const KNOWN = [...ALL, 'scale2', 'search', 'stream']
const ONLY = (option('only') ?? option('scenario'))?.split(',') ?? ALL
const ROUNDS = Number(option('rounds') ?? (QUICK ? 1 : 3))
// The long scenarios (idle, scale, scale2: ~45 s a server a round) take 2 rounds, or up to 5 when run on their own with `--rounds` (a noisy machine wants them).
const LONG_ROUNDS = option('rounds') && ONLY.every(name => ['idle', 'scale', 'scale2'].includes(name)) ? Math.min(ROUNDS, 5) : Math.min(ROUNDS, 2)
// scale2 alone stops within 5 minutes at 1 or 2 rounds, and 100 s later for each round more.
const EXTRA_LONG_ROUNDS = LONG_ROUNDS - Math.min(ROUNDS, 2)
const RUN_LIMIT_MS = Number(option('limit') ?? (QUICK ? 180_000 + 80_000 * EXTRA_LONG_ROUNDS : ONLY.every(name => name === 'scale2') ? 100_000 + 100_000 * Math.max(2, LONG_ROUNDS) : 600_000 + 200_000 * EXTRA_LONG_ROUNDS))
const RUN_ID = Date.now().toString(36)
const REDIS_URL = 'redis://127.0.0.1:6379'

for (const name of ONLY) if (!KNOWN.includes(name)) throw new Error(`unknown scenario "${name}" (one of ${KNOWN.join(', ')})`)

// 10,000 sockets in one process: raise the soft open-files limit to the hard one (children inherit it).
const openFilesLimit = () => Number(execFileSync('sh', ['-c', 'ulimit -Sn']).toString().trim().replace('unlimited', 'Infinity'))
if ((ONLY.includes('scale') || ONLY.includes('scale2')) && openFilesLimit() < 12_000 && !process.env.BENCH_NOFILE_RAISED) {
  const rerun = spawnSync('sh', ['-c', 'ulimit -Sn "$(ulimit -Hn)"; exec "$0" "$@"', process.execPath, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, BENCH_NOFILE_RAISED: '1' } })
  process.exit(rerun.status ?? 1)
}

// ---- child processes: all killed when we go ----

const children = new Set()
const tempDirs = new Set()
function cleanup() {
  for (const child of children) child.kill('SIGKILL')
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
}
process.on('exit', cleanup)
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => process.exit(130))
const runTimer = setTimeout(() => {
  console.error(`bench: over the ${RUN_LIMIT_MS / 1000} s limit, stopping`)
  process.exit(2)
}, RUN_LIMIT_MS)
runTimer.unref()

// ---- builds (own output dirs; rebuilt when the sources are newer) ----

const nuxi = join(ROOT, 'node_modules/@nuxt/cli/bin/nuxi.mjs')
const fixture = join(ROOT, 'test/fixtures/basic')
const entries = {
  sqlite: join(fixture, '.output-bench/server/index.mjs'),
  postgresql: join(fixture, '.output-bench-pg/server/index.mjs'),
  seed: join(BENCH, 'seed-app/.output-bench/server/index.mjs'),
}
// `--sqlite-entry=…/server/index.mjs`: measure another build of the fixture (e.g. a copy from before a change).
if (option('sqlite-entry')) entries.sqlite = option('sqlite-entry')
// `--nuxt5`: room200 and sse also run the fixture built on the Nuxt 5 nightly (test/nuxt5, built by `npm run test:nuxt5`).
const NUXT5 = flag('nuxt5')
entries.nuxt5 = join(ROOT, 'test/nuxt5/.output/server/index.mjs')
// `--nuxt5-ref=…/server/index.mjs` (with `--nuxt5`): sse also measures another Nuxt 5 build (e.g. one from before a change).
entries.nuxt5ref = option('nuxt5-ref')
if (NUXT5 && !existsSync(entries.nuxt5)) throw new Error(`--nuxt5: ${entries.nuxt5} is missing; run \`npm run test:nuxt5\` first`)

function newestMtime(dir) {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.') || entry.name === 'node_modules') continue
    const path = join(dir, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs)
  }
  return newest
}

function ensureBuilt(entry, dir, sources, env) {
  if (!flag('no-build') && (!existsSync(entry) || statSync(entry).mtimeMs < Math.max(...sources.map(newestMtime)))) {
    const t = Date.now()
    process.stdout.write(`building ${entry.slice(ROOT.length + 1)} … `)
    execFileSync(process.execPath, [nuxi, 'build', dir], { cwd: ROOT, stdio: 'pipe', env: { ...process.env, ...env } })
    console.log(`${((Date.now() - t) / 1000).toFixed(1)} s`)
  }
  if (!existsSync(entry)) throw new Error(`missing build: ${entry}`)
}

// ---- servers ----

// Thousands of guests on one address: no per-address caps, and none of the limits (revision 6) that
// would refuse them (a scale run's 10,000 joins replay far more than one address's history bytes).
const LIMITS_OFF = ['RATE_LIMIT', 'RATE_LIMIT_PER_IP', 'HISTORY_RATE_LIMIT', 'HISTORY_RATE_LIMIT_PER_IP', 'HISTORY_BYTES', 'READ_RATE_LIMIT', 'READ_RATE_LIMIT_PER_IP', 'NEW_ROOM_RATE_LIMIT', 'NEW_ROOM_RATE_LIMIT_PER_IP', 'JOIN_RATE_LIMIT', 'JOIN_RATE_LIMIT_PER_IP']
const MODULE_ENV = { ...Object.fromEntries(LIMITS_OFF.map(limit => [`NUXT_CHAT_${limit}`, 'false'])), NUXT_CHAT_MAX_CONNECTIONS_PER_IP: '0' }
const SERVERS = {
  ws: { label: '(b) bare ws, send per socket', entry: join(BENCH, 'servers/ws-basic.mjs'), kind: 'ws' },
  wsRooms: { label: '(b2) bare ws, one socket in many rooms', entry: join(BENCH, 'servers/ws-rooms.mjs'), kind: 'ws' },
  frame: { label: '(c) bare ws, frame once', entry: join(BENCH, 'servers/ws-frame-once.mjs'), kind: 'ws' },
  module: { label: '(a) nuxt-chat (SQLite)', entry: entries.sqlite, kind: 'ws', env: MODULE_ENV },
  sio: { label: '(d) Socket.IO 4 (websocket)', entry: join(BENCH, 'servers/socketio.mjs'), kind: 'sio' },
  seed: { label: '(e) seed crossws handler', entry: entries.seed, kind: 'ws', oneRoom: true },
  nuxt5: { label: '(f) nuxt-chat on Nuxt 5 nightly (SQLite)', entry: entries.nuxt5, kind: 'ws', env: MODULE_ENV },
  // `--baseline-entry=path`: another build of the module (e.g. main's) in the scale scenario, for before/after ratios in one run.
  base: { label: '(a0) nuxt-chat, baseline build', entry: option('baseline-entry'), kind: 'ws', env: MODULE_ENV },
}

/** `--cpu-prof`: profile the module's servers (bench/results/profiles; the scale scenario: every server's connect, message and storm phases, through the probe); they then stop with SIGINT so the profile is written. */
const CPU_PROF = flag('cpu-prof')
// --alloc-prof: where the connect phase's allocations go (sampled, collected ones included; bench/alloc-top.mjs).
const ALLOC_PROF = flag('alloc-prof')
const isModule = entry => entry === entries.sqlite || entry === SERVERS.base.entry || entry === entries.postgresql || entry === entries.nuxt5

async function startServer(entry, env = {}, { wholeProfile = true } = {}) {
  const port = await freePort()
  const profile = CPU_PROF && isModule(entry) && wholeProfile
  const profileArgs = profile ? ['--cpu-prof', `--cpu-prof-dir=${join(BENCH, 'results/profiles')}`] : []
  const cwd = mkdtempSync(join(tmpdir(), 'nuxt-chat-bench-'))
  tempDirs.add(cwd)
  const probeFile = join(cwd, 'probe.json')
  // BENCH_SERVER_FLAGS: Node/V8 flags for the servers (an experiment's, e.g. `--trace-gc`); their output goes to $BENCH_SERVER_LOG.<pid>.
  const extraFlags = process.env.BENCH_SERVER_FLAGS?.split(' ').filter(Boolean) ?? []
  const child = spawn(process.execPath, [...profileArgs, ...extraFlags, '--expose-gc', '--import', join(BENCH, 'probe.mjs'), entry], {
    cwd,
    // NUXT_CHAT_DATABASE_OPTIONS_CWD: a fresh SQLite file per server (a relative path resolves against the app's root otherwise).
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', NODE_ENV: 'production', NITRO_SHUTDOWN_TIMEOUT: '0', NUXT_CHAT_DATABASE_OPTIONS_CWD: cwd, BENCH_PROBE_FILE: probeFile, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.add(child)
  let output = ''
  child.stdout.on('data', (data) => {
    output += data
    if (process.env.BENCH_SERVER_LOG) appendFileSync(`${process.env.BENCH_SERVER_LOG}.${child.pid}`, data)
  })
  child.stderr.on('data', (data) => {
    output += data
  })
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise(resolve => child.once('exit', resolve))
      child.kill(profile ? 'SIGINT' : 'SIGKILL')
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    }
    children.delete(child)
    rmSync(cwd, { recursive: true, force: true })
    tempDirs.delete(cwd)
  }
  const deadline = Date.now() + 20_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server ${entry} exited with ${child.exitCode}:\n${output}`)
    try {
      await fetch(`http://127.0.0.1:${port}/_ws`)
      break
    }
    catch {
      if (Date.now() > deadline) {
        await stop()
        throw new Error(`server ${entry} did not start:\n${output}`)
      }
      await sleep(50)
    }
  }
  return { pid: child.pid, port, cwd, probeFile, stop, logs: () => output }
}

/** Run the load generator; on failure, the servers' last output goes into the error. */
async function runClient(config, script = 'client.mjs', argv, servers = []) {
  // The config can be large (2,000 peer specs): it goes through a file, not argv.
  const dir = mkdtempSync(join(tmpdir(), 'nuxt-chat-bench-client-'))
  tempDirs.add(dir)
  const file = join(dir, 'config.json')
  writeFileSync(file, JSON.stringify(config))
  try {
    return await spawnClient(config, script, argv ?? [file])
  }
  catch (error) {
    const logs = servers.map(server => server.logs().slice(-2000)).filter(Boolean).join('\n---\n')
    throw logs ? new Error(`${error.message}\nserver output:\n${logs}`) : error
  }
  finally {
    rmSync(dir, { recursive: true, force: true })
    tempDirs.delete(dir)
  }
}

function spawnClient(config, script, argv) {
  const timeoutMs = (config.timeoutMs ?? 60_000) + 5_000
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(BENCH, script), ...argv], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(child)
    let out = ''
    let err = ''
    child.stdout.on('data', (data) => {
      out += data
    })
    child.stderr.on('data', (data) => {
      err += data
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('exit', (code) => {
      clearTimeout(timer)
      children.delete(child)
      const line = out.trim().split('\n').pop()
      if (code === 0 && line) resolve(JSON.parse(line))
      else reject(new Error(`client exited with ${code}: ${err.trim() || out.trim()}`))
    })
  })
}

/** Peer specs for `roomCount` rooms of `perRoom` peers on one server. */
function peerSpecs(server, port, roomNames, perRoom, kind = server.kind) {
  const specs = []
  for (const room of roomNames) {
    for (let i = 0; i < perRoom; i++) {
      specs.push(kind === 'sio'
        ? { kind, url: `http://127.0.0.1:${port}`, room }
        : { kind, url: `ws://127.0.0.1:${port}/_ws?room=${room}`, room })
    }
  }
  return specs
}

/** The `reactions` scenario: one send in this many is a reaction toggle. */
const REACTION_EVERY = 4
const roomName = (scenario, i = 0) => `bench-${RUN_ID}-${scenario}-${i}-${Math.random().toString(36).slice(2, 8)}`
const rotate = (list, by) => list.map((_, i) => list[(i + by) % list.length])

// ---- scenarios ----

const P = QUICK
  ? { warmMs: 300, measureMs: 1000, satMs: 600, rate1: 50, rate100: 400, idleConns: 400, replay: 1000, repeats: 3, ingestMs: 800, crossPeers: 40 }
  : { warmMs: 500, measureMs: 2500, satMs: 1000, rate1: 150, rate100: 1500, idleConns: 2000, replay: 1000, repeats: 5, ingestMs: 2000, crossPeers: 100 }

/** One fan-out measurement: start, connect, fixed rate, saturation, stop. */
async function fanoutRun(server, { rooms, perRoom, senders, rate, window, scenario, reactionEvery = 0 }) {
  const running = await startServer(server.entry, server.env)
  try {
    const names = Array.from({ length: rooms }, (_, i) => roomName(scenario, i))
    return await runClient({
      mode: 'fanout',
      peers: peerSpecs(server, running.port, names, perRoom),
      rooms: names.map((_, r) => ({ expect: perRoom, senders: Array.from({ length: senders }, (_, s) => r * perRoom + s) })),
      pids: [running.pid],
      size: 64, rate, window, warmMs: P.warmMs, measureMs: P.measureMs, satMs: P.satMs,
      concurrency: 100,
      reactionEvery,
      timeoutMs: 90_000,
    }, undefined, undefined, [running])
  }
  finally {
    await running.stop()
  }
}

/** Median of each numeric metric over rounds. */
function medianOf(results, pick) {
  const values = results.map(pick)
  return median(values)
}

function fanoutRow(key, label, runs, baseRuns) {
  const m = pick => medianOf(runs, pick)
  // Ratios are taken per round (same minute, same noise), then the median.
  const ratio = pick => baseRuns ? median(runs.map((run, i) => pick(run) / pick(baseRuns[i]))) : NaN
  const cpu = run => run.rate.cpuUsPerDelivery
  const dps = run => run.saturation?.deliveriesPerSec ?? run.rate.deliveriesPerSec
  const p50 = run => run.rate.p50
  const p99 = run => run.rate.p99
  return {
    key, label, rounds: runs.length,
    cpuUsPerDelivery: m(cpu), deliveriesPerSec: m(dps), p50: m(p50), p99: m(p99),
    satCpuUsPerDelivery: m(run => run.saturation?.cpuUsPerDelivery ?? NaN),
    satP50: m(run => run.saturation?.p50 ?? NaN),
    connectMs: m(run => run.connectMs),
    ratio: { cpu: ratio(cpu), satCpu: ratio(run => run.saturation?.cpuUsPerDelivery ?? NaN), deliveriesPerSec: ratio(dps), p50: ratio(p50), p99: ratio(p99) },
    runs,
  }
}

const results = { date: new Date().toISOString(), node: process.version, quick: QUICK, rounds: ROUNDS, params: P, scenarios: {}, goals: [] }

function goal(name, value, limit, op, note = '') {
  const ok = op === '<=' ? value <= limit : op === '<' ? value < limit : value >= limit
  results.goals.push({ name, value, limit, op, ok: Number.isFinite(value) ? ok : null, note })
}

async function fanoutScenario(scenario, keys, shape) {
  const runs = Object.fromEntries(keys.map(key => [key, []]))
  for (let round = 0; round < ROUNDS; round++) {
    for (const key of rotate(keys, round)) {
      const t = Date.now()
      runs[key].push(await fanoutRun(SERVERS[key], { ...shape, scenario }))
      log(`  ${scenario} round ${round + 1} ${key}: ${brief(runs[key].at(-1))} (${((Date.now() - t) / 1000).toFixed(1)} s)`)
    }
  }
  // Rounds are ordered by round for every key, so per-round ratios pair up.
  return keys.map(key => fanoutRow(key, SERVERS[key].label, runs[key], runs.ws))
}

// ---- scale: 10,000 connections driven by several load processes (bench/client-scale.mjs) ----

const S = QUICK
  ? { rooms: 100, perRoom: 20, procs: 2, rates: [200, 600], phaseMs: 1500, warmMs: 500, history: 100, newcomers: 200 }
  : { rooms: 500, perRoom: 20, procs: 2, rates: [1000, 3000], phaseMs: 4000, warmMs: 1000, history: 100, newcomers: 200 }
/** scale2 (version 2): `blocks × perRoom` connections per load process, each in 3 rooms (bench/scale-layout.mjs); then one socket joins `manyRooms` rooms. */
const S2 = { ...S, blocks: QUICK ? 50 : 250, manyRooms: 50, quietHistory: 20 }

/** Ask a server's probe (bench/probe.mjs): `memory` (after a full GC) or `loop` (event-loop delay since the last `loop`). */
async function askProbe(running, ask) {
  rmSync(running.probeFile, { force: true })
  writeFileSync(`${running.probeFile}.ask`, ask)
  const asked = Date.now()
  process.kill(running.pid, 'SIGUSR2')
  for (let i = 0; i < 500; i++) {
    await sleep(10)
    try {
      const data = JSON.parse(readFileSync(running.probeFile, 'utf8'))
      if (data.at >= asked) return data
    }
    catch {
      // Not written yet.
    }
  }
  throw new Error(`probe did not answer "${ask}"`)
}

/** A forked load process; `ask(cmd, args)` resolves with its answer, rejects when it fails or exits. */
function forkLoad(config) {
  const child = fork(join(BENCH, 'client-scale.mjs'), [], { serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
  children.add(child)
  let err = ''
  child.stderr.on('data', (data) => {
    err += data
  })
  const pending = new Map()
  let nextId = 0
  child.on('message', (message) => {
    const waiting = pending.get(message.id)
    pending.delete(message.id)
    if (message.ok) waiting?.resolve(message.result)
    else waiting?.reject(new Error(message.error))
  })
  child.on('exit', (code) => {
    children.delete(child)
    for (const waiting of pending.values()) waiting.reject(new Error(`load process exited with ${code}: ${err.trim()}`))
    pending.clear()
  })
  const ask = (cmd, args = {}) => new Promise((resolve, reject) => {
    const id = nextId++
    pending.set(id, { resolve, reject })
    child.send({ id, cmd, ...args })
  })
  return { pid: child.pid, ask, ready: ask('config', { config }), stop: () => child.kill('SIGKILL') }
}

/**
 * Version 2, after the 10,000 connections went (no heartbeat writes left to count): 50 rooms that
 * hold a history and no one else joined at once on one socket; the server's write calls counted,
 * less its idle rate over the second before.
 */
async function quietRoomsJoin(running, load) {
  const quietNames = Array.from({ length: S2.manyRooms }, (_, i) => roomName('quiet', i))
  const filled = await load.ask('fillQuiet', { rooms: quietNames, count: S2.quietHistory })
  // The store settles first (the search index catches up with the messages, the WAL is checkpointed): until two half-seconds write alike, 10 s at most.
  for (let i = 0, previous = -1; i < 20; i++) {
    const w0 = writeCalls(running.pid)
    await sleep(500)
    const writes = writeCalls(running.pid) - w0
    if (writes === previous) break
    previous = writes
  }
  // Idle writes (the heartbeat's pings) over a second, to take off the join's count.
  const idle0 = writeCalls(running.pid)
  await sleep(1000)
  const idlePerMs = (writeCalls(running.pid) - idle0) / 1000
  const writes0 = writeCalls(running.pid)
  const quiet = await load.ask('joinMany', { rooms: quietNames })
  // joinMany waits 200 ms for quiet after the last caught_up, and the open before: counted as idle.
  quiet.writes = writeCalls(running.pid) - writes0 - idlePerMs * (quiet.ms + 200)
  quiet.echoed = filled.echoed
  return quiet
}

/** One server through every phase: idle memory, connect rate, two message rates, a join storm (version 2: also the rest of the joins, and 50 rooms on one socket). */
async function scaleRun(key, v2 = false) {
  const server = SERVERS[key]
  // --cpu-prof: one profile per phase of each server (connect, messages, storm; through the probe), not one of the whole life.
  const running = await startServer(server.entry, server.env, { wholeProfile: false })
  const phaseProfile = CPU_PROF
  const scenario = v2 ? 'scale2' : 'scale'
  // `--heap-snapshots`: the server's heap before the connections, with them (version 2: in 1 room each, then in 3), for bench/heap-diff.mjs.
  const snapshots = []
  const snapshot = async (label) => {
    if (!flag('heap-snapshots')) return
    const { snapshot: path } = await askProbe(running, 'heap')
    const kept = join(BENCH, 'results/heap', `${scenario}-${key}-${RUN_ID}-${label}.heapsnapshot`)
    mkdirSync(dirname(kept), { recursive: true })
    copyFileSync(path, kept)
    rmSync(path)
    snapshots.push(kept)
    log(`  heap snapshot: ${kept}`)
  }
  const loads = []
  try {
    const names = Array.from({ length: v2 ? 3 * S2.blocks * S.procs : S.rooms }, (_, i) => roomName('scale', i))
    for (let p = 0; p < S.procs; p++) {
      const mine = names.filter((_, i) => i % S.procs === p)
      const url = `ws://127.0.0.1:${running.port}/_ws`
      if (v2) loads.push(forkLoad({ url, v2, ...threeRoomLayout(mine, S2.blocks, S.perRoom), size: 64, timeoutMs: 200_000 }))
      else loads.push(forkLoad({ url, rooms: mine.map((name, j) => ({ name, members: Array.from({ length: S.perRoom }, (_, m) => j * S.perRoom + m) })), size: 64, timeoutMs: 150_000 }))
    }
    await Promise.all(loads.map(load => load.ready))
    // Warm the server's lazy paths (route chunks, first room) before the memory baseline.
    await loads[0].ask('storm', { room: 0, count: 20 })
    const before = await askProbe(running, 'memory')
    await snapshot('before')
    if (phaseProfile) await askProbe(running, 'profile-start')
    if (ALLOC_PROF) await askProbe(running, 'alloc-start')
    const connectCpu0 = cpuMicros(running.pid)
    // The load processes share the machine's cores with the server: what a connection costs them bounds the rate too.
    const loadCpu0 = loads.map(load => cpuMicros(load.pid))
    const connectWrites0 = writeCalls(running.pid)
    const connected = await Promise.all(loads.map(load => load.ask('connect', { concurrency: 100 })))
    const connectCpu = cpuMicros(running.pid) - connectCpu0
    const loadCpu = loads.reduce((sum, load, i) => sum + cpuMicros(load.pid) - loadCpu0[i], 0)
    const connectWrites = writeCalls(running.pid) - connectWrites0
    if (phaseProfile) {
      const path = join(BENCH, 'results/profiles', `${scenario}-${key}-connect-${RUN_ID}-${running.pid}.cpuprofile`)
      mkdirSync(dirname(path), { recursive: true })
      await askProbe(running, `profile-stop ${path}`)
      log(`  profile: ${path}`)
    }
    if (ALLOC_PROF) {
      const path = join(BENCH, 'results/profiles', `${scenario}-${key}-connect-${RUN_ID}-${running.pid}.heapprofile`)
      mkdirSync(dirname(path), { recursive: true })
      await askProbe(running, `alloc-stop ${path}`)
      log(`  allocations: ${path}`)
    }
    const connections = connected.reduce((sum, part) => sum + part.connections, 0)
    let rest
    await snapshot(v2 ? 'rooms1' : 'after')
    if (v2) {
      if (phaseProfile) await askProbe(running, 'profile-start')
      const restCpu0 = cpuMicros(running.pid)
      const parts = await Promise.all(loads.map(load => load.ask('joinRest', { concurrency: 100 })))
      if (phaseProfile) {
        const path = join(BENCH, 'results/profiles', `${scenario}-${key}-joins-${RUN_ID}-${running.pid}.cpuprofile`)
        await askProbe(running, `profile-stop ${path}`)
        log(`  profile: ${path}`)
      }
      const joins = parts.reduce((sum, part) => sum + part.joins, 0)
      rest = { joins, perSec: joins / (Math.max(...parts.map(part => part.ms)) / 1000), cpuUs: (cpuMicros(running.pid) - restCpu0) / joins }
    }
    await sleep(500)
    const after = await askProbe(running, 'memory')
    // Where RSS goes beyond the live heap: V8's committed heap, buffers outside it, the rest (native).
    const kibPerConn = bytes => (bytes / connections / 1024).toFixed(2)
    const perConn = field => kibPerConn(after[field] - before[field])
    // V8's generations as resident (`physical_space_size`): the young one is sized by allocation, not by connections.
    const young = reading => reading.spaces.new_space
    const old = reading => reading.spaces.old_space
    log(`  memory ${key} KiB/conn: heapUsed ${perConn('heapUsed')}, heapTotal ${perConn('heapTotal')}, external ${perConn('external')}, rss ${perConn('rss')} (anonymous ${perConn('anonymous')}, file-backed ${perConn('fileBacked')}); resident young generation ${kibPerConn(young(after) - young(before))}, old generation ${kibPerConn(old(after) - old(before))}`)
    if (v2) await snapshot('rooms3')

    const phase = async (rate, ms, profileName) => {
      if (profileName) await askProbe(running, 'profile-start')
      await askProbe(running, 'loop')
      const cpu0 = cpuMicros(running.pid)
      const writes0 = writeCalls(running.pid)
      const parts = await Promise.all(loads.map(load => load.ask('rate', { rate: rate / S.procs, ms })))
      const cpu = cpuMicros(running.pid) - cpu0
      const writes = writeCalls(running.pid) - writes0
      const { loop } = await askProbe(running, 'loop')
      if (profileName) {
        const path = join(BENCH, 'results/profiles', profileName)
        mkdirSync(dirname(path), { recursive: true })
        // After the loop reading: writing the profile stalls the loop.
        await askProbe(running, `profile-stop ${path}`)
        log(`  profile: ${path}`)
      }
      const sum = pick => parts.reduce((total, part) => total + pick(part), 0)
      const lat = Float64Array.from(parts.flatMap(part => Array.from(part.latencies))).sort()
      return { rate, sent: sum(part => part.sent), completed: sum(part => part.completed), deliveries: sum(part => part.deliveries), cpuUsPerDelivery: cpu / sum(part => part.deliveries), writesPerDelivery: writes / sum(part => part.deliveries), p50: percentile(lat, 50), p99: percentile(lat, 99), max: lat.at(-1), loopMax: loop.max, loopP99: loop.p99 }
    }
    await phase(S.rates[0], S.warmMs)
    const phases = []
    for (const rate of S.rates) phases.push(await phase(rate, S.phaseMs, phaseProfile && `${scenario}-${key}-${rate}-${RUN_ID}-${running.pid}.cpuprofile`))
    // The same connections after the message phases: V8's young generation has been used to its size by now, on either server.
    await sleep(500)
    const afterTraffic = await askProbe(running, 'memory')
    log(`  memory after traffic ${key} KiB/conn: rss ${kibPerConn(afterTraffic.rss - before.rss)}, young generation ${kibPerConn(young(afterTraffic) - young(before))}`)

    // Join storm: newcomers into one room with members and a history.
    await loads[0].ask('fill', { room: 0, count: S.history })
    if (phaseProfile) await askProbe(running, 'profile-start')
    await askProbe(running, 'loop')
    const cpu0 = cpuMicros(running.pid)
    const storm = await loads[0].ask('storm', { room: 0, count: S.newcomers })
    storm.cpuMs = (cpuMicros(running.pid) - cpu0) / 1000
    storm.loopMax = (await askProbe(running, 'loop')).loop.max
    if (phaseProfile) {
      const path = join(BENCH, 'results/profiles', `${scenario}-${key}-storm-${RUN_ID}-${running.pid}.cpuprofile`)
      await askProbe(running, `profile-stop ${path}`)
      log(`  profile: ${path}`)
    }
    // Version 2: 50 rooms of load 0 (20 members each, the history of the message phases) joined at once on one more socket.
    const many = v2 ? { populated: await loads[0].ask('joinMany', { rooms: names.filter((_, i) => i % S.procs === 0).slice(0, S2.manyRooms) }) } : undefined

    await Promise.all(loads.map(load => load.ask('close')))
    if (v2) {
      await sleep(1000)
      many.quiet = await quietRoomsJoin(running, loads[0])
    }
    return {
      rest,
      many,
      connections,
      heapPerConn: (after.heapUsed - before.heapUsed) / connections,
      rssPerConn: (after.rss - before.rss) / connections,
      rssAfterTrafficPerConn: (afterTraffic.rss - before.rss) / connections,
      // RSS less the young generation (64 MiB at most, however many connections): what stays per connection.
      rssOutsideYoungPerConn: (after.rss - young(after) - before.rss + young(before)) / connections,
      connectPerSec: connections / (Math.max(...connected.map(part => part.ms)) / 1000),
      // Server CPU per connection opened: the connect rate without the machine's other load.
      connectCpuUs: connectCpu / connections,
      connectLoadCpuUs: loadCpu / connections,
      connectWrites: connectWrites / connected.reduce((sum, part) => sum + part.connections, 0),
      phases,
      storm,
    }
  }
  catch (error) {
    throw new Error(`${error.message}\nserver output:\n${running.logs().slice(-2000)}`, { cause: error })
  }
  finally {
    for (const load of loads) load.stop()
    await running.stop()
  }
}

/** The scale table's rows: what, how to read it from one run, and the goal on module / bare ws. */
const scaleMetrics = (v2 = false) => [
  [v2 ? 'idle heap KiB/conn (3 rooms each)' : 'idle heap KiB/conn', run => run.heapPerConn / 1024, ['<=', 1.2]],
  [v2 ? 'idle RSS KiB/conn (3 rooms each)' : 'idle RSS KiB/conn', run => run.rssPerConn / 1024, ['<=', 1.2]],
  ['idle RSS less the young generation KiB/conn', run => run.rssOutsideYoungPerConn / 1024],
  ['idle RSS after the message phases KiB/conn', run => run.rssAfterTrafficPerConn / 1024],
  [v2 ? 'connections opened/s, incl. the first join' : 'connections opened/s', run => run.connectPerSec, ['>=', 0.8]],
  [v2 ? 'server CPU µs per connection opened + joined' : 'server CPU µs per connection opened', run => run.connectCpuUs],
  ['load processes\' CPU µs per connection opened', run => run.connectLoadCpuUs],
  ['server write calls per connection opened', run => run.connectWrites],
  ...(v2
    ? [
        ['2nd and 3rd joins/s', run => run.rest.perSec],
        ['server CPU µs per 2nd/3rd join', run => run.rest.cpuUs],
      ]
    : []),
  ...S.rates.flatMap((rate, i) => [
    [`${rate} msg/s: CPU µs/delivery`, run => run.phases[i].cpuUsPerDelivery],
    [`${rate} msg/s: server write calls per delivery`, run => run.phases[i].writesPerDelivery],
    [`${rate} msg/s: p50 latency ms`, run => run.phases[i].p50],
    [`${rate} msg/s: p99 latency ms`, run => run.phases[i].p99, ['<=', 1.5]],
    [`${rate} msg/s: max latency ms`, run => run.phases[i].max],
    [`${rate} msg/s: server loop delay max ms`, run => run.phases[i].loopMax, null, ['<=', 50]],
    [`${rate} msg/s: delivered / sent×members`, run => run.phases[i].completed / run.phases[i].sent],
  ]),
  [`join storm (${S.newcomers} newcomers): server CPU ms`, run => run.storm.cpuMs, ['<=', 3]],
  ['join storm: KiB received in the room', run => run.storm.bytes / 1024],
  ['join storm: all open, ms', run => run.storm.openMs],
  ['join storm: server loop delay max ms', run => run.storm.loopMax],
  ...(v2
    ? [
        [`${S2.manyRooms} rooms × ${S.perRoom} members on 1 socket: ms to last caught_up`, run => run.many.populated.ms, null, ['<', 200]],
        [`${S2.manyRooms} rooms × ${S.perRoom} members: frames received`, run => run.many.populated.frames],
        [`${S2.manyRooms} rooms × ${S.perRoom} members: KiB received`, run => run.many.populated.bytes / 1024],
        [`${S2.manyRooms} rooms, ${S2.quietHistory} messages, no one in: ms to last caught_up`, run => run.many.quiet.ms, null, ['<', 200]],
        [`${S2.manyRooms} rooms, no one in: server write calls per room`, run => run.many.quiet.writes / S2.manyRooms, null, ['<=', 1]],
        [`${S2.manyRooms} rooms, no one in: frames per room`, run => run.many.quiet.frames / S2.manyRooms],
      ]
    : []),
]

/** The scale table, version 1 (`scale`: a socket per room) or version 2 (`scale2`: one socket in 3 rooms, vs bare ws's own multi-room server). */
async function scaleScenario(v2) {
  const name = v2 ? 'scale2' : 'scale'
  // The reference is bare ws doing the same: a socket per room (v1), or one socket joining its rooms (v2).
  const reference = v2 ? 'wsRooms' : 'ws'
  const keys = [reference, 'module', ...(SERVERS.base.entry ? ['base'] : [])]
  const runs = { [reference]: [], module: [], base: [] }
  const rounds = LONG_ROUNDS
  for (let round = 0; round < rounds; round++) {
    for (const key of rotate(keys, round)) {
      const t = Date.now()
      const run = await scaleRun(key, v2)
      runs[key].push(run)
      log(`  ${name} round ${round + 1} ${key}: ${run.connections} conns, ${Math.round(run.connectPerSec)}/s, heap ${(run.heapPerConn / 1024).toFixed(1)} KiB/conn, ${run.phases.map(p => `${p.rate}/s p99 ${p.p99.toFixed(1)} ms loop ${p.loopMax.toFixed(0)} ms`).join(', ')}, storm ${run.storm.cpuMs.toFixed(0)} ms CPU${v2 ? `, 50 rooms ${run.many.populated.ms.toFixed(0)} ms` : ''} (${((Date.now() - t) / 1000).toFixed(1)} s)`)
    }
  }
  const rows = scaleMetrics(v2).map(([metric, pick, ratioGoal, valueGoal]) => {
    const row = { name: metric, module: median(runs.module.map(pick)), ws: median(runs[reference].map(pick)), ratio: median(runs.module.map((run, i) => pick(run) / pick(runs[reference][i]))) }
    if (runs.base.length) Object.assign(row, { base: median(runs.base.map(pick)), ratioToBase: median(runs.module.map((run, i) => pick(run) / pick(runs.base[i]))) })
    if (ratioGoal) goal(`${name}: ${metric}, module / bare ws`, row.ratio, ratioGoal[1], ratioGoal[0])
    if (valueGoal) goal(`${name}: ${metric}, module`, row.module, valueGoal[1], valueGoal[0])
    return row
  })
  const shape = v2
    ? `${S2.blocks * S.perRoom * S.procs} connections, one version 2 socket each in 3 of ${3 * S2.blocks * S.procs} rooms × ${S.perRoom} (bench/scale-layout.mjs)`
    : `${S.rooms * S.perRoom} connections (${S.rooms} rooms × ${S.perRoom})`
  results.scenarios[name] = { title: `${name}: ${shape}, ${S.procs} load processes, ${S.rates.join(' and ')} msg/s for ${S.phaseMs / 1000} s each, 64-byte messages; medians of ${rounds} alternating rounds`, rows, runs }
}

const brief = run => `${run.rate.cpuUsPerDelivery.toFixed(2)} µs/deliv, p50 ${run.rate.p50.toFixed(2)} ms, sat ${Math.round(run.saturation?.deliveriesPerSec ?? 0)}/s`
const log = line => console.log(line)

const scenarios = {
  async scale() {
    await scaleScenario(false)
  },
  async scale2() {
    await scaleScenario(true)
  },
  async room200() {
    const rows = await fanoutScenario('room200', ['ws', 'frame', 'module', 'sio', 'seed', ...(NUXT5 ? ['nuxt5'] : [])], { rooms: 1, perRoom: 200, senders: 10, rate: P.rate1, window: 8 })
    results.scenarios.room200 = { title: `1 room × 200 peers, 64-byte messages, ${P.rate1} msg/s (${P.rate1 * 200} deliveries/s) + saturation`, rows }
    goal('1×200: module CPU/delivery vs bare ws', rows.find(row => row.key === 'module').ratio.cpu, 0.8, '<=')
    // At saturation several messages reach a socket in one turn: coalesced into one write.
    goal('1×200 at saturation: module CPU/delivery vs bare ws', rows.find(row => row.key === 'module').ratio.satCpu, 0.6, '<=')
  },
  async rooms100() {
    const rows = await fanoutScenario('rooms100', ['ws', 'frame', 'module', 'sio'], { rooms: 100, perRoom: 20, senders: 2, rate: P.rate100, window: 2 })
    results.scenarios.rooms100 = { title: `100 rooms × 20 peers (2,000 connections), ${P.rate100} msg/s (${P.rate100 * 20} deliveries/s); seed n/a (one topic only)`, rows }
    const one = results.scenarios.room200?.rows.find(row => row.key === 'module')
    const mod = rows.find(row => row.key === 'module')
    if (one) goal('100×20: module CPU/delivery vs its own 1×200', mod.cpuUsPerDelivery / one.cpuUsPerDelivery, 1.2, '<=')
  },
  async reactions() {
    // The module alone, twice per round in alternating order: messages only, then with every 4th send a reaction toggle.
    const shape = { rooms: 1, perRoom: 200, senders: 10, rate: P.rate1, window: 8 }
    const variants = { messages: { reactionEvery: 0 }, mixed: { reactionEvery: REACTION_EVERY } }
    const runs = { messages: [], mixed: [] }
    for (let round = 0; round < ROUNDS; round++) {
      for (const key of rotate(Object.keys(variants), round)) {
        runs[key].push(await fanoutRun(SERVERS.module, { ...shape, ...variants[key], scenario: 'reactions' }))
        log(`  reactions round ${round + 1} ${key}: ${brief(runs[key].at(-1))}`)
      }
    }
    const rows = [
      fanoutRow('messages', '(a) nuxt-chat, messages only', runs.messages, runs.messages),
      fanoutRow('mixed', `(a) nuxt-chat, 1 in ${REACTION_EVERY} sends a reaction toggle`, runs.mixed, runs.messages),
    ]
    // At saturation the server has no idle time: the extra store work of a toggle shows there.
    const satCpu = run => run.saturation?.cpuUsPerDelivery ?? NaN
    const saturationCpu = { messages: rows[0].satCpuUsPerDelivery, mixed: rows[1].satCpuUsPerDelivery, ratio: median(runs.mixed.map((run, i) => satCpu(run) / satCpu(runs.messages[i]))) }
    results.scenarios.reactions = { title: `reactions mixed in: 1 room × 200 peers, ${P.rate1} msg/s; ratios to messages only`, rows, saturationCpu }
  },
  async idle() {
    const keys = ['ws', 'frame', 'module', 'sio']
    const runs = Object.fromEntries(keys.map(key => [key, []]))
    const rounds = LONG_ROUNDS
    for (let round = 0; round < rounds; round++) {
      for (const key of rotate(keys, round)) {
        const server = SERVERS[key]
        const running = await startServer(server.entry, server.env)
        try {
          const names = Array.from({ length: 100 }, (_, i) => roomName('idle', i))
          const result = await runClient({ mode: 'idle', peers: peerSpecs(server, running.port, names, P.idleConns / 100), pids: [running.pid], probeFile: running.probeFile, concurrency: 100, timeoutMs: 60_000 }, undefined, undefined, [running])
          runs[key].push(result)
          log(`  idle round ${round + 1} ${key}: heap ${(result.heapPerConn / 1024).toFixed(1)} KiB/conn, rss ${(result.rssPerConn / 1024).toFixed(1)} KiB/conn`)
        }
        finally {
          await running.stop()
        }
      }
    }
    const rows = keys.map((key) => {
      const r = runs[key]
      const ratio = pick => median(r.map((run, i) => pick(run) / pick(runs.ws[i])))
      return {
        key, label: SERVERS[key].label,
        heapPerConn: median(r.map(run => run.heapPerConn)), rssPerConn: median(r.map(run => run.rssPerConn)), externalPerConn: median(r.map(run => run.externalPerConn)),
        ratio: { heap: ratio(run => run.heapPerConn), rss: ratio(run => run.rssPerConn) },
        runs: r,
      }
    })
    results.scenarios.idle = { title: `${P.idleConns} idle connections (100 rooms); seed n/a (its one topic makes joins quadratic)`, rows }
    const mod = rows.find(row => row.key === 'module')
    goal('idle: module heap/conn vs bare ws', mod.ratio.heap, 1.2, '<=')
    goal('idle: module RSS/conn vs bare ws', mod.ratio.rss, 1.2, '<=')
  },
  async sse() {
    // The module's WS figure is measured in the same rounds, so the ratio is like for like.
    // `--nuxt5`: the same SSE readers on the Nuxt 5 build (h3 2 sends the handler's ReadableStream), also against the module's WS.
    const runs = { ws: [], sse: [], nuxt5sse: [], nuxt5refsse: [] }
    for (let round = 0; round < ROUNDS; round++) {
      for (const kind of rotate(['ws', 'sse', ...(NUXT5 ? ['nuxt5sse'] : []), ...(NUXT5 && entries.nuxt5ref ? ['nuxt5refsse'] : [])], round)) {
        const sse = kind !== 'ws'
        const running = await startServer({ nuxt5sse: entries.nuxt5, nuxt5refsse: entries.nuxt5ref }[kind] ?? entries.sqlite, MODULE_ENV)
        try {
          const room = roomName('sse')
          const readers = peerSpecs(SERVERS.module, running.port, [room], 200, sse ? 'sse' : 'ws')
          if (sse) for (const spec of readers) spec.url = `http://127.0.0.1:${running.port}/api/sse?room=${room}`
          // SSE readers cannot send: one WebSocket peer sends (and gets its echo).
          const peers = sse ? [...readers, { kind: 'ws', url: `ws://127.0.0.1:${running.port}/_ws?room=${room}` }] : readers
          const result = await runClient({
            mode: 'fanout', peers, rooms: [{ expect: peers.length, senders: sse ? [200] : Array.from({ length: 10 }, (_, i) => i) }],
            pids: [running.pid], size: 64, rate: P.rate1, window: 8, warmMs: P.warmMs, measureMs: P.measureMs, satMs: P.satMs, concurrency: 100, timeoutMs: 90_000,
          }, undefined, undefined, [running])
          runs[kind].push(result)
          log(`  sse round ${round + 1} module ${kind}: ${brief(result)}`)
        }
        finally {
          await running.stop()
        }
      }
    }
    const rows = [fanoutRow('module-ws', '(a) nuxt-chat WS, 200 peers', runs.ws, runs.ws), fanoutRow('module-sse', '(a) nuxt-chat SSE, 200 readers + 1 WS sender', runs.sse, runs.ws)]
    if (NUXT5) rows.push(fanoutRow('nuxt5-sse', '(f) nuxt-chat on Nuxt 5 nightly SSE, 200 readers + 1 WS sender', runs.nuxt5sse, runs.ws))
    if (runs.nuxt5refsse.length) rows.push(fanoutRow('nuxt5-ref-sse', `(f') --nuxt5-ref build SSE, 200 readers + 1 WS sender`, runs.nuxt5refsse, runs.ws))
    results.scenarios.sse = { title: 'SSE fan-out, 200 readers (this module only; ratios to its own WS figure)', rows }
    goal('SSE: CPU/delivery vs module WS', rows[1].ratio.cpu, 1.5, '<=')
  },
  async older() {
    // Retention off: the room keeps all 100,000 messages.
    const running = await startServer(entries.sqlite, { ...MODULE_ENV, NUXT_CHAT_HISTORY_MAX: '0' })
    try {
      const room = roomName('older')
      const size = 100_000
      // The first message through the server makes the schema; the rest go straight into its SQLite file.
      const first = await fetch(`http://127.0.0.1:${running.port}/api/sse?room=${room}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ message: 'm1' }) })
      if (first.status !== 200) throw new Error(`seed POST answered ${first.status}`)
      const { DatabaseSync } = await import('node:sqlite')
      const db = new DatabaseSync(join(running.cwd, '.data/chat.sqlite'))
      const insert = db.prepare('INSERT INTO chat_messages (room, id, sender, name, body, ts, cid, guest) VALUES (?, ?, ?, ?, ?, ?, NULL, 0)')
      db.exec('BEGIN')
      for (let id = 2; id <= size; id++) insert.run(room, id, 'bench', 'bench', `message ${id} `.padEnd(64, '.'), Date.now())
      db.exec('COMMIT')
      db.close()
      const ws = new WebSocket(`ws://127.0.0.1:${running.port}/_ws?room=${room}&name=reader`)
      let answer
      ws.onmessage = (event) => {
        const frame = JSON.parse(event.data)
        if (frame.type === 'history' || frame.type === 'error') answer?.(frame)
      }
      await new Promise((resolve, reject) => {
        ws.onopen = resolve
        ws.onerror = reject
      })
      const ask = before => new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no history answer within 5 s')), 5000)
        answer = (frame) => {
          clearTimeout(timer)
          if (frame.type === 'error') reject(new Error(frame.message))
          else resolve(frame)
        }
        ws.send(JSON.stringify({ type: 'history', before, limit: 50 }))
      })
      const samples = QUICK ? 100 : 400
      const wsMs = []
      const httpMs = []
      // Pages from anywhere in the room: the newest, the oldest and everything between.
      for (let index = 0; index < samples; index++) {
        const before = 51 + Math.floor(((size - 50) * index) / (samples - 1))
        let t = performance.now()
        const page = await ask(before)
        wsMs.push(performance.now() - t)
        if (page.messages.length !== 50 || page.messages[49].id !== before - 1) throw new Error(`page before ${before} is wrong`)
        t = performance.now()
        const response = await fetch(`http://127.0.0.1:${running.port}/api/sse?room=${room}&before=${before}&limit=50`)
        await response.json()
        httpMs.push(performance.now() - t)
      }
      ws.close()
      const p95 = values => [...values].sort((a, b) => a - b)[Math.floor(values.length * 0.95)]
      const result = { messages: size, samples, wsP50: median(wsMs), wsP95: p95(wsMs), httpP50: median(httpMs), httpP95: p95(httpMs) }
      results.scenarios.older = { title: `older history: loadOlder(50) on a room of ${size.toLocaleString('en-US')} messages, pages from all depths (SQLite)`, result }
      log(`  older: WS p50 ${result.wsP50.toFixed(2)} ms, p95 ${result.wsP95.toFixed(2)} ms; HTTP p50 ${result.httpP50.toFixed(2)} ms`)
      goal('older: loadOlder(50) on 100,000 messages, WS p95 (ms)', result.wsP95, 20, '<')
    }
    finally {
      await running.stop()
    }
  },
  async replay() {
    const running = await startServer(entries.sqlite, MODULE_ENV)
    try {
      const result = await runClient({ mode: 'replay', url: `ws://127.0.0.1:${running.port}/_ws`, room: roomName('replay'), count: P.replay, repeats: P.repeats, size: 64, timeoutMs: 60_000 }, undefined, undefined, [running])
      results.scenarios.replay = { title: `replay: ${P.replay} missed messages to one reconnecting client (SQLite)`, result }
      log(`  replay: upgrade→last ${result.upgradeToLast.toFixed(1)} ms, connect→last ${result.connectToLast.toFixed(1)} ms`)
      goal('replay: upgrade → last replayed frame (ms)', result.upgradeToLast, 50, '<')
    }
    finally {
      await running.stop()
    }
  },
  async ingest() {
    const stores = {
      sqlite: { label: 'SQLite', entry: entries.sqlite, env: MODULE_ENV },
      postgresql: { label: 'PostgreSQL', entry: entries.postgresql, env: MODULE_ENV },
      memory: { label: 'memory', entry: entries.sqlite, env: { ...MODULE_ENV, NUXT_CHAT_STORAGE: 'memory' } },
    }
    // `--baseline-entry`: that build's SQLite too, in the same rounds (before/after in one run).
    if (SERVERS.base.entry) stores.baseline = { label: 'SQLite, baseline build', entry: SERVERS.base.entry, env: MODULE_ENV }
    const runs = Object.fromEntries(Object.keys(stores).map(key => [key, []]))
    for (let round = 0; round < ROUNDS; round++) {
      for (const key of rotate(Object.keys(stores), round)) {
        const running = await startServer(stores[key].entry, stores[key].env)
        try {
          const result = await runClient({ mode: 'ingest', url: `ws://127.0.0.1:${running.port}/_ws?room=${roomName('ingest')}`, pids: [running.pid], size: 64, window: 16, warmMs: 300, measureMs: P.ingestMs, timeoutMs: 30_000 }, undefined, undefined, [running])
          runs[key].push(result)
          log(`  ingest round ${round + 1} ${key}: ${Math.round(result.messagesPerSec)} msg/s, ${result.cpuUsPerMessage.toFixed(1)} µs/msg`)
        }
        finally {
          await running.stop()
        }
      }
    }
    const rows = Object.keys(stores).map(key => ({
      key, label: stores[key].label,
      messagesPerSec: median(runs[key].map(run => run.messagesPerSec)),
      cpuUsPerMessage: median(runs[key].map(run => run.cpuUsPerMessage)),
      p50: median(runs[key].map(run => run.p50)),
      p99: median(runs[key].map(run => run.p99)),
      ratioToMemory: median(runs[key].map((run, i) => run.messagesPerSec / runs.memory[i].messagesPerSec)),
      runs: runs[key],
    }))
    results.scenarios.ingest = { title: 'ingest: messages/s stored and broadcast, 2-peer room, 16 in flight (module)', rows }
    goal('ingest: SQLite vs memory (messages/s)', rows[0].ratioToMemory, 0.8, '>=')
  },
  async cross() {
    const n = P.crossPeers
    const runs = { single: [], double: [] }
    const senders = 10
    for (let round = 0; round < ROUNDS; round++) {
      for (const key of rotate(['single', 'double'], round)) {
        const env = key === 'double' ? { ...MODULE_ENV, NUXT_CHAT_REDIS_URL: REDIS_URL } : MODULE_ENV
        const servers = []
        try {
          for (let i = 0; i < (key === 'double' ? 2 : 1); i++) servers.push(await startServer(entries.postgresql, env))
          const room = roomName('cross')
          // Peers alternate between instances, so senders sit on both.
          const peers = Array.from({ length: n }, (_, i) => ({ kind: 'ws', url: `ws://127.0.0.1:${servers[i % servers.length].port}/_ws?room=${room}` }))
          const result = await runClient({
            mode: 'fanout', peers, rooms: [{ expect: n, senders: Array.from({ length: senders }, (_, i) => i) }],
            pids: servers.map(server => server.pid), size: 64, rate: P.rate1, window: 4, warmMs: Math.max(P.warmMs, 1000), measureMs: P.measureMs, satMs: P.satMs, concurrency: 50, timeoutMs: 90_000,
          }, undefined, undefined, servers)
          runs[key].push(result)
          log(`  cross round ${round + 1} ${key}: ${brief(result)}`)
        }
        finally {
          for (const server of servers) await server.stop()
        }
      }
    }
    const rows = [
      fanoutRow('single', `(a) nuxt-chat PostgreSQL, 1 instance × ${n} peers`, runs.single, runs.single),
      fanoutRow('double', `(a) nuxt-chat PostgreSQL + Redis, 2 instances × ${n / 2} peers`, runs.double, runs.single),
    ]
    results.scenarios.cross = { title: `cross-instance: one room, ${n} peers, ${P.rate1} msg/s; CPU summed over instances; ratios to 1 instance`, rows }
  },
  async client() {
    const result = await runClient({ timeoutMs: 60_000 }, 'client-merge.mjs', [String(10_000), String(QUICK ? 3 : 5)])
    results.scenarios.client = { title: 'client: createChatConnection merging 10,000 message frames (stubbed socket, maxMessages 500)', result }
    log(`  client: burst ${result.burstMs.toFixed(1)} ms (cold ${result.coldBurstMs.toFixed(1)}), per-task ${result.perTaskNetMs.toFixed(1)} ms net`)
    goal('client: merge 10,000 frames, one burst, cold (ms)', result.coldBurstMs, 100, '<')
    goal('client: merge 10,000 frames, one task each, net of scheduling (ms)', result.perTaskNetMs, 100, '<')
  },
  async stream() {
    // One AI member's stream watched by 200 members (bench/stream-client.mjs), after the same number of ordinary messages as a baseline.
    const tokens = QUICK ? 500 : 2000
    const running = await startServer(entries.sqlite, { ...MODULE_ENV, NUXT_CHAT_STREAMS_CHUNKS_PER_SECOND: '100000', NUXT_CHAT_STREAMS_MAX_LENGTH: '1000000' })
    try {
      const result = await runClient({ port: running.port, pid: running.pid, members: 200, tokens, delayMs: 2, timeoutMs: 240_000 }, 'stream-client.mjs', undefined, [running])
      results.scenarios.stream = { title: `stream: one stream of ${tokens.toLocaleString('en-US')} tokens (a chunk every ~2 ms) watched by 200 WebSocket members, against ${tokens.toLocaleString('en-US')} ordinary messages of the same size at the same rate (SQLite)`, result }
      log(`  stream: ${fmt(result.stream.cpuUsPerDelivery)} µs/delivery (messages ${fmt(result.messages.cpuUsPerDelivery)}), first token p99 ${fmt(result.firstTokenMs.p99)} ms`)
      goal('stream: server CPU per delivered byte, stream / ordinary messages', result.ratio.cpuPerByte, 1.5, '<=')
      goal('stream: most of the text one member got in deltas (× the text)', result.deltaCharsOverText.max, 1, '<=')
      goal('stream: full texts per member besides the final edit', result.fullTextsPerMember - 1, 0, '<=')
      goal('stream: first token to every member, p99 (ms)', result.firstTokenMs.p99, 20, '<=')
    }
    finally {
      await running.stop()
    }
  },
  async search() {
    const messages = QUICK ? 100_000 : 1_000_000
    // One process fills both stores, queries them and measures ingest (bench/search.mjs); it stops within 8 minutes.
    const result = await runClient({ timeoutMs: 480_000 }, 'search.mjs', [String(messages), '200', String(QUICK ? 10_000 : 30_000)])
    results.scenarios.search = { title: `search: ${messages.toLocaleString('en-US')} messages in ${result.rooms} rooms, 200 one-word queries as a person in ${result.searcherRooms} of them, 20 hits a page (the store's search, in process)`, result }
    for (const [key, store] of Object.entries(result.stores)) {
      log(`  search ${key}: zipf p50 ${fmt(store.zipf.p50)} / p95 ${fmt(store.zipf.p95)} ms, uniform p50 ${fmt(store.uniform.p50)} / p95 ${fmt(store.uniform.p95)} ms, a common word with no hit p50 ${fmt(store.commonWordNoHit.p50)} / max ${fmt(store.commonWordNoHit.max)} ms`)
      goal(`search: ${messages.toLocaleString('en-US')} messages, one-word query p95, ${key} (ms)`, Math.max(store.zipf.p95, store.uniform.p95, store.commonWordNoHit.p95), 50, '<')
    }
    goal('search: SQLite ingest with the index / without', result.ingest.ratio, 0.9, '>=')
  },
}

// ---- table ----

const fmt = (value, digits = 2) => Number.isFinite(value) ? value.toFixed(digits) : 'n/a'
const fmtInt = value => Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : 'n/a'
const pad = (text, width) => String(text).padEnd(width)
const padL = (text, width) => String(text).padStart(width)

function table() {
  const lines = []
  const s = results.scenarios
  const fanoutTable = (scenario, baseName) => {
    if (!scenario.rows) return
    lines.push('', `## ${scenario.title}`)
    lines.push(`${pad('server', 58)}${padL('CPU µs/deliv', 13)}${padL('×' + baseName, 8)}${padL('deliv/s (sat)', 15)}${padL('×', 7)}${padL('sat CPU µs', 11)}${padL('×', 7)}${padL('p50 ms', 9)}${padL('×', 7)}${padL('p99 ms', 9)}${padL('×', 7)}`)
    for (const row of scenario.rows) {
      lines.push(`${pad(row.label, 58)}${padL(fmt(row.cpuUsPerDelivery), 13)}${padL(fmt(row.ratio.cpu), 8)}${padL(fmtInt(row.deliveriesPerSec), 15)}${padL(fmt(row.ratio.deliveriesPerSec), 7)}${padL(fmt(row.satCpuUsPerDelivery), 11)}${padL(fmt(row.ratio.satCpu), 7)}${padL(fmt(row.p50), 9)}${padL(fmt(row.ratio.p50), 7)}${padL(fmt(row.p99), 9)}${padL(fmt(row.ratio.p99), 7)}`)
    }
  }
  if (s.room200) fanoutTable(s.room200, 'ws')
  if (s.rooms100) fanoutTable(s.rooms100, 'ws')
  if (s.reactions) {
    fanoutTable(s.reactions, 'msgs')
    const c = s.reactions.saturationCpu
    if (c) lines.push(`saturation, server CPU µs/delivery: messages only ${fmt(c.messages)}, with reactions ${fmt(c.mixed)} (×${fmt(c.ratio)})`)
  }
  if (s.idle?.rows) {
    lines.push('', `## ${s.idle.title}`)
    lines.push(`${pad('server', 58)}${padL('heap KiB/conn', 14)}${padL('×ws', 7)}${padL('RSS KiB/conn', 14)}${padL('×ws', 7)}`)
    for (const row of s.idle.rows) lines.push(`${pad(row.label, 58)}${padL(fmt(row.heapPerConn / 1024), 14)}${padL(fmt(row.ratio.heap), 7)}${padL(fmt(row.rssPerConn / 1024), 14)}${padL(fmt(row.ratio.rss), 7)}`)
  }
  if (s.sse) fanoutTable(s.sse, 'WS')
  if (s.replay?.result) {
    const r = s.replay.result
    lines.push('', `## ${s.replay.title}`, `upgrade → last replayed frame: ${fmt(r.upgradeToLast, 1)} ms (median of ${r.runs.length}); connect → last: ${fmt(r.connectToLast, 1)} ms`)
  }
  if (s.older?.result) {
    const r = s.older.result
    lines.push('', `## ${s.older.title}`, `WebSocket command: p50 ${fmt(r.wsP50)} ms, p95 ${fmt(r.wsP95)} ms; HTTP GET (SSE clients): p50 ${fmt(r.httpP50)} ms, p95 ${fmt(r.httpP95)} ms (${r.samples} pages each)`)
  }
  if (s.ingest?.rows) {
    lines.push('', `## ${s.ingest.title}`)
    lines.push(`${pad('store', 58)}${padL('msg/s', 10)}${padL('×memory', 9)}${padL('CPU µs/msg', 12)}${padL('p50 ms', 9)}${padL('p99 ms', 9)}`)
    for (const row of s.ingest.rows) lines.push(`${pad(row.label, 58)}${padL(fmtInt(row.messagesPerSec), 10)}${padL(fmt(row.ratioToMemory), 9)}${padL(fmt(row.cpuUsPerMessage, 1), 12)}${padL(fmt(row.p50), 9)}${padL(fmt(row.p99), 9)}`)
  }
  if (s.cross) fanoutTable(s.cross, '1 inst')
  if (s.client?.result) {
    const r = s.client.result
    lines.push('', `## ${s.client.title}`, `one burst: ${fmt(r.burstMs, 1)} ms warm, ${fmt(r.coldBurstMs, 1)} ms cold; one frame per task: ${fmt(r.perTaskNetMs, 1)} ms (${fmt(r.perTaskMs, 1)} ms minus ${fmt(r.schedulingMs, 1)} ms of setImmediate); log alone: ${fmt(r.logOnlyMs, 1)} ms`)
  }
  if (s.search?.result) {
    const r = s.search.result
    lines.push('', `## ${s.search.title}`)
    lines.push(`${pad('store', 14)}${padL('fill s', 8)}${padL('index s', 9)}${padL('zipf p50', 10)}${padL('zipf p95', 10)}${padL('zipf max', 10)}${padL('unif p50', 10)}${padL('unif p95', 10)}${padL('unif max', 10)}${padL('no hit p50', 12)}${padL('no hit max', 12)}`)
    for (const [key, x] of Object.entries(r.stores)) lines.push(`${pad(key, 14)}${padL(fmt(x.fillSeconds, 1), 8)}${padL(fmt(x.indexSeconds, 1), 9)}${padL(fmt(x.zipf.p50), 10)}${padL(fmt(x.zipf.p95), 10)}${padL(fmt(x.zipf.max), 10)}${padL(fmt(x.uniform.p50), 10)}${padL(fmt(x.uniform.p95), 10)}${padL(fmt(x.uniform.max), 10)}${padL(fmt(x.commonWordNoHit?.p50), 12)}${padL(fmt(x.commonWordNoHit?.max), 12)}`)
    lines.push(`SQLite ingest (append, 16 in flight, ${fmtInt(r.ingest.messages)} messages, median of 3): ${fmtInt(r.ingest.withIndex)} msg/s with the index, ${fmtInt(r.ingest.withoutIndex)} without (×${fmt(r.ingest.ratio)})`)
    if (r.pgIngest) lines.push(`PostgreSQL ingest (the same, ${fmtInt(r.pgIngest.messages)} messages): ${fmtInt(r.pgIngest.withIndex)} msg/s with the search column and indexes, ${fmtInt(r.pgIngest.withoutIndex)} without (×${fmt(r.pgIngest.ratio)})`)
  }
  if (s.stream?.result) {
    const r = s.stream.result
    lines.push('', `## ${s.stream.title}`)
    lines.push(`${pad('', 34)}${padL('deliveries', 12)}${padL('bytes', 12)}${padL('CPU µs/deliv', 14)}${padL('CPU ns/byte', 13)}`)
    for (const [name, x] of [['ordinary messages', r.messages], ['stream deltas + its 2 stored frames', r.stream]]) lines.push(`${pad(name, 34)}${padL(fmtInt(x.deliveries), 12)}${padL(fmtInt(x.bytes), 12)}${padL(fmt(x.cpuUsPerDelivery), 14)}${padL(fmt(x.cpuNsPerByte), 13)}`)
    lines.push(`ratio stream / messages: ${fmt(r.ratio.cpuPerDelivery)} per delivery, ${fmt(r.ratio.cpuPerByte)} per byte; ${fmt(r.stream.deltas, 0)} deltas for ${fmtInt(r.tokens)} tokens (${fmtInt(r.finalLength)} characters)`)
    lines.push(`each member: delta characters ${fmt(r.deltaCharsOverText.min)}-${fmt(r.deltaCharsOverText.max)} × the text, full texts ${fmt(r.fullTextsPerMember)} (the final edit)`)
    lines.push(`source yield → member: first token p50 ${fmt(r.firstTokenMs.p50)} / p99 ${fmt(r.firstTokenMs.p99)} / max ${fmt(r.firstTokenMs.max)} ms; every token p50 ${fmt(r.tokenMs.p50)} / p99 ${fmt(r.tokenMs.p99)} ms`)
  }
  for (const scale of [s.scale, s.scale2]) {
    if (!scale?.rows) continue
    lines.push('', `## ${scale.title}`)
    const base = 'base' in scale.rows[0]
    const width = Math.max(52, ...scale.rows.map(row => row.name.length + 2))
    lines.push(`${pad('', width)}${padL('module', 12)}${padL('bare ws', 12)}${padL('ratio', 8)}${base ? `${padL('baseline', 12)}${padL('×base', 8)}` : ''}`)
    for (const row of scale.rows) lines.push(`${pad(row.name, width)}${padL(fmt(row.module, row.module >= 100 ? 0 : 2), 12)}${padL(fmt(row.ws, row.ws >= 100 ? 0 : 2), 12)}${padL(fmt(row.ratio), 8)}${base ? `${padL(fmt(row.base, row.base >= 100 ? 0 : 2), 12)}${padL(fmt(row.ratioToBase), 8)}` : ''}`)
  }
  if (results.goals.length) {
    lines.push('', '## Goals')
    for (const g of results.goals) lines.push(`${g.ok === null ? '  ?' : g.ok ? 'ok ' : 'MISS'} ${pad(g.name, 66)} ${fmt(g.value)} (goal ${g.op} ${g.limit})`)
  }
  return lines.join('\n')
}

// ---- main ----

const started = Date.now()
const srcDirs = [join(ROOT, 'src'), fixture]
if (!option('sqlite-entry') && ONLY.some(name => !['client', 'search'].includes(name))) ensureBuilt(entries.sqlite, 'test/fixtures/basic', srcDirs, { CHAT_FIXTURE_OUT: '.output-bench' })
if (ONLY.some(name => ['ingest', 'cross'].includes(name))) ensureBuilt(entries.postgresql, 'test/fixtures/basic', srcDirs, { CHAT_FIXTURE_OUT: '.output-bench', CHAT_FIXTURE_DB: 'postgresql' })
if (ONLY.includes('room200')) ensureBuilt(entries.seed, 'bench/seed-app', [join(BENCH, 'seed-app')], {})

let failed = false
for (const name of ONLY) {
  const t = Date.now()
  log(`${name} …`)
  try {
    await scenarios[name]()
  }
  catch (error) {
    failed = true
    console.error(`bench: ${name} failed: ${error?.stack ?? error}`)
    results.scenarios[name] = { error: String(error?.message ?? error) }
  }
  log(`${name} done in ${((Date.now() - t) / 1000).toFixed(1)} s`)
}
results.seconds = Math.round((Date.now() - started) / 1000)
console.log(table())
console.log(`\n${results.seconds} s in all${QUICK ? ' (--quick)' : ''}`)
mkdirSync(join(BENCH, 'results'), { recursive: true })
writeFileSync(join(BENCH, 'results/latest.json'), JSON.stringify(results, null, 2))
console.log('wrote bench/results/latest.json')
process.exit(failed ? 1 : 0)
