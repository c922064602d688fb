/**
 * Rooms, direct messages and moderation in Chromium against the built playground (`/rooms`),
 * three demo sign-ins: Ann makes a private room inviting Bob, who finds it in his sidebar and
 * chats there; Carol, not invited, is refused; Ann and Bob get one direct room under "Direct
 * messages"; Ann mutes Bob (his send is refused, he still reads) and bans him (the room leaves his
 * sidebar). Each page opens exactly one WebSocket. Roles come from the server: they survive a reload.
 * "Seen by": Ann's messages show who has read them, live (issue 24).
 */
import { randomUUID } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { launchChromium } from '../utils/browser'
import { startServer, type TestServer } from '../utils/server'

let server: TestServer
let browser: Browser
const contexts: BrowserContext[] = []
const pageErrors: string[] = []

/** Where the screenshots go (the CI keeps test-output/). */
const SCREENSHOTS = resolve('test-output/screenshots')
mkdirSync(SCREENSHOTS, { recursive: true })

const sel = (testid: string) => `[data-testid="${testid}"]`
const pane = (page: Page, room: string) => page.locator(`${sel('pane')}[data-room="${room}"]`)
const entry = (page: Page, kind: 'room' | 'dm', room: string) => page.locator(`${sel(`rooms-group-${kind}`)} ${sel('rooms-item')}[data-room="${room}"]`)

beforeAll(async () => {
  server = await startServer({ output: 'playground', env: { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT: 'false', NUXT_CHAT_NEW_ROOM_RATE_LIMIT_PER_IP: 'false' } })
  browser = await launchChromium()
})

afterAll(async () => {
  await Promise.all(contexts.map(context => context.close()))
  await browser?.close()
  await server?.stop()
})

/** `name` signed in (demo cookie) on `/rooms` showing `rooms` only; the WebSockets it opens are counted. */
async function signedIn(name: string, rooms: string[] = []): Promise<{ page: Page, sockets: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  contexts.push(context)
  await context.addCookies([{ name: 'playground-demo-user', value: encodeURIComponent(name), url: server.url('/') }])
  const page = await context.newPage()
  page.on('pageerror', error => pageErrors.push(`${name}: ${error.message}`))
  const sockets: string[] = []
  page.on('websocket', socket => sockets.push(socket.url()))
  await page.goto(server.url(`/rooms?${new URLSearchParams({ rooms: rooms.join(',') })}`))
  await page.locator(sel('rooms-group-dm')).waitFor({ timeout: 15_000 })
  return { page, sockets }
}

async function say(page: Page, room: string, text: string) {
  await pane(page, room).locator(sel('pane-input')).fill(text)
  await pane(page, room).locator(sel('pane-input')).press('Enter')
}

const textsIn = (page: Page, room: string) => pane(page, room).locator(sel('pane-text')).allTextContents()

describe('playground: private rooms, direct messages and moderation on one WebSocket', () => {
  it('invites, refuses outsiders, opens a direct room, mutes and bans', async () => {
    const tag = randomUUID().slice(0, 6)
    const [annName, bobName, carolName] = [`Ann ${tag}`, `Bob ${tag}`, `Carol ${tag}`]
    const ann = await signedIn(annName)
    const bob = await signedIn(bobName)

    // Ann: a new private room, Bob invited by name; it opens for her, and she owns it (moderator actions).
    const title = `Plans ${tag}`
    await ann.page.locator(sel('new-room-title')).fill(title)
    await ann.page.locator(sel('new-room-people')).fill(bobName)
    await ann.page.locator(sel('new-room-create')).click()
    const annPane = ann.page.locator(sel('pane')).filter({ hasText: title })
    await expect.poll(() => annPane.getAttribute('data-status'), { timeout: 15_000 }).toBe('OPEN')
    const room = (await annPane.getAttribute('data-room'))!
    expect(room).toMatch(/^room-/)
    await expect.poll(() => entry(ann.page, 'room', room).count()).toBe(1)

    // Bob: the room is in his sidebar (rooms, not direct messages); he opens it and chats there.
    await expect.poll(() => entry(bob.page, 'room', room).count(), { timeout: 15_000 }).toBe(1)
    await expect.poll(() => entry(bob.page, 'room', room).textContent()).toContain(title)
    await entry(bob.page, 'room', room).click()
    await expect.poll(() => pane(bob.page, room).getAttribute('data-status'), { timeout: 15_000 }).toBe('OPEN')
    await say(bob.page, room, 'hi from Bob')
    await expect.poll(() => textsIn(ann.page, room)).toEqual(['hi from Bob'])
    await say(ann.page, room, 'welcome Bob')
    await expect.poll(() => textsIn(bob.page, room)).toEqual(['hi from Bob', 'welcome Bob'])
    // Seen by: sent until Bob reads, then Ann sees who read it (a room of two members).
    const annReceipt = pane(ann.page, room).locator(sel('pane-receipt'))
    await expect.poll(() => annReceipt.allTextContents()).toEqual(['✓ Sent'])
    await pane(bob.page, room).locator(sel('pane-read')).click()
    await expect.poll(() => annReceipt.allTextContents(), { timeout: 15_000 }).toEqual([`✓✓ Seen by ${bobName}`])
    expect(await pane(bob.page, room).locator(sel('pane-receipt')).allTextContents()).toEqual(['✓ Sent'])
    await ann.page.screenshot({ path: resolve(SCREENSHOTS, 'rooms-seen-by.png') })

    // A thread on Ann's message: Bob answers in it; it stays out of both room lists, Ann sees "1 reply" and opens it.
    const threadButton = (page: Page) => pane(page, room).locator(sel('pane-message')).filter({ hasText: 'welcome Bob' }).locator(sel('pane-thread'))
    await threadButton(bob.page).click()
    await pane(bob.page, room).locator(sel('thread-input')).fill('thread hi')
    await pane(bob.page, room).locator(sel('thread-input')).press('Enter')
    await expect.poll(() => pane(bob.page, room).locator(sel('thread-text')).allTextContents(), { timeout: 15_000 }).toEqual(['thread hi'])
    await expect.poll(() => threadButton(ann.page).textContent(), { timeout: 15_000 }).toContain('1 reply')
    await threadButton(ann.page).click()
    await expect.poll(() => pane(ann.page, room).locator(sel('thread-text')).allTextContents(), { timeout: 15_000 }).toEqual(['thread hi'])
    expect(await textsIn(ann.page, room)).toEqual(['hi from Bob', 'welcome Bob'])
    expect(await textsIn(bob.page, room)).toEqual(['hi from Bob', 'welcome Bob'])
    // Also sent to the room: in the thread and in both lists.
    await pane(bob.page, room).locator(sel('thread-also')).check()
    await pane(bob.page, room).locator(sel('thread-input')).fill('for everyone')
    await pane(bob.page, room).locator(sel('thread-input')).press('Enter')
    await expect.poll(() => textsIn(ann.page, room), { timeout: 15_000 }).toEqual(['hi from Bob', 'welcome Bob', 'for everyone'])
    await expect.poll(() => pane(ann.page, room).locator(sel('thread-text')).allTextContents()).toEqual(['thread hi', 'for everyone'])
    await expect.poll(() => threadButton(ann.page).textContent()).toContain('2 replies')
    await ann.page.screenshot({ path: resolve(SCREENSHOTS, 'rooms-thread.png') })
    await pane(ann.page, room).locator(sel('thread-close')).click()
    await pane(bob.page, room).locator(sel('thread-close')).click()
    // Bob is no owner: no moderator actions for him.
    expect(await pane(bob.page, room).locator(sel('moderation')).count()).toBe(0)

    // Carol, not invited: the room is refused, and it is not in her sidebar.
    const carol = await signedIn(carolName, [room])
    await expect.poll(() => pane(carol.page, room).locator(sel('pane-error')).getAttribute('data-code').catch(() => null), { timeout: 15_000 }).toBe('forbidden')
    expect(await pane(carol.page, room).locator(sel('pane-error')).textContent()).toMatch(/not allow.* in this room/i)
    expect(await textsIn(carol.page, room)).toEqual([])
    expect(await entry(carol.page, 'room', room).count()).toBe(0)

    // Ann messages Bob: one direct room, under "Direct messages" for both.
    await ann.page.locator(sel('dm-person')).fill(bobName)
    await ann.page.locator(sel('dm-open')).click()
    const annDirect = ann.page.locator(`${sel('pane')}[data-room^="dm:"]`)
    await expect.poll(() => annDirect.getAttribute('data-status'), { timeout: 15_000 }).toBe('OPEN')
    const direct = (await annDirect.getAttribute('data-room'))!
    await expect.poll(() => entry(ann.page, 'dm', direct).textContent(), { timeout: 15_000 }).toContain(bobName)
    await say(ann.page, direct, 'just us')
    await expect.poll(() => entry(bob.page, 'dm', direct).textContent(), { timeout: 15_000 }).toContain(annName)
    expect(await entry(bob.page, 'room', direct).count()).toBe(0)
    await entry(bob.page, 'dm', direct).click()
    await expect.poll(() => textsIn(bob.page, direct), { timeout: 15_000 }).toEqual(['just us'])
    await pane(bob.page, direct).locator(sel('pane-read')).click()
    await expect.poll(() => pane(ann.page, direct).locator(sel('pane-receipt')).allTextContents(), { timeout: 15_000 }).toEqual(['✓✓ Seen'])
    await ann.page.screenshot({ path: resolve(SCREENSHOTS, 'rooms-dm-seen.png') })

    // Back in the private room, Ann mutes Bob: his send is refused, he still reads hers.
    await entry(ann.page, 'room', room).click()
    await entry(bob.page, 'room', room).click()
    await expect.poll(() => pane(bob.page, room).getAttribute('data-status'), { timeout: 15_000 }).toBe('OPEN')
    const bobHere = pane(ann.page, room).locator(`${sel('moderation-person')}[data-user="${bobName}"]`)
    await bobHere.locator(sel('moderation-mute')).click()
    await expect.poll(() => pane(ann.page, room).locator(sel('moderation-note')).textContent()).toBe(`${bobName} muted`)
    await say(bob.page, room, 'am I muted?')
    await expect.poll(() => pane(bob.page, room).locator(sel('pane-error')).getAttribute('data-code').catch(() => null), { timeout: 15_000 }).toBe('muted')
    await say(ann.page, room, 'you can still read')
    await expect.poll(() => textsIn(bob.page, room)).toContain('you can still read')
    expect(await textsIn(ann.page, room)).not.toContain('am I muted?')

    // Then she bans him: the room leaves his sidebar.
    await bobHere.locator(sel('moderation-ban')).click()
    await expect.poll(() => pane(ann.page, room).locator(sel('moderation-note')).textContent()).toBe(`${bobName} banned`)
    await expect.poll(() => entry(bob.page, 'room', room).count(), { timeout: 15_000 }).toBe(0)
    expect(await entry(bob.page, 'dm', direct).count()).toBe(1)

    // One WebSocket per page, whatever it did.
    expect(ann.sockets).toHaveLength(1)
    expect(bob.sockets).toHaveLength(1)
    expect(carol.sockets).toHaveLength(1)
    expect(pageErrors).toEqual([])
  })

  it('roles come from the server: after a reload the owner still sees the moderator actions, a plain member never does, and a muted member is told until when', async () => {
    const tag = randomUUID().slice(0, 6)
    const [annName, bobName] = [`Ann ${tag}`, `Bob ${tag}`]
    const ann = await signedIn(annName)
    const title = `Roles ${tag}`
    await ann.page.locator(sel('new-room-title')).fill(title)
    await ann.page.locator(sel('new-room-people')).fill(bobName)
    await ann.page.locator(sel('new-room-create')).click()
    const made = ann.page.locator(sel('pane')).filter({ hasText: title })
    await expect.poll(() => made.getAttribute('data-status'), { timeout: 15_000 }).toBe('OPEN')
    const room = (await made.getAttribute('data-room'))!

    // Reloaded (the room in the page's address now): the owner's pane still has the moderator actions.
    await ann.page.goto(server.url(`/rooms?${new URLSearchParams({ rooms: room })}`))
    await expect.poll(() => pane(ann.page, room).getAttribute('data-status'), { timeout: 15_000 }).toBe('OPEN')
    await expect.poll(() => pane(ann.page, room).getAttribute('data-role')).toBe('owner')
    await expect.poll(() => pane(ann.page, room).locator(sel('moderation')).count()).toBe(1)

    // Bob, a plain member: never the moderator actions, before or after a reload.
    const bob = await signedIn(bobName, [room])
    for (const round of ['first visit', 'reloaded']) {
      if (round === 'reloaded') await bob.page.reload()
      await expect.poll(() => pane(bob.page, room).getAttribute('data-status'), { timeout: 15_000 }).toBe('OPEN')
      await expect.poll(() => pane(bob.page, room).getAttribute('data-role'), { message: round }).toBe('member')
      expect(await pane(bob.page, room).locator(sel('moderation')).count(), round).toBe(0)
    }

    // Ann mutes him: he is told, live, and again after a reload.
    const bobHere = pane(ann.page, room).locator(`${sel('moderation-person')}[data-user="${bobName}"]`)
    await bobHere.locator(sel('moderation-mute')).click()
    await expect.poll(() => pane(ann.page, room).locator(sel('moderation-note')).textContent()).toBe(`${bobName} muted`)
    await expect.poll(() => pane(bob.page, room).locator(sel('pane-muted')).textContent().catch(() => null), { timeout: 5000 }).toMatch(/You are muted until further notice/)
    await bob.page.reload()
    await expect.poll(() => pane(bob.page, room).locator(sel('pane-muted')).textContent().catch(() => null), { timeout: 15_000 }).toMatch(/You are muted until further notice/)
    expect(await pane(bob.page, room).locator(sel('moderation')).count()).toBe(0)
    expect(pageErrors).toEqual([])
  })

  it('mentions: @ offers the people online, the message names Bob on his page, and his sidebar counts it until he reads the room', async () => {
    const tag = randomUUID().slice(0, 6)
    const [annName, bobName] = [`Ann ${tag}`, `Bob ${tag}`]
    const ann = await signedIn(annName)
    const title = `Mentions ${tag}`
    await ann.page.locator(sel('new-room-title')).fill(title)
    await ann.page.locator(sel('new-room-people')).fill(bobName)
    await ann.page.locator(sel('new-room-create')).click()
    const made = ann.page.locator(sel('pane')).filter({ hasText: title })
    await expect.poll(() => made.getAttribute('data-status'), { timeout: 15_000 }).toBe('OPEN')
    const room = (await made.getAttribute('data-room'))!
    const bob = await signedIn(bobName, [room])
    await expect.poll(() => pane(bob.page, room).getAttribute('data-status'), { timeout: 15_000 }).toBe('OPEN')
    await expect.poll(() => pane(ann.page, room).locator(sel('pane-users')).textContent()).toContain(bobName)

    // Typing `@bo` offers Bob (a name with a space); a click completes it.
    await pane(ann.page, room).locator(sel('pane-input')).fill('look @bo')
    await expect.poll(async () => (await pane(ann.page, room).locator(sel('mention-option')).allTextContents()).map(text => text.trim())).toEqual([`@${bobName}`])
    await pane(ann.page, room).locator(sel('mention-option')).click()
    expect(await pane(ann.page, room).locator(sel('pane-input')).inputValue()).toBe(`look @${bobName} `)
    await pane(ann.page, room).locator(sel('pane-input')).press('End')
    await pane(ann.page, room).locator(sel('pane-input')).pressSequentially('here')
    await pane(ann.page, room).locator(sel('pane-input')).press('Enter')

    // Bob's page marks the message as naming him; Ann's does not (she sent it).
    const named = (page: Page) => pane(page, room).locator(sel('pane-message')).filter({ hasText: 'here' })
    await expect.poll(() => named(bob.page).getAttribute('data-mentions-me')).toBe('true')
    expect(await named(ann.page).getAttribute('data-mentions-me')).toBe('false')
    // His rooms list counts the unread mention, until he marks the room read.
    await expect.poll(() => entry(bob.page, 'room', room).locator(sel('rooms-mentions')).textContent(), { timeout: 10_000 }).toBe('@1')
    await bob.page.screenshot({ path: resolve(SCREENSHOTS, 'rooms-mention.png') })
    await pane(bob.page, room).locator(sel('pane-read')).click()
    await expect.poll(() => entry(bob.page, 'room', room).locator(sel('rooms-mentions')).count()).toBe(0)
    expect(pageErrors).toEqual([])
  })
})
