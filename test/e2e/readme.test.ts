/**
 * The README's snippets, as test/fixtures/readme-snippets holds them (with nuxt-auth-utils
 * installed): they type-check, build, do what the README says at a real WebSocket upgrade, and
 * each page renders in Chromium, with messages in its room, without an error.
 */
import { execFile, execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { launchChromium } from '../utils/browser'
import { readmeFiles } from '../utils/readme'
import { ChatSocket, upgradeStatus } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

const fixture = fileURLToPath(new URL('../fixtures/readme-snippets', import.meta.url))
const nuxi = fileURLToPath(new URL('../../node_modules/@nuxt/cli/bin/nuxi.mjs', import.meta.url))
const vueTsc = fileURLToPath(new URL('../../node_modules/vue-tsc/bin/vue-tsc.js', import.meta.url))
const run = promisify(execFile)

describe('the README\'s snippets', () => {
  let server: TestServer
  let browser: Browser
  const room = (label: string) => `${label}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`

  beforeAll(async () => {
    // Built here, not in globalSetup: only this file needs it (CHAT_SKIP_BUILD=1 reuses it).
    if (!process.env.CHAT_SKIP_BUILD || !existsSync(`${fixture}/.output`)) {
      // The type checks read .nuxt, which `nuxi build` leaves as an earlier run made it: the types of today's module come from `prepare`.
      execFileSync(process.execPath, [nuxi, 'prepare', fixture], { stdio: 'pipe' })
      execFileSync(process.execPath, [nuxi, 'build', fixture], { stdio: 'pipe' })
    }
    // No rate limit: the history page needs more messages in its room than one address may send at once.
    server = await startServer({ entry: `${fixture}/.output/server/index.mjs`, env: { NUXT_SESSION_PASSWORD: 'a-test-password-of-at-least-32-characters', NUXT_CHAT_RATE_LIMIT: 'false' } })
    browser = await launchChromium()
  }, 300_000)

  afterAll(async () => {
    await browser?.close()
    await server?.stop()
  })

  it.each(['app', 'server'])('type-check (%s)', async (side) => {
    const result = await run(process.execPath, [vueTsc, '--noEmit', '-p', `${fixture}/.nuxt/tsconfig.${side}.json`]).catch(error => error)
    expect(`${result.stdout}${result.stderr}`).toBe('')
  }, 180_000)

  /** Sign in through nuxt-auth-utils (the fixture's login route) and return the session cookie. */
  async function signIn(user: { id: string, name: string, roles?: string[] }) {
    const response = await fetch(server.url('/api/login'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(user) })
    expect(response.status).toBe(200)
    return response.headers.getSetCookie().map(cookie => cookie.split(';')[0]).join('; ')
  }

  it('nuxt-auth-utils: the session names the peer and guards private rooms', async () => {
    const ada = await signIn({ id: 'u-ada', name: 'Ada', roles: ['staff'] })
    const bob = await signIn({ id: 'u-bob', name: 'Bob' })
    const privateRoom = room('private')
    const socket = await ChatSocket.open(server.wsUrl(''), { room: privateRoom, name: 'Someone else' }, { headers: { cookie: ada } })
    const welcome = await socket.waitFor(frame => frame.type === 'system' && frame.event === 'welcome', 'the welcome')
    expect(welcome.peer).toEqual({ id: 'u-ada', name: 'Ada' })
    await socket.close()

    const url = server.wsUrl(`/_ws?room=${privateRoom}`)
    expect(await upgradeStatus(url)).toBe(401)
    expect(await upgradeStatus(url, { headers: { cookie: bob } })).toBe(403)
    expect(await upgradeStatus(url, { headers: { cookie: ada.replace(/=(.)/, '=x$1') } })).toBe(401)
    // Other rooms stay open to guests.
    expect(await upgradeStatus(server.wsUrl(`/_ws?room=${room('lobby')}`))).toBe(101)
  })

  it('the generic hooks: identify from the app\'s own session, rewrite and refuse messages', async () => {
    const staffRoom = room('staff')
    expect(await upgradeStatus(server.wsUrl(`/_ws?room=${staffRoom}`))).toBe(401)
    const grace = await ChatSocket.open(server.wsUrl(''), { room: staffRoom }, { headers: { cookie: 'demo=grace' } })
    const welcome = await grace.waitFor(frame => frame.type === 'system' && frame.event === 'welcome', 'the welcome')
    expect(welcome.peer).toEqual({ id: 'u-grace', name: 'Grace' })
    grace.send('darn it')
    await grace.waitFor(frame => frame.type === 'message' && frame.message === 'd**n it', 'the rewritten message')
    grace.send('a forbidden word')
    const refused = await grace.waitFor(frame => frame.type === 'error', 'the refusal')
    expect(refused).toMatchObject({ code: 'rejected', message: 'contains a forbidden word' })
    await grace.close()
  })

  /** Send `count` messages into `name` from one guest and wait until the last is stored. */
  async function fill(name: string, count: number) {
    const socket = await ChatSocket.open(server.wsUrl(''), { room: name, name: 'Filler' })
    for (let i = 1; i <= count; i++) socket.send({ type: 'message', message: `m${i}`, cid: `fill-${i}` })
    await socket.waitFor(frame => frame.type === 'message' && frame.message === `m${count}`, `message ${count} stored`, 20_000)
    await socket.close()
  }

  describe('every page it shows, in Chromium', () => {
    const pages = [...readmeFiles().keys()].filter(file => /^app\/pages\/.*\.vue$/.test(file))

    beforeAll(async () => {
      // The rooms the pages join: messages make them render what they map (avatars, reactions), and the history page scroll.
      await fill('team', 3)
      await fill('lobby', 80)
    }, 60_000)

    it('are all here (a page the README adds is rendered too)', () => {
      expect(pages).toEqual(expect.arrayContaining(['app/pages/index.vue', 'app/pages/team.vue', 'app/pages/older.vue']))
    })

    /** A fresh browser page (signed in as Ada with `cookies`), with the errors its code raises. */
    async function openPage(cookies?: string) {
      const context = await browser.newContext()
      if (cookies) await context.addCookies(cookies.split('; ').map(pair => ({ name: pair.slice(0, pair.indexOf('=')), value: pair.slice(pair.indexOf('=') + 1), url: server.url('/') })))
      const page = await context.newPage()
      const errors: string[] = []
      // Uncaught errors, and those Nuxt's error handler logs (`ReferenceError: …`, the page left blank); not refused requests.
      page.on('pageerror', error => errors.push(error.message))
      page.on('console', message => message.type() === 'error' && /\w+Error\b/.test(message.text()) && errors.push(message.text()))
      return { context, page, errors }
    }

    it.each(pages)('%s renders and runs without an error', async (file) => {
      // Signed in, so the pages that need a user (the rooms list) render for one.
      const { context, page, errors } = await openPage(await signIn({ id: 'u-ada', name: 'Ada' }))
      const response = await page.goto(server.url(`/${file.slice('app/pages/'.length, -'.vue'.length).replace(/^index$/, '')}`))
      expect(response?.status()).toBe(200)
      // Hydrated and connected: the chat's socket is open and its first frames rendered.
      await page.waitForLoadState('networkidle')
      await page.waitForTimeout(300)
      await context.close()
      expect(errors).toEqual([])
    }, 30_000)

    it('the Nuxt UI page maps every message, avatar included', async () => {
      const { context, page, errors } = await openPage()
      await page.goto(server.url('/team'))
      // Without @nuxt/ui installed UChatMessages stays a plain element, its `messages` an attribute: three mapped items.
      await expect.poll(() => page.locator('uchatmessages').getAttribute('messages', { timeout: 500 }).catch(() => errors.join('\n')), { timeout: 10_000 }).toBe(Array.from({ length: 3 }, () => '[object Object]').join(','))
      await context.close()
      expect(errors).toEqual([])
    }, 30_000)

    it('the older-history page loads the previous page when its list is scrolled to the top', async () => {
      const { context, page, errors } = await openPage()
      await page.goto(server.url('/older'))
      const items = page.locator('li')
      await expect.poll(() => items.count(), { timeout: 10_000 }).toBe(50)
      // Read to the bottom, then scroll back up as a reader does: the list itself scrolls.
      await page.locator('ul').evaluate((list) => {
        list.scrollTop = list.scrollHeight
      })
      await page.waitForTimeout(100)
      await page.locator('ul').hover()
      await page.mouse.wheel(0, -100_000)
      await expect.poll(() => items.count(), { timeout: 10_000 }).toBe(80)
      expect(await items.first().textContent()).toContain('Filler: m1')
      await context.close()
      expect(errors).toEqual([])
    }, 30_000)
  })
})
