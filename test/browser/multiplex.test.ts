/**
 * One connection per tab (protocol version 2), in Chromium against the built playground: the
 * `/rooms` page shows three rooms and the signed-in user's rooms list and opens exactly one
 * WebSocket (or, with `?transport=sse`, one event stream and no WebSocket), over which messages,
 * presence, typing, edits, reactions and read state work in all three rooms.
 */
import { randomUUID } from 'node:crypto'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { launchChromium } from '../utils/browser'
import { startServer, type TestServer } from '../utils/server'

let server: TestServer
let browser: Browser
const contexts: BrowserContext[] = []
const pageErrors: string[] = []

const sel = (testid: string) => `[data-testid="${testid}"]`
const pane = (page: Page, room: string) => page.locator(`${sel('pane')}[data-room="${room}"]`)

beforeAll(async () => {
  server = await startServer({ output: 'playground' })
  browser = await launchChromium()
})

afterAll(async () => {
  await Promise.all(contexts.map(context => context.close()))
  await browser?.close()
  await server?.stop()
})

type Transport = 'ws' | 'sse'

/** Open `/rooms` with `rooms` as `name` (a demo sign-in cookie when `signedIn`); the WebSockets and event streams it opens are counted. */
async function openRooms(rooms: string[], name: string, signedIn: boolean, transport: Transport): Promise<{ page: Page, sockets: string[], streams: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  contexts.push(context)
  if (signedIn) await context.addCookies([{ name: 'playground-demo-user', value: encodeURIComponent(name), url: server.url('/') }])
  const page = await context.newPage()
  page.on('pageerror', error => pageErrors.push(`${name}: ${error.message}`))
  const sockets: string[] = []
  const streams: string[] = []
  page.on('websocket', socket => sockets.push(socket.url()))
  page.on('request', (request) => {
    if (request.resourceType() === 'eventsource') streams.push(request.url())
  })
  await page.goto(server.url(`/rooms?${new URLSearchParams({ rooms: rooms.join(','), name, transport })}`))
  for (const room of rooms) await expect.poll(() => pane(page, room).getAttribute('data-status'), { timeout: 15_000 }).toBe('OPEN')
  return { page, sockets, streams }
}

const textsIn = (page: Page, room: string) => pane(page, room).locator(sel('pane-message')).allTextContents()

type Tab = Awaited<ReturnType<typeof openRooms>>

/**
 * Ann (signed in) and Bob (a guest) in three rooms: presence, messages, typing, edits, reactions,
 * read state, each room on its own. `connections` checks each tab's connections once all is open
 * and again at the end. Each transport has its own Ann (her rooms list is per user).
 */
async function talkInThreeRooms(transport: Transport, connections: (tab: Tab) => void) {
  const rooms = ['lobby', 'random', 'help'].map(label => `${label}-${randomUUID().slice(0, 6)}`)
  const [annName, bobName] = [`Ann${transport}`, `Bob${transport}`]
  const ann = await openRooms(rooms, annName, true, transport)
  const bob = await openRooms(rooms, bobName, false, transport)

  // Ann's rooms list (signed in) lists the three rooms she joined.
  await expect.poll(() => ann.page.locator(sel('rooms-item')).evaluateAll(items => items.map(item => item.getAttribute('data-room')).sort()), { timeout: 15_000 }).toEqual([...rooms].sort())
  for (const tab of [ann, bob]) connections(tab)

  for (const room of rooms) {
    // Presence: each sees the other in every room.
    await expect.poll(() => pane(ann.page, room).locator(sel('pane-users')).textContent()).toContain(bobName)
    await expect.poll(() => pane(bob.page, room).locator(sel('pane-users')).textContent()).toContain(annName)
    // Messages both ways.
    await pane(ann.page, room).locator(sel('pane-input')).fill(`hi from Ann in ${room}`)
    await pane(ann.page, room).locator(sel('pane-input')).press('Enter')
    await expect.poll(() => textsIn(bob.page, room)).toEqual([expect.stringContaining(`hi from Ann in ${room}`)])
    // Typing: Bob types, Ann sees it in that room.
    await pane(bob.page, room).locator(sel('pane-input')).pressSequentially('typing', { delay: 20 })
    await expect.poll(() => pane(ann.page, room).locator(sel('pane-typing')).textContent()).toContain(`${bobName} typing`)
    await pane(bob.page, room).locator(sel('pane-input')).press('Enter')
    await expect.poll(() => textsIn(ann.page, room)).toHaveLength(2)
    // Edits and reactions.
    await pane(ann.page, room).locator(sel('pane-edit')).click()
    await expect.poll(() => textsIn(bob.page, room).then(texts => texts[0])).toContain('(fixed)')
    await pane(ann.page, room).locator(sel('pane-react')).click()
    await expect.poll(() => pane(bob.page, room).locator(sel('pane-reaction')).allTextContents()).toEqual([expect.stringContaining('👍 1')])
  }
  // Nothing of one room shows in another.
  for (const room of rooms) expect((await textsIn(ann.page, room)).every(text => !rooms.some(other => other !== room && text.includes(other)))).toBe(true)

  // Read state: Bob's messages are unread for Ann (the panes' badges and her list's), until she reads each room.
  for (const room of rooms) {
    await expect.poll(() => pane(ann.page, room).locator(sel('unread-badge')).textContent().catch(() => '')).toBe('1')
    await pane(ann.page, room).locator(sel('pane-read')).click()
    await expect.poll(() => pane(ann.page, room).locator(sel('unread-badge')).count()).toBe(0)
    await expect.poll(() => ann.page.locator(`${sel('rooms-item')}[data-room="${room}"] ${sel('unread-badge')}`).count()).toBe(0)
  }
  for (const tab of [ann, bob]) connections(tab)
  expect(pageErrors).toEqual([])
}

describe('playground: three rooms and a rooms list on one connection', () => {
  it('opens one socket and works in all three rooms', async () => {
    // One WebSocket per tab, whatever it shows.
    await talkInThreeRooms('ws', tab => expect(tab.sockets).toHaveLength(1))
  })

  it('over SSE, opens one event stream (version 2) and no WebSocket, and works in all three rooms', async () => {
    // One event stream per tab, the version 2 one, whatever it shows; its commands are POSTs.
    await talkInThreeRooms('sse', (tab) => {
      expect(tab.streams).toHaveLength(1)
      expect(new URL(tab.streams[0]!).searchParams.get('v')).toBe('2')
      expect(tab.sockets).toEqual([])
    })
  })
})
