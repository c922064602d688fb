/**
 * Search in the playground (`/rooms`) in Chromium: a signed-in person finds a message of one of
 * their rooms by a word, sees the excerpt with the word marked (as text: markup in the message
 * stays text), and the hit opens the room at that message, loading older history until it is
 * there. Screenshots of the results and of the message found.
 */
import { randomUUID } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import WebSocket from 'ws'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { launchChromium } from '../utils/browser'
import { until } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

const SCREENSHOTS = resolve('test-output/screenshots')
let server: TestServer
let browser: Browser
const contexts: BrowserContext[] = []
const pageErrors: string[] = []
const sel = (testid: string) => `[data-testid="${testid}"]`
const pane = (page: Page, room: string) => page.locator(`${sel('pane')}[data-room="${room}"]`)

beforeAll(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true })
  server = await startServer({ output: 'playground', env: { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT_PER_IP: 'false' } })
  browser = await launchChromium()
})

afterAll(async () => {
  await Promise.all(contexts.map(context => context.close()))
  await browser?.close()
  await server?.stop()
})

/** Messages into `room` from a guest's version 1 socket, in order, each stored before the next is sent. */
async function post(room: string, texts: string[]) {
  const ws = new WebSocket(server.wsUrl(`/_ws?room=${room}&name=Filler`))
  const stored: string[] = []
  ws.on('message', (data) => {
    const frame = JSON.parse(data.toString()) as { type: string, message?: string }
    if (frame.type === 'message' && frame.message) stored.push(frame.message)
  })
  await new Promise(resolve => ws.once('open', resolve))
  for (const text of texts) ws.send(text)
  await until(() => stored.length >= texts.length, 'the messages stored', 15_000)
  ws.close()
}

describe('playground: search', () => {
  it('finds a message by a word and opens its room at it, loading older history', async () => {
    const tag = randomUUID().slice(0, 6)
    const room = `finds-${tag}`
    const word = `zebra${tag}`
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
    contexts.push(context)
    await context.addCookies([{ name: 'playground-demo-user', value: encodeURIComponent(`Ann ${tag}`), url: server.url('/') }])
    const page = await context.newPage()
    page.on('pageerror', error => pageErrors.push(error.message))
    await page.goto(server.url(`/rooms?${new URLSearchParams({ rooms: room })}`))
    // Ann is in the room (it is on her rooms list), then the message and 80 more after it: older than the pane's replay.
    await expect.poll(() => pane(page, room).getAttribute('data-status'), { timeout: 15_000 }).toBe('OPEN')
    await post(room, [`the <b>${word}</b> crossed`, ...Array.from({ length: 80 }, (_, index) => `filler ${index}`)])
    // Opened again: the pane replays the newest messages only.
    await page.reload()
    await expect.poll(() => pane(page, room).getAttribute('data-status'), { timeout: 15_000 }).toBe('OPEN')
    await expect.poll(() => pane(page, room).locator(sel('pane-text')).last().textContent(), { timeout: 15_000 }).toBe('filler 79')
    expect(await pane(page, room).locator(sel('pane-text')).filter({ hasText: word }).count()).toBe(0)

    await page.locator(sel('search-input')).fill(word)
    await page.locator(sel('search-input')).press('Enter')
    const hit = page.locator(sel('search-hit'))
    await expect.poll(() => hit.count(), { timeout: 10_000 }).toBe(1)
    expect(await hit.getAttribute('data-room')).toBe(room)
    // The markup is text; the word is marked.
    expect(await hit.locator(sel('search-excerpt')).textContent()).toBe(`the <b>${word}</b> crossed`)
    expect(await hit.locator('mark').allTextContents()).toEqual([word])
    expect(await hit.locator('b').count()).toBe(0)
    await page.screenshot({ path: resolve(SCREENSHOTS, 'search-results.png') })

    await hit.click()
    const found = pane(page, room).locator('li.found')
    await expect.poll(() => found.count(), { timeout: 15_000 }).toBe(1)
    expect(await found.getAttribute('data-id')).toBe(await hit.getAttribute('data-id'))
    expect(await found.locator(sel('pane-text')).textContent()).toBe(`the <b>${word}</b> crossed`)
    await expect.poll(() => found.isVisible()).toBe(true)
    await page.screenshot({ path: resolve(SCREENSHOTS, 'search-opened.png') })

    // A word nobody wrote: nothing found.
    await page.locator(sel('search-input')).fill(`nothing${tag}`)
    await page.locator(sel('search-input')).press('Enter')
    await expect.poll(() => page.locator(sel('search-hits')).textContent()).toContain('Nothing found')
    expect(pageErrors).toEqual([])
  })
})
