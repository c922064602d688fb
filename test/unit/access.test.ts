import { describe, expect, it } from 'vitest'
import { clientIp, holdConnection, isOriginAllowed } from '../../src/runtime/server/utils/access'
import type { ChatRuntimeConfig } from '../../src/runtime/types'

describe('clientIp', () => {
  const behindProxy = { clientIpHeader: 'x-forwarded-for' } as ChatRuntimeConfig
  it('takes the entry the trusted proxy appended, not one the client wrote', () => {
    const headers = new Headers({ 'x-forwarded-for': '6.6.6.6, 203.0.113.7' })
    expect(clientIp(headers, '10.0.0.1', behindProxy)).toBe('203.0.113.7')
  })
  it('uses the socket address without a configured header, or when it is missing', () => {
    const headers = new Headers({ 'x-forwarded-for': '6.6.6.6' })
    expect(clientIp(headers, '10.0.0.1', { clientIpHeader: '' } as ChatRuntimeConfig)).toBe('10.0.0.1')
    expect(clientIp(new Headers(), '10.0.0.1', behindProxy)).toBe('10.0.0.1')
  })
})

describe('isOriginAllowed', () => {
  it('allows no Origin, the same host, and listed origins only', () => {
    expect(isOriginAllowed(new Headers({ host: 'chat.example' }), [])).toBe(true)
    expect(isOriginAllowed(new Headers({ host: 'chat.example', origin: 'https://chat.example' }), [])).toBe(true)
    expect(isOriginAllowed(new Headers({ host: 'chat.example', origin: 'https://evil.example' }), [])).toBe(false)
    expect(isOriginAllowed(new Headers({ host: 'chat.example', origin: 'https://app.example' }), ['https://app.example'])).toBe(true)
    expect(isOriginAllowed(new Headers({ host: 'chat.example', origin: 'null' }), [])).toBe(false)
  })
})

describe('holdConnection', () => {
  it('counts per address up to the cap and frees a slot once per release', () => {
    const first = holdConnection('198.51.100.1', 2)!
    const second = holdConnection('198.51.100.1', 2)!
    expect(holdConnection('198.51.100.1', 2)).toBeUndefined()
    first()
    first()
    expect(holdConnection('198.51.100.1', 2)).toBeDefined()
    expect(holdConnection('198.51.100.1', 2)).toBeUndefined()
    second()
  })
})
