import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { untilOnOneBus } from './clients'

/**
 * Another platform's builds to test instead of this repo's (scripts/platform.sh): the fixture
 * (`.output` and `.output-pg` in it), the playground (`playground/.output`) and the base-path app
 * (`base-url/.output`). `npm run test:nuxt5` points it at test/nuxt5, the Nuxt 5 nightly.
 */
export const serverRoot = process.env.CHAT_SERVER_ROOT
/** The Nuxt major version of the builds under test: 4 (Nitro 2, crossws 0.3) or 5 (Nitro 3, crossws 0.4). */
export const nuxtMajor = Number((JSON.parse(readFileSync(join(serverRoot ?? fileURLToPath(new URL('../..', import.meta.url)), 'node_modules/nuxt/package.json'), 'utf8')).version as string).split('.')[0])
/** Built outputs of the test fixture (made once per run by test/globalSetup.ts). */
const fixtureOut = process.env.CHAT_FIXTURE_OUT || '.output'
const playgroundOut = process.env.CHAT_PLAYGROUND_OUT || '.output'
const fixtureDir = serverRoot ?? fileURLToPath(new URL('../fixtures/basic', import.meta.url))
export const outputs = {
  /** Default store: SQLite through node:sqlite. */
  sqlite: join(fixtureDir, `${fixtureOut}/server/index.mjs`),
  /** PostgreSQL store (postgresql://postgres@127.0.0.1:5432/test). */
  postgresql: join(fixtureDir, `${fixtureOut}-pg/server/index.mjs`),
  /** The playground app. */
  playground: serverRoot ? join(serverRoot, `playground/${playgroundOut}/server/index.mjs`) : fileURLToPath(new URL(`../../playground/${playgroundOut}/server/index.mjs`, import.meta.url)),
  /** The app served under `app.baseURL: '/chat-app/'` (test/fixtures/base-url, built by its test). */
  baseUrl: serverRoot ? join(serverRoot, 'base-url/.output/server/index.mjs') : fileURLToPath(new URL('../fixtures/base-url/.output/server/index.mjs', import.meta.url)),
}

export const POSTGRES_URL = 'postgresql://postgres@127.0.0.1:5432/test'
export const REDIS_URL = 'redis://127.0.0.1:6379'
/**
 * The bus channel of this test file's servers (each file imports this module afresh): servers of
 * one file on one database are one deployment, but other files' servers on the shared `test`
 * database would share its derived channel, and a presence question waits for every subscriber.
 */
const FILE_CHANNEL = `nuxt-chat-test:${randomUUID()}`

/** Run one statement on the PostgreSQL server as its admin (`psql`, trust). */
function psql(sql: string, database = 'test') {
  execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', database, '-tAc', sql], { stdio: 'pipe' })
}

/**
 * A PostgreSQL database of its own, for a server with retention: retention walks every room of its
 * database, so on the shared `test` database it deletes other tests' history while they run.
 * `env` points a server at it; `drop` removes it (and ends its sessions).
 */
export function ownPostgresDatabase(prefix = 'nuxt_chat_own') {
  const name = `${prefix}_${randomUUID().slice(0, 8)}`
  psql(`CREATE DATABASE ${name}`)
  return {
    name,
    env: { NUXT_CHAT_DATABASE_OPTIONS_URL: POSTGRES_URL.replace(/\/test$/, `/${name}`) },
    drop: () => psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  }
}

/**
 * Why a server must not start as asked, or `undefined`: retention (`history.max` or `maxAge` set,
 * its interval not 0) on the shared PostgreSQL database prunes the rooms of every test running meanwhile.
 */
export function sharedDatabaseRetention(options: Pick<ServerOptions, 'output' | 'env'>): string | undefined {
  const env = options.env ?? {}
  const retention = (env.NUXT_CHAT_HISTORY_MAX !== undefined || env.NUXT_CHAT_HISTORY_MAX_AGE !== undefined) && env.NUXT_CHAT_HISTORY_INTERVAL !== '0'
  const url = env.NUXT_CHAT_DATABASE_OPTIONS_URL
  const shared = url === undefined ? options.output === 'postgresql' : url === POSTGRES_URL
  if (retention && shared) return 'retention on the shared PostgreSQL database deletes other tests\' rooms: give this server a database of its own (ownPostgresDatabase)'
}

/** A free TCP port on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

export interface ServerOptions {
  output?: keyof typeof outputs
  /** Another built server (`…/.output/server/index.mjs`) instead of `output`. */
  entry?: string
  /** Where a relative SQLite path resolves (NUXT_CHAT_DATABASE_OPTIONS_CWD): `cwd` by default; `false` keeps the build's own (the app's root). */
  databaseCwd?: string | false
  port?: number
  /** Working directory, and where `.data/chat.sqlite` lives. A fresh temp dir by default. */
  cwd?: string
  /** Extra environment, e.g. `NUXT_CHAT_RATE_LIMIT: 'false'`. */
  env?: Record<string, string>
}

/** A built app running in its own Node process, which a test can kill and start again. */
export interface TestServer {
  port: number
  cwd: string
  url: (path?: string) => string
  wsUrl: (path?: string) => string
  /** Everything the process printed. */
  logs: () => string
  /** Stop with SIGTERM (graceful) or SIGKILL (crash). */
  stop: (signal?: NodeJS.Signals) => Promise<void>
  /** Start the same server again on the same port and directory. */
  start: () => Promise<void>
  process: () => ChildProcess | undefined
}

/** Start a built fixture and wait until it answers HTTP. */
/** Every server process this test worker started and that still runs: none outlives the worker (an orphan's closed stdout pipe makes Nitro's error logging spin). */
const liveServers = new Set<ChildProcess>()
process.once('exit', () => {
  for (const server of liveServers) server.kill('SIGKILL')
})

export async function startServer(options: ServerOptions = {}): Promise<TestServer> {
  const refused = sharedDatabaseRetention(options)
  if (refused) throw new Error(refused)
  const port = options.port ?? await freePort()
  const cwd = options.cwd ?? mkdtempSync(join(tmpdir(), 'nuxt-chat-'))
  const entry = options.entry ?? outputs[options.output ?? 'sqlite']
  const databaseCwd = options.databaseCwd ?? cwd
  let child: ChildProcess | undefined
  let output = ''

  const start = async () => {
    child = spawn(process.execPath, [entry], {
      cwd,
      env: {
        ...process.env, PORT: String(port), HOST: '127.0.0.1', NODE_ENV: 'production', NITRO_SHUTDOWN_TIMEOUT: '0',
        // Each test server its own SQLite file (a relative path resolves against this, by default the fixture's root).
        ...(databaseCwd !== false && { NUXT_CHAT_DATABASE_OPTIONS_CWD: databaseCwd }),
        ...(options.env?.NUXT_CHAT_REDIS_URL && { NUXT_CHAT_REDIS_CHANNEL: FILE_CHANNEL }),
        ...options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const started = child
    liveServers.add(started)
    started.once('exit', () => liveServers.delete(started))
    child.stdout!.on('data', (data) => {
      output += data
    })
    child.stderr!.on('data', (data) => {
      output += data
    })
    const deadline = Date.now() + 20_000
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}:\n${output}`)
      try {
        await fetch(`http://127.0.0.1:${port}/_ws`)
        return
      }
      catch {
        await new Promise(resolve => setTimeout(resolve, 50))
      }
    }
    throw new Error(`server did not start:\n${output}`)
  }

  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    const running = child
    if (!running || running.exitCode !== null || running.signalCode !== null) return
    const exited = new Promise(resolve => running.once('exit', resolve))
    running.kill(signal)
    const timer = setTimeout(() => running.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }

  await start()
  return {
    port,
    cwd,
    url: (path = '/') => `http://127.0.0.1:${port}${path}`,
    wsUrl: (path = '/_ws') => `ws://127.0.0.1:${port}${path}`,
    logs: () => output,
    stop,
    start,
    process: () => child,
  }
}

/** Servers a suite runs on, and how to stop them (and drop their database). */
export interface ServerPair {
  servers: [TestServer, TestServer]
  /** The environment both servers run with (a third instance of the deployment starts with it). */
  env: Record<string, string>
  stop: () => Promise<unknown>
}

/**
 * The two deployments a cross-instance suite runs on, by name: one SQLite instance (both roles),
 * and two PostgreSQL instances on a database of their own (`prefix`) and a Redis channel of their own.
 */
export function serverPairs(prefix: string, env: Record<string, string> = {}): [string, () => Promise<ServerPair>][] {
  return [
    ['SQLite (one instance)', async () => {
      const server = await startServer({ env })
      return { servers: [server, server], env, stop: () => server.stop() }
    }],
    ['two PostgreSQL instances on Redis', async () => {
      const database = ownPostgresDatabase(prefix)
      const shared = { ...database.env, ...env, NUXT_CHAT_REDIS_URL: REDIS_URL, NUXT_CHAT_REDIS_CHANNEL: `${prefix}-${randomUUID().slice(0, 8)}` }
      const [a, b] = await Promise.all([startServer({ output: 'postgresql', env: shared }), startServer({ output: 'postgresql', env: shared })])
      await untilOnOneBus(a, b)
      return {
        servers: [a, b],
        env: shared,
        stop: async () => {
          await Promise.all([a.stop(), b.stop()])
          database.drop()
        },
      }
    }],
  ]
}

/** One call of `useChatServer()` through the fixture's API route (test/fixtures/basic/server/routes/_test/chat-server.post.ts): its status and answer. */
export async function callServer<T = Record<string, unknown>>(server: TestServer, body: Record<string, unknown>): Promise<{ status: number, body: T }> {
  const response = await fetch(server.url('/_test/chat-server'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: response.status, body: await response.json() as T }
}
