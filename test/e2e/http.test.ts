/**
 * The HTTP details of docs/PROTOCOL.md against the built fixture, on raw TCP where a client
 * library would hide what is on the wire: malformed Host, refusal headers, Retry-After, HEAD,
 * the POST body timeout, and CORS for SSE and POST.
 */
import { randomUUID } from 'node:crypto'
import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChatStream, until } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

const uniqueRoom = () => `http-${randomUUID().slice(0, 8)}`
const httpBase = (server: TestServer) => server.url('').replace(/\/$/, '')
const ALLOWED = 'http://ok.example'

/** One raw HTTP/1.1 exchange: status, headers (lower-case names, as sent) and body. */
function rawRequest(server: TestServer, head: string, body = '') {
  return new Promise<{ status: number, headers: Record<string, string>, rawHead: string, body: string }>((resolve, reject) => {
    const socket = connect(server.port, '127.0.0.1', () => socket.write(`${head}\r\n\r\n${body}`))
    let data = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk) => {
      data += chunk
      // Answered: stop at the end of the head when there is no body to wait for.
      if (/^HTTP\/1\.1 (?:101|204|304)/.test(data) && data.includes('\r\n\r\n')) socket.destroy()
      if (head.startsWith('HEAD') && data.includes('\r\n\r\n')) socket.destroy()
    })
    socket.on('close', () => {
      const [rawHead = '', ...rest] = data.split('\r\n\r\n')
      const [statusLine = '', ...lines] = rawHead.split('\r\n')
      const headers: Record<string, string> = {}
      for (const line of lines) {
        const colon = line.indexOf(':')
        headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, rawHead, body: rest.join('\r\n\r\n') })
    })
    socket.on('error', reject)
    socket.setTimeout(10_000, () => socket.destroy())
  })
}

const upgradeHead = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13${extra}`

let server: TestServer
let perIp: TestServer
/** perIp's body timeout: long enough that a loaded machine has read the slow POST's head well before it. */
const BODY_TIMEOUT = 3000

beforeAll(async () => {
  ;[server, perIp] = await Promise.all([
    startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_ALLOWED_ORIGINS: JSON.stringify([ALLOWED]) } }),
    startServer({ env: { NUXT_CHAT_MAX_CONNECTIONS_PER_IP: '1', NUXT_CHAT_BODY_TIMEOUT: String(BODY_TIMEOUT) } }),
  ])
})

afterAll(async () => {
  await Promise.all([server, perIp].map(running => running?.stop()))
})

describe('malformed Host', () => {
  it('answers 400 on SSE, POST and the upgrade, and logs nothing per request', async () => {
    const logged = server.logs().length
    const host = 'Host: [bad'
    const sse = await rawRequest(server, `GET /api/sse?room=x HTTP/1.1\r\n${host}\r\nConnection: close`)
    const post = await rawRequest(server, `POST /api/sse?room=x HTTP/1.1\r\n${host}\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close`, 'hi')
    const upgrade = await rawRequest(server, upgradeHead('/_ws?room=x').replace('Host: 127.0.0.1', host))
    expect([sse.status, post.status, upgrade.status]).toEqual([400, 400, 400])
    expect(JSON.parse(sse.body)).toMatchObject({ type: 'error', code: 'bad_request' })
    await new Promise(resolve => setTimeout(resolve, 200))
    expect(server.logs().slice(logged)).toBe('')
  })
})

describe('refusals', () => {
  it('a refused upgrade carries a valid content-type and a JSON error frame', async () => {
    const refused = await rawRequest(server, upgradeHead('/_ws?room=bad%20room'))
    expect(refused.status).toBe(400)
    expect(refused.headers['content-type']).toBe('application/json')
    expect(refused.rawHead).not.toMatch(/%2F/i)
    expect(JSON.parse(refused.body)).toMatchObject({ type: 'error', code: 'bad_request' })
  })

  it('429 carries Retry-After on SSE and on the upgrade', async () => {
    const room = uniqueRoom()
    const held = await ChatStream.open(httpBase(perIp), { room })
    expect(held.status).toBe(200)
    const sse = await rawRequest(perIp, `GET /api/sse?room=${room} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close`)
    const upgrade = await rawRequest(perIp, upgradeHead(`/_ws?room=${room}`))
    expect([sse.status, upgrade.status]).toEqual([429, 429])
    expect(Number(sse.headers['retry-after'])).toBeGreaterThan(0)
    expect(Number(upgrade.headers['retry-after'])).toBeGreaterThan(0)
    expect(upgrade.headers['content-type']).toBe('application/json')
    await held.close()
  })

  it('503 carries Retry-After', async () => {
    const tag = randomUUID().slice(0, 8)
    const response = await fetch(`${httpBase(server)}/api/sse?room=${uniqueRoom()}`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: `fail-once:${tag}` })
    expect(response.status).toBe(503)
    expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(await response.json()).toMatchObject({ type: 'error', code: 'unavailable' })
  })
})

describe('HEAD on the SSE route', () => {
  it('answers the stream\'s headers, not the SSR page', async () => {
    const head = await rawRequest(server, `HEAD /api/sse?room=${uniqueRoom()} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close`)
    expect(head.status).toBe(200)
    expect(head.headers['content-type']).toBe('text/event-stream')
    expect(head.body).toBe('')
  })
})

describe('POST body timeout', () => {
  it('cuts a body that trickles in with 408, and the open POST counts toward maxConnectionsPerIp', async () => {
    const room = uniqueRoom()
    const started = Date.now()
    const socket = connect(perIp.port, '127.0.0.1')
    let answer = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk) => {
      answer += chunk
    })
    const closed = new Promise(resolve => socket.on('close', resolve))
    socket.on('error', () => {})
    socket.write(`POST /api/sse?room=${room} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nslow`)
    const trickle = setInterval(() => socket.write('.'), 200)
    try {
      // Once the server has read the POST's head, and while its body trickles in, this address has no connection left.
      // A second for the server to read the POST's head (a loaded machine may take a while), well within the body timeout.
      await new Promise(resolve => setTimeout(resolve, 1000))
      expect((await rawRequest(perIp, `GET /api/sse?room=${room} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close`)).status).toBe(429)
      await until(() => answer.includes('\r\n\r\n'), 'the answer to the slow POST', BODY_TIMEOUT + 5000)
    }
    finally {
      clearInterval(trickle)
    }
    const elapsed = Date.now() - started
    expect(answer).toMatch(/^HTTP\/1\.1 408/)
    expect(elapsed).toBeGreaterThanOrEqual(BODY_TIMEOUT - 100)
    expect(elapsed).toBeLessThan(BODY_TIMEOUT + 5000)
    socket.destroy()
    await closed
    // The slot is free again.
    const after = await ChatStream.open(httpBase(perIp), { room })
    expect(after.status).toBe(200)
    await after.close()
  })
})

describe('CORS', () => {
  it('answers a preflight from an allowed origin with 204, from another with 403', async () => {
    const preflight = (origin: string) => fetch(`${httpBase(server)}/api/sse?room=x`, {
      method: 'OPTIONS',
      headers: { 'origin': origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    })
    const allowed = await preflight(ALLOWED)
    expect(allowed.status).toBe(204)
    expect(allowed.headers.get('access-control-allow-origin')).toBe(ALLOWED)
    expect(allowed.headers.get('access-control-allow-credentials')).toBe('true')
    expect(allowed.headers.get('access-control-allow-methods')).toMatch(/POST/)
    expect(allowed.headers.get('access-control-allow-headers')?.toLowerCase()).toMatch(/content-type/)
    const refused = await preflight('http://evil.example')
    expect(refused.status).toBe(403)
    expect(refused.headers.get('access-control-allow-origin')).toBeNull()
  })

  it('sends Access-Control-Allow-Origin on SSE and POST to allowed origins only', async () => {
    const room = uniqueRoom()
    const controller = new AbortController()
    const sse = await fetch(`${httpBase(server)}/api/sse?room=${room}`, { headers: { origin: ALLOWED }, signal: controller.signal })
    expect(sse.status).toBe(200)
    expect(sse.headers.get('access-control-allow-origin')).toBe(ALLOWED)
    expect(sse.headers.get('access-control-allow-credentials')).toBe('true')
    controller.abort()
    const post = await fetch(`${httpBase(server)}/api/sse?room=${room}`, { method: 'POST', headers: { 'origin': ALLOWED, 'content-type': 'text/plain' }, body: 'cors' })
    expect(post.status).toBe(200)
    expect(post.headers.get('access-control-allow-origin')).toBe(ALLOWED)
    expect(post.headers.get('vary')?.toLowerCase()).toMatch(/origin/)
    // Same host, no Origin: no CORS headers needed, none sent.
    const plain = await fetch(`${httpBase(server)}/api/sse?room=${room}`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'plain' })
    expect(plain.headers.get('access-control-allow-origin')).toBeNull()
  })
})
