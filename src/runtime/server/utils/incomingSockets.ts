/**
 * Sockets before their first request's headers (docs/PROTOCOL.md, "Sockets before their headers"): each must send
 * them within `headersTimeout` ms or is closed, and meanwhile counts against its address's
 * `maxConnectionsPerIp` (a count of their own: a socket over it is answered `429` at once).
 * Node's own bound (`server.headersTimeout`, 60 s) is checked only every 30 s and counts nothing
 * per address, so 300 sockets dripping a header line every 2 s would stay open.
 * Sockets are seen through Node's public diagnostics channels; the one field they lack (which
 * server accepted a socket) is read in ../transport/internals.ts, failing closed.
 */
import { subscribe } from 'node:diagnostics_channel'
import type { Socket } from 'node:net'
import type { ChatRuntimeConfig } from '../../types'
import { limitRefusalFrame, type LimitRefusal } from './chatLimits'
import { ConnectionHold, holdHeaderless } from './connectionCaps'
import { chatLogger } from './logger'
import type { Server as HttpServer } from 'node:http'
import { httpServerOf } from '../transport/internals'

type GateConfig = Pick<ChatRuntimeConfig, 'headersTimeout' | 'clientIpHeader' | 'maxConnectionsPerIp' | 'maxConnectionsPerUser' | 'signedInIpFactor'>

/** What a socket holds until its first request's headers arrive. */
interface Waiting {
  timer: ReturnType<typeof setTimeout>
  hold: ConnectionHold | undefined
}

/** Sockets still waiting for their first headers (kept off the socket: no slot added to every connection). */
const waitingSockets = new Map<Socket, Waiting>()
/** Requests of a socket started and not yet answered: a kept-alive socket waits for its next request's headers only when none is. */
const requestsInFlight = new WeakMap<Socket, number>()

/** Sockets closed because their headers did not arrive in time, and answered `429` before them; since start. */
export const incomingSocketStats = { headerTimeouts: 0, refusedBeforeHeaders: 0 }

/** Servers whose headers bound is set, and those whose upgrades mark their sockets' headers as arrived. */
const boundedServers = new WeakSet<object>()
const upgradeServers = new WeakSet<object>()
let config: GateConfig | undefined

/** The socket's headers arrived (a request or an upgrade): no bound, and its slot goes. Also called by the chat's own upgrade hook. */
export function headersArrived(socket: Socket) {
  const waiting = waitingSockets.get(socket)
  if (!waiting) return
  waitingSockets.delete(socket)
  clearTimeout(waiting.timer)
  waiting.hold?.release()
  socket.removeListener('close', onWaitingSocketClose)
}

// Shared listener (`this` is the socket): no closure per connection.
function onWaitingSocketClose(this: Socket) {
  headersArrived(this)
}

function onHeaderTimeout(socket: Socket) {
  if (!waitingSockets.has(socket)) return
  incomingSocketStats.headerTimeouts++
  // Nothing useful to answer a request that never finished: closed as Node's own bound does.
  socket.destroy()
}

/** Answer a socket over its address's cap at once, before it sends anything, and close it. */
function refuseBeforeHeaders(socket: Socket, refusal: LimitRefusal) {
  incomingSocketStats.refusedBeforeHeaders++
  const body = JSON.stringify(limitRefusalFrame(refusal))
  socket.end(`HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: ${refusal.retryAfter}\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
  socket.once('finish', () => socket.destroy())
}

function watchServer(server: HttpServer, bound: number) {
  if (!boundedServers.has(server)) {
    boundedServers.add(server)
    // Later requests on a kept-alive socket are Node's to bound: at most ours.
    if (!server.headersTimeout || server.headersTimeout > bound) server.headersTimeout = bound
  }
  // Only next to the app's own listener (looked for again until there is one): ours alone would make Node hand every upgrade to nobody.
  if (upgradeServers.has(server) || server.listenerCount('upgrade') === 0) return
  upgradeServers.add(server)
  server.on('upgrade', (_req, socket) => headersArrived(socket as Socket))
}

function onAcceptedSocket(message: unknown) {
  const socket = (message as { socket?: Socket }).socket
  const gate = config
  if (!socket || !gate?.headersTimeout) return
  const server = httpServerOf(socket)
  if (!server) return
  watchServer(server, gate.headersTimeout)
  // Behind a proxy (`clientIpHeader`) every socket has the proxy's address: counted by the header's once it is read.
  const ip = gate.clientIpHeader ? undefined : socket.remoteAddress
  const held = ip ? holdHeaderless(ip, gate) : undefined
  if (held && !(held instanceof ConnectionHold)) {
    refuseBeforeHeaders(socket, held)
    return
  }
  const timer = setTimeout(onHeaderTimeout, gate.headersTimeout, socket)
  timer.unref?.()
  waitingSockets.set(socket, { timer, hold: held })
  socket.once('close', onWaitingSocketClose)
}

function onRequestStart(message: unknown) {
  const socket = (message as { socket?: Socket }).socket
  if (!socket) return
  headersArrived(socket)
  requestsInFlight.set(socket, (requestsInFlight.get(socket) ?? 0) + 1)
}

/**
 * A response sent on a socket kept alive with nothing else in flight: its next request's headers
 * are bounded too (idle up to the server's `keepAliveTimeout`, then `headersTimeout`). Node's own
 * check runs only every 30 s, so a second request dripped on a kept-alive socket stayed 40 s.
 * Not counted per address: idle kept-alive sockets of an office behind one address are many.
 */
function onResponseFinish(message: unknown) {
  const { socket, server } = message as { socket?: Socket, server?: HttpServer }
  if (!socket) return
  const left = (requestsInFlight.get(socket) ?? 1) - 1
  requestsInFlight.set(socket, left)
  const gate = config
  if (left > 0 || socket.destroyed || !gate?.headersTimeout || waitingSockets.has(socket) || !server || !boundedServers.has(server)) return
  const timer = setTimeout(onHeaderTimeout, gate.headersTimeout + (server.keepAliveTimeout || 0), socket)
  timer.unref?.()
  waitingSockets.set(socket, { timer, hold: undefined })
  socket.once('close', onWaitingSocketClose)
}

/**
 * Bound and count sockets before their headers, for every HTTP server of this process from now
 * on (`headersTimeout` 0: Node's own bound only). Called once by the chat's plugin; a later call
 * only changes the settings.
 */
export function guardIncomingSockets(gateConfig: GateConfig): void {
  const first = !config
  config = gateConfig
  if (!first) return
  try {
    subscribe('net.server.socket', onAcceptedSocket)
    subscribe('http.server.request.start', onRequestStart)
    subscribe('http.server.response.finish', onResponseFinish)
  }
  catch (error) {
    chatLogger.warn('[nuxt-chat] this runtime has no diagnostics channels for sockets: request headers are bounded by the server\'s own timeout only', error)
  }
}
