/**
 * The one place that reaches into the transport under crossws 0.3 (the `ws` package on Node):
 * frame a broadcast once and write the same bytes to every socket, send protocol pings,
 * see whether a frame was binary, and bound each socket's send buffer.
 * Every function falls back to crossws's public API when the internals are not there
 * (other adapters, or the dev server's crossws build).
 */
import type { Peer } from 'crossws'

/** The parts of a `ws` WebSocket we use; present on crossws's Node adapter as `peer._internal.ws`. */
export interface RawWebSocket {
  readyState: number
  _socket?: { write: (chunk: Uint8Array) => boolean, writableLength: number, destroyed: boolean }
  _sender?: { _state?: number, _queue?: unknown[] }
  ping: (data?: unknown) => void
  terminate: () => void
  on: (event: 'pong', listener: (this: never) => void) => void
  prependListener: (event: 'message', listener: (this: never, data: unknown, isBinary: boolean) => void) => void
}

const WS_OPEN = 1

/** The raw `ws` socket behind a crossws peer, or `undefined` when this adapter hides it. */
export function rawWebSocket(peer: Peer): RawWebSocket | undefined {
  const ws = (peer as unknown as { _internal?: { ws?: RawWebSocket } })._internal?.ws
  return ws && typeof ws.ping === 'function' && typeof ws.prependListener === 'function' ? ws : undefined
}

/**
 * Encode a server-to-client WebSocket text frame (RFC 6455 §5.2: FIN, opcode 1, unmasked).
 * Built once per broadcast, then written as-is to every peer.
 */
export function encodeTextFrame(payload: Uint8Array): Buffer {
  const length = payload.length
  const headerLength = length < 126 ? 2 : length < 65536 ? 4 : 10
  const frame = Buffer.allocUnsafe(headerLength + length)
  frame[0] = 0x81
  if (length < 126) {
    frame[1] = length
  }
  else if (length < 65536) {
    frame[1] = 126
    frame.writeUInt16BE(length, 2)
  }
  else {
    frame[1] = 127
    frame.writeUInt32BE(0, 2)
    frame.writeUInt32BE(length, 6)
  }
  frame.set(payload, headerLength)
  return frame
}

/** A frame made once and written to many peers: the JSON text and its framed bytes. */
export interface SharedFrame {
  readonly text: string
  readonly ws: Buffer
}

/**
 * Write a pre-framed text frame to one peer. Goes straight to the TCP socket when `ws` has
 * nothing of its own queued (so frames never interleave), else through `peer.send`.
 * Returns the bytes now waiting in the socket's buffer (0 when unknown).
 */
export function writeFrame(peer: Peer, ws: RawWebSocket | undefined, frame: SharedFrame): number {
  const socket = ws?._socket
  const sender = ws?._sender
  if (socket && sender && ws.readyState === WS_OPEN && !socket.destroyed && !sender._state && !sender._queue?.length) {
    socket.write(frame.ws)
    return socket.writableLength
  }
  peer.send(frame.text)
  return socket?.writableLength ?? 0
}

/** What `watchSocket` keeps up to date for one connection. */
export interface SocketWatch {
  /** A pong or a message arrived since the last heartbeat round. */
  alive: boolean
  /** Binary flag of each data frame not yet handled, in arrival order. */
  binaryFlags: boolean[]
}

const kWatch = Symbol('nuxt-chat:watch')
type WatchedWebSocket = RawWebSocket & { [kWatch]: SocketWatch }

// Shared listeners (`this` is the socket): no closures per connection.
function onMessageFrame(this: WatchedWebSocket, _data: unknown, isBinary: boolean) {
  this[kWatch].binaryFlags.push(isBinary)
}
function onPong(this: WatchedWebSocket) {
  this[kWatch].alive = true
}

/**
 * Watch a socket's liveness (protocol pongs) and the kind of each data frame (crossws 0.3
 * drops the binary flag). Frames of one TCP chunk are all parsed before the first message
 * hook runs, so the flags wait in a queue; `nextFrameIsBinary` takes them in order.
 */
export function watchSocket(ws: RawWebSocket | undefined, watch: SocketWatch): void {
  if (!ws) return
  ;(ws as WatchedWebSocket)[kWatch] = watch
  ws.prependListener('message', onMessageFrame)
  ws.on('pong', onPong)
}

/** Was the next unhandled data frame binary? */
export function nextFrameIsBinary(watch: SocketWatch): boolean {
  return watch.binaryFlags.shift() ?? false
}

/** The socket address of an upgrade request (crossws 0.3 wraps Node's `IncomingMessage` as `_req`). */
export function upgradeSocketAddress(request: unknown): string | undefined {
  return (request as { _req?: { socket?: { remoteAddress?: string } } })._req?.socket?.remoteAddress
}

/** The TCP socket of an upgrade request, to see it close whether or not the handshake completes. */
export function upgradeSocket(request: unknown): UpgradeSocket | undefined {
  return (request as { _req?: { socket?: UpgradeSocket } })._req?.socket
}

/** The parts of an upgrade's TCP (or TLS) socket that admission and the connection cap use. */
export interface UpgradeSocket {
  destroyed: boolean
  remoteAddress?: string
  encrypted?: boolean
  once: (event: 'close', listener: () => void) => unknown
}

const NO_HEADERS = new Headers()
const paths = new Map<string, string>()

/** The path of a URL, one string shared by every peer on it (h3 needs no more to route). */
function sharedPath(url: string): string {
  const { pathname } = new URL(url, 'http://localhost')
  let path = paths.get(pathname)
  if (path === undefined && paths.size < 100) paths.set(pathname, path = pathname)
  return path ?? pathname
}

/**
 * Let go of the upgrade request once the peer is open: crossws 0.3 keeps Node's
 * `IncomingMessage` (with every header) alive per peer, the largest part of an idle
 * connection's memory. Kept: the URL (h3 resolves each message's handler from it), the
 * context and the socket (for `remoteAddress`).
 */
export function releaseUpgradeRequest(peer: Peer): void {
  const internal = (peer as unknown as { _internal?: { nodeReq?: { _context?: unknown, socket?: unknown }, request?: { url: string } } })._internal
  const nodeReq = internal?.nodeReq
  if (!internal || !nodeReq || !internal.request) return
  internal.request = { url: sharedPath(internal.request.url), headers: NO_HEADERS } as { url: string }
  internal.nodeReq = { _context: nodeReq._context, socket: nodeReq.socket }
}
