/**
 * The playground's AI member (playground/server/plugins/assistant.ts, an offline scripted model)
 * in Chromium: mentioned, it streams its reply into the room; two pages watch it grow, one of
 * them switching from WebSocket to SSE mid-stream; the asker can stop a reply.
 */
import { resolve } from 'node:path'
import type { Page } from 'playwright-core'
import { describe, expect, it } from 'vitest'
import { playgroundInChromium, SCREENSHOTS } from '../utils/browser'

const playground = playgroundInChromium()
let roomCounter = 0

const room = (label: string) => `${label}-${Date.now().toString(36)}-${roomCounter++}`
const sel = (testid: string) => `[data-testid="${testid}"]`

async function openChat(params: { room: string, name: string, transport?: 'ws' | 'sse' }): Promise<Page> {
  const query = new URLSearchParams({ room: params.room, name: params.name, ...(params.transport ? { transport: params.transport } : {}) })
  const page = await playground.open(`/?${query}`, params.name)
  await expect.poll(() => page.getAttribute(sel('status'), 'data-status'), { timeout: 15_000, interval: 50 }).toBe('OPEN')
  return page
}

async function send(page: Page, text: string) {
  await page.fill(sel('composer-input'), text)
  await page.press(sel('composer-input'), 'Enter')
  await expect.poll(() => page.inputValue(sel('composer-input'))).toBe('')
}

/** The assistant's reply as the page shows it: its text and whether it is still being written. */
function reply(page: Page) {
  return page.locator(sel('message')).evaluateAll(items => items
    .filter(item => item.querySelector('[data-testid="message-user"]')?.textContent?.trim() === 'Assistant')
    .map(item => ({
      text: item.querySelector('[data-testid="message-text"]')!.textContent!.trim(),
      streaming: item.getAttribute('data-streaming') === 'true',
      incomplete: item.querySelector('[data-testid="message-incomplete"]')?.textContent ?? null,
    })))
}

async function screenshot(page: Page, name: string) {
  await page.screenshot({ path: resolve(SCREENSHOTS, `${name}.png`) })
}

describe('the playground assistant in a browser', () => {
  it('streams its answer to a mention into both pages, one of them switching to SSE mid-stream', async () => {
    const name = room('assistant')
    const ann = await openChat({ room: name, name: 'Ann' })
    const ben = await openChat({ room: name, name: 'Ben' })
    await send(ann, '@Assistant how do streamed replies work?')

    // It appears at once and grows, on both pages.
    const lengths: number[] = []
    await expect.poll(async () => {
      const [shown] = await reply(ben)
      if (shown?.streaming) lengths.push(shown.text.length)
      return new Set(lengths).size
    }, { timeout: 10_000, interval: 30 }).toBeGreaterThanOrEqual(3)
    expect(lengths).toEqual([...lengths].sort((x, y) => x - y))
    expect((await reply(ann))[0]?.streaming).toBe(true)
    await screenshot(ann, 'assistant-streaming-ann')

    // Ben switches to SSE while it is being written: a new connection, the text so far, then the rest.
    await ben.click(`label:has(${sel('transport-sse')})`)
    await expect.poll(() => ben.textContent(sel('transport'))).toBe('SSE')
    await expect.poll(() => ben.getAttribute(sel('status'), 'data-status'), { timeout: 15_000, interval: 50 }).toBe('OPEN')
    expect((await reply(ann))[0]?.streaming).toBe(true)
    await screenshot(ben, 'assistant-streaming-ben-sse')

    await expect.poll(async () => (await reply(ann))[0]?.streaming, { timeout: 20_000, interval: 100 }).toBe(false)
    await expect.poll(async () => (await reply(ben))[0]?.streaming, { timeout: 20_000, interval: 100 }).toBe(false)
    const [final] = await reply(ann)
    expect(final!.text).toMatch(/^You asked: “how do streamed replies work\?”\. I am the playground's scripted assistant/)
    expect(final!.text).toMatch(/assistant\.ts\.$/)
    expect(final!.incomplete).toBeNull()
    expect(await reply(ben)).toEqual([final])
    await screenshot(ann, 'assistant-done-ann')
    await screenshot(ben, 'assistant-done-ben-sse')
  })

  it('the asker stops a reply: it ends as stopped on every page', async () => {
    const name = room('assistant-stop')
    const ann = await openChat({ room: name, name: 'Ann', transport: 'sse' })
    const ben = await openChat({ room: name, name: 'Ben' })
    await send(ann, '@Assistant say something long')
    await ann.waitForSelector(sel('message-stop'), { timeout: 10_000 })
    // Only the asker is offered to stop it.
    expect(await ben.locator(sel('message-stop')).count()).toBe(0)
    await expect.poll(async () => (await reply(ben))[0]?.text.length ?? 0, { timeout: 10_000 }).toBeGreaterThan(20)
    await ann.click(sel('message-stop'))
    for (const page of [ann, ben]) await expect.poll(async () => (await reply(page))[0]?.incomplete, { timeout: 10_000, interval: 50 }).toBe('stopped')
    const [stopped] = await reply(ann)
    expect(stopped!.streaming).toBe(false)
    expect(stopped!.text.length).toBeLessThan(300)
    expect(await reply(ben)).toEqual([stopped])
    // Its end is the end of its typing, without waiting for the typing timeout.
    await expect.poll(() => ben.locator('.typing').count(), { timeout: 1000, interval: 50 }).toBe(0)
    await screenshot(ben, 'assistant-stopped')
  })
})
