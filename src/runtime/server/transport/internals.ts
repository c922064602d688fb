/**
 * The one file that reaches into private fields of `ws`, crossws, h3 and Node: write a broadcast's
 * pre-framed bytes straight to a socket and measure its unsent output, find the `ws` socket behind
 * a crossws Peer, cap its frames, find an upgrade's TCP socket and context, let go of its request,
 * answer a refused upgrade, resolve WebSocket routes once, and see which server accepted a socket.
 * Written against crossws 0.3 (Nuxt 4); what moved in crossws 0.4 (Nuxt 5) is reached beside it:
 * - the upgrade request is srvx's `NodeRequest`: its TCP socket is at `runtime.node.upgrade.socket`;
 * - `peer.bufferedAmount` is public: the output bound holds when the raw socket is out of reach;
 * - Nitro 3 makes the adapter without options, so `maxPayload` is set per socket on `ws`'s receiver.
 *
 * Every reach checks the shape it relies on and fails CLOSED: when a field is missing or has
 * another type (another adapter, another crossws), it takes the public API instead and logs once
 * why. `transportStats` counts which path was taken, so a test sees when the fast path is lost.
 */
import { Server as HttpServer, STATUS_CODES } from 'node:http'
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { consola } from 'consola'
import type { Peer } from 'crossws'
import type { NitroApp } from 'nitropack/types'
import type { SharedFrame } from './frame'

/** The parts of a `ws` WebSocket we use; present on crossws's Node adapter as `peer._internal.ws`. */
export interface RawWebSocket {
  readyState: number
  /** `ws`'s own count: the socket's write buffer plus what its sender holds back. */
  readonly bufferedAmount: number
  _socket?: unknown
  _sender?: unknown
  ping: (data?: unknown) => void
  send: (text: string) => void
  close: (code: number, reason: string) => void
  terminate: () => void
  pause: () => void
  resume: () => void
  on: (event: 'pong', listener: (this: never) => void) => void
  prependListener: (event: 'message', listener: (this: never, data: unknown, isBinary: boolean) => void) => void
}

/** The TCP socket under a `ws` WebSocket, as far as the fast path writes to it. */
interface RawSocket {
  write: (chunk: Uint8Array) => boolean
  writableLength: number
  destroyed: boolean
  /** How many corks hold it: one for this task's coalesced writes, more while ./leanServer.ts holds a new connection's first frames. */
  writableCorked?: number
  cork?: () => void
  uncork?: () => void
  /** Bytes written to it while corked in this task; `undefined` when it is not corked. */
  [kCorked]?: number
}

/** `ws`'s Sender: `_state` 0 (DEFAULT) and an empty `_queue` mean nothing of its own is pending. */
interface RawSender {
  _state: number
  _queue: unknown[]
}

const WS_OPEN = 1
const SENDER_IDLE = 0
const kCorked = Symbol('nuxt-chat:corked')

/** Which path writes took, and every reason a fast path was given up (each logged once). */
export const transportStats = {
  /** Frames written straight to the TCP socket (made once per broadcast). */
  fastWrites: 0,
  /** Frames written through crossws's `peer.send`. */
  publicWrites: 0,
  /** Writes that left for the kernel: the fast frames a socket got in one task go out together. */
  flushes: 0,
  /** Chat connections served on their `ws` socket without a crossws Peer (./leanServer.ts), since start. */
  leanConnections: 0,
  /** Of those, sockets taken out of Nitro 2's graceful-shutdown table (`untrackFromShutdown`). */
  untrackedFromShutdown: 0,
  /** Why a fast path was not available, once per reason. */
  fallbacks: [] as string[],
}

// Same tag as `chatLogger`; made here so this file loads without Nitro (unit tests).
const logger = consola.withTag('nuxt-chat')

/** Note (and warn about, once per reason) that a fast path is not available. */
export function fallBack(reason: string): void {
  if (transportStats.fallbacks.includes(reason)) return
  transportStats.fallbacks.push(reason)
  logger.warn(`[nuxt-chat] WebSocket transport falls back to crossws's public API: ${reason}`)
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null

/** The raw `ws` socket behind a crossws peer, or `undefined` (logged once) when this adapter hides it or it looks different. */
export function rawWebSocket(peer: Peer): RawWebSocket | undefined {
  const internal = (peer as unknown as { _internal?: unknown })._internal
  const ws = isObject(internal) ? internal.ws : undefined
  if (isObject(ws) && typeof ws.readyState === 'number' && typeof ws.bufferedAmount === 'number'
    && typeof ws.ping === 'function' && typeof ws.terminate === 'function' && typeof ws.pause === 'function'
    && typeof ws.resume === 'function' && typeof ws.on === 'function' && typeof ws.prependListener === 'function') {
    return ws as unknown as RawWebSocket
  }
  fallBack('no `ws` WebSocket at `peer._internal.ws` (no output bound, pause, heartbeat or binary check)')
  return undefined
}

/** The TCP socket to write a frame to directly, or `undefined` when `ws` is busy or its internals look different. */
function directSocket(ws: RawWebSocket): RawSocket | undefined {
  const socket = ws._socket
  const sender = ws._sender
  if (!isObject(socket) || typeof socket.write !== 'function' || typeof socket.writableLength !== 'number' || typeof socket.destroyed !== 'boolean') {
    fallBack('`ws._socket` is not a writable socket')
    return undefined
  }
  if (!isObject(sender) || typeof sender._state !== 'number' || !Array.isArray(sender._queue)) {
    fallBack('`ws._sender._state` / `_queue` not found: cannot tell whether ws is mid-frame')
    return undefined
  }
  const idle = ws.readyState === WS_OPEN && !socket.destroyed && (sender as unknown as RawSender)._state === SENDER_IDLE && !(sender as unknown as RawSender)._queue.length
  return idle ? socket as unknown as RawSocket : undefined
}

/** Sockets corked in the current task, uncorked together once it and its promise jobs are done. */
let corked: RawSocket[] = []

function uncorkAll() {
  const sockets = corked
  corked = []
  for (const socket of sockets) {
    socket[kCorked] = undefined
    transportStats.flushes++
    socket.uncork!()
  }
}

/** Cork a socket until the current task and its promise jobs are done; false when it cannot be corked (logged once). */
function corkForTask(socket: RawSocket): boolean {
  if (socket[kCorked] !== undefined) return true
  if (typeof socket.cork !== 'function' || typeof socket.uncork !== 'function') {
    fallBack('`ws._socket` has no cork/uncork: one write per frame')
    return false
  }
  socket.cork()
  socket[kCorked] = 0
  // After this task and its promise jobs (a stored batch's whole fan-out), before any other I/O: no added latency.
  if (corked.push(socket) === 1) queueMicrotask(uncorkAfterPromiseJobs)
  return true
}

/** A tick queued from a promise job runs once every promise job is done (a tick queued by the task itself would run before them). */
function uncorkAfterPromiseJobs() {
  process.nextTick(uncorkAll)
}

/**
 * Write bytes to a socket, corked until the current task and its promise jobs are done: every
 * frame it gets meanwhile (ours, and `ws`'s own, in order) leaves in one write (one syscall
 * instead of one per frame). The output bound sees what the kernel did not take once they are offered to it.
 */
function writeCoalesced(socket: RawSocket, bytes: Uint8Array) {
  if (!corkForTask(socket)) transportStats.flushes++
  socket.write(bytes)
  if (socket[kCorked] !== undefined) socket[kCorked] += bytes.length
}

/** One more cork on a `ws` socket, past this task, until `releaseSocket`; false when its socket cannot be written directly. */
export function holdSocket(ws: RawWebSocket): boolean {
  const socket = directSocket(ws)
  if (!socket || typeof socket.cork !== 'function' || typeof socket.uncork !== 'function') return false
  socket.cork()
  return true
}

/** Take back `holdSocket`'s cork (the socket may have gone busy or closed since: its output still goes). */
export function releaseSocket(ws: RawWebSocket): void {
  (ws._socket as RawSocket).uncork!()
}

/** Where a frame's text goes when its bytes cannot be written directly (`ws.send`, or crossws's `peer.send`). */
export interface TextSink {
  send: (text: string) => void
}

/**
 * Write a frame to a `ws` socket: pre-framed bytes to the TCP socket (coalesced per task) when `ws` has nothing of
 * its own pending (so frames never interleave), else the text through `sink`. Returns the bytes now waiting to go out.
 */
export function writeFramed(ws: RawWebSocket, frame: SharedFrame, sink: TextSink): number {
  const socket = directSocket(ws)
  if (socket) {
    transportStats.fastWrites++
    writeCoalesced(socket, frame.ws)
  }
  else {
    transportStats.publicWrites++
    sink.send(frame.text)
  }
  return backlogOf(ws)
}

/**
 * The bytes waiting to go out on a `ws` socket. This task's own frames are not a backlog yet: the kernel has not
 * been offered them. They count from the next write on, for what the kernel did not take (a task's burst to a fast
 * reader is no slow reader). A socket still held since its upgrade (./leanServer.ts) has offered the kernel nothing: 0.
 */
export function backlogOf(ws: RawWebSocket): number {
  const socket = ws._socket as RawSocket | undefined
  const ownBytes = isObject(socket) ? socket[kCorked] : undefined
  if (isObject(socket) && typeof socket.writableCorked === 'number' && socket.writableCorked > (ownBytes === undefined ? 0 : 1)) return 0
  return ws.bufferedAmount - (ownBytes ?? 0)
}

/** The TCP socket of an upgrade request (crossws 0.3 wraps Node's `IncomingMessage` as `_req`; 0.4 gets srvx's `NodeRequest`). */
function upgradeSocketOf(request: unknown): Record<string, unknown> | undefined {
  const req = isObject(request) ? request._req : undefined
  const socket = isObject(req) ? req.socket : undefined
  return isObject(socket) ? socket : srvxUpgradeSocketOf(request)
}

/** The parts of an upgrade's TCP (or TLS) socket that admission and the connection cap use. */
export interface UpgradeSocket {
  destroyed: boolean
  remoteAddress?: string
  encrypted?: boolean
  once: (event: 'close', listener: () => void) => unknown
  removeListener?: (event: 'close', listener: () => void) => unknown
}

/** The TCP socket of an upgrade request, to see it close whether or not the handshake completes. */
export function upgradeSocket(request: unknown): UpgradeSocket | undefined {
  const socket = upgradeSocketOf(request)
  if (socket && typeof socket.destroyed === 'boolean' && typeof socket.once === 'function') {
    if (typeof socket.remoteAddress !== 'string' || !socket.remoteAddress) fallBack('no socket address on the upgrade request (`_req.socket.remoteAddress`): per-address limits wait for `peer.remoteAddress`')
    return socket as unknown as UpgradeSocket
  }
  fallBack('no TCP socket on the upgrade request (`_req.socket`): per-address limits wait for `peer.remoteAddress`; a slot is released on `close` only')
  return undefined
}

/** The raw path of an absolute or path-only URL (no query or fragment), without parsing it. */
function rawPathOf(url: string): string {
  const scheme = url.indexOf('://')
  const start = scheme < 0 ? 0 : url.indexOf('/', scheme + 3)
  if (start < 0) return '/'
  const query = url.indexOf('?', start)
  const hash = url.indexOf('#', start)
  const end = query < 0 ? hash : hash < 0 ? query : Math.min(query, hash)
  return end < 0 ? (start ? url.slice(start) : url) : url.slice(start, end)
}

const NO_HEADERS = new Headers()
const requests = new Map<string, { url: string, headers: Headers }>()

/** What a peer keeps of its upgrade request: its path, in one object shared by every peer on it (h3 needs no more to route). */
function sharedRequest(url: string): { url: string, headers: Headers } {
  const pathname = rawPathOf(url)
  let request = requests.get(pathname)
  if (!request) {
    request = Object.freeze({ url: pathname, headers: NO_HEADERS })
    if (requests.size < 100) requests.set(pathname, request)
  }
  return request
}

/**
 * Let go of the upgrade request once the peer is open: crossws 0.3 keeps Node's
 * `IncomingMessage` (with every header) alive per peer, the largest part of an idle
 * connection's memory. Kept: the URL (h3 resolves each message's handler from it), the
 * context and the socket (for `remoteAddress`). Does nothing when the shape differs.
 */
export function releaseUpgradeRequest(peer: Peer): void {
  const internal = (peer as unknown as { _internal?: unknown })._internal
  const nodeReq = isObject(internal) ? internal.nodeReq : undefined
  const request = isObject(internal) ? internal.request : undefined
  if (!isObject(internal) || !isObject(nodeReq) || !isObject(request) || typeof request.url !== 'string' || !isObject(nodeReq._context)) {
    fallBack('upgrade request not found on the peer: its headers stay in memory while the connection is open')
    return
  }
  internal.request = sharedRequest(request.url)
  internal.nodeReq = { _context: nodeReq._context, socket: nodeReq.socket }
}

/**
 * A refused upgrade for crossws to write. crossws 0.3 writes each header as
 * `encodeURIComponent(name): encodeURIComponent(value)` (`content-type: text%2Fplain`) but the
 * status line as it is, so headers with other characters than [A-Za-z0-9-_.!~*'()] ride on the
 * status text; crossws 0.4 writes both as they are, which gives the same bytes.
 */
export function upgradeRefusal(status: number, body: string, headers: Record<string, string>): Response {
  const reason = STATUS_CODES[status] ?? 'Error'
  const headLines = Object.entries(headers).map(([name, value]) => `\r\n${name}: ${value}`).join('')
  const statusText = `${reason}${headLines}\r\ncontent-length: ${Buffer.byteLength(body)}`
  return new (class extends Response {
    override get statusText() {
      return statusText
    }
  // Bytes, not a string: a string body would add its own (encoded) `content-type`.
  })(Buffer.from(body), { status })
}

type Hooks = Record<string, unknown>
interface WebSocketOptions { resolve: (info: { url?: string, request?: { url?: string } }) => Promise<Hooks> }
interface Resolvable { __resolve__?: (path: string) => Promise<{ handler?: { __websocket__?: Hooks } } | undefined> }

/**
 * Under `app.baseURL` Nitro's WebSocket resolver finds no route (middleware mounted at the base
 * path answers first, with no hooks), so upgrades open and stay silent. This resolves
 * `<base>/<route>` upgrades against Nitro's router with the base removed, after Nitro's own
 * resolver comes back empty. Call it after `h3App.options.websocket` is final.
 */
export function resolveWebSocketsUnderBase(nitroApp: NitroApp, baseURL: string) {
  const base = baseURL.replace(/\/+$/, '')
  const router = (nitroApp.router as unknown as { handler?: Resolvable }).handler
  if (!base || !router?.__resolve__) return
  const app = nitroApp.h3App as unknown as { websocket: WebSocketOptions }
  const websocket = app.websocket
  Object.defineProperty(app, 'websocket', {
    configurable: true,
    value: {
      ...websocket,
      async resolve(info: Parameters<WebSocketOptions['resolve']>[0]) {
        const hooks = await websocket.resolve(info)
        if (Object.keys(hooks).length) return hooks
        const { pathname } = new URL(info.request?.url ?? info.url ?? '/', 'http://localhost')
        if (!pathname.startsWith(`${base}/`)) return hooks
        const resolved = await router.__resolve__!(pathname.slice(base.length))
        return resolved?.handler?.__websocket__ ?? hooks
      },
    },
  })
}

// Paths whose hooks are remembered: a bound, so odd URLs cannot grow the cache.
const MAX_RESOLVED_PATHS = 100

/**
 * crossws resolves a route's hooks for every hook call (upgrade, open, each message, close):
 * h3 parses the URL and walks the app's stack each time. Routes do not change at run time, so
 * this remembers the hooks per raw path and answers with them synchronously. Call it after
 * `resolveWebSocketsUnderBase`; does nothing when h3's resolver is not where it expects it.
 */
export function memoizeWebSocketResolver(nitroApp: NitroApp) {
  const app = nitroApp.h3App as unknown as { websocket?: Partial<WebSocketOptions> }
  const websocket = app.websocket
  if (!websocket || typeof websocket.resolve !== 'function') {
    fallBack('no WebSocket resolver on the h3 app: routes are resolved on every hook call')
    return
  }
  const resolve = websocket.resolve
  const known = new Map<string, Hooks>()
  Object.defineProperty(app, 'websocket', {
    configurable: true,
    value: {
      ...websocket,
      resolve(info: Parameters<WebSocketOptions['resolve']>[0]): Hooks | Promise<Hooks> {
        const url = info.request?.url ?? info.url ?? '/'
        // A peer's hook calls carry its shared path: found as it is, without scanning the URL.
        const hooks = known.get(url)
        if (hooks) return hooks
        const path = rawPathOf(url)
        const byPath = known.get(path)
        if (byPath) return byPath
        return resolve(info).then((resolved) => {
          // Only routes that have hooks: a miss may be a route added by a later plugin.
          if (Object.keys(resolved).length && known.size < MAX_RESOLVED_PATHS) known.set(path, resolved)
          return resolved
        })
      },
    },
  })
}

/**
 * The plain HTTP server that accepted a TCP socket (Node sets `socket.server` on every socket a
 * `net.Server` accepts), or `undefined` for any other server (HTTPS and HTTP/2 see their requests
 * on a TLS socket, not this one), or (logged once) when the field is not there: that socket then
 * gets no header bound from the chat, only Node's own.
 */
export function httpServerOf(socket: object): HttpServer | undefined {
  const server = (socket as { server?: unknown }).server
  if (!isObject(server)) {
    fallBack('no `socket.server` on an accepted socket: request headers are bounded by Node\'s `headersTimeout` only, and header-less sockets are not counted per address')
    return undefined
  }
  return server instanceof HttpServer ? server : undefined
}

/** The TCP socket of an upgrade request given as srvx's `NodeRequest` (crossws 0.4 under Nitro 3), or `undefined`. */
function srvxUpgradeSocketOf(request: unknown): Record<string, unknown> | undefined {
  const runtime = isObject(request) ? request.runtime : undefined
  const node = isObject(runtime) ? runtime.node : undefined
  if (!isObject(node)) return undefined
  const upgrade = isObject(node.upgrade) ? node.upgrade.socket : undefined
  const req = isObject(node.req) ? node.req.socket : undefined
  const socket = upgrade ?? req
  return isObject(socket) ? socket : undefined
}

/** Bytes crossws reports as not yet sent (crossws 0.4's public `peer.bufferedAmount`); 0 where the adapter has none (crossws 0.3). */
export function publicBufferedAmount(peer: Peer): number {
  const amount = (peer as unknown as { bufferedAmount?: unknown }).bufferedAmount
  return typeof amount === 'number' ? amount : 0
}

/** Cap a socket's incoming frames at `maxPayload` bytes on `ws`'s receiver (its `maxPayload` option, read per frame). */
export function capFramesOf(ws: RawWebSocket | undefined, maxPayload: number): void {
  const receiver = ws ? (ws as unknown as { _receiver?: unknown })._receiver : undefined
  if (isObject(receiver) && typeof receiver._maxPayload === 'number') {
    receiver._maxPayload = maxPayload
    return
  }
  fallBack('`ws._receiver._maxPayload` not found: incoming frames are capped by the adapter\'s default (100 MiB for `ws`), not `maxPayload`')
}

/** What crossws 0.3's Node adapter leaves on an upgrade request for `handleUpgrade`'s callback: the upgrade hook's context. */
export function upgradeContextOf(req: IncomingMessage): Record<string, unknown> | undefined {
  const context = (req as IncomingMessage & { _context?: unknown })._context
  return isObject(context) ? context : undefined
}

/** Drop Node's cached `{ address, family, port }` (`net.Socket#_peername`); a later `remoteAddress` asks the OS again. */
export function forgetPeerAddress(socket: Duplex | undefined): void {
  const cached = socket as { _peername?: unknown } | undefined
  // Not `delete`: that turns the socket into a dictionary-mode object, far larger than the cache.
  if (cached?._peername) cached._peername = undefined
}

/** The `close` listener by which Nitro 2's graceful shutdown (node-server preset) forgets a socket it tracks. */
const SHUTDOWN_FORGETS = /delete\s+[\w$]+\[[\w$]+\._connectionId\]/

/**
 * Take a chat socket out of Nitro 2's graceful-shutdown table (a `once('close')` closure and an entry per socket,
 * ~400 B): the chat ends its own sockets as the server stops (../utils/shutdown.ts). Calling that listener is
 * how its table lets go (it deletes the entry and removes itself). Any other shape (Nitro 3, dev, shutdown
 * disabled) is left as it is: false.
 */
export function untrackFromShutdown(socket: Duplex): boolean {
  const tracked = socket as Duplex & { _connectionId?: unknown, _isIdle?: unknown }
  if (typeof tracked._connectionId !== 'number' || typeof tracked._isIdle !== 'boolean') return false
  for (const wrapper of socket.rawListeners('close')) {
    const listener = (wrapper as { listener?: unknown }).listener
    if (typeof listener !== 'function' || !SHUTDOWN_FORGETS.test(Function.prototype.toString.call(listener))) continue
    ;(wrapper as () => void).call(socket)
    transportStats.untrackedFromShutdown++
    return true
  }
  return false
}
