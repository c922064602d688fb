import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import WebSocket, { WebSocketServer } from 'ws'
import { parseEnvOverrides } from '../../src/runtime/server/utils/envOverrides'
import type { Peer } from 'crossws'
import { capFramesOf, transportStats, type RawWebSocket } from '../../src/runtime/server/transport/internals'
import { RoomFrame } from '../../src/runtime/server/transport/frame'
import { PeerTransport } from '../../src/runtime/server/transport/peerTransport'

describe('parseEnvOverrides (Nitro 3 leaves NUXT_CHAT_* overrides as strings)', () => {
  it('parses them as Nitro 2 did: booleans, numbers, null, JSON arrays and objects, at any depth', () => {
    const config = {
      rateLimit: 'false', maxConnectionsPerIp: '2', allowedOrigins: '["http://ok.example"]', redisUrl: 'redis://127.0.0.1:6379',
      metrics: 'TRUE', database: { options: { url: 'postgresql://x', port: '5432', ssl: 'null' } }, heartbeat: { interval: 25_000 }, reservedNames: ['admin'],
    }
    const env = {
      NUXT_CHAT_RATE_LIMIT: 'false', NUXT_CHAT_MAX_CONNECTIONS_PER_IP: '2', NUXT_CHAT_ALLOWED_ORIGINS: '["http://ok.example"]', NUXT_CHAT_REDIS_URL: 'redis://127.0.0.1:6379',
      NUXT_CHAT_METRICS: 'TRUE', NUXT_CHAT_DATABASE_OPTIONS_PORT: '5432', NITRO_CHAT_DATABASE_OPTIONS_SSL: 'null',
    }
    parseEnvOverrides(config, env)
    expect(config).toEqual({
      rateLimit: false, maxConnectionsPerIp: 2, allowedOrigins: ['http://ok.example'], redisUrl: 'redis://127.0.0.1:6379',
      metrics: true, database: { options: { url: 'postgresql://x', port: 5432, ssl: null } }, heartbeat: { interval: 25_000 }, reservedNames: ['admin'],
    })
  })
  it('keeps a string that only looks like JSON as written', () => {
    const config = { clientIpHeader: '[not json', route: '{/_ws}' }
    parseEnvOverrides(config, { NUXT_CHAT_CLIENT_IP_HEADER: '[not json', NUXT_CHAT_ROUTE: '{/_ws}' })
    expect(config).toEqual({ clientIpHeader: '[not json', route: '{/_ws}' })
  })
  it('leaves alone what no environment variable set (a password or token written in nuxt.config), and never makes Infinity', () => {
    const config = { redisChannel: '2024', metrics: { token: '84e2910375' }, database: { options: { password: '123456' } }, maxLength: '1e999' }
    parseEnvOverrides(config, { NUXT_CHAT_MAX_LENGTH: '1e999' })
    expect(config).toEqual({ redisChannel: '2024', metrics: { token: '84e2910375' }, database: { options: { password: '123456' } }, maxLength: '1e999' })
  })
})

describe('capFramesOf, nitroV3.ts\'s transportOfPeer (Nitro 3 makes its crossws adapter without maxPayload)', () => {
  it('closes a real connection with 1009 on a frame over the cap, and takes frames up to it', async () => {
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1' })
    await once(server, 'listening')
    const received: string[] = []
    server.on('connection', (ws) => {
      capFramesOf(ws as unknown as RawWebSocket, 10)
      ws.on('message', data => received.push(data.toString()))
      // ws reports the oversized frame as an error before closing with 1009.
      ws.on('error', () => {})
    })
    const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`)
    await once(client, 'open')
    client.send('0123456789')
    client.send('0123456789x')
    const [code] = await once(client, 'close')
    expect(code).toBe(1009)
    expect(received).toEqual(['0123456789'])
    server.close()
  })
  it('falls back, once and logged, when the socket has no ws receiver', () => {
    capFramesOf(undefined, 10)
    capFramesOf(undefined, 10)
    expect(transportStats.fallbacks.filter(reason => reason.includes('_maxPayload'))).toHaveLength(1)
  })
})

describe('a Peer\'s transport without the raw socket (another adapter, or crossws internals moved)', () => {
  it('bounds output by crossws 0.4\'s public peer.bufferedAmount, and by nothing on crossws 0.3 (which has none)', () => {
    const sent: string[] = []
    const peer04 = { send: (text: string) => sent.push(text), bufferedAmount: 123_456 }
    const peer03 = { send: (text: string) => sent.push(text) }
    const frame = (text: string) => new RoomFrame(text)
    expect(new PeerTransport(peer04 as unknown as Peer, undefined).writeFrame(frame('a'))).toBe(123_456)
    expect(new PeerTransport(peer03 as unknown as Peer, undefined).writeFrame(frame('b'))).toBe(0)
    expect(sent).toEqual(['a', 'b'])
  })
})
