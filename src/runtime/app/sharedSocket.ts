/**
 * One WebSocket per tab for every room and the rooms list (protocol version 2, subprotocol
 * `nuxt-chat.2`): the WebSocket carrier of ./sharedLink.ts. A server that does not speak version 2
 * gets the version 1 per-room sockets instead.
 */
import { PROTOCOL_V2 } from '../shared/protocolV2'
import { askShared, forgetSharedLinks, openSharedLink, type CarrierEvents, type CarrierKind, type SharedAnswer, type SharedCarrier, type SharedCommand, type SharedFrame } from './sharedLink'
import { openWebSocketLink, parseFrame, type ChatLink, type ChatLinkEvents, type ChatLinkTargets } from './transport'

/** One version 2 WebSocket: every command a frame on it. */
function openSocketCarrier(url: URL, events: CarrierEvents): SharedCarrier {
  const ws = new WebSocket(url, PROTOCOL_V2)
  ws.onmessage = (event) => {
    const frame = parseFrame(event.data) as SharedFrame | undefined
    if (frame) events.frame(frame)
  }
  ws.onclose = () => events.dropped()
  return {
    send(command) {
      if (ws.readyState !== 1) return false
      ws.send(JSON.stringify(command))
      return true
    },
    close() {
      ws.onmessage = ws.onclose = null
      if (ws.readyState === 0 || ws.readyState === 1) ws.close()
    },
  }
}

const socketCarrier: CarrierKind = {
  open: openSocketCarrier,
  // As many unanswered messages per room as a version 1 socket allows.
  window: 10,
  openVersionOne: openWebSocketLink,
}

/**
 * A link to one room (the URL's `room` and `since`), or to the rooms list (`rooms`), on the tab's
 * shared version 2 socket; a version 1 socket of its own where the server speaks version 1 only.
 */
export function openSharedWebSocketLink(targets: ChatLinkTargets, events: ChatLinkEvents): ChatLink {
  return openSharedLink(socketCarrier, targets, events)
}

/** Close every shared connection (sockets and streams) at once, telling no link (tests start each case from a fresh tab). */
export function forgetSharedSockets() {
  forgetSharedLinks()
}

/** One command with its `ref` on the tab's shared socket (see `askShared`). */
export function askSharedSocket(target: URL, command: SharedCommand & { ref: string }, timeout: number): Promise<SharedAnswer | 'v1' | undefined> {
  return askShared(socketCarrier, target, command, timeout)
}
