import type { ChatEventStream } from './httpExchange'
import { closeWebSocketMembers } from './wsMember'

/** The chat's open event streams (both protocol versions): a stopping server ends them. */
const openStreams = new Set<ChatEventStream>()

/** Count an event stream as the chat's until it closes. */
export function trackEventStream<S extends ChatEventStream>(stream: S): S {
  openStreams.add(stream)
  stream.onClose(() => openStreams.delete(stream))
  return stream
}

/** Every chat connection of this instance ends: WebSockets with 1001 (going away) and event streams, so clients reconnect at once, to another instance if there is one. */
export function endChatConnections(): void {
  closeWebSocketMembers(1001, 'Server shutting down')
  for (const stream of openStreams) stream.end()
}

let onSignals = false

/**
 * End the chat's connections as SIGTERM or SIGINT arrives, before the platform's graceful shutdown
 * (Nitro 2's, srvx's on Nitro 3) waits for open connections: long-lived ones would hold it for its
 * whole timeout (srvx: 5 s, then a process that never ends), and Nitro's `close` hooks only run after it.
 * With no other listener left, the signal is raised again for its default action.
 */
export function endChatConnectionsOnSignals(): void {
  if (onSignals || typeof process?.prependOnceListener !== 'function') return
  onSignals = true
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.prependOnceListener(signal, () => {
      endChatConnections()
      if (!process.listenerCount(signal)) process.kill(process.pid, signal)
    })
  }
}
