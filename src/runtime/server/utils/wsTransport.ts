/**
 * The one place that reaches into the transport under crossws 0.3 (the `ws` package on Node):
 * frame a broadcast once and write the same bytes to every socket, send protocol pings,
 * see whether a frame was binary, and bound each socket's send buffer.
 * Every function falls back to crossws's public API when the internals are not there
 * (other adapters, or the dev server's crossws build).
 */
import type { Peer } from 'crossws'

/** The parts of a `ws` WebSocket we use; present on crossws's Node adapter as `peer._internal.ws`. */
interface RawWebSocket {
  readyState: number
  _socket?: { write: (chunk: Uint8Array) => boolean, writableLength: number, destroyed: boolean }
  _sender?: { _state?: number, _queue?: unknown[] }
  ping: (data?: unknown) => void
  terminate: () => void
  on: (event: 'pong', listener: () => void) => void
  prependListener: (event: 'message', listener: (data: unknown, isBinary: boolean) => void) => void
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

/**
 * Watch a socket's liveness and frame kinds: `onPong` runs on every protocol pong, and the
 * returned function tells, frame by frame in arrival order, whether each data frame was
 * binary (crossws 0.3 drops that flag). Frames of one TCP chunk are all parsed before the
 * first message hook runs, so the flags wait in a queue.
 */
export function watchSocket(ws: RawWebSocket | undefined, onPong: () => void): () => boolean {
  if (!ws) return () => false
  const binaryFlags: boolean[] = []
  ws.prependListener('message', (_data, isBinary) => {
    binaryFlags.push(isBinary)
  })
  ws.on('pong', onPong)
  return () => binaryFlags.shift() ?? false
}

/** The socket address of an upgrade request (crossws 0.3 wraps Node's `IncomingMessage` as `_req`). */
export function upgradeSocketAddress(request: unknown): string | undefined {
  return (request as { _req?: { socket?: { remoteAddress?: string } } })._req?.socket?.remoteAddress
}

/** The TCP socket of an upgrade request, to see it close whether or not the handshake completes. */
export function upgradeSocket(request: unknown): { destroyed: boolean, once: (event: 'close', listener: () => void) => unknown } | undefined {
  return (request as { _req?: { socket?: { destroyed: boolean, once: (event: 'close', listener: () => void) => unknown } } })._req?.socket
}
