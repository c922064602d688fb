/**
 * What differs on Nitro 2 (Nuxt 4: nitropack, h3 1, crossws 0.3). The module makes this file
 * `#nuxt-chat/nitro` when the app runs Nitro 2; ./nitroV3.ts has the same exports for Nitro 3.
 */
import { defineEventHandler, type EventHandler, type H3Event } from 'h3'
import type { Hooks } from 'crossws'
import type { NitroApp } from 'nitropack/types'
import type { ChatRuntimeConfig } from '../../types'
import { memoizeWebSocketResolver, resolveWebSocketsUnderBase, type RawWebSocket } from './wsTransport'

/** The Nitro major version this file serves. */
export const nitroMajor = 2

/**
 * Cap incoming frames at `maxPayload` (the `ws` default is 100 MiB) through the options Nitro 2's
 * node-server entry reads right after the plugins ran, route upgrades under `app.baseURL`, and
 * resolve each path's hooks once.
 */
export function setupWebSocketServer(nitroApp: unknown, config: ChatRuntimeConfig, baseURL: string): void {
  const app = nitroApp as NitroApp
  const options = app.h3App.options as { websocket?: { serverOptions?: Record<string, unknown> } }
  options.websocket = {
    ...options.websocket,
    serverOptions: { ...options.websocket?.serverOptions, maxPayload: config.maxPayload, perMessageDeflate: false },
  }
  resolveWebSocketsUnderBase(app, baseURL)
  memoizeWebSocketResolver(app)
}

/** Nothing to do: Nitro 2 parses `NUXT_CHAT_*` overrides itself (destr). */
export function parseEnvOverrides(_config: Record<string, unknown>): void {}

/** A stream written straight to Node's response: h3 1 leaves a response whose headers went out alone, the handler may return. */
export function streamWritten(_res: { once: (event: 'close', listener: () => void) => unknown }): Promise<void> | undefined {
  return undefined
}

/** Nothing per socket: the server options above already cap every frame. */
export function capIncomingFrames(_ws: RawWebSocket | undefined, _maxPayload: number): void {}

/** The WebSocket route: upgrades get `hooks` (h3 1 reads them from the handler's `websocket`), any other request `probe`. */
export function defineWebSocketRoute(hooks: Partial<Hooks>, probe: (event: H3Event) => unknown): EventHandler {
  return defineEventHandler({ handler: probe, websocket: hooks })
}
