/**
 * What differs on Nitro 2 (Nuxt 4: nitropack, h3 1, crossws 0.3). The module makes this file
 * `#nuxt-chat/nitro` when the app runs Nitro 2; ./nitroV3.ts has the same exports for Nitro 3.
 */
import { createError, defineEventHandler, getRequestHeader, type EventHandler, type H3Event } from 'h3'
import type { Hooks, Peer } from 'crossws'
import type { NitroApp } from 'nitropack/types'
import type { ChatRuntimeConfig } from '../../types'
import type { BodyRefusal, ChatEventStream } from './httpExchange'
import { nodeEventStream } from './nodeEventStream'
import { memoizeWebSocketResolver, resolveWebSocketsUnderBase } from '../transport/internals'
import { createChatWebSocketServer } from '../transport/leanServer'
import { peerTransport, type Liveness, type PeerTransport } from '../transport/peerTransport'

/** The Nitro major version this file serves. */
export const nitroMajor = 2

/**
 * Give crossws's Node adapter our own `ws` server (../transport/leanServer.ts: chat connections without a
 * crossws Peer), capping incoming frames at `maxPayload` (the `ws` default is 100 MiB), through the
 * options Nitro 2's node-server and dev entries read right after the plugins ran; route upgrades
 * under `app.baseURL`, and resolve each path's hooks once.
 */
export function setupWebSocketServer(nitroApp: unknown, config: ChatRuntimeConfig, baseURL: string): void {
  const app = nitroApp as NitroApp
  const options = app.h3App.options as { websocket?: { serverOptions?: Record<string, unknown>, wss?: unknown } }
  const serverOptions = { ...options.websocket?.serverOptions, maxPayload: config.maxPayload, perMessageDeflate: false }
  // An app that brought its own server keeps it (and serves chat connections through crossws Peers).
  const wss = options.websocket?.wss ?? createChatWebSocketServer(serverOptions)
  options.websocket = { ...options.websocket, serverOptions, wss }
  resolveWebSocketsUnderBase(app, baseURL)
  memoizeWebSocketResolver(app)
}

/** Nothing to do: Nitro 2 parses `NUXT_CHAT_*` overrides itself (destr). */
export function parseEnvOverrides(_config: Record<string, unknown>): void {}

/** Chat sockets are served without a crossws Peer here (../transport/leanServer.ts). */
export { serveChatSockets } from '../transport/leanServer'

/** A chat connection on a crossws Peer (an app that brought its own `ws` server): the server options above already cap every frame. */
export function transportOfPeer<M extends Liveness>(peer: Peer, _maxPayload: number): PeerTransport<M> {
  return peerTransport<M>(peer)
}

/** The WebSocket route: upgrades get `hooks` (h3 1 reads them from the handler's `websocket`), any other request `probe`. */
export function defineWebSocketRoute(hooks: Partial<Hooks>, probe: (event: H3Event) => unknown): EventHandler {
  return defineEventHandler({ handler: probe, websocket: hooks })
}

/** The request's path and query, for admission. */
export function requestPath(event: H3Event): string {
  return event.node.req.url ?? '/'
}

/** The pattern of the route that took the request, as the module registered it (`/_chat/files/:id`); h3 1's router keeps it as `path`. */
export function matchedRoute(event: H3Event): string {
  return (event.context.matchedRoute as { path?: string } | undefined)?.path ?? ''
}

/** The request's headers and the socket it came on (address, TLS), for admission. */
export function requestOrigin(event: H3Event): { headers: Headers, socket: { remoteAddress?: string, encrypted?: boolean } | undefined } {
  return { headers: event.headers, socket: event.node.req.socket }
}

/** Whether the client left (while an async hook ran, say). */
export function clientGone(event: H3Event): boolean {
  return event.node.res.destroyed
}

/** Read a request body as UTF-8 text, refusing before buffering more than `limit` bytes or waiting more than `timeout` ms. */
export async function readBoundedBody(event: H3Event, limit: number, timeout: number): Promise<string | BodyRefusal> {
  const bytes = await readBoundedBytes(event, limit, timeout)
  return typeof bytes === 'string' ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')
}

/** Read a request body as bytes (an upload), refusing before buffering more than `limit` bytes or waiting more than `timeout` ms. */
export async function readBoundedBytes(event: H3Event, limit: number, timeout: number): Promise<Uint8Array | BodyRefusal> {
  if (Number(getRequestHeader(event, 'content-length') ?? 0) > limit) return 'too_large'
  const req = event.node.req
  // Listeners, not `for await`: leaving the iterator early destroys the request under the 413 (uncaught TypeError in Nitro's shutdown tracker); Node discards the rest of the body itself.
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const done = (body: Uint8Array | BodyRefusal) => {
      clearTimeout(timer)
      req.off('data', onData).off('end', onEnd)
      resolve(body)
    }
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) done('too_large')
      else chunks.push(chunk)
    }
    const onEnd = () => done(Buffer.concat(chunks))
    // A body that trickles in would hold this request (and its connection slot) for as long as the client likes.
    const timer = setTimeout(() => done('timeout'), timeout)
    req.on('data', onData).on('end', onEnd).on('error', reject)
  })
}

/**
 * Open the response as an event stream with `headers`, written straight to Node's response (each
 * frame's bytes made once per room); h3 1 lets the handler return while it stays open.
 */
export function openEventStream(event: H3Event, headers: Record<string, string>): ChatEventStream {
  return nodeEventStream(event.node.res, headers, () => undefined)
}

/** Answer a `HEAD` with `headers` and no body. */
export function answerHeadersOnly(event: H3Event, headers: Record<string, string>): undefined {
  event.node.res.writeHead(200, headers).end()
  return undefined
}

/** The error a server API throws for a status (h3 1's `createError`). */
export function httpError(status: number, message: string, data?: unknown): Error {
  return createError({ statusCode: status, statusMessage: message, data })
}

/** h3's helpers whose calls are the same on h3 1 and h3 2, from the app's h3. */
export { defineEventHandler, getQuery, getRequestHeader, setResponseHeader, setResponseStatus } from 'h3'
/** Nitro's runtime config and app, from the app's Nitro. */
export { defineNitroPlugin, useNitroApp, useRuntimeConfig } from 'nitropack/runtime'
/** Nitro's storage layer (unstorage), from the app's Nitro. */
export { useStorage } from 'nitropack/runtime'
