/**
 * One connection, whatever serves it (docs/PROTOCOL.md is silent on this: it is the server's
 * own seam). A chat connection writes, closes, pauses and pings through this interface only;
 * each server platform has one implementation, chosen once when the socket opens:
 * - ./leanServer.ts: Nitro 2, the chat's own `ws` sockets, served without a crossws Peer;
 * - ./peerTransport.ts: a crossws Peer (Nitro 3's crossws 0.4, or Nitro 2 with the app's own `ws` server).
 * Like centrifuge's `Transport`: the core never sees a `peer | ws` pair.
 */
import type { SharedFrame } from './frame'

export interface ChatTransport {
  /** Open for writing: false once closing (a frame written then goes nowhere). */
  readonly writable: boolean
  /**
   * Write a frame: its pre-framed bytes straight to the socket when the platform allows (coalesced
   * per task), else its text. Returns the bytes now waiting to go out (0 when unknown).
   */
  writeFrame: (frame: SharedFrame) => number
  /** Bytes waiting to go out on this connection (0 when the platform cannot tell). */
  readonly backlog: number
  /** Close with a code and reason (a close frame, after what is queued). */
  closeWith: (code: number, reason: string) => void
  /** Drop now, without waiting for unsent output (a slow reader, a dead peer). */
  drop: () => void
  /** Stop reading (input backpressure); false when this platform cannot. */
  pauseReading: () => boolean
  /** Read a paused connection again. */
  resumeReading: () => void
  /** Send a protocol ping (its pong marks the connection alive); false when this platform cannot. */
  sendPing: () => boolean
  /** Keep what is written from leaving until `releaseOutput` (frames of a few tasks in one write); false when this platform cannot. */
  holdOutput: () => boolean
  /** Let held output go, with the current task's. */
  releaseOutput: () => void
}

/** What serves the chat's connections, on every platform: one set of functions, given the connection a socket carries. */
export interface ChatSocketHandlers<M> {
  /** Take an admitted socket; `undefined` when it was refused (and closed). `context` is what the upgrade hook left on the request. */
  open: (transport: ChatTransport, context: Record<string, unknown>, remoteAddress: string | undefined) => M | undefined
  /** A data frame: its text, `undefined` for a binary one. */
  message: (member: M, text: string | undefined) => void
  pong: (member: M) => void
  close: (member: M) => void
  /** Any chat socket's error, opened or refused. */
  error: (error: Error) => void
}
