/**
 * The `ws` server the module hands crossws's Node adapter on Nitro 2 (its `wss` option): every
 * upgrade still runs crossws's hooks (the chat's admission in `upgrade`), but a connection the
 * chat admitted is then served on its `ws` socket directly, without a crossws Peer, request proxy
 * or per-connection listener closures: idle connections are most of a chat server's memory.
 * Connections to other routes (an app's own `defineWebSocketHandler`) go on to crossws unchanged.
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocket, WebSocketServer, type ServerOptions } from 'ws'
import { chatLogger } from '../utils/logger'
import type { ChatSocketHandlers, ChatTransport } from './chatTransport'
import type { SharedFrame } from './frame'
import { backlogOf, forgetPeerAddress, holdSocket, releaseSocket, transportStats, untrackFromShutdown, upgradeContextOf, writeFramed } from './internals'

const WS_OPEN = 1

let handlers: ChatSocketHandlers<unknown> | undefined

/** Serve sockets whose upgrade context holds `chatAdmission` with `handlers` (set once, by the chat's route). */
export function serveChatSockets<M>(chatHandlers: ChatSocketHandlers<M>): void {
  handlers = chatHandlers as ChatSocketHandlers<unknown>
}

/**
 * A `ws` socket with one slot for what serves it: its events go straight to the chat's handlers with `this.member`,
 * no listener each. It is its own `ChatTransport`: the methods live on the prototype, so a connection costs no object more.
 */
export class ChatSocket extends WebSocket implements ChatTransport {
  /** The chat's connection on this socket; `null` on a chat socket refused at open, `undefined` on sockets crossws serves. */
  declare member: unknown

  constructor(...args: ConstructorParameters<typeof WebSocket>) {
    super(...args)
    // Set in the constructor: one in-object slot, not a property added later to each socket.
    this.member = undefined
  }

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    const member = this.member
    if (member === undefined || !handlers) return super.emit(event, ...args)
    if (event === 'error') {
      handlers.error(args[0] as Error)
      // Without a listener, `emit('error')` throws.
      return this.listenerCount('error') ? super.emit(event, ...args) : true
    }
    if (member !== null) {
      if (event === 'message') handlers.message(member, args[1] ? undefined : String(args[0]))
      else if (event === 'pong') handlers.pong(member)
      else if (event === 'close') handlers.close(member)
    }
    // Still emitted: `ws`'s server listens for `close` (client tracking).
    return super.emit(event, ...args)
  }

  get writable(): boolean {
    return this.readyState === WS_OPEN
  }

  writeFrame(frame: SharedFrame): number {
    return writeFramed(this, frame, this)
  }

  get backlog(): number {
    return backlogOf(this)
  }

  closeWith(code: number, reason: string): void {
    this.close(code, reason)
  }

  drop(): void {
    this.terminate()
  }

  pauseReading(): boolean {
    this.pause()
    return true
  }

  resumeReading(): void {
    this.resume()
  }

  sendPing(): boolean {
    this.ping()
    return true
  }

  holdOutput(): boolean {
    return holdSocket(this)
  }

  releaseOutput(): void {
    releaseSocket(this)
  }
}

/**
 * The TCP socket's `close` listeners in a fresh array: while the upgrade was admitted, listeners came and went (the
 * headers bound's, the connection slot's), and the array holding them grew to 19 slots, kept with every connection
 * (~150 B). With two left (the host's and `ws`'s), taking the first out leaves the other alone, and putting it back
 * in front makes an array of 2, in the same order. (Nothing is deleted from `_events`: that would make it a hash table.)
 */
function compactCloseListeners(socket: Duplex) {
  const listeners = socket.rawListeners('close') as ((...args: unknown[]) => void)[]
  if (listeners.length !== 2) return
  socket.removeListener('close', listeners[0]!)
  socket.prependListener('close', listeners[0]!)
}

function release(socket: Duplex) {
  socket.uncork()
}

/** crossws calls `handleUpgrade` then `emit('connection', ws, req)`: the chat's sockets are taken there. */
class ChatWebSocketServer extends WebSocketServer {
  override handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, callback: (ws: WebSocket, req: IncomingMessage) => void): void {
    // Held from the 101 response on (a refused handshake's `end` writes through the cork).
    socket.cork()
    super.handleUpgrade(req, socket, head, callback)
  }

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event !== 'connection') return super.emit(event, ...args)
    const [ws, req] = args as [ChatSocket, IncomingMessage]
    const socket = req.socket
    const context = upgradeContextOf(req)
    if (handlers && context?.chatAdmission) {
      try {
        // A chat socket from here on: its errors go to the chat, even when it is refused.
        ws.member = null
        ws.member = handlers.open(ws, context, socket?.remoteAddress) ?? null
        if (ws.member) transportStats.leanConnections++
        // Reading `remoteAddress` cached an address object on the socket for its lifetime; the chat keeps the string it needs.
        forgetPeerAddress(socket)
        if (socket && ws.member) untrackFromShutdown(socket)
        if (socket) compactCloseListeners(socket)
        // The 101 response, welcome and presence list (told on the next check phase) leave in one write.
        setImmediate(release, socket)
        return true
      }
      catch (error) {
        // Never left held and half-open: the client sees the connection fail and retries.
        chatLogger.error('[nuxt-chat] could not open a chat connection', error)
        ws.terminate()
        socket?.uncork()
        return true
      }
    }
    socket?.uncork()
    return super.emit(event, ...args)
  }
}

/** The server for crossws's Node adapter: `ws`'s own, with the options crossws would have given its bundled copy. */
export function createChatWebSocketServer(options: ServerOptions): WebSocketServer {
  // (`ws` makes server sockets as `new WebSocket(null, undefined, options)`, an overload its types leave out.)
  return new ChatWebSocketServer({ ...options, noServer: true, WebSocket: ChatSocket as unknown as typeof WebSocket })
}
