/**
 * Cross-origin SSE and POST in a real browser: a page served from one loopback origin talks to
 * the chat on another (`localhost` vs `127.0.0.1`), with cookies. Only an origin listed in
 * `allowedOrigins` may; another origin's page sees the requests fail.
 */
import { createServer, type Server } from 'node:http'
import { randomUUID } from 'node:crypto'
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { launchChromium } from '../utils/browser'
import { freePort, startServer, type TestServer } from '../utils/server'

let chat: TestServer
let browser: Browser
let pages: Server[] = []
let allowedPort: number
let otherPort: number

/** The page a foreign site would serve: it streams a room and posts into it, reporting what it saw. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>cross-origin chat</title><script>
window.runChat = async (base, room) => {
  const result = { frames: [], post: null, streamError: false }
  const source = new EventSource(base + '/api/sse?room=' + room, { withCredentials: true })
  source.onmessage = (event) => result.frames.push(JSON.parse(event.data))
  source.onerror = () => { result.streamError = true }
  await new Promise(resolve => setTimeout(resolve, 1000))
  try {
    // JSON body: not a simple request, so the browser sends a preflight first.
    const response = await fetch(base + '/api/sse?room=' + room, { method: 'POST', credentials: 'include', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ message: 'hello across origins', cid: 'x-1' }) })
    result.post = { status: response.status, body: await response.json() }
  }
  catch (error) {
    result.post = { error: String(error) }
  }
  await new Promise(resolve => setTimeout(resolve, 1000))
  source.close()
  return result
}
// An upload as useChat sends it: the name in a header (so the browser sends a preflight first), with credentials.
window.upload = (base, room) => new Promise((resolve) => {
  const xhr = new XMLHttpRequest()
  xhr.open('POST', base + '/_chat/files?room=' + room)
  xhr.withCredentials = true
  xhr.setRequestHeader('x-file-name', encodeURIComponent('notes across origins.txt'))
  xhr.onload = () => resolve({ status: xhr.status, body: JSON.parse(xhr.responseText) })
  xhr.onerror = () => resolve({ status: xhr.status })
  xhr.send(new Blob(['hello from another origin']))
})
</script>`

beforeAll(async () => {
  ;[allowedPort, otherPort] = await Promise.all([freePort(), freePort()])
  chat = await startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_ALLOWED_ORIGINS: JSON.stringify([`http://localhost:${allowedPort}`]) } })
  // The same page on two ports: two origins.
  pages = [allowedPort, otherPort].map(() => createServer((_request, response) => response.writeHead(200, { 'content-type': 'text/html' }).end(PAGE)))
  await Promise.all([allowedPort, otherPort].map((port, i) => new Promise<void>(resolve => pages[i]!.listen({ port, host: '127.0.0.1' }, resolve))))
  browser = await launchChromium()
})

afterAll(async () => {
  await browser?.close()
  for (const server of pages) {
    server.closeAllConnections()
    server.close()
  }
  await chat?.stop()
})

/** Run the page's `script` (`runChat` or `upload`) from `origin` against the chat server, for `room`. */
async function runFrom(origin: string, room: string, script: 'runChat' | 'upload' = 'runChat') {
  const context = await browser.newContext()
  const page = await context.newPage()
  await page.goto(`${origin}/`)
  const result = await page.evaluate(([base, name, run]) => (window as unknown as Record<string, (base: string, room: string) => Promise<unknown>>)[run!]!(base!, name!), [chat.url('').replace(/\/$/, ''), room, script])
  await context.close()
  return result as { frames: { type: string, message: string }[], post: { status?: number, body?: { type: string, message: string }, error?: string }, streamError: boolean }
}

const uploadFrom = async (origin: string, room: string) => await runFrom(origin, room, 'upload') as unknown as { status: number, body?: { id: string, name: string } }

describe('CORS in Chromium', () => {
  it('lets a page from an allowed origin stream a room and POST into it with credentials', async () => {
    const room = `cors-${randomUUID().slice(0, 8)}`
    const result = await runFrom(`http://localhost:${allowedPort}`, room)
    expect(result.streamError).toBe(false)
    expect(result.frames.some(frame => frame.type === 'presence')).toBe(true)
    expect(result.post).toMatchObject({ status: 200, body: { type: 'message', message: 'hello across origins' } })
    // The stream saw its own message come back.
    expect(result.frames.some(frame => frame.type === 'message' && frame.message === 'hello across origins')).toBe(true)
  })

  it('refuses a page from another origin: no stream, no POST', async () => {
    const room = `cors-${randomUUID().slice(0, 8)}`
    const result = await runFrom(`http://127.0.0.1:${otherPort}`, room)
    expect(result.frames).toEqual([])
    expect(result.streamError).toBe(true)
    expect(result.post?.error).toMatch(/Failed to fetch/)
    // Nothing was stored either: the preflight was refused before the POST was sent.
    const replay = await fetch(`${chat.url('/api/sse')}?room=${room}`, { signal: AbortSignal.timeout(500) }).then(response => response.text()).catch(() => '')
    expect(replay).not.toMatch(/hello across origins/)
  })

  it('lets a page from an allowed origin upload a file (its name header needs a preflight); another origin\'s upload fails', async () => {
    const room = `cors-${randomUUID().slice(0, 8)}`
    expect(await uploadFrom(`http://localhost:${allowedPort}`, room)).toMatchObject({ status: 201, body: { id: expect.any(String), name: 'notes across origins.txt' } })
    expect(await uploadFrom(`http://127.0.0.1:${otherPort}`, room)).toEqual({ status: 0 })
  })

  it('answers the push routes\' preflights (JSON bodies, DELETE) for an allowed origin only', async () => {
    const ask = (path: string, origin: string) => fetch(chat.url(path), { method: 'OPTIONS', headers: { 'origin': origin, 'access-control-request-method': 'DELETE', 'access-control-request-headers': 'content-type' } })
    for (const [path, methods] of [['/_chat/push', 'POST, DELETE, OPTIONS'], ['/_chat/push/mute', 'GET, HEAD, POST, OPTIONS']] as const) {
      const allowed = await ask(path, `http://localhost:${allowedPort}`)
      expect(allowed.status).toBe(204)
      expect(allowed.headers.get('access-control-allow-origin')).toBe(`http://localhost:${allowedPort}`)
      // Each route's own methods, as its Allow lists them.
      expect(allowed.headers.get('access-control-allow-methods')).toBe(methods)
      expect(allowed.headers.get('allow')).toBe(methods)
      expect((await ask(path, `http://127.0.0.1:${otherPort}`)).status).toBe(403)
    }
  })
})
