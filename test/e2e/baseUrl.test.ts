/**
 * An app served under `app.baseURL: '/chat-app/'` (test/fixtures/base-url): the WebSocket route,
 * the SSE stream, POST and useChat's own URLs all live under the base path, in a real browser.
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { launchChromium } from '../utils/browser'
import { ChatSocket, ChatStream, postMessage } from '../utils/clients'
import { outputs, serverRoot, startServer, type TestServer } from '../utils/server'

const fixture = fileURLToPath(new URL('../fixtures/base-url', import.meta.url))
const entry = outputs.baseUrl
const nuxi = fileURLToPath(new URL('../../node_modules/@nuxt/cli/bin/nuxi.mjs', import.meta.url))

describe('app.baseURL /chat-app/', () => {
  let server: TestServer
  let browser: Browser | undefined

  beforeAll(async () => {
    // Built here, not in globalSetup: only this file needs it (CHAT_SKIP_BUILD=1 reuses it).
    // Another platform's build comes from scripts/platform.sh.
    if (!serverRoot && (!process.env.CHAT_SKIP_BUILD || !existsSync(entry))) execFileSync(process.execPath, [nuxi, 'build', fixture], { stdio: 'pipe' })
    server = await startServer({ entry })
  }, 300_000)

  afterAll(async () => {
    await browser?.close()
    await server?.stop()
  })

  it('tells the browser the chat URLs under the base path', async () => {
    const html = await (await fetch(server.url('/chat-app/'))).text()
    expect(html).toContain('route:"/chat-app/_ws"')
    expect(html).toContain('sseRoute:"/chat-app/api/sse"')
  })

  it('serves the WebSocket, the SSE stream and POST under the base path', async () => {
    const room = `base-${Date.now().toString(36)}`
    const stream = await ChatStream.open(server.url('/chat-app'), { room, name: 'Reader' })
    expect(stream.status).toBe(200)
    const socket = await ChatSocket.open(server.wsUrl('/chat-app'), { room, name: 'Writer' })
    await socket.waitFor(frame => frame.type === 'system' && frame.event === 'welcome', 'the welcome')
    socket.send('over WebSocket')
    await stream.waitFor(frame => frame.type === 'message' && frame.message === 'over WebSocket', 'the WebSocket message on the stream')
    const posted = await postMessage(server.url('/chat-app'), 'over POST', { room, name: 'Poster' })
    expect(posted.status).toBe(200)
    await socket.waitFor(frame => frame.type === 'message' && frame.message === 'over POST', 'the POSTed message on the socket')
    await Promise.all([socket.close(), stream.close()])
  })

  it('answers a method a route does not serve 405 with its Allow under the base path, and HEAD as GET', async () => {
    const put = await fetch(server.url('/chat-app/api/sse?room=base'), { method: 'PUT' })
    expect(put.status).toBe(405)
    expect(put.headers.get('allow')).toBe('GET, HEAD, POST, OPTIONS')
    expect(await put.json()).toMatchObject({ type: 'error', code: 'bad_request' })
    const file = await fetch(server.url('/chat-app/_chat/files/0123456789abcdef'), { method: 'DELETE' })
    expect(file.status).toBe(405)
    expect(file.headers.get('allow')).toBe('GET, HEAD, OPTIONS')
    const head = await fetch(server.url('/chat-app/api/sse/search?q=base'), { method: 'HEAD' })
    expect(head.headers.get('content-type')).toBe('application/json')
  })

  it('useChat connects and sends over both transports from a page under the base path', async () => {
    browser = await launchChromium()
    const page = await browser.newPage()
    const errors: string[] = []
    page.on('pageerror', error => errors.push(error.message))
    const requests: string[] = []
    page.on('request', request => requests.push(new URL(request.url()).pathname))
    page.on('websocket', socket => requests.push(new URL(socket.url()).pathname))
    await page.goto(server.url('/chat-app/'))
    await page.waitForFunction(() => ['ws', 'sse'].every(id => document.querySelector(`[data-testid="${id}-status"]`)?.textContent?.trim() === 'OPEN'), undefined, { timeout: 15_000 })
    await page.click('[data-testid="ws-send"]')
    await page.click('[data-testid="sse-send"]')
    const list = page.locator('[data-testid="sse-messages"]')
    await expect.poll(() => list.textContent(), { timeout: 10_000 }).toContain('Page: over WebSocket')
    await expect.poll(() => list.textContent(), { timeout: 10_000 }).toContain('Stream: over POST')
    expect(errors).toEqual([])
    // Every chat request the page made went to the base path.
    const chatRequests = requests.filter(path => /_ws|api\/sse/.test(path))
    expect(chatRequests.length).toBeGreaterThanOrEqual(3)
    expect(chatRequests.filter(path => !path.startsWith('/chat-app/'))).toEqual([])
  })
})
