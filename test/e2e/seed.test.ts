/**
 * The seed's chat page must keep working unchanged: it opens `ws://host/_ws`, sends raw text and
 * shows only the `user` and `message` fields of each JSON frame. This file builds and starts the
 * fixture the @nuxt/test-utils way and talks to it with a raw `ws` client that behaves like that page.
 */
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as testUtils from '@nuxt/test-utils/e2e'
import { afterAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { until, upgradeStatus } from '../utils/clients'
import { serverRoot, startServer } from '../utils/server'

/** The chat endpoint of the server @nuxt/test-utils started, as a ws:// URL. */
const wsUrl = (query = '') => url(`/_ws${query}`).replace(/^http/, 'ws')

const dataDir = mkdtempSync(join(tmpdir(), 'nuxt-chat-seed-'))

// A fresh SQLite file: the server's cwd is the repository, shared with other runs.
const env = { NUXT_CHAT_DATABASE_OPTIONS_PATH: join(dataDir, 'chat.sqlite') }
// CHAT_SERVER_ROOT (`npm run test:nuxt5`): that app's build, already made, started directly (@nuxt/test-utils would load it with this repo's Nuxt).
const server = serverRoot ? await startServer({ env }) : undefined
if (!server) await testUtils.setup({ rootDir: fileURLToPath(new URL('../fixtures/basic', import.meta.url)), server: true, build: true, env })
const url = (path: string) => server ? server.url(path) : testUtils.url(path)
const fetch = (path: string, init?: RequestInit) => server ? globalThis.fetch(server.url(path), init) : testUtils.fetch(path, init)
const $fetch = async (path: string) => server ? (await fetch(path)).text() : testUtils.$fetch<string>(path)

afterAll(async () => {
  await server?.stop()
  rmSync(dataDir, { recursive: true, force: true })
})

/** What the seed page sees of a frame. */
interface SeedLine {
  user: unknown
  message: unknown
  binary: boolean
}

/** A client like the seed page: raw text out, `user` + `message` of every frame in. */
class SeedPage {
  lines: SeedLine[] = []
  closed = false
  constructor(readonly ws: WebSocket) {
    ws.on('message', (data, binary) => {
      const { user, message } = JSON.parse(data.toString()) as Record<string, unknown>
      this.lines.push({ user, message, binary })
    })
    ws.on('close', () => {
      this.closed = true
    })
  }

  static async open(query = ''): Promise<SeedPage> {
    const ws = new WebSocket(wsUrl(query))
    const page = new SeedPage(ws)
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    return page
  }

  /** The name the server gave this page, from its welcome line. */
  get name(): string {
    const welcome = this.lines.find(line => line.user === 'server' && /^Welcome .+!$/.test(String(line.message)))
    return welcome ? String(welcome.message).slice('Welcome '.length, -1) : ''
  }

  has(user: string, message: string) {
    return this.lines.some(line => line.user === user && line.message === message)
  }

  waitFor(user: string, message: string) {
    return until(() => this.has(user, message), `${user}: ${message}`)
  }

  close() {
    this.ws.close()
    return until(() => this.closed, 'close')
  }
}

describe('the seed chat page, unchanged', () => {
  it('serves the app itself', async () => {
    expect(await $fetch('/')).toContain('basic')
  })

  it('welcomes, announces joins, echoes, broadcasts, answers ping, announces leaves', async () => {
    const room = `seed-${randomUUID().slice(0, 8)}`
    const alice = await SeedPage.open(`?room=${room}`)
    await until(() => alice.name, 'welcome of the first page')
    const first = alice.name
    expect(alice.lines[0]).toEqual({ user: 'server', message: `Welcome ${first}!`, binary: false })

    const bob = await SeedPage.open(`?room=${room}`)
    await until(() => bob.name, 'welcome of the second page')
    const second = bob.name
    expect(second).not.toBe(first)
    await alice.waitFor('server', `${second} joined!`)
    // Nobody is told about themselves joining.
    expect(bob.has('server', `${second} joined!`)).toBe(false)

    bob.ws.send('hello from the seed page')
    await bob.waitFor(second, 'hello from the seed page') // the echo
    await alice.waitFor(second, 'hello from the seed page') // the broadcast

    bob.ws.send('ping')
    await bob.waitFor('server', 'pong')

    // "shipping" contains "ping" but is an ordinary message now.
    bob.ws.send('shipping')
    await alice.waitFor(second, 'shipping')
    await bob.waitFor(second, 'shipping')
    expect(bob.lines.filter(line => line.message === 'pong')).toHaveLength(1)
    expect(alice.lines.some(line => line.message === 'pong')).toBe(false)

    await bob.close()
    await alice.waitFor('server', `${second} left!`)

    // Every frame either page got was a text frame with a user and a message to show.
    for (const line of [...alice.lines, ...bob.lines]) {
      expect(line.binary).toBe(false)
      expect(typeof line.user).toBe('string')
      expect(typeof line.message).toBe('string')
    }
    await alice.close()
  })

  it('works in the default room without any query, as the seed page connects', async () => {
    const page = await SeedPage.open()
    await until(() => page.name, 'welcome')
    const text = `default room ${randomUUID()}`
    page.ws.send(text)
    await page.waitFor(page.name, text)
    expect(page.lines.every(line => !line.binary)).toBe(true)
    await page.close()
  })

  it('answers a plain GET of the socket path with 426', async () => {
    const response = await fetch('/_ws')
    expect(response.status).toBe(426)
  })

  it('refuses a bad room with 400 on the upgrade, the SSE stream and POST', async () => {
    for (const room of ['has%20space', 'x'.repeat(65), '%C3%A9t%C3%A9', '']) {
      expect(await upgradeStatus(wsUrl(`?room=${room}`)), `upgrade room=${room}`).toBe(400)
      const stream = await fetch(`/api/sse?room=${room}`)
      expect(stream.status, `SSE room=${room}`).toBe(400)
      expect(stream.headers.get('content-type')).not.toContain('text/event-stream')
      expect(await stream.json()).toMatchObject({ type: 'error', user: 'server' })
      const post = await fetch(`/api/sse?room=${room}`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hi' })
      expect(post.status, `POST room=${room}`).toBe(400)
      expect(await post.json()).toMatchObject({ type: 'error', user: 'server' })
    }
    // And a good room is still fine.
    expect(await upgradeStatus(wsUrl(`?room=ok-${randomUUID().slice(0, 8)}`))).toBe(101)
  })
})
