/**
 * docs/PROTOCOL.md, "Methods", against the built fixture (metrics, push and attachments on): every
 * HTTP route of the module answers a method it does not serve `405` with `Allow` and an `error`
 * frame, never the app's page; `HEAD` answers as `GET` without a body; every route answers
 * `OPTIONS`: without `Origin` `204` with `Allow`, as a preflight from an allowed origin with
 * `Access-Control-Allow-Methods` equal to that `Allow`; the methods served still work.
 */
import { randomUUID } from 'node:crypto'
import { request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startServer, type TestServer } from '../utils/server'

const ALLOWED = 'http://ok.example'
const user = `user-methods-${randomUUID().slice(0, 8)}`
const cookie = `session=${user}.Methods`

/** One HTTP exchange with any method (fetch refuses TRACE): status, headers and body as text. */
function exchange(server: TestServer, method: string, path: string, headers: Record<string, string> = {}, body?: string) {
  return new Promise<{ status: number, headers: Record<string, string | string[] | undefined>, body: string }>((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port: server.port, method, path, headers: { connection: 'close', ...(body !== undefined && { 'content-length': String(Buffer.byteLength(body)) }), ...headers } }, (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        text += chunk
      })
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body: text }))
      response.on('error', reject)
    })
    outgoing.on('error', reject)
    outgoing.setTimeout(10_000, () => outgoing.destroy(new Error(`${method} ${path}: no answer`)))
    outgoing.end(body)
  })
}

/** Each route of the fixture (default paths) and the methods it serves, as `Allow` lists them. */
const ROUTES: [path: string, allow: string][] = [
  ['/_ws?room=methods', 'GET, HEAD, OPTIONS'],
  ['/api/sse?room=methods', 'GET, HEAD, POST, OPTIONS'],
  ['/api/sse/search?q=hello', 'GET, HEAD, OPTIONS'],
  ['/_chat/files?room=methods', 'POST, OPTIONS'],
  ['/_chat/files/0123456789abcdef', 'GET, HEAD, OPTIONS'],
  ['/_chat/push', 'POST, DELETE, OPTIONS'],
  ['/_chat/push/mute', 'GET, HEAD, POST, OPTIONS'],
  ['/_chat/push/key', 'GET, HEAD, OPTIONS'],
  ['/_chat/push/sw.js', 'GET, HEAD, OPTIONS'],
  ['/_chat/metrics', 'GET, HEAD, OPTIONS'],
]
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE']

let server: TestServer

beforeAll(async () => {
  server = await startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_ALLOWED_ORIGINS: JSON.stringify([ALLOWED]) } })
})

afterAll(async () => {
  await server?.stop()
})

describe('a method a route does not serve', () => {
  const refused = ROUTES.flatMap(([path, allow]) => METHODS.filter(method => !allow.split(', ').includes(method)).map(method => [method, path, allow] as const))

  it.each(refused)('%s %s answers 405 with Allow: %s and an error frame', async (method, path, allow) => {
    const answer = await exchange(server, method, path, { 'content-type': 'application/json', cookie }, method === 'GET' || method === 'HEAD' || method === 'TRACE' ? undefined : '{}')
    expect(answer.status).toBe(405)
    expect(answer.headers.allow).toBe(allow)
    expect(answer.headers['content-type']).toBe('application/json')
    if (method === 'HEAD') expect(answer.body).toBe('')
    else expect(JSON.parse(answer.body)).toMatchObject({ type: 'error', code: 'bad_request', message: expect.stringContaining(allow) })
  })

  it('is refused with the CORS headers an allowed origin needs to read it', async () => {
    const answer = await exchange(server, 'POST', '/api/sse/search?q=hello', { 'origin': ALLOWED, 'content-type': 'text/plain' }, 'x')
    expect(answer.status).toBe(405)
    expect(answer.headers['access-control-allow-origin']).toBe(ALLOWED)
    expect(answer.headers.vary).toMatch(/origin/i)
  })
})

describe('the methods a route serves', () => {
  const served = ROUTES.flatMap(([path, allow]) => allow.split(', ').filter(method => method !== 'OPTIONS').map(method => [method, path] as const))

  it.each(served)('%s %s is served by the module, not the app\'s page', async (method, path) => {
    const answer = await exchange(server, method, path.startsWith('/api/sse?') && method === 'GET' ? `${path}&history` : path, { 'content-type': 'application/json', cookie }, method === 'POST' || method === 'DELETE' ? '{}' : undefined)
    expect(answer.status).not.toBe(405)
    expect(answer.headers['content-type']).not.toMatch(/html/)
  })

  it.each(ROUTES.filter(([, allow]) => allow.startsWith('GET')).map(([path]) => path))('HEAD %s answers as GET does, without a body', async (path) => {
    // The SSE route's GET is a stream: its history page has the same admission and is a plain answer.
    const [get, head] = await Promise.all([
      exchange(server, 'GET', path.startsWith('/api/sse?') ? `${path}&history` : path, { cookie }),
      exchange(server, 'HEAD', path, { cookie }),
    ])
    expect(head.status).toBe(path.startsWith('/api/sse?') ? 200 : get.status)
    expect(head.headers['content-type']).toBe(path.startsWith('/api/sse?') ? 'text/event-stream' : get.headers['content-type'])
    expect(head.body).toBe('')
    expect(head.headers.allow).toBeUndefined()
  })

  it('HEAD of an uploaded file answers its GET\'s headers, without its bytes', async () => {
    const room = `methods-${randomUUID().slice(0, 8)}`
    const upload = await fetch(server.url(`/_chat/files?room=${room}`), { method: 'POST', headers: { cookie, 'x-file-name': 'notes.txt' }, body: 'hello, methods' })
    expect(upload.status).toBe(201)
    const { id } = await upload.json() as { id: string }
    const [get, head] = await Promise.all([exchange(server, 'GET', `/_chat/files/${id}`, { cookie }), exchange(server, 'HEAD', `/_chat/files/${id}`, { cookie })])
    expect(get.status).toBe(200)
    expect(get.body).toBe('hello, methods')
    expect(head.status).toBe(200)
    expect(head.headers['content-type']).toBe(get.headers['content-type'])
    expect(head.headers['content-disposition']).toBe(get.headers['content-disposition'])
    expect(head.body).toBe('')
  })

  it.each(ROUTES)('OPTIONS %s answers without an Origin (Allow) and a preflight (Access-Control-Allow-Methods = Allow: %s)', async (path, allow) => {
    const plain = await exchange(server, 'OPTIONS', path)
    expect(plain.status).toBe(204)
    expect(plain.headers.allow).toBe(allow)
    // Each method the route serves, asked for: the answer names exactly the route's methods, as its Allow does.
    for (const method of allow.split(', ').filter(method => method !== 'OPTIONS' && method !== 'HEAD')) {
      const preflight = await exchange(server, 'OPTIONS', path, { 'origin': ALLOWED, 'access-control-request-method': method, 'access-control-request-headers': 'content-type' })
      expect(preflight.status, method).toBe(204)
      expect(preflight.headers.allow, method).toBe(allow)
      expect(preflight.headers['access-control-allow-methods'], method).toBe(allow)
      expect(preflight.headers['access-control-allow-origin'], method).toBe(ALLOWED)
      expect(preflight.headers['access-control-allow-credentials'], method).toBe('true')
      expect(preflight.headers['access-control-allow-headers'], method).toMatch(/content-type/)
    }
    const foreign = await exchange(server, 'OPTIONS', path, { 'origin': 'http://evil.example', 'access-control-request-method': 'GET' })
    expect(foreign.status).toBe(403)
    expect(foreign.headers.allow).toBe(allow)
    expect(foreign.headers['access-control-allow-origin']).toBeUndefined()
    expect(foreign.headers['access-control-allow-methods']).toBeUndefined()
  })
})
