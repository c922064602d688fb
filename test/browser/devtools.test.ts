/**
 * The DevTools tab inside Nuxt DevTools, in the playground's dev server (`nuxi dev`), opened as a
 * user does: the floating Nuxt button, then the Chat tab. The tab shows the room, who is in it,
 * and a message another page sends, live; its box posts into the room as the server and the chat
 * page shows it; a user on a second instance (the built playground on the same Redis bus) shows
 * as online there; its bus line shows the Redis URL without its password, and the bus down while
 * that Redis is stopped. The machine is offline: every request off this host is refused, and
 * neither the app page nor the tab may make one. Leaves a screenshot in test-output/screenshots/
 * (in docs/ with CHAT_DOCS_SCREENSHOTS=1, for the README).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Browser, BrowserContext, FrameLocator, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { launchChromium } from '../utils/browser'
import { ChatSocket } from '../utils/clients'
import { ownRedis } from '../utils/faults'
import { startNuxiDev, type DevServer } from '../utils/nuxiDev'
import { freePort, startServer, type TestServer } from '../utils/server'

const root = fileURLToPath(new URL('../..', import.meta.url))
// The README's screenshots are refreshed on request only, so a test run leaves the tree clean.
const SCREENSHOTS = process.env.CHAT_DOCS_SCREENSHOTS ? `${root}/docs` : `${root}/test-output/screenshots`
const sel = (testid: string) => `[data-testid="${testid}"]`
/** The bus's Redis password: it must never reach the tab. */
const SECRET = `s3cret-${Date.now().toString(36)}`

let dev: DevServer | undefined
let base = ''
let database = ''
let browser: Browser
let redis: Awaited<ReturnType<typeof ownRedis>>
/** A second instance (the built playground) on the same Redis bus. */
let other: TestServer | undefined
/** The bus channel both instances share (they store their rooms apart). */
let channel = ''
/** Requests to other hosts (all refused: the machine is offline), with the frame that made them. */
const remote: { frame: string, url: string }[] = []

beforeAll(async () => {
  redis = await ownRedis({ password: SECRET })
  const port = await freePort()
  base = `http://127.0.0.1:${port}`
  database = `.data/devtools-${port}.sqlite`
  channel = `nuxt-chat-devtools-test:${port}`
  // Its own build directory and database, so the production playground build and other runs are untouched.
  // The default per-address cap: under nuxi dev the address is the one its listener saw (test/e2e/devtools.dev.test.ts).
  dev = await startNuxiDev('playground', {
    port,
    env: { NUXT_CHAT_REDIS_URL: redis.url, NUXT_CHAT_REDIS_CHANNEL: channel, CHAT_PLAYGROUND_OUT: '.output-devtools-test', NUXT_CHAT_DATABASE_OPTIONS_PATH: database },
    ready: async (at) => {
      const [tab, client] = await Promise.all(['/__nuxt_chat/devtools', '/__nuxt_devtools__/client/'].map(path => fetch(`${at}${path}`)))
      return tab!.status === 200 && client!.status === 200
    },
  })
  browser = await launchChromium()
}, 180_000)

afterAll(async () => {
  await browser?.close()
  await dev?.stop()
  await other?.stop()
  await redis?.stop()
  // The dev server resolves the database path against the playground (the app root).
  for (const suffix of ['', '-wal', '-shm']) if (database) rmSync(`${root}/playground/${database}${suffix}`, { force: true })
})

/** A browser context as offline as the machine: what is not on this host is refused and noted. */
async function offlineContext(): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, deviceScaleFactor: 1 })
  await context.route(url => url.host !== new URL(base).host && url.protocol !== 'data:', (route) => {
    remote.push({ frame: route.request().frame().url(), url: route.request().url() })
    return route.abort('internetdisconnected')
  })
  // Every frame keeps its own uncaught errors, so the tab's and the app's are told apart from DevTools' own.
  await context.addInitScript(() => {
    const errors: string[] = []
    Object.assign(window, { __errors: errors })
    window.addEventListener('error', event => errors.push(String(event.message)))
    window.addEventListener('unhandledrejection', event => errors.push(String(event.reason)))
  })
  return context
}

/** The uncaught errors the init script kept in a page or frame. */
const errorsIn = (frame: Page | FrameLocator) => frame.locator('html').evaluate(() => (window as unknown as { __errors: string[] }).__errors)

/** The chat tab inside Nuxt DevTools, opened on `page` (an app page) as a user does. */
async function openChatTab(page: Page): Promise<FrameLocator> {
  await page.locator('button[title="Toggle Nuxt DevTools"]').click({ timeout: 60_000 })
  const client = page.frameLocator('#nuxt-devtools-iframe')
  // DevTools 3.4 asks a new browser to authorize writing files; the Chat tab needs no authorization.
  await client.getByRole('button', { name: 'Cancel' }).click({ timeout: 30_000 })
  // At this panel size the Chat tab is among the tabs behind the sidebar's overflow button.
  // A new browser gets DevTools' welcome page first: no statistics (the machine is offline), then in.
  await client.getByText('Send anonymous statistics').click()
  await client.getByRole('link', { name: 'Get Started' }).click()
  await client.locator('button:has([class="carbon:overflow-menu-vertical"])').click()
  const link = client.locator('a[href$="/modules/custom-nuxt-chat"]')
  // Its icon is served by the dev server (an Iconify name would be fetched from esm.sh).
  await expect.poll(() => link.locator('img').evaluate(icon => (icon as HTMLImageElement).naturalWidth), { timeout: 10_000 }).toBeGreaterThan(0)
  await link.click()
  // The DevTools client routes after the click, not during it.
  await expect.poll(async () => new URL(await client.locator('html').evaluate(() => location.href)).pathname, { timeout: 10_000 }).toBe('/__nuxt_devtools__/client/modules/custom-nuxt-chat')
  // DevTools puts the tab's iframe on its own document, over the page's content area.
  return client.frameLocator('iframe[src="/__nuxt_chat/devtools"]')
}

describe('the DevTools tab inside Nuxt DevTools (dev server)', () => {
  it('shows a message sent from another page live, posts as the server, shows who is on another instance, masks the bus password and shows the bus down', { timeout: 180_000 }, async () => {
    const room = `dt-${Date.now().toString(36)}`
    const hostContext = await offlineContext()
    // The panel as a user would drag it, big enough for the README's screenshot (DevTools keeps its size here).
    await hostContext.addInitScript(() => {
      if (window === window.top && !localStorage.getItem('nuxt-devtools-frame-state')) localStorage.setItem('nuxt-devtools-frame-state', JSON.stringify({ width: 94, height: 86, top: 0, left: 50, open: false, route: '/', position: 'bottom' }))
    })
    const host = await hostContext.newPage()
    await host.goto(`${base}/?room=${room}&name=Operator`)
    const tab = await openChatTab(host)
    await expect.poll(() => tab.locator('#live').getAttribute('class'), { timeout: 20_000 }).toBe('dot up')

    const chat = await (await offlineContext()).newPage()
    await chat.goto(`${base}/?room=${room}&name=Alice`)
    await expect.poll(() => chat.getAttribute(sel('status'), 'data-status'), { timeout: 60_000, interval: 100 }).toBe('OPEN')
    // The room and who is in it.
    await expect.poll(() => tab.locator(`tr[data-room="${room}"]`).textContent(), { timeout: 10_000 }).toMatch(/Alice.*Operator|Operator.*Alice/)

    await chat.fill(sel('composer-input'), 'Hello from the chat page')
    await chat.press(sel('composer-input'), 'Enter')
    await expect.poll(() => tab.locator(sel('feed')).textContent(), { timeout: 10_000 }).toContain('Alice: Hello from the chat page')

    // The box posts as the server; the chat page shows it.
    await tab.locator('input[name=room]').fill(room)
    await tab.locator('input[name=message]').fill('Maintenance at 18:00')
    await tab.locator('button[type=submit]').click()
    await expect.poll(() => tab.locator('#post-note').textContent(), { timeout: 10_000 }).toMatch(/^Stored as #\d+$/)
    await expect.poll(() => chat.locator(sel('message-text')).allTextContents(), { timeout: 10_000 }).toEqual(['Hello from the chat page', 'Maintenance at 18:00'])
    await expect.poll(() => tab.locator(sel('feed')).textContent(), { timeout: 10_000 }).toContain('server: Maintenance at 18:00')

    // Counters, store and bus; the bus's URL without its password.
    expect(Number(await tab.locator('#c-connections').textContent())).toBeGreaterThanOrEqual(2)
    // The next snapshot (every second) counts both appends.
    await expect.poll(() => tab.locator('#store').textContent(), { timeout: 5000 }).toMatch(/^node-sqlite: (?:cwd="[^"]+", )?path="\.data\/devtools-\d+\.sqlite" · 2 appends, mean \d+\.\d\d ms$/)
    expect(await tab.locator('#bus').textContent()).toBe(`redis: redis://:***@127.0.0.1:${redis.port} (up)`)
    expect(await tab.locator('html').evaluate(() => document.documentElement.outerHTML)).not.toContain(SECRET)

    // Bob on the other instance: online in the room, not connected here.
    other = await startServer({ output: 'playground', env: { NUXT_CHAT_REDIS_URL: redis.url, NUXT_CHAT_REDIS_CHANNEL: channel } })
    const bob = await ChatSocket.open(`ws://127.0.0.1:${other.port}`, { room, name: 'Bob' })
    await expect.poll(() => tab.locator(`tr[data-room="${room}"]`).textContent(), { timeout: 10_000 }).toContain('Bob (guest, other instance)')
    expect(await tab.locator(`tr[data-room="${room}"] td:nth-child(2)`).textContent()).toBe('2')

    await tab.locator(`tr[data-room="${room}"]`).click()
    mkdirSync(SCREENSHOTS, { recursive: true })
    await host.screenshot({ path: `${SCREENSHOTS}/devtools.png` })

    // The bus follows its connection: down with its error while Redis is stopped, up once it is back.
    await redis.stop()
    await expect.poll(() => tab.locator('#bus').textContent(), { timeout: 10_000 }).toBe(`redis: redis://:***@127.0.0.1:${redis.port} (down)`)
    await expect.poll(() => tab.locator('#bus-error').textContent(), { timeout: 10_000 }).toMatch(/^last error \S+( [AP]M)?: \S/)
    await redis.start()
    await expect.poll(() => tab.locator('#bus').textContent(), { timeout: 15_000 }).toBe(`redis: redis://:***@127.0.0.1:${redis.port} (up)`)
    await bob.close()
    expect(await tab.locator('html').evaluate(() => document.documentElement.outerHTML)).not.toContain(SECRET)

    // Offline: the app page and the tab asked for nothing off this host, and threw nothing.
    const ours = remote.filter(({ frame }) => !frame.includes('/__nuxt_devtools__/'))
    expect(ours).toEqual([])
    // What DevTools' own client tried to fetch (fonts, icon sets, the modules list): kept for the record.
    writeFileSync(`${root}/test-output/devtools-remote-requests.json`, `${JSON.stringify(remote, null, 2)}\n`)
    expect(await errorsIn(host)).toEqual([])
    expect(await errorsIn(tab)).toEqual([])
    expect(await errorsIn(chat)).toEqual([])
  })
})
