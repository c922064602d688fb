import { resolve } from 'node:path'
import type { Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DESKTOP, playgroundInChromium, SCREENSHOTS } from '../utils/browser'
import { ChatSocket } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

const PHONE = { width: 375, height: 740 }

// NUXT_BOT_BULK: the bot's numbered messages (history tests); a built playground refuses them otherwise.
const playground = playgroundInChromium({ NUXT_BOT_BULK: 'true' })
let roomCounter = 0

const room = (label: string) => `${label}-${Date.now().toString(36)}-${roomCounter++}`
const sel = (testid: string) => `[data-testid="${testid}"]`

beforeAll(() => {
  console.log(`screenshots: ${SCREENSHOTS}`)
})

/** Open the playground chat as `name` in `room` (query string: room, name, transport), on the file's playground or `on`. */
async function openChat(params: { room: string, name: string, transport?: 'ws' | 'sse' }, viewport = DESKTOP, on?: TestServer): Promise<Page> {
  const query = new URLSearchParams({ room: params.room, name: params.name, ...(params.transport ? { transport: params.transport } : {}) })
  const page = await playground.open(on ? on.url(`/?${query}`) : `/?${query}`, params.name, undefined, viewport)
  await waitForStatus(page, 'OPEN')
  return page
}

function status(page: Page) {
  return page.getAttribute(sel('status'), 'data-status')
}

async function waitForStatus(page: Page, wanted: 'OPEN' | 'CLOSED' | 'not OPEN', timeout = 15_000) {
  await expect.poll(() => status(page), { timeout, interval: 50 }).toSatisfy(value => wanted === 'not OPEN' ? value !== 'OPEN' : value === wanted)
}

/** Type into the composer and press Enter. */
async function send(page: Page, text: string) {
  await page.fill(sel('composer-input'), text)
  await page.press(sel('composer-input'), 'Enter')
  await expect.poll(() => page.inputValue(sel('composer-input'))).toBe('')
}

function texts(page: Page): Promise<string[]> {
  return page.locator(sel('message-text')).allTextContents()
}

/** The shown messages as `user: text`, with the pending flag. */
function messages(page: Page) {
  return page.locator(sel('message')).evaluateAll(items => items.map(item => ({
    user: item.querySelector('[data-testid="message-user"]')!.textContent!.trim(),
    text: item.querySelector('[data-testid="message-text"]')!.textContent!,
    pending: item.getAttribute('data-pending') === 'true',
    mine: item.getAttribute('data-mine') === 'true',
  })))
}

async function waitForTexts(page: Page, expected: string[], timeout = 10_000) {
  await expect.poll(() => texts(page), { timeout, interval: 50 }).toEqual(expected)
}

async function screenshot(page: Page, name: string) {
  await page.screenshot({ path: resolve(SCREENSHOTS, `${name}.png`) })
}

/** Ask the playground's bot route to post into `name` (`count` numbered messages, or one greeting). */
async function bot(name: string, count?: number) {
  const response = await fetch(playground.server.url('/api/bot'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room: name, count }) })
  expect(response.status).toBe(200)
}

describe('playground chat in a browser', () => {
  it('two pages chat with each other; an SSE page sees the conversation and can send', async () => {
    const name = room('talk')
    const alice = await openChat({ room: name, name: 'Alice' })
    const bob = await openChat({ room: name, name: 'Bob' })

    await send(alice, 'Hi Bob!')
    await waitForTexts(bob, ['Hi Bob!'])
    await send(bob, 'Hey Alice, how are you?')
    await waitForTexts(alice, ['Hi Bob!', 'Hey Alice, how are you?'])

    // A third page on SSE gets the history, then live messages, and sends over POST.
    const carol = await openChat({ room: name, name: 'Carol', transport: 'sse' })
    expect(await carol.textContent(sel('transport'))).toBe('SSE')
    await waitForTexts(carol, ['Hi Bob!', 'Hey Alice, how are you?'])
    await send(alice, 'Carol is here too')
    await send(carol, 'Grüße from SSE')
    const all = ['Hi Bob!', 'Hey Alice, how are you?', 'Carol is here too', 'Grüße from SSE']
    for (const page of [alice, bob, carol]) await waitForTexts(page, all)

    // Who said what, and own messages on the right.
    expect(await messages(alice)).toEqual([
      { user: 'Alice', text: 'Hi Bob!', pending: false, mine: true },
      { user: 'Bob', text: 'Hey Alice, how are you?', pending: false, mine: false },
      { user: 'Alice', text: 'Carol is here too', pending: false, mine: true },
      { user: 'Carol', text: 'Grüße from SSE', pending: false, mine: false },
    ])
    expect((await messages(carol)).map(message => message.mine)).toEqual([false, false, false, true])

    // The read-only /sse page follows the same room.
    const follower = await playground.open(`/sse?room=${name}`, 'follower')
    await waitForStatus(follower, 'OPEN')
    await waitForTexts(follower, all)
    expect(await follower.locator(sel('composer-input')).count()).toBe(0)

    await screenshot(alice, 'chat-desktop')
    await screenshot(carol, 'chat-sse-sender')
    await screenshot(follower, 'chat-sse-follower')
  })

  it('queues messages while the server is down and delivers each exactly once, in order, after it restarts', async () => {
    const name = room('restart')
    const pages = {
      Alice: await openChat({ room: name, name: 'Alice' }),
      Bob: await openChat({ room: name, name: 'Bob' }),
      Carol: await openChat({ room: name, name: 'Carol', transport: 'sse' }),
    }
    const entries = Object.entries(pages)
    for (const [user, page] of entries) await send(page, `${user} before`)
    const before = entries.map(([user]) => `${user} before`)
    for (const page of Object.values(pages)) await waitForTexts(page, before)

    await playground.server.stop()
    for (const page of Object.values(pages)) await waitForStatus(page, 'not OPEN')

    const offline = entries.flatMap(([user]) => [`${user} offline 1`, `${user} offline 2`])
    for (const [user, page] of entries) {
      await send(page, `${user} offline 1`)
      await send(page, `${user} offline 2`)
      // Shown at once, marked pending, after what the page already had.
      await expect.poll(() => messages(page)).toEqual([
        ...before.map(text => ({ user: text.split(' ')[0], text, pending: false, mine: text.startsWith(user) })),
        { user, text: `${user} offline 1`, pending: true, mine: true },
        { user, text: `${user} offline 2`, pending: true, mine: true },
      ])
      expect(await page.locator(`${sel('message')}[data-pending="true"] ${sel('message-pending')}`).count()).toBe(2)
    }
    await expect.poll(() => pages.Alice.textContent(sel('offline'))).toContain('2 messages wait')
    await screenshot(pages.Alice, 'restart-offline-pending')

    await playground.server.start()
    // Reconnecting uses backoff (up to 10 s between attempts).
    for (const page of Object.values(pages)) await waitForStatus(page, 'OPEN', 30_000)

    const settled = async (page: Page) => {
      const shown = await messages(page)
      return shown.length === before.length + offline.length && shown.every(message => !message.pending) ? shown.map(message => message.text) : undefined
    }
    for (const page of Object.values(pages)) await expect.poll(() => settled(page), { timeout: 15_000, interval: 100 }).toBeDefined()

    const reference = (await settled(pages.Alice))!
    for (const [user, page] of entries) {
      const shown = (await settled(page))!
      // Every message exactly once, in the server's order, the same on every page.
      expect(shown, user).toEqual(reference)
      expect(new Set(shown).size).toBe(shown.length)
      expect([...shown].sort()).toEqual([...before, ...offline].sort())
      expect(shown.slice(0, before.length)).toEqual(before)
      // Each sender's messages keep the order they were sent in.
      for (const sender of Object.keys(pages)) {
        expect(shown.filter(text => text.startsWith(`${sender} `))).toEqual([`${sender} before`, `${sender} offline 1`, `${sender} offline 2`])
      }
    }
    await screenshot(pages.Bob, 'restart-recovered')
  })

  it('delivers a burst beyond the rate limit in full and in order, without leaving messages pending', async () => {
    const name = room('burst')
    const alice = await openChat({ room: name, name: 'Alice' })
    const bob = await openChat({ room: name, name: 'Bob' })
    // The default limit lets 10 through at once, then 2 a second: the rest are refused for now.
    const burst = Array.from({ length: 14 }, (_, i) => `burst ${i + 1}`)
    // Typed in one go inside the page: at typing speed on a loaded machine, the bucket would refill in between.
    await alice.evaluate(({ texts, input }) => {
      const box = document.querySelector<HTMLTextAreaElement | HTMLInputElement>(input)!
      for (const text of texts) {
        box.value = text
        box.dispatchEvent(new Event('input', { bubbles: true }))
        box.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }))
      }
    }, { texts: burst, input: sel('composer-input') })
    await expect.poll(() => alice.getAttribute(sel('error'), 'data-code').catch(() => null)).toBe('rate_limited')
    await screenshot(alice, 'rate-limited')
    await waitForTexts(bob, burst, 20_000)
    await expect.poll(async () => (await messages(alice)).map(message => `${message.text}${message.pending ? ' (pending)' : ''}`), { timeout: 20_000 }).toEqual(burst)
  })

  it('shows untrusted text as text, and JSON pretty-printed', async () => {
    const name = room('xss')
    const alice = await openChat({ room: name, name: 'Alice' })
    const bob = await openChat({ room: name, name: 'Bob' })
    const attack = '<img src=x onerror="window.__xss=1">'
    const json = { type: 'order', items: [{ sku: 'A-1', qty: 2 }], note: '<b>bold?</b>' }

    await send(alice, attack)
    await send(alice, JSON.stringify(json))
    await send(bob, '<script>window.__xss=2</script><b>not bold</b>')
    const expected = [attack, JSON.stringify(json, null, 2), '<script>window.__xss=2</script><b>not bold</b>']
    for (const page of [alice, bob]) {
      await waitForTexts(page, expected)
      expect(await page.locator(`${sel('message-list')} img, ${sel('message-list')} script, ${sel('message-list')} b`).count()).toBe(0)
      expect(await page.locator(`${sel('message-list')} pre${sel('message-text')}`).count()).toBe(1)
      expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined()
    }
    await screenshot(bob, 'xss-and-json')
  })

  it('shows who is online and who is typing on the other page', async () => {
    const name = room('presence')
    const alice = await openChat({ room: name, name: 'Alice' })
    const bob = await openChat({ room: name, name: 'Bob' })
    const online = (page: Page) => page.locator(sel('user-name')).allTextContents()

    await expect.poll(async () => (await online(alice)).sort()).toEqual(['Alice', 'Bob'])
    await expect.poll(async () => (await online(bob)).sort()).toEqual(['Alice', 'Bob'])
    expect(await alice.textContent(`${sel('user')}[data-me="true"]`)).toContain('Alice')

    await bob.locator(sel('composer-input')).pressSequentially('Just a sec', { delay: 20 })
    await expect.poll(() => alice.locator(sel('typing')).textContent().catch(() => null)).toContain('Bob is typing')
    // Nobody sees their own typing notice.
    expect(await bob.locator(sel('typing')).count()).toBe(0)
    await screenshot(alice, 'presence-typing')

    // The typing notice goes away by itself; Bob leaving updates Alice's list.
    await expect.poll(() => alice.locator(sel('typing')).count(), { timeout: 8000 }).toBe(0)
    await bob.context().close()
    await expect.poll(() => online(alice)).toEqual(['Alice'])
  })

  // Needs frames with uid / guest (docs/PROTOCOL.md "Identity"): the identity branch's server.
  it('shows guests as "Name (guest)" in messages and in the people list', async () => {
    const name = room('guests')
    const alice = await openChat({ room: name, name: 'Alice' })
    await send(alice, 'Hello as a guest')
    await waitForTexts(alice, ['Hello as a guest'])
    const shownName = (page: Page, testid: string) => page.locator(sel(testid)).first().evaluate(element => element.parentElement!.textContent!.replace(/\s+/g, ' ').trim())
    await expect.poll(() => alice.locator(sel('message-guest')).count()).toBe(1)
    expect(await alice.locator(sel('message-user')).first().evaluate(element => `${element.textContent}${element.nextElementSibling?.textContent ?? ''}`)).toBe('Alice (guest)')
    // On one line, not stacked.
    const [nameBox, markBox] = await Promise.all(['message-user', 'message-guest'].map(testid => alice.locator(sel(testid)).first().boundingBox()))
    expect(Math.abs(nameBox!.y - markBox!.y)).toBeLessThan(2)
    await expect.poll(() => shownName(alice, 'user-name')).toContain('Alice (guest)')
  })

  it('switches room and transport from the page, shows errors, and fits a phone', async () => {
    const first = room('phone')
    const second = room('phone-b')
    const page = await openChat({ room: first, name: 'Dora' }, PHONE)
    await send(page, 'In the first room')
    await waitForTexts(page, ['In the first room'])

    // Settings are folded away on a phone.
    await page.click('[aria-controls="chat-sidebar"]')
    await page.fill(sel('room-input'), second)
    await page.press(sel('room-input'), 'Enter')
    await expect.poll(() => new URL(page.url()).searchParams.get('room')).toBe(second)
    await expect.poll(() => page.textContent(sel('room-title'))).toContain(second)
    await waitForStatus(page, 'OPEN')
    await waitForTexts(page, [])

    await page.click(`label:has(${sel('transport-sse')})`)
    await expect.poll(() => new URL(page.url()).searchParams.get('transport')).toBe('sse')
    await expect.poll(() => page.textContent(sel('transport'))).toBe('SSE')
    await waitForStatus(page, 'OPEN')
    await screenshot(page, 'phone-settings')
    await send(page, 'Second room, over SSE')
    await send(page, '{"hello":"phone","nested":{"ok":true}}')
    await waitForTexts(page, ['Second room, over SSE', JSON.stringify({ hello: 'phone', nested: { ok: true } }, null, 2)])

    // Refused locally: the error shows and the text stays in the box.
    const tooLong = 'x'.repeat(2001)
    await page.fill(sel('composer-input'), tooLong)
    await page.press(sel('composer-input'), 'Enter')
    await expect.poll(() => page.getAttribute(sel('error'), 'data-code').catch(() => null)).toBe('too_long')
    expect(await page.inputValue(sel('composer-input'))).toBe(tooLong)
    await page.fill(sel('composer-input'), '')
    await page.click('[aria-controls="chat-sidebar"]')

    // Nothing overflows the phone's width.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(PHONE.width)
    await screenshot(page, 'phone')
  })
})

describe('playground: older history, edits, deletes, reactions, a bot', () => {
  const scroller = (page: Page) => page.locator(sel('message-scroller'))
  const olderState = (page: Page) => page.getAttribute(sel('older'), 'data-state').catch(() => null)
  /** The message bubble whose text is `text`. */
  const bubble = (page: Page, text: string) => page.locator(sel('message'), { has: page.locator(sel('message-text'), { hasText: new RegExp(`^\\s*${text}\\s*$`) }) })
  const reactions = (page: Page, text: string) => bubble(page, text).locator(sel('reaction')).evaluateAll(chips => chips.map(chip => ({
    emoji: chip.getAttribute('data-emoji'),
    count: Number(chip.querySelector('[data-testid="reaction-count"]')!.textContent),
    mine: chip.getAttribute('aria-pressed') === 'true',
  })))

  it('loads older pages on scroll-up, in order, keeping what the reader sees in place', async () => {
    const name = room('older')
    await bot(name, 120)
    const all = Array.from({ length: 120 }, (_, i) => `Bot message ${i + 1} of 120`)
    const alice = await openChat({ room: name, name: 'Alice' })
    // The replay: the newest 50.
    await waitForTexts(alice, all.slice(70))
    expect(await olderState(alice)).toBe('more')

    const anchor = bubble(alice, all[70]!)
    // Scrolled to the top: where the oldest shown message is, before the page loads (on the scroll event).
    const before = await scroller(alice).evaluate((element) => {
      element.scrollTop = 0
      return element.querySelector('[data-testid="message"]')!.getBoundingClientRect().top
    })
    await waitForTexts(alice, all.slice(20))
    // The message at the top before the load is still where it was: the new page went above it.
    await expect.poll(async () => Math.abs((await anchor.boundingBox())!.y - before)).toBeLessThan(30)
    expect(await scroller(alice).evaluate(element => element.scrollTop)).toBeGreaterThan(200)
    await screenshot(alice, 'older-loaded')

    await scroller(alice).evaluate((element) => {
      element.scrollTop = 0
    })
    await waitForTexts(alice, all)
    await expect.poll(() => olderState(alice)).toBe('start')
    expect(await alice.textContent(sel('older'))).toContain('beginning of')
    // The button loads a page too (without scrolling, which would load one by itself).
    const bob = await openChat({ room: name, name: 'Bob' })
    await waitForTexts(bob, all.slice(70))
    await bob.locator(`${sel('older')} button`).dispatchEvent('click')
    await expect.poll(() => texts(bob)).toEqual(all.slice(20))
    // Over SSE the pages come by GET: the same in the page.
    const carol = await openChat({ room: name, name: 'Carol', transport: 'sse' })
    await waitForTexts(carol, all.slice(70))
    await scroller(carol).evaluate((element) => {
      element.scrollTop = 0
    })
    await waitForTexts(carol, all.slice(20))
    await scroller(alice).evaluate((element) => {
      element.scrollTop = 0
    })
    await screenshot(alice, 'older-beginning')
  })

  it('edits and deletes own messages and toggles reactions; the other page follows', async () => {
    const name = room('events')
    const alice = await openChat({ room: name, name: 'Alice' })
    // Bob on SSE: his reactions go by POST, everyone's events reach him on the stream.
    const bob = await openChat({ room: name, name: 'Bob', transport: 'sse' })
    await send(alice, 'Typo heer')
    await send(alice, 'Delete me')
    await send(bob, 'Nice')
    for (const page of [alice, bob]) await waitForTexts(page, ['Typo heer', 'Delete me', 'Nice'])
    await expect.poll(() => alice.locator(`${sel('message')}[data-pending="true"]`).count()).toBe(0)

    // Only one's own messages can be edited or deleted.
    expect(await bubble(alice, 'Nice').locator(`${sel('message-edit')}, ${sel('message-delete')}`).count()).toBe(0)
    expect(await bubble(bob, 'Typo heer').locator(`${sel('message-edit')}, ${sel('message-delete')}`).count()).toBe(0)

    // Inline edit: Enter saves; both pages show the new text, marked edited.
    await bubble(alice, 'Typo heer').hover()
    await bubble(alice, 'Typo heer').locator(sel('message-edit')).click()
    await alice.fill(sel('edit-input'), 'Typo here')
    await alice.press(sel('edit-input'), 'Enter')
    for (const page of [alice, bob]) {
      await waitForTexts(page, ['Typo here', 'Delete me', 'Nice'])
      await expect.poll(() => bubble(page, 'Typo here').locator(sel('message-edited')).count()).toBe(1)
    }
    expect(await bubble(bob, 'Nice').locator(sel('message-edited')).count()).toBe(0)

    // Delete asks first; cancelling keeps the message.
    const doomed = bubble(alice, 'Delete me')
    await doomed.hover()
    await doomed.locator(sel('message-delete')).click()
    await doomed.locator(sel('delete-cancel')).click()
    expect(await texts(alice)).toEqual(['Typo here', 'Delete me', 'Nice'])
    await doomed.hover()
    await doomed.locator(sel('message-delete')).click()
    await doomed.locator(sel('delete-confirm')).click()
    for (const page of [alice, bob]) await waitForTexts(page, ['Typo here', 'Nice'])

    // A reaction from the picker: counted on both pages, highlighted only where it is mine.
    const nice = bubble(alice, 'Nice')
    await nice.hover()
    await nice.locator(sel('react-button')).click()
    await nice.locator(`${sel('picker-emoji')}[data-emoji="👍"]`).click()
    await expect.poll(() => reactions(alice, 'Nice')).toEqual([{ emoji: '👍', count: 1, mine: true }])
    await expect.poll(() => reactions(bob, 'Nice')).toEqual([{ emoji: '👍', count: 1, mine: false }])
    // Bob joins in by clicking the chip, then takes it back.
    await bubble(bob, 'Nice').locator(`${sel('reaction')}[data-emoji="👍"]`).click()
    await expect.poll(() => reactions(alice, 'Nice')).toEqual([{ emoji: '👍', count: 2, mine: true }])
    await expect.poll(() => reactions(bob, 'Nice')).toEqual([{ emoji: '👍', count: 2, mine: true }])
    await screenshot(alice, 'events-reactions')
    await bubble(bob, 'Nice').locator(`${sel('reaction')}[data-emoji="👍"]`).click()
    await expect.poll(() => reactions(bob, 'Nice')).toEqual([{ emoji: '👍', count: 1, mine: false }])
    await expect.poll(() => reactions(alice, 'Nice')).toEqual([{ emoji: '👍', count: 1, mine: true }])
    await screenshot(bob, 'events-other-page')
  })

  it('replies: the quote shows the original\'s author and text, follows its edit and shows its delete, on both pages', async () => {
    const name = room('reply')
    const alice = await openChat({ room: name, name: 'Alice' })
    const bob = await openChat({ room: name, name: 'Bob', transport: 'sse' })
    await send(alice, 'Lunch at noon')
    await waitForTexts(bob, ['Lunch at noon'])
    const quote = (page: Page) => bubble(page, 'Yes please').locator(sel('message-quote'))

    // Reply from the message's actions: the composer says to what, and the quote goes with the message.
    await bubble(bob, 'Lunch at noon').hover()
    await bubble(bob, 'Lunch at noon').locator(sel('message-reply')).click()
    await expect.poll(() => bob.locator(sel('replying-to')).textContent()).toContain('Replying to Alice: Lunch at noon')
    await send(bob, 'Yes please')
    await expect.poll(() => bob.locator(sel('replying-to')).count()).toBe(0)
    for (const page of [alice, bob]) {
      await waitForTexts(page, ['Lunch at noon', 'Yes please'])
      await expect.poll(() => quote(page).textContent()).toMatch(/Alice\s+Lunch at noon/)
    }
    await screenshot(bob, 'reply-quote')

    // The original edited: every quote of it follows.
    await bubble(alice, 'Lunch at noon').hover()
    await bubble(alice, 'Lunch at noon').locator(sel('message-edit')).click()
    await alice.fill(sel('edit-input'), 'Lunch at one')
    await alice.press(sel('edit-input'), 'Enter')
    for (const page of [alice, bob]) await expect.poll(() => quote(page).textContent()).toMatch(/Alice\s+Lunch at one/)

    // Deleted: the quote says so, and keeps no text of it.
    await bubble(alice, 'Lunch at one').hover()
    await bubble(alice, 'Lunch at one').locator(sel('message-delete')).click()
    await bubble(alice, 'Lunch at one').locator(sel('delete-confirm')).click()
    for (const page of [alice, bob]) {
      await waitForTexts(page, ['Yes please'])
      await expect.poll(() => quote(page).getAttribute('data-deleted')).toBe('true')
      expect(await quote(page).textContent()).not.toContain('Lunch')
    }
    // A reload replays the reply with its quote as the server keeps it.
    await bob.reload()
    await waitForStatus(bob, 'OPEN')
    await expect.poll(() => quote(bob).getAttribute('data-deleted')).toBe('true')
    await screenshot(bob, 'reply-original-deleted')
  })

  it('stops offering to edit once the server\'s edit window has closed', async () => {
    // The window is runtime config on both sides: the server enforces it, the page greys the button out.
    const strict = await startServer({ output: 'playground', env: { NUXT_CHAT_EDIT_WINDOW: '3000', NUXT_PUBLIC_CHAT_EDIT_WINDOW: '3000' } })
    try {
      const alice = await openChat({ room: room('window'), name: 'Alice' }, DESKTOP, strict)
      await send(alice, 'Quick to fix')
      await expect.poll(() => alice.locator(`${sel('message')}[data-pending="true"]`).count()).toBe(0)
      const edit = bubble(alice, 'Quick to fix').locator(sel('message-edit'))
      expect(await edit.isEnabled()).toBe(true)
      await expect.poll(() => edit.isDisabled(), { timeout: 10_000 }).toBe(true)
      expect(await edit.getAttribute('title')).toContain('edit window')
      // Deleting one's own message has no window.
      expect(await bubble(alice, 'Quick to fix').locator(sel('message-delete')).isEnabled()).toBe(true)
      await bubble(alice, 'Quick to fix').hover()
      await screenshot(alice, 'edit-window-closed')
    }
    finally {
      // Its pages go before their server.
      await playground.closePages()
      await strict.stop()
    }
  })

  it('shows a message the bot posts from a server route on both pages', async () => {
    const name = room('bot')
    const alice = await openChat({ room: name, name: 'Alice' })
    const bob = await openChat({ room: name, name: 'Bob' })
    await expect.poll(async () => (await bob.locator(sel('user-name')).allTextContents()).length).toBe(2)
    await alice.click(sel('bot-button'))
    for (const page of [alice, bob]) {
      await expect.poll(() => messages(page)).toEqual([{ user: 'Bot', text: `Hello from a server route! 2 people are online in #${name}.`, pending: false, mine: false }])
    }
    // Nobody can edit or delete the bot's message.
    expect(await alice.locator(`${sel('message-edit')}, ${sel('message-delete')}`).count()).toBe(0)
    await screenshot(bob, 'bot-message')

    // Bad requests are refused with a reason, and nothing is posted.
    const post = (body: string) => fetch(playground.server.url('/api/bot'), { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    for (const body of ['', 'not json', '{}', JSON.stringify({ room: 'no spaces allowed' }), JSON.stringify({ room: name, count: 0 }), JSON.stringify({ room: name, count: 201 }), JSON.stringify({ room: name, count: '5' })]) {
      const response = await post(body)
      expect(response.status, body).toBe(400)
      expect((await response.json()).message, body).toMatch(/room|count/)
    }
    expect(await texts(alice)).toHaveLength(1)
  })
})

describe('playground: demo sign-in and an unread badge per room', () => {
  /** Each room of the sidebar's rooms list with its badge ('' when hidden). */
  const badges = (page: Page) => page.locator(sel('rooms-item')).evaluateAll(items => Object.fromEntries(items.map(item => [
    item.getAttribute('data-room'),
    item.querySelector('[data-testid="unread-badge"]')?.textContent?.trim() ?? '',
  ])))
  const roomItem = (page: Page, name: string) => page.locator(`${sel('rooms-item')}[data-room="${name}"]`)

  /** Another device of the same demo user (a new browser context with the first one's cookie), on SSE. */
  async function sameUserElsewhere(page: Page, name: string): Promise<Page> {
    const other = await playground.open(`/?${new URLSearchParams({ room: name, transport: 'sse' })}`, 'second device', async other => other.context().addCookies(await page.context().cookies()))
    await waitForStatus(other, 'OPEN')
    return other
  }

  it('counts another user\'s messages in a room live, and reading the room clears its badge on every device', async () => {
    const [first, second, third] = [room('unread-1'), room('unread-2'), room('unread-3')]
    const ann = await openChat({ room: second, name: 'Ann' })
    // A guest has no rooms list, only a hint.
    expect(await ann.textContent(sel('rooms-hint'))).toContain('Sign in')
    expect(await ann.locator(sel('rooms')).count()).toBe(0)

    // The demo sign-in reloads the page as the signed-in user `demo:Ann`.
    await ann.click(sel('demo-sign-in-button'))
    await expect.poll(() => ann.locator(sel('demo-user')).textContent().catch(() => null), { timeout: 15_000 }).toBe('Signed in as Ann (demo)')
    await waitForStatus(ann, 'OPEN')
    // Her name now comes from the sign-in: the name field shows it and cannot change it.
    expect(await ann.inputValue(sel('name-input'))).toBe('Ann')
    expect(await ann.isEditable(sel('name-input'))).toBe(false)
    await expect.poll(() => badges(ann)).toEqual({ [second]: '' })
    // Ann moves on to another room; the first one stays in her list.
    await ann.fill(sel('room-input'), first)
    await ann.press(sel('room-input'), 'Enter')
    await expect.poll(() => badges(ann)).toEqual({ [first]: '', [second]: '' })
    expect(await roomItem(ann, first).getAttribute('aria-current')).toBe('page')

    // Someone else (a guest) writes 3 messages into the room Ann is not looking at.
    const bob = await openChat({ room: second, name: 'Bob' })
    for (const text of ['one', 'two', '<b>three</b>']) await send(bob, text)
    await expect.poll(() => badges(ann)).toEqual({ [first]: '', [second]: '3' })
    // The last message, as plain text.
    expect(await roomItem(ann, second).locator(sel('rooms-last')).textContent()).toBe('Bob (guest): <b>three</b>')
    expect(await roomItem(ann, second).locator('b').count()).toBe(0)

    // Ann's second device (its rooms list over SSE) sees the same.
    const annElsewhere = await sameUserElsewhere(ann, third)
    await expect.poll(() => badges(annElsewhere)).toEqual({ [first]: '', [second]: '3', [third]: '' })
    await screenshot(ann, 'unread-badge')

    // Ann opens the room from the list: she has seen its messages, on every device.
    await roomItem(ann, second).click()
    await expect.poll(() => ann.textContent(sel('room-title'))).toContain(second)
    await waitForTexts(ann, ['one', 'two', '<b>three</b>'])
    await expect.poll(() => badges(ann)).toEqual({ [first]: '', [second]: '', [third]: '' })
    await expect.poll(() => badges(annElsewhere)).toEqual({ [first]: '', [second]: '', [third]: '' })

    // A room Ann is not in at the moment collects more than a badge shows.
    await bot(first, 120)
    for (const page of [ann, annElsewhere]) await expect.poll(() => badges(page)).toEqual({ [first]: '99+', [second]: '', [third]: '' })

    // Signing out leaves the hint again; the guest page never saw a list.
    await ann.click(sel('demo-sign-out'))
    await expect.poll(() => ann.locator(sel('rooms-hint')).count(), { timeout: 15_000 }).toBe(1)
    expect(await bob.locator(sel('rooms')).count()).toBe(0)
  })
})

describe('playground: what a built playground refuses', () => {
  let built: TestServer

  beforeAll(async () => {
    built = await startServer({ output: 'playground' })
  })

  afterAll(async () => {
    await built?.stop()
  })

  it('signs a demo name in, unless it is reserved: then the cookie leaves a guest', async () => {
    const name = room('demo-reserved')
    const welcomed = async (demo: string) => {
      const socket = await ChatSocket.open(built.wsUrl(''), { room: name }, { headers: { cookie: `playground-demo-user=${encodeURIComponent(demo)}` } })
      const welcome = await socket.waitFor(frame => frame.type === 'system' && frame.event === 'welcome') as { peer: { id: string, name: string, guest?: true } }
      socket.ws.close()
      return welcome.peer
    }
    expect(await welcomed('Ann')).toEqual({ id: 'demo:Ann', name: 'Ann' })
    // Built-in (server, system), the playground's reservedNames (admin), any case, and a look-alike (Cyrillic ѕ).
    for (const reserved of ['server', 'System', 'admin', 'ADMIN', '\u0455erver']) {
      const peer = await welcomed(reserved)
      expect(peer.guest, reserved).toBe(true)
      expect(peer.id, reserved).toMatch(/^guest:/)
      expect(peer.name, reserved).not.toBe(reserved)
    }
  })

  it('posts the bot\'s greeting but refuses its numbered messages (count is for nuxt dev)', async () => {
    const name = room('bot-bulk')
    const post = (body: unknown) => fetch(built.url('/api/bot'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const bulk = await post({ room: name, count: 5 })
    expect(bulk.status).toBe(403)
    expect((await bulk.json()).message).toMatch(/nuxt dev/)
    // Nothing was stored: the greeting is the room's first message.
    const greeting = await post({ room: name })
    expect(greeting.status).toBe(200)
    expect(await greeting.json()).toEqual({ ids: [1] })
  })
})
