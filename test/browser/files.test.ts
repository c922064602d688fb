/**
 * Attachments in the playground, in real Chromium (issue 25): an image dropped and another
 * pasted into the composer show as previews, a file sent over a throttled link shows its upload
 * progress, and the other person sees the image (loaded from the server) and the file as a chip
 * with its name and size; a click opens the image. Screenshots in test-output/screenshots.
 */
import { readdirSync } from 'node:fs'
import { resolve } from 'node:path'
import type { Page } from 'playwright-core'
import { describe, expect, it } from 'vitest'
import { playgroundInChromium, SCREENSHOTS } from '../utils/browser'
import { png } from '../utils/files'

const playground = playgroundInChromium()
const sel = (testid: string) => `[data-testid="${testid}"]`

async function openChat(room: string, name: string, before?: (page: Page) => Promise<void>): Promise<Page> {
  const page = await playground.open(`/?${new URLSearchParams({ room, name })}`, name, before)
  await expect.poll(() => page.getAttribute(sel('status'), 'data-status'), { timeout: 15_000 }).toBe('OPEN')
  return page
}

/** Hand `bytes` to the page as a File in a DataTransfer, then fire `event` (`drop` on the composer, `paste` on the input) with it. */
async function give(page: Page, event: 'drop' | 'paste', bytes: Buffer, name: string, type: string) {
  await page.evaluate(({ event, base64, name, type }) => {
    const data = Uint8Array.from(atob(base64), char => char.charCodeAt(0))
    const transfer = new DataTransfer()
    transfer.items.add(new File([data], name, { type }))
    if (event === 'drop') {
      const target = document.querySelector('[data-testid="composer"]')!
      target.dispatchEvent(new DragEvent('dragover', { dataTransfer: transfer, bubbles: true, cancelable: true }))
      target.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }))
    }
    else {
      document.querySelector('[data-testid="composer-input"]')!.dispatchEvent(new ClipboardEvent('paste', { clipboardData: transfer, bubbles: true, cancelable: true }))
    }
  }, { event, base64: bytes.toString('base64'), name, type })
}

describe('attachments in the playground', () => {
  it('drop and paste show previews; an upload shows its progress; the other person sees the image and the file chip, and a click opens the image', async () => {
    const room = `files-${Date.now().toString(36)}`
    const ann = await openChat(room, 'Ann')
    const bob = await openChat(room, 'Bob')

    await give(ann, 'drop', png(320, 200, 1), 'sunset.png', 'image/png')
    await give(ann, 'paste', png(160, 160, 120), 'pasted.png', 'image/png')
    const previews = ann.locator(sel('staged-preview'))
    await expect.poll(() => previews.count()).toBe(2)
    // The previews are the local bytes, drawn.
    await expect.poll(() => previews.evaluateAll(images => images.map(image => (image as HTMLImageElement).naturalWidth))).toEqual([320, 160])
    await ann.screenshot({ path: resolve(SCREENSHOTS, 'files-staged.png') })
    await ann.fill(sel('composer-input'), 'two pictures')
    await ann.press(sel('composer-input'), 'Enter')
    const images = bob.locator(`${sel('message')}:has-text("two pictures") ${sel('attachment-image')} img`)
    await expect.poll(() => images.count(), { timeout: 10_000 }).toBe(2)
    // Loaded from the server (the files route), not from Ann's memory.
    await expect.poll(() => images.evaluateAll(list => list.map(image => [(image as HTMLImageElement).naturalWidth, new URL((image as HTMLImageElement).src).pathname.startsWith('/_chat/files/')]))).toEqual([[320, true], [160, true]])
    // Each carries the small preview Ann's browser made (a WebP of at most 64 pixels a side), shown behind it while it loads.
    const anchors = bob.locator(`${sel('message')}:has-text("two pictures") ${sel('attachment-image')}`)
    expect(await anchors.evaluateAll(list => list.map(anchor => anchor.getAttribute('data-preview')))).toEqual(['true', 'true'])
    const sides = await images.evaluateAll(list => Promise.all(list.map(async (image) => {
      const preview = new Image()
      preview.src = getComputedStyle(image).backgroundImage.slice(5, -2)
      await preview.decode()
      return [preview.src.slice(0, 23), preview.naturalWidth, preview.naturalHeight]
    })))
    expect(sides).toEqual([['data:image/webp;base64,', 64, 40], ['data:image/webp;base64,', 64, 64]])

    // A 5 MB file over a link of about 2 MB/s: the pending message shows the upload's progress.
    const cdp = await ann.context().newCDPSession(ann)
    await cdp.send('Network.enable')
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 20, downloadThroughput: 10 * 1024 * 1024, uploadThroughput: 2 * 1024 * 1024 })
    await give(ann, 'drop', Buffer.alloc(5 * 1024 * 1024, 'report line\n'), 'report.txt', 'text/plain')
    await expect.poll(() => ann.locator(sel('staged-file')).count()).toBe(1)
    await ann.press(sel('composer-input'), 'Enter')
    const bar = ann.locator(sel('upload-progress'))
    await expect.poll(async () => Number(await bar.getAttribute('data-progress', { timeout: 100 }).catch(() => 0)), { timeout: 10_000, interval: 50 }).toBeGreaterThan(0.2)
    const seen = Number(await bar.getAttribute('data-progress'))
    expect(seen).toBeLessThan(1)
    await ann.screenshot({ path: resolve(SCREENSHOTS, 'files-uploading.png') })
    const chip = bob.locator(sel('attachment-file'))
    await expect.poll(() => chip.count(), { timeout: 20_000 }).toBe(1)
    expect(await chip.locator(sel('attachment-name')).textContent()).toBe('report.txt')
    expect(await chip.locator(sel('attachment-size')).textContent()).toBe('5.0 MB')
    await expect.poll(() => bar.count()).toBe(0)
    await bob.screenshot({ path: resolve(SCREENSHOTS, 'files-received.png') })

    // A click opens the image itself, served inline.
    const [opened] = await Promise.all([bob.context().waitForEvent('page'), images.first().click()])
    await opened!.waitForLoadState()
    // Chromium's image document (the file's CSP sandboxes it: no fetch from there, nothing runs).
    expect(await opened!.evaluate(() => [document.contentType, document.images[0]?.naturalWidth])).toEqual(['image/png', 320])
    await opened!.screenshot({ path: resolve(SCREENSHOTS, 'files-opened.png') })
    expect(new URL(opened!.url()).pathname).toMatch(/^\/_chat\/files\/[\w-]{22}$/)
  }, 60_000)

  it('a message whose upload finished survives a dropped connection: resent with its cid and the same upload, stored once, uploaded once', async () => {
    const room = `files-drop-${Date.now().toString(36)}`
    const uploads = () => readdirSync(resolve(playground.server.cwd, '.data/chat-files')).length
    let dropped = 0
    // The first message frame that carries files never reaches the server: the socket drops instead.
    const ann = await openChat(room, 'Ann', page => page.routeWebSocket(/\/_ws/, (ws) => {
      const upstream = ws.connectToServer()
      ws.onMessage((message) => {
        if (typeof message === 'string' && message.includes('"files"') && !dropped++) {
          upstream.close()
          void ws.close({ code: 1012, reason: 'dropped by the test' })
          return
        }
        upstream.send(message)
      })
    }))
    const bob = await openChat(room, 'Bob')
    const before = uploads()
    await give(ann, 'drop', png(64, 48, 40), 'once.png', 'image/png')
    await ann.fill(sel('composer-input'), 'sent once')
    await ann.press(sel('composer-input'), 'Enter')
    const shown = bob.locator(`${sel('message')}:has-text("sent once")`)
    await expect.poll(() => shown.count(), { timeout: 20_000 }).toBe(1)
    expect(dropped).toBeGreaterThanOrEqual(2)
    await expect.poll(() => shown.locator(`${sel('attachment-image')} img`).evaluate(image => (image as HTMLImageElement).naturalWidth)).toBe(64)
    // Still once a moment later, and on Ann's side stored (not failed); the file went up once.
    await new Promise(resolve => setTimeout(resolve, 500))
    expect(await shown.count()).toBe(1)
    expect(await ann.locator(`${sel('message')}:has-text("sent once")`).getAttribute('data-pending')).toBe('false')
    expect(await ann.locator(`${sel('message')}:has-text("sent once")`).getAttribute('data-failed')).toBe('false')
    expect(uploads() - before).toBe(1)
    await bob.screenshot({ path: resolve(SCREENSHOTS, 'files-after-drop.png') })
  }, 60_000)
})
