/**
 * Under a real `nuxi dev` (test/fixtures/basic, its own build directory): the DevTools routes
 * answer only their own tab (same origin, JSON), so another site's form cannot post "as the
 * server"; and the client address is the one nuxi's listener saw, so an `X-Forwarded-For` the
 * client sends does not escape the per-address connection cap.
 */
import { request as httpRequest } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChatSocket, upgradeStatus } from '../utils/clients'
import { startNuxiDev, type DevServer } from '../utils/nuxiDev'
import { freePort } from '../utils/server'

const DEVTOOLS = '/__nuxt_chat/devtools'
/** The per-address cap this dev server runs with. */
const CAP = 3

let dev: DevServer | undefined
let base = ''
let host = ''
const room = (label: string) => `dv-${label}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`
const sockets: ChatSocket[] = []

beforeAll(async () => {
  const port = await freePort()
  host = `127.0.0.1:${port}`
  base = `http://${host}`
  // Its own build directory (.nuxt-devserver-test); rooms in memory, so the fixture's builds and databases are untouched.
  dev = await startNuxiDev('test/fixtures/basic', {
    port,
    env: { CHAT_FIXTURE_OUT: '.output-devserver-test', NUXT_CHAT_STORAGE: 'memory', NUXT_CHAT_MAX_CONNECTIONS_PER_IP: String(CAP) },
    ready: async at => (await fetch(`${at}${DEVTOOLS}`, { headers: { 'sec-fetch-site': 'same-origin' } })).status === 200,
  })
}, 180_000)

afterAll(async () => {
  await Promise.all(sockets.map(socket => socket.close().catch(() => {})))
  await dev?.stop()
})

/** The chat messages a newcomer to `name` is replayed (nothing stored: none). */
async function storedIn(name: string): Promise<string[]> {
  const socket = await ChatSocket.open(`ws://${host}`, { room: name })
  await socket.waitFor(frame => frame.type === 'system' && frame.event === 'welcome', 'the welcome')
  // The replay follows the welcome in the same write; give a stray frame a moment anyway.
  await new Promise(resolve => setTimeout(resolve, 200))
  await socket.close()
  return socket.messages.map(message => `${message.user}: ${message.message}`)
}

const post = (headers: Record<string, string>, body: string) => fetch(`${base}${DEVTOOLS}/post`, { method: 'POST', headers, body })

describe('the DevTools routes under nuxi dev', () => {
  it('refuse another site\'s form POST (403) and store nothing', async () => {
    const name = room('form')
    const response = await post({
      'content-type': 'application/x-www-form-urlencoded',
      'origin': 'https://evil.example',
      'sec-fetch-site': 'cross-site',
      'sec-fetch-mode': 'navigate',
    }, new URLSearchParams({ room: name, message: 'posted by another site' }).toString())
    expect(response.status).toBe(403)
    expect(await response.json()).toMatchObject({ type: 'error', code: 'forbidden' })
    expect(await storedIn(name)).toEqual([])
  })

  it('refuse what a page of another site can send without asking (text/plain JSON, no Origin) and a non-JSON body from the tab', async () => {
    const name = room('plain')
    const json = JSON.stringify({ room: name, message: 'smuggled' })
    // A cross-site fetch in `no-cors` mode: a "simple" request, its body JSON in text/plain.
    expect((await post({ 'content-type': 'text/plain', 'origin': 'https://evil.example', 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'no-cors' }, json)).status).toBe(403)
    // The same site on another port, or subdomain, is another origin.
    expect((await post({ 'content-type': 'application/json', 'origin': 'http://127.0.0.1:1', 'sec-fetch-site': 'same-site' }, json)).status).toBe(403)
    expect((await post({ 'content-type': 'application/json', 'origin': 'null' }, json)).status).toBe(403)
    // Nothing that says where it comes from: not the tab.
    expect((await post({ 'content-type': 'application/json' }, json)).status).toBe(403)
    const notJson = await post({ 'content-type': 'text/plain', 'origin': base, 'sec-fetch-site': 'same-origin' }, json)
    expect(notJson.status).toBe(415)
    expect(await notJson.json()).toMatchObject({ type: 'error', code: 'bad_request' })
    expect(await storedIn(name)).toEqual([])
  })

  it('take the tab\'s own JSON POST, as the server', async () => {
    const name = room('tab')
    const response = await post({ 'content-type': 'application/json', 'origin': base, 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors' }, JSON.stringify({ room: name, message: 'from the tab' }))
    expect(response.status).toBe(200)
    expect(await storedIn(name)).toEqual(['server: from the tab'])
  })

  it('serve the page, stream and icon to the tab and a typed address, not to another site', async () => {
    for (const path of ['', '/icon.svg']) {
      expect((await fetch(`${base}${DEVTOOLS}${path}`, { headers: { 'sec-fetch-site': 'same-origin' } })).status).toBe(200)
      expect((await fetch(`${base}${DEVTOOLS}${path}`, { headers: { 'sec-fetch-site': 'none' } })).status).toBe(200)
      expect((await fetch(`${base}${DEVTOOLS}${path}`, { headers: { 'sec-fetch-site': 'cross-site', 'sec-fetch-dest': 'iframe' } })).status).toBe(403)
    }
    // The event stream carries every room's traffic: not to another site's EventSource or fetch.
    expect((await fetch(`${base}${DEVTOOLS}/events`, { headers: { 'origin': 'https://evil.example', 'sec-fetch-site': 'cross-site' } })).status).toBe(403)
    const own = new AbortController()
    const stream = await fetch(`${base}${DEVTOOLS}/events`, { headers: { 'sec-fetch-site': 'same-origin' }, signal: own.signal })
    expect(stream.status).toBe(200)
    own.abort()
  })

  it('answer HEAD as GET without a body (the stream: its headers only), and any other method 405 with Allow, not the app\'s page', async () => {
    const own = { 'sec-fetch-site': 'same-origin' }
    for (const [path, type] of [['', /html/], ['/icon.svg', /svg/], ['/events', /event-stream/]] as const) {
      const head = await fetch(`${base}${DEVTOOLS}${path}`, { method: 'HEAD', headers: own, signal: AbortSignal.timeout(5000) })
      expect(head.status, path).toBe(200)
      expect(head.headers.get('content-type'), path).toMatch(type)
      const put = await fetch(`${base}${DEVTOOLS}${path}`, { method: 'PUT', headers: own })
      expect(put.status, path).toBe(405)
      expect(put.headers.get('allow'), path).toBe('GET, HEAD, OPTIONS')
      expect(await put.json(), path).toMatchObject({ type: 'error', code: 'bad_request' })
    }
    const get = await fetch(`${base}${DEVTOOLS}/post`, { headers: own })
    expect(get.status).toBe(405)
    expect(get.headers.get('allow')).toBe('POST, OPTIONS')
  })

  it('answer OPTIONS with Allow, and another site\'s preflight 403 with no CORS grant', async () => {
    for (const [path, allow] of [['', 'GET, HEAD, OPTIONS'], ['/events', 'GET, HEAD, OPTIONS'], ['/post', 'POST, OPTIONS']] as const) {
      const plain = await fetch(`${base}${DEVTOOLS}${path}`, { method: 'OPTIONS' })
      expect(plain.status, path).toBe(204)
      expect(plain.headers.get('allow'), path).toBe(allow)
      const foreign = await fetch(`${base}${DEVTOOLS}${path}`, { method: 'OPTIONS', headers: { 'origin': 'https://evil.example', 'sec-fetch-site': 'cross-site', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } })
      expect(foreign.status, path).toBe(403)
      expect(foreign.headers.get('access-control-allow-origin'), path).toBeNull()
      expect(foreign.headers.get('access-control-allow-methods'), path).toBeNull()
    }
  })
})

describe('the DevTools routes and a DNS rebinding', () => {
  /** A request as a page of evil.example sees it once its name resolves to this machine: same-origin, under its own `Host`. */
  function asRebound(path: string, method = 'GET', body?: string): Promise<{ status: number, body: string }> {
    const target = new URL(`${base}${DEVTOOLS}${path}`)
    const origin = `http://evil.example:${target.port}`
    return new Promise((resolve, reject) => {
      const request = httpRequest(target, { method, headers: { 'host': `evil.example:${target.port}`, origin, 'sec-fetch-site': 'same-origin', 'content-type': 'application/json' } }, (response) => {
        let text = ''
        response.setEncoding('utf8')
        // The event stream never ends by itself: its status and first bytes are enough.
        response.on('data', (chunk) => {
          text += chunk
          if (response.statusCode === 200) response.destroy()
        })
        response.on('end', () => resolve({ status: response.statusCode!, body: text }))
        response.on('close', () => resolve({ status: response.statusCode!, body: text }))
      })
      request.on('error', reject)
      request.end(body)
    })
  }

  it('are refused to a page under another name that leads here (403): the stream, the page and the post; nothing stored', async () => {
    const name = room('rebound')
    // Refused by the dev server itself (Vite's `server.allowedHosts`), before any route: no page, no event of any room.
    for (const path of ['', '/events']) {
      const answer = await asRebound(path)
      expect(answer.status).toBe(403)
      expect(answer.body).not.toContain('event:')
      expect(answer.body).not.toContain('<html')
    }
    expect((await asRebound('/post', 'POST', JSON.stringify({ room: name, message: 'rebound' }))).status).toBe(403)
    expect(await storedIn(name)).toEqual([])
    // The names no other site can use still work: an IP address (above, `base`) and `localhost`.
    const port = new URL(base).port
    expect((await fetch(`http://localhost:${port}${DEVTOOLS}`, { headers: { 'sec-fetch-site': 'same-origin' } })).status).toBe(200)
  })
})

describe('the client address under nuxi dev', () => {
  it(`is the socket's, whatever X-Forwarded-For the client sends: the cap of ${CAP} per address holds`, async () => {
    const name = room('cap')
    for (let i = 1; i <= CAP; i++) {
      sockets.push(await ChatSocket.open(`ws://${host}`, { room: name }, { headers: { 'x-forwarded-for': `203.0.113.${i}`, 'x-forwarded-proto': 'https' } }))
    }
    // A new address every time: without the dev server's own hop each would be a client of its own.
    expect(await upgradeStatus(`ws://${host}/_ws?room=${name}`, { headers: { 'x-forwarded-for': '203.0.113.99' } })).toBe(429)
    expect(await upgradeStatus(`ws://${host}/_ws?room=${name}`, { headers: { 'x-forwarded-for': '203.0.113.100, 198.51.100.7' } })).toBe(429)
    // SSE counts against the same cap.
    const stream = await fetch(`${base}/api/sse?room=${name}`, { headers: { 'x-forwarded-for': '203.0.113.101', 'accept': 'text/event-stream' } })
    expect(stream.status).toBe(429)
    await stream.body?.cancel()
    // A slot freed is a slot for that same machine again.
    await sockets.pop()!.close()
    await expect.poll(() => upgradeStatus(`ws://${host}/_ws?room=${name}`, { headers: { 'x-forwarded-for': '203.0.113.102' } }), { timeout: 5000 }).toBe(101)
  }, 30_000)
})
