/**
 * What differs on Nitro 3 (Nuxt 5: nitro, h3 2, crossws 0.4). The module makes this file
 * `#nuxt-chat/nitro` when the app runs Nitro 3; ./nitroV2.ts has the same exports for Nitro 2.
 */
import { defineEventHandler, defineWebSocketHandler, type EventHandler, type H3Event } from 'h3'
import type { Hooks } from 'crossws'
import type { ChatRuntimeConfig } from '../../types'
import { capFramesOf } from './wsTransport.crossws4'
import type { RawWebSocket } from './wsTransport'

/** The Nitro major version this file serves. */
export const nitroMajor = 3

/**
 * Nitro 3's node-server entry makes its crossws adapter without options (no `maxPayload`), and
 * resolves upgrades by running the request through the whole app, base URL included: nothing to
 * set up front. Frames are capped per socket when it opens (`capIncomingFrames`).
 */
export function setupWebSocketServer(_nitroApp: unknown, _config: ChatRuntimeConfig, _baseURL: string): void {}

/** Cap one socket's incoming frames at `maxPayload`: a larger frame closes it with 1009 before it is buffered. */
export function capIncomingFrames(ws: RawWebSocket | undefined, maxPayload: number): void {
  capFramesOf(ws, maxPayload)
}

// What Nitro 2 parsed an environment override into (destr): booleans, null, numbers, JSON arrays and objects.
const JSON_VALUE = /^(?:true|false|null|-?\d+(?:\.\d+)?(?:e[+-]?\d+)?|\[[\s\S]*\]|\{[\s\S]*\})$/i

/**
 * Nitro 3 applies `NUXT_CHAT_*` overrides as raw strings (`NUXT_CHAT_RATE_LIMIT=false` gives
 * `'false'`), where Nitro 2 parsed them: parse them the same way, in place, once at startup.
 */
export function parseEnvOverrides(config: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(config)) {
    if (value && typeof value === 'object' && !Array.isArray(value)) parseEnvOverrides(value as Record<string, unknown>)
    if (typeof value !== 'string' || !JSON_VALUE.test(value.trim())) continue
    try {
      config[key] = JSON.parse(/^(?:true|false|null)$/i.test(value.trim()) ? value.trim().toLowerCase() : value)
    }
    catch {
      // Looked like JSON but is not: kept as written, as destr does.
    }
  }
}

/**
 * A stream written straight to Node's response: srvx ends the response once the handler's
 * promise settles, so the handler waits here until the stream closes.
 */
export function streamWritten(res: { once: (event: 'close', listener: () => void) => unknown }): Promise<void> | undefined {
  return new Promise(resolve => res.once('close', resolve))
}

/** h3 2's `defineWebSocketHandler(hooks, http)`: this repository type-checks against h3 1, whose version takes the hooks only. */
type H3v2WebSocketHandler = (hooks: Partial<Hooks>, http: EventHandler) => EventHandler

/**
 * The WebSocket route: h3 2 answers an upgrade with a 426 `Response` carrying `hooks`, which
 * Nitro 3 hands to crossws; any other request goes to `probe`.
 */
export function defineWebSocketRoute(hooks: Partial<Hooks>, probe: (event: H3Event) => unknown): EventHandler {
  return (defineWebSocketHandler as unknown as H3v2WebSocketHandler)(hooks, defineEventHandler(probe))
}
