/**
 * The Nuxt UI example (examples/nuxt-ui): built here, then two Chromium pages chat through
 * UChatMessages and UChatPrompt fed by useChatUi(). It must work offline: every request and
 * WebSocket of both pages goes to the app's own address. Leaves screenshots in test-output/screenshots/ (in docs/ with CHAT_DOCS_SCREENSHOTS=1, for the README).
 * Needs `npm ci` in examples/nuxt-ui (it has its own dependencies: @nuxt/ui, @iconify-json/lucide).
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { launchChromium } from '../utils/browser'
import { startServer, type TestServer } from '../utils/server'

const root = fileURLToPath(new URL('../..', import.meta.url))
// The README's screenshots are refreshed on request only, so a test run leaves the tree clean.
const SCREENSHOTS = process.env.CHAT_DOCS_SCREENSHOTS ? `${root}/docs` : `${root}/test-output/screenshots`
const example = `${root}/examples/nuxt-ui`
const entry = `${example}/.output/server/index.mjs`

let server: TestServer
let browser: Browser
const contexts: BrowserContext[] = []
const pageErrors: string[] = []
/** Every URL the pages asked for (documents, scripts, styles, fonts, icons, XHR, WebSockets). */
const requested: string[] = []

beforeAll(async () => {
  if (!existsSync(`${example}/node_modules/@nuxt/ui`)) throw new Error('run `npm ci` in examples/nuxt-ui first')
  // CHAT_SKIP_BUILD=1 reuses an earlier build, like the other tests.
  if (!(process.env.CHAT_SKIP_BUILD && existsSync(entry))) {
    execFileSync(process.execPath, [`${example}/node_modules/nuxt/bin/nuxt.mjs`, 'build'], { cwd: example, stdio: 'pipe', env: { ...process.env, NUXT_TELEMETRY_DISABLED: '1' } })
  }
  server = await startServer({ entry })
  browser = await launchChromium()
}, 300_000)

afterAll(async () => {
  await Promise.all(contexts.map(context => context.close()))
  await browser?.close()
  await server?.stop()
})

async function openChat(room: string, name: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 900, height: 640 }, deviceScaleFactor: 1 })
  contexts.push(context)
  const page = await context.newPage()
  page.on('pageerror', error => pageErrors.push(`${name}: ${error.message}`))
  page.on('request', request => requested.push(request.url()))
  page.on('websocket', socket => requested.push(socket.url()))
  await page.goto(server.url(`/?room=${room}&name=${name}`))
  await expect.poll(() => page.getAttribute('[data-testid="status"]', 'data-status'), { timeout: 15_000, interval: 100 }).toBe('OPEN')
  return page
}

async function send(page: Page, text: string) {
  const prompt = page.locator('textarea')
  await prompt.fill(text)
  await prompt.press('Enter')
  await expect.poll(() => prompt.inputValue()).toBe('')
}

/** The shown messages: author line, text, and which side (Nuxt UI's role). */
function shown(page: Page) {
  return page.locator('article[data-role]').evaluateAll(items => items.map(item => ({
    role: item.getAttribute('data-role'),
    author: item.querySelector('[data-testid="author"]')?.textContent?.trim(),
    text: item.querySelector('[data-testid="text"]')?.textContent?.trim(),
    avatar: item.querySelector('[data-slot="leadingAvatar"]')?.textContent?.trim(),
  })))
}

describe('the Nuxt UI example', () => {
  it('two pages chat through UChatMessages and UChatPrompt, offline', { timeout: 120_000 }, async () => {
    const room = `ui-${Date.now().toString(36)}`
    const ann = await openChat(room, 'Ann')
    const bob = await openChat(room, 'Bob')
    await expect.poll(() => ann.textContent('[data-testid="online"]')).toMatch(/Ann|Bob/)

    await send(ann, 'Hi Bob, lunch at noon?')
    await expect.poll(() => shown(bob), { timeout: 10_000 }).toEqual([
      { role: 'assistant', author: 'Ann (guest)', text: 'Hi Bob, lunch at noon?', avatar: 'A' },
    ])
    await send(bob, 'Sure, see you there')
    const conversation = [
      { role: 'user', author: 'Ann (guest)', text: 'Hi Bob, lunch at noon?', avatar: 'A' },
      { role: 'assistant', author: 'Bob (guest)', text: 'Sure, see you there', avatar: 'B' },
    ]
    await expect.poll(() => shown(ann), { timeout: 10_000 }).toEqual(conversation)
    await expect.poll(() => shown(bob), { timeout: 10_000 }).toEqual(conversation.map(message => ({ ...message, role: message.role === 'user' ? 'assistant' : 'user' })))
    // Own messages on the right: Nuxt UI lays out role "user" at the end of the row.
    const annBox = await ann.locator('article[data-role="user"] [data-slot="leadingAvatar"]').boundingBox()
    const bobBox = await ann.locator('article[data-role="assistant"] [data-slot="leadingAvatar"]').boundingBox()
    expect(annBox!.x).toBeGreaterThan(bobBox!.x)
    // The prompt's submit button shows its bundled icon: a CSS mask from an inline SVG data URL, nothing fetched.
    const mask = await ann.locator('button[type="submit"] .iconify').evaluate(icon => getComputedStyle(icon).maskImage)
    expect(mask).toMatch(/^url\("data:image\/svg\+xml,/)

    mkdirSync(SCREENSHOTS, { recursive: true })
    await ann.screenshot({ path: `${SCREENSHOTS}/nuxt-ui-ann.png` })
    await bob.screenshot({ path: `${SCREENSHOTS}/nuxt-ui-bob.png` })

    const origin = new URL(server.url('/')).host
    const foreign = requested.filter(url => !url.startsWith('data:') && new URL(url).host !== origin)
    expect(foreign).toEqual([])
    expect(requested.some(url => url.startsWith('ws://'))).toBe(true)
    expect(pageErrors).toEqual([])
  })
})
