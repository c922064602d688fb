/**
 * What differs on Nitro 3 (Nuxt 5: nitro, h3 2, crossws 0.4). The module makes this file
 * `#nuxt-chat/nitro` when the app runs Nitro 3; ./nitroV2.ts has the same exports for Nitro 2.
 */
// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- ambient module declarations have nothing to import
/// <reference path="../nitroV3.types.d.ts" />
import { defineEventHandler, defineWebSocketHandler, HTTPError, type EventHandler, type H3Event } from 'nitro/h3'
import type { ServerResponse } from 'node:http'
import type { BodyRefusal, ChatEventStream } from './httpExchange'
import { nodeEventStream } from './nodeEventStream'
import type { Hooks, Peer } from 'crossws'
import type { ChatRuntimeConfig } from '../../types'
import type { ChatSocketHandlers } from '../transport/chatTransport'
import { peerTransport, type Liveness, type PeerTransport } from '../transport/peerTransport'

/** The Nitro major version this file serves. */
export const nitroMajor = 3

/**
 * Nitro 3's node-server entry makes its crossws adapter without options (no `maxPayload`), and
 * resolves upgrades by running the request through the whole app, base URL included: nothing to
 * set up front. Frames are capped per socket when it opens (`transportOfPeer`).
 */
export function setupWebSocketServer(_nitroApp: unknown, _config: ChatRuntimeConfig, _baseURL: string): void {}

/** Nothing: crossws 0.4 makes its own `ws` server, so chat connections keep their crossws Peer. */
export function serveChatSockets<M>(_handlers: ChatSocketHandlers<M>): void {}

/** A chat connection on its crossws 0.4 Peer, its incoming frames capped at `maxPayload` (a larger one closes it with 1009 before it is buffered). */
export function transportOfPeer<M extends Liveness>(peer: Peer, maxPayload: number): PeerTransport<M> {
  return peerTransport<M>(peer, maxPayload)
}

/** Nitro 3 applies `NUXT_CHAT_*` overrides as raw strings: parsed as Nitro 2 did (./envOverrides.ts). */
export { parseEnvOverrides } from './envOverrides'

/** h3 2's `defineWebSocketHandler(hooks, http)`: this repository type-checks against h3 1, whose version takes the hooks only. */
type H3v2WebSocketHandler = (hooks: Partial<Hooks>, http: EventHandler) => EventHandler

/**
 * The WebSocket route: h3 2 answers an upgrade with a 426 `Response` carrying `hooks`, which
 * Nitro 3 hands to crossws; any other request goes to `probe`.
 */
export function defineWebSocketRoute(hooks: Partial<Hooks>, probe: (event: H3Event) => unknown): EventHandler {
  return (defineWebSocketHandler as unknown as H3v2WebSocketHandler)(hooks, defineEventHandler(probe))
}

/** What nitroV3.ts reads of an h3 2 event: `req` is the web `Request` (srvx adds the client's address and Node's request), `res` the answer's status and headers. */
interface WebEvent {
  req: Request & { ip?: string, runtime?: { node?: { req?: { socket?: { remoteAddress?: string, encrypted?: boolean } }, res?: ServerResponse } } }
  res: { status?: number, headers: Headers }
}

// This repository type-checks against h3 1's `H3Event`: the h3 2 event it is at run time.
const webEvent = (event: H3Event) => event as unknown as WebEvent

/** The request's path and query, for admission. */
export function requestPath(event: H3Event): string {
  const url = new URL(webEvent(event).req.url)
  return url.pathname + url.search
}

/** The pattern of the route that took the request, as the module registered it (`/_chat/files/:id`); Nitro 3's routes keep it as `route`. */
export function matchedRoute(event: H3Event): string {
  return (event.context.matchedRoute as { route?: string } | undefined)?.route ?? ''
}

/** The request's headers and the socket it came on (address, TLS), for admission. */
export function requestOrigin(event: H3Event): { headers: Headers, socket: { remoteAddress?: string, encrypted?: boolean } | undefined } {
  const { req } = webEvent(event)
  return { headers: req.headers, socket: req.runtime?.node?.req?.socket ?? (req.ip ? { remoteAddress: req.ip } : undefined) }
}

/** Whether the client left (while an async hook ran, say). */
export function clientGone(event: H3Event): boolean {
  return webEvent(event).req.signal.aborted
}

/** Read a request body as UTF-8 text, refusing before buffering more than `limit` bytes or waiting more than `timeout` ms. */
export async function readBoundedBody(event: H3Event, limit: number, timeout: number): Promise<string | BodyRefusal> {
  const bytes = await readBoundedBytes(event, limit, timeout)
  return typeof bytes === 'string' ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')
}

/** Read a request body as bytes (an upload), refusing before buffering more than `limit` bytes or waiting more than `timeout` ms. */
export async function readBoundedBytes(event: H3Event, limit: number, timeout: number): Promise<Uint8Array | BodyRefusal> {
  const { req } = webEvent(event)
  if (Number(req.headers.get('content-length') ?? 0) > limit) return 'too_large'
  if (!req.body) return new Uint8Array()
  const reader = req.body.getReader()
  let timer: ReturnType<typeof setTimeout> | undefined
  // A body that trickles in would hold this request (and its connection slot) for as long as the client likes.
  const late = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeout)
  })
  const chunks: Uint8Array[] = []
  let size = 0
  try {
    for (;;) {
      const chunk = await Promise.race([reader.read(), late])
      if (chunk === 'timeout') return 'timeout'
      if (chunk.done) return Buffer.concat(chunks)
      size += chunk.value.byteLength
      if (size > limit) return 'too_large'
      chunks.push(chunk.value)
    }
  }
  finally {
    clearTimeout(timer)
    // Released, not cancelled: cancelling destroys the request under the answer; the rest of the body is left unread.
    reader.releaseLock()
  }
}

// What an h3 2 handler resolves to once it answered on Node's response itself.
const HANDLED = Symbol.for('h3.handled')

/**
 * Open the response as an event stream with `headers`. On Node, written straight to Node's
 * response (each frame's bytes made once per room, Node's own buffer as the queue), with the
 * headers h3 2 holds for the answer; the handler resolves to h3 2's "handled" once it closes.
 * Elsewhere, h3 2 sends the `ReadableStream` the handler returns, reading it only as fast as the
 * client takes it, so what is queued here is what the client has not taken yet.
 */
export function openEventStream(event: H3Event, headers: Record<string, string>): ChatEventStream {
  const { req, res } = webEvent(event)
  const nodeRes = req.runtime?.node?.res
  if (nodeRes) {
    const handled = new Promise(resolve => nodeRes.once('close', () => resolve(HANDLED)))
    return nodeEventStream(nodeRes, { ...Object.fromEntries(res.headers), ...headers }, () => handled)
  }
  for (const [name, value] of Object.entries(headers)) res.headers.set(name, value)
  const encoder = new TextEncoder()
  const listeners: Array<() => void> = []
  let controller!: ReadableStreamDefaultController<Uint8Array>
  let closed = false
  const close = () => {
    if (closed) return
    closed = true
    for (const listener of listeners) listener()
  }
  const body = new ReadableStream<Uint8Array>({
    start: (c) => {
      controller = c
    },
    // The client left: srvx cancels the body when Node's response closes.
    cancel: close,
  }, new ByteLengthQueuingStrategy({ highWaterMark: 0 }))
  return {
    write: (text) => {
      if (!closed) controller.enqueue(typeof text === 'string' ? encoder.encode(text) : text)
    },
    queuedBytes: () => closed ? 0 : -(controller.desiredSize ?? 0),
    closed: () => closed,
    end: () => {
      if (closed) return
      controller.close()
      close()
    },
    destroy: () => {
      if (closed) return
      controller.error(new Error('event stream dropped'))
      close()
    },
    onClose: listener => listeners.push(listener),
    answer: () => body,
  }
}

/** Answer a `HEAD` with `headers` and no body. */
export function answerHeadersOnly(event: H3Event, headers: Record<string, string>): string {
  const { res } = webEvent(event)
  for (const [name, value] of Object.entries(headers)) res.headers.set(name, value)
  res.status = 200
  return ''
}

/** The error a server API throws for a status (h3 2's `HTTPError`). */
export function httpError(status: number, message: string, data?: unknown): Error {
  return new HTTPError({ status, message, data })
}

/** h3's helpers whose calls are the same on h3 1 and h3 2, from the app's h3. */
export { defineEventHandler, getQuery, getRequestHeader, setResponseHeader, setResponseStatus } from 'nitro/h3'
/** Nitro's runtime config and app, from the app's Nitro. */
export { definePlugin as defineNitroPlugin } from 'nitro'
export { useNitroApp } from 'nitro/app'
export { useRuntimeConfig } from 'nitro/runtime-config'
/** Nitro's storage layer (unstorage), from the app's Nitro. */
export { useStorage } from 'nitro/storage'
