/**
 * A chat connection served through a crossws Peer: Nitro 3 (crossws 0.4), or Nitro 2 when the app
 * brought its own `ws` server. Writes go straight to the `ws` socket behind the Peer where
 * ./internals.ts finds it (the same pre-framed bytes as ./leanServer.ts), else through `peer.send`.
 */
import type { Peer } from 'crossws'
import type { ChatTransport } from './chatTransport'
import type { SharedFrame } from './frame'
import { backlogOf, capFramesOf, holdSocket, publicBufferedAmount, rawWebSocket, releaseSocket, releaseUpgradeRequest, transportStats, writeFramed, type RawWebSocket } from './internals'

const WS_OPEN = 1

/** What a Peer's transport keeps up to date for its connection: a pong or a message arrived since the last heartbeat round. */
export interface Liveness {
  alive: boolean
}

const kTransport = Symbol('nuxt-chat:transport')
type WatchedWebSocket = RawWebSocket & { [kTransport]: PeerTransport<Liveness> }

// Shared listeners (`this` is the socket): no closures per connection.
function onMessageFrame(this: WatchedWebSocket, _data: unknown, isBinary: boolean) {
  (this[kTransport].binaryFlags ??= []).push(isBinary)
}
function onPong(this: WatchedWebSocket) {
  const member = this[kTransport].member
  if (member) member.alive = true
}

export class PeerTransport<M extends Liveness = Liveness> implements ChatTransport {
  declare readonly peer: Peer
  /** The `ws` socket behind the Peer; `undefined` when this adapter hides it (no fast path, pause, heartbeat or binary check). */
  declare readonly ws: RawWebSocket | undefined
  /** The chat's connection on this Peer, once opened. */
  declare member: M | undefined
  /** Binary flag of each data frame not yet handled, in arrival order (crossws 0.3 drops it); made on the first frame. */
  declare binaryFlags: boolean[] | undefined

  constructor(peer: Peer, ws: RawWebSocket | undefined) {
    this.peer = peer
    this.ws = ws
    this.member = undefined
    this.binaryFlags = undefined
    if (!ws) return
    // Frames of one TCP chunk are all parsed before the first message hook runs, so the flags wait in a queue.
    ;(ws as WatchedWebSocket)[kTransport] = this
    ws.prependListener('message', onMessageFrame)
    ws.on('pong', onPong)
  }

  get writable(): boolean {
    return !this.ws || this.ws.readyState === WS_OPEN
  }

  writeFrame(frame: SharedFrame): number {
    if (this.ws) return writeFramed(this.ws, frame, this.peer)
    transportStats.publicWrites++
    this.peer.send(frame.text)
    return publicBufferedAmount(this.peer)
  }

  get backlog(): number {
    return this.ws ? backlogOf(this.ws) : publicBufferedAmount(this.peer)
  }

  closeWith(code: number, reason: string): void {
    this.peer.close(code, reason)
  }

  drop(): void {
    if (this.ws) this.ws.terminate()
    else this.peer.close(1008, 'Too slow')
  }

  pauseReading(): boolean {
    if (!this.ws) return false
    this.ws.pause()
    return true
  }

  resumeReading(): void {
    this.ws?.resume()
  }

  sendPing(): boolean {
    if (!this.ws) return false
    this.ws.ping()
    return true
  }

  holdOutput(): boolean {
    return this.ws ? holdSocket(this.ws) : false
  }

  releaseOutput(): void {
    if (this.ws) releaseSocket(this.ws)
  }

  /** Was the next unhandled data frame binary? */
  nextFrameIsBinary(): boolean {
    return this.binaryFlags?.shift() ?? false
  }
}

/**
 * The transport of a Peer that just opened: its upgrade request let go (crossws 0.3 keeps every header per peer),
 * its `ws` socket found, and its incoming frames capped at `maxPayload` when the adapter was made without that option.
 */
export function peerTransport<M extends Liveness>(peer: Peer, maxPayload?: number): PeerTransport<M> {
  releaseUpgradeRequest(peer)
  const ws = rawWebSocket(peer)
  if (maxPayload !== undefined) capFramesOf(ws, maxPayload)
  return new PeerTransport<M>(peer, ws)
}
