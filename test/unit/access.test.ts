import { createHooks } from 'hookable'
import { describe, expect, it } from 'vitest'
import { admitRequest, ChatRefusal, checkedHosts, identify, clientIp, defaultGuestName, describeRequest, guestId, isOriginAllowed, requestSource } from '../../src/runtime/server/utils/access'
import type { ChatRuntimeConfig, ChatRuntimeHooks } from '../../src/runtime/types'

const direct = { clientIpHeader: '', allowedOrigins: [], reservedNames: [] } as unknown as ChatRuntimeConfig
const behindProxy = { ...direct, clientIpHeader: 'x-forwarded-for' } as ChatRuntimeConfig

describe('clientIp', () => {
  it('takes the entry the trusted proxy appended, not one the client wrote', () => {
    const headers = new Headers({ 'x-forwarded-for': '6.6.6.6, 203.0.113.7' })
    expect(clientIp(headers, '10.0.0.1', behindProxy)).toBe('203.0.113.7')
  })
  it('uses the socket address without a configured header, or when it is missing', () => {
    const headers = new Headers({ 'x-forwarded-for': '6.6.6.6' })
    expect(clientIp(headers, '10.0.0.1', direct)).toBe('10.0.0.1')
    expect(clientIp(new Headers(), '10.0.0.1', behindProxy)).toBe('10.0.0.1')
  })
})

describe('describeRequest', () => {
  const schemeOf = (headers: Record<string, string>, config: ChatRuntimeConfig, encrypted = false) =>
    describeRequest('http://ignored/_ws?room=r', new Headers({ host: 'chat.example', ...headers }), { remoteAddress: '10.0.0.1', encrypted }, config).url.protocol
  it('believes X-Forwarded-Proto only behind a configured proxy (its last entry); TLS is https', () => {
    expect(schemeOf({ 'x-forwarded-proto': 'https' }, direct)).toBe('http:')
    expect(schemeOf({ 'x-forwarded-proto': 'https' }, behindProxy)).toBe('https:')
    expect(schemeOf({ 'x-forwarded-proto': 'https, http' }, behindProxy)).toBe('http:')
    expect(schemeOf({}, direct, true)).toBe('https:')
  })
  it('keeps the Host in use cached, bounded, while clients send thousands of others', () => {
    const request = (host: string) => describeRequest('/_ws?room=x', new Headers({ host }), undefined, direct)
    // A flood before the real host's first request, then the real host among more flood.
    for (let i = 0; i < 3000; i++) {
      expect(request(`h${i}.attacker.example`).url.host).toBe(`h${i}.attacker.example`)
      if (i >= 1500 && i % 100 === 0) request('chat.example')
    }
    expect(checkedHosts.has('chat.example')).toBe(true)
    expect(checkedHosts.has('h2999.attacker.example')).toBe(true)
    expect(checkedHosts.size).toBeLessThanOrEqual(1000)
  })

  it('keeps path and query, on the Host the client asked for', () => {
    const info = describeRequest('/_ws?room=r&guest=k', new Headers({ host: 'Chat.Example:8080' }), undefined, direct)
    expect(info.url.href).toBe('http://chat.example:8080/_ws?room=r&guest=k')
    // A path that looks like an authority stays a path: the origin check compares with the Host.
    const sneaky = describeRequest('//evil.example/_ws?room=r', new Headers({ host: 'chat.example' }), undefined, direct)
    expect(sneaky.url.origin).toBe('http://chat.example')
    expect(sneaky.url.searchParams.get('room')).toBe('r')
  })
})

describe('isOriginAllowed', () => {
  it('compares scheme, host and port of a canonical origin; allows no Origin and listed origins', () => {
    const own = 'http://chat.example:3000'
    expect(isOriginAllowed(null, own, [])).toBe(true)
    expect(isOriginAllowed('http://chat.example:3000', own, [])).toBe(true)
    for (const origin of ['https://chat.example:3000', 'HTTP://chat.example:3000', 'http://chat.example.:3000', 'http://chat.example', 'http://evil.example', 'null', 'http://chat.example:3000/']) {
      expect(isOriginAllowed(origin, own, []), origin).toBe(false)
    }
    expect(isOriginAllowed('https://app.example', own, ['https://app.example/'])).toBe(true)
    expect(isOriginAllowed('http://app.example', own, ['https://app.example'])).toBe(false)
    expect(isOriginAllowed('http://any.example', own, ['*'])).toBe(true)
  })
})

describe('requestSource', () => {
  const source = (headers: Record<string, string>) => requestSource(new Headers(headers))
  it('a script of the page: same-origin Fetch Metadata, or an Origin (checked before)', () => {
    expect(source({ 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors' })).toBe('page')
    expect(source({ 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'cors', 'origin': 'https://allowed.example' })).toBe('page')
    expect(source({ 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'websocket', 'origin': 'https://app.example' })).toBe('page')
  })
  it('elsewhere: navigations and subresources from anywhere, and other sites without an Origin', () => {
    expect(source({ 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' })).toBe('elsewhere')
    expect(source({ 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'navigate' })).toBe('elsewhere')
    expect(source({ 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'NO-CORS' })).toBe('elsewhere')
    expect(source({ 'sec-fetch-site': 'none', 'sec-fetch-mode': 'nested-navigate' })).toBe('elsewhere')
    // A form POST from an allowed origin is still a navigation.
    expect(source({ 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate', 'origin': 'https://allowed.example' })).toBe('elsewhere')
    expect(source({ 'sec-fetch-site': 'same-site' })).toBe('elsewhere')
  })
  it('unknown: no Fetch Metadata site and no Origin (a server-side client, an old browser)', () => {
    expect(source({})).toBe('unknown')
    expect(source({ 'sec-fetch-mode': 'cors' })).toBe('unknown')
  })
  it('admission refuses elsewhere before the identify hook; only a page or an upgrade makes a read position', async () => {
    const hooks = createHooks<ChatRuntimeHooks>()
    let asked = 0
    hooks.hook('chat:identify', (ctx) => {
      asked++
      ctx.user = { id: 'u1', name: 'U' }
    })
    const admit = (headers: Record<string, string>) => admitRequest({ url: new URL('http://app.example/api/sse?room=r'), headers: new Headers({ host: 'app.example', ...headers }) }, direct, hooks, () => [])
    await expect(admit({ 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' })).rejects.toMatchObject({ status: 403 })
    expect(asked).toBe(0)
    expect((await admit({ 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors' })).createsReadPosition).toBe(true)
    expect((await admit({})).createsReadPosition).toBe(false)
    expect((await admit({ 'upgrade': 'websocket', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' })).createsReadPosition).toBe(true)
  })
})

describe('guest identity', () => {
  it('derives a stable id from the key without revealing it; fresh ids without a key', () => {
    const key = 'a'.repeat(22)
    expect(guestId(key)).toBe(guestId(key))
    expect(guestId(key)).toMatch(/^guest:[\w-]{22}$/)
    expect(guestId(key)).not.toContain(key)
    expect(guestId()).not.toBe(guestId())
    expect(guestId()).toMatch(/^guest:[\w-]{22}$/)
    expect(defaultGuestName('guest:AbCdEfGhIjKlMnOpQrStUv')).toBe('guest-AbCdEf')
  })

  it('admits a guest with a checked name, a signed-in user with the hook\'s, and refuses bad keys', async () => {
    const hooks = createHooks<ChatRuntimeHooks>()
    hooks.hook('chat:identify', (ctx) => {
      if (ctx.request.headers.get('cookie') === 'me') ctx.user = { id: 'u-1', name: ' Alice\u200B ' }
    })
    const admit = (query: string, headers: Record<string, string> = {}) =>
      admitRequest(describeRequest(`/_ws?${query}`, new Headers({ host: 'chat.example', ...headers }), undefined, direct), direct, hooks, () => ['Alice'])
    expect((await admit('name=Bob', { cookie: 'me' })).user).toEqual({ id: 'u-1', name: 'Alice' })
    const guest = await admit(`name=%D0%90lice&guest=${'k'.repeat(22)}`)
    expect(guest.user).toEqual({ id: guestId('k'.repeat(22)), name: defaultGuestName(guestId('k'.repeat(22))), guest: true })
    expect(guest.nameRefused).toContain('signed-in')
    expect(guest.sender).toBe(guest.user.id)
    await expect(admit('guest=short')).rejects.toBeInstanceOf(ChatRefusal)
    await expect(admit('room=x', { host: 'a/b' })).rejects.toMatchObject({ status: 400 })
    // crossws builds the upgrade's URL from the Host header as it came: a malformed one must not throw.
    const malformed = describeRequest('http://a b/_ws?room=x', new Headers({ host: 'a b' }), undefined, direct)
    expect(malformed.url.pathname).toBe('/_ws')
    await expect(admitRequest(malformed, direct, hooks, () => [])).rejects.toMatchObject({ status: 400, message: 'Malformed Host header' })
  })
})

describe('ids chat:identify may give', () => {
  const request = describeRequest('/_ws?room=r', new Headers({ host: 'chat.example' }), undefined, direct)
  const naming = (id: unknown) => {
    const hooks = createHooks<ChatRuntimeHooks>()
    hooks.hook('chat:identify', (ctx) => {
      ctx.user = { id: id as string, name: 'Someone' }
    })
    return hooks
  }

  it('refuses an id a guest or the server holds, or that no membership can hold: a bug of the hook, thrown as such (logged, 500), not a refusal', async () => {
    for (const id of ['guest:AAAAAAAAAAAAAAAAAAAAAA', 'guest:', 'server', 'a\nb', 'x'.repeat(257)]) {
      const identified = identify({ request, room: 'r' }, naming(id))
      await expect(identified, id).rejects.toThrow(/^\[nuxt-chat\] chat:identify named a user `/)
      await expect(identified, id).rejects.not.toBeInstanceOf(ChatRefusal)
      await expect(admitRequest(request, direct, naming(id), () => []), id).rejects.toThrow(/chat:identify named a user/)
    }
  })

  it('takes any other id, a number as its text; none is a guest', async () => {
    expect(await identify({ request, room: 'r' }, naming(42))).toEqual({ id: '42', name: 'Someone' })
    expect(await identify({ request, room: 'r' }, naming('Guest:x'))).toEqual({ id: 'Guest:x', name: 'Someone' })
    expect(await identify({ request, room: 'r' }, naming('servers'))).toEqual({ id: 'servers', name: 'Someone' })
    expect(await identify({ request, room: 'r' }, naming(''))).toBeUndefined()
  })
})
