/**
 * PostgreSQL configured at run time, as README.md's "Several instances" says: the app is built
 * with `connector: 'postgresql'` and no URL (test/fixtures/readme-postgres), the URL comes from
 * the environment when the server starts. The build holds no URL and no SQLite `path`; messages
 * land in PostgreSQL; a server with no usable database settings stops at once with one line.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createDatabase } from 'db0'
import postgresql from 'db0/connectors/postgresql'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChatSocket } from '../utils/clients'
import { outputs, POSTGRES_URL, startServer, type TestServer } from '../utils/server'

const fixture = fileURLToPath(new URL('../fixtures/readme-postgres', import.meta.url))
const output = `${fixture}/.output`
const nuxi = fileURLToPath(new URL('../../node_modules/@nuxt/cli/bin/nuxi.mjs', import.meta.url))
const room = (label: string) => `rtdb-${label}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? filesUnder(path) : [path]
  })
}

/** The runtime config Nitro built into the server bundle (`_inlineRuntimeConfig`). */
function builtRuntimeConfig(): { chat: { database: { connector: string, url?: string, options?: Record<string, unknown> } } } {
  const bundle = filesUnder(`${output}/server`).filter(path => path.endsWith('.mjs')).map(path => readFileSync(path, 'utf8')).find(text => text.includes('const _inlineRuntimeConfig = '))!
  const start = bundle.indexOf('const _inlineRuntimeConfig = ') + 'const _inlineRuntimeConfig = '.length
  return JSON.parse(bundle.slice(start, bundle.indexOf('\n};', start) + 2))
}

/** Send one message and wait for its acknowledgement (the stored frame back, with an id). */
async function sendOne(server: TestServer, name: string, text: string) {
  const socket = await ChatSocket.open(server.wsUrl(''), { room: name, name: 'Ada' })
  socket.send({ type: 'message', message: text, cid: 'c1' })
  const stored = await socket.waitFor(frame => frame.type === 'message' && frame.message === text, 'the stored message')
  await socket.close()
  return stored
}

/** The message bodies PostgreSQL holds for a room, read straight from the database. */
async function storedInPostgres(name: string): Promise<string[]> {
  const db = createDatabase(postgresql({ url: POSTGRES_URL }))
  try {
    const rows = await db.prepare('SELECT body FROM chat_messages WHERE room = ? ORDER BY id').all(name) as { body: string }[]
    return rows.map(row => row.body)
  }
  finally {
    await db.dispose()
  }
}

/** Start a built server that is expected to stop: its exit code and what it printed. */
async function refusedStart(options: Parameters<typeof startServer>[0]): Promise<string> {
  const started = await startServer(options).then(async (server) => {
    await server.stop()
    return `it started:\n${server.logs()}`
  }, (error: Error) => error.message)
  return started
}

describe('PostgreSQL configured at run time', () => {
  const running: TestServer[] = []

  beforeAll(() => {
    if (!process.env.CHAT_SKIP_BUILD || !existsSync(`${output}/server/index.mjs`)) {
      // Built with no database URL anywhere in its environment, as the README tells.
      const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/DATABASE/.test(key)))
      execFileSync(process.execPath, [nuxi, 'build', fixture], { stdio: 'pipe', env })
    }
  }, 300_000)

  afterAll(async () => {
    await Promise.all(running.map(server => server.stop()))
  })

  it('the build holds no database URL, and no SQLite `path` in PostgreSQL\'s options', () => {
    const database = builtRuntimeConfig().chat.database
    expect(database.connector).toBe('postgresql')
    expect(database.options ?? {}).not.toHaveProperty('path')
    expect(database.options ?? {}).not.toHaveProperty('cwd')
    // The URL the test servers are given at run time (its host and user) is nowhere in the build.
    const leaks = filesUnder(output).filter(path => /127\.0\.0\.1:5432|postgres@/.test(readFileSync(path, 'latin1')))
    expect(leaks).toEqual([])
  })

  it.each(['NUXT_CHAT_DATABASE_URL', 'NUXT_CHAT_DATABASE_OPTIONS_URL'])('with %s set only when the server starts, messages are stored in PostgreSQL', async (variable) => {
    const server = await startServer({ entry: `${output}/server/index.mjs`, env: { [variable]: POSTGRES_URL } })
    running.push(server)
    const name = room(variable.length > 22 ? 'options' : 'url')
    const stored = await sendOne(server, name, `stored through ${variable}`)
    expect(stored.id).toBe(1)
    expect(await storedInPostgres(name)).toEqual([`stored through ${variable}`])
    expect(server.logs()).not.toMatch(/startup packet|could not|failed/i)
  }, 60_000)

  it('with no URL at run time, the server stops before it listens, with one line saying what to set', async () => {
    const answer = await refusedStart({ entry: `${output}/server/index.mjs` })
    expect(answer).toMatch(/^server exited with 1/)
    const lines = answer.split('\n').filter(line => line.includes('[nuxt-chat]'))
    expect(lines).toHaveLength(1)
    expect(lines[0]).toContain('NUXT_CHAT_DATABASE_URL')
    expect(answer).not.toMatch(/startup packet/)
  }, 30_000)

  it('a database URL given to a SQLite build stops it with one line, rather than being ignored', async () => {
    const answer = await refusedStart({ entry: outputs.sqlite, env: { NUXT_CHAT_DATABASE_URL: POSTGRES_URL } })
    expect(answer).toMatch(/^server exited with 1/)
    const lines = answer.split('\n').filter(line => line.includes('[nuxt-chat]'))
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/node-sqlite.*NUXT_CHAT_DATABASE_OPTIONS_PATH/)
  }, 30_000)
})

describe('odd database settings at run time (the SQLite build)', () => {
  it('a number-like NUXT_CHAT_DATABASE_OPTIONS_PATH is a file name, and an empty one the default file: messages are stored there', async () => {
    for (const [path, file] of [['2024', '2024'], ['', '.data/chat.sqlite']] as const) {
      const server = await startServer({ entry: outputs.sqlite, env: { NUXT_CHAT_DATABASE_OPTIONS_PATH: path } })
      try {
        const stored = await sendOne(server, room('path'), `stored at "${path}"`)
        expect(stored.id).toBe(1)
        expect(existsSync(join(server.cwd, file))).toBe(true)
        expect(server.logs()).not.toMatch(/could not|must be of type/i)
      }
      finally {
        await server.stop()
      }
    }
  }, 60_000)

  it('a JSON-looking NUXT_CHAT_DATABASE_OPTIONS_PATH stops the server with one line, rather than failing every message', async () => {
    const answer = await refusedStart({ entry: outputs.sqlite, env: { NUXT_CHAT_DATABASE_OPTIONS_PATH: '{"file":"chat.sqlite"}' } })
    expect(answer).toMatch(/^server exited with 1/)
    const lines = answer.split('\n').filter(line => line.includes('[nuxt-chat]'))
    expect(lines).toHaveLength(1)
    expect(lines[0]).toContain('NUXT_CHAT_DATABASE_OPTIONS_PATH')
  }, 30_000)
})
