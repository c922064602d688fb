import { defineWebSocketHandler } from 'h3'
import type { Peer } from 'crossws'
import { useRuntimeConfig } from 'nitropack/runtime'
import { errorFrame, parseClientFrame, PONG_FRAME, type ChatUser } from '../../shared/protocol'
import type { ChatRuntimeConfig } from '../../types'
import { ChatRefusal, holdConnection, type ChatAdmission } from '../utils/access'
import { admitToChat } from '../utils/httpAdmission'
import { offerFrame, RoomFrame, type Member } from '../utils/hub'
import { chatLogger, useChatHub } from '../utils/useChatHub'
import { nextFrameIsBinary, rawWebSocket, releaseUpgradeRequest, upgradeSocket, watchSocket, writeFrame, type RawWebSocket, type SocketWatch } from '../utils/wsTransport'

const SETTLED = Promise.resolve()
// A sender who keeps hammering after being told to slow down is closed (1008).
const ABUSE_LIMIT = 50

/**
 * One WebSocket connection in a room, kept in `peer.context.chat`. A class, not an object of
 * closures: idle connections are most of a chat server's memory.
 */
class WebSocketMember implements Member, SocketWatch {
  backlog: RoomFrame[] | null = null
  replayedTo = 0
  alive = true
  binaryFlags: boolean[] = []
  /** Rate-limit answers in a row; too many closes the connection. */
  strikes = 0
  /** This member's messages, handled one after another. */
  chain: Promise<void> = SETTLED
  typingAt?: number

  constructor(
    readonly peer: Peer,
    readonly ws: RawWebSocket | undefined,
    readonly user: ChatUser,
    readonly sender: string,
    readonly ip: string | undefined,
    readonly room: string,
    readonly release: () => void,
    private readonly maxBufferedBytes: number,
  ) {}

  write(frame: RoomFrame) {
    const { ws, peer } = this
    // Already closing (e.g. dropped as a slow reader): nothing more to send, nor to warn about again.
    if (ws && ws.readyState !== 1) return
    if (writeFrame(peer, ws, frame) > this.maxBufferedBytes) {
      // A reader this far behind would only grow our memory: drop it, it will resume by id.
      chatLogger.warn(`[nuxt-chat] closing a slow reader in room "${this.room}"`)
      if (ws) ws.terminate()
      else peer.close(1008, 'Too slow')
    }
  }
}

const members = new Set<WebSocketMember>()
let heartbeat: ReturnType<typeof setInterval> | undefined

/** WebSocket pings: a peer that answered nothing since the last round is gone (found within 2 × interval). */
function startHeartbeat(config: ChatRuntimeConfig) {
  heartbeat ??= setInterval(() => {
    for (const member of members) {
      const ws = member.ws
      if (!ws) continue
      if (!member.alive) {
        ws.terminate()
        continue
      }
      member.alive = false
      ws.ping()
    }
  }, config.heartbeat.interval)
  heartbeat.unref?.()
}

function memberOf(peer: Peer): WebSocketMember | undefined {
  return (peer.context as { chat?: WebSocketMember }).chat
}

function sendFrame(peer: Peer, frame: object) {
  peer.send(JSON.stringify(frame))
}

/** Handle one text frame of a member: a command, or a chat message through the hub. */
async function handleMessage(peer: Peer, member: WebSocketMember, text: string | undefined, onQueued: () => void) {
  if (text === undefined) {
    sendFrame(peer, errorFrame('bad_request', 'Binary frames are not accepted; send text'))
    return
  }
  const hub = useChatHub()
  const command = parseClientFrame(text)

  switch (command.type) {
    case 'ping':
      sendFrame(peer, PONG_FRAME)
      return
    case 'typing':
      hub.typing(member.room, member)
      return
    case 'invalid':
      sendFrame(peer, errorFrame('bad_request', command.reason, command.cid))
      return
  }
  const result = await hub.send({ room: member.room, user: member.user, sender: member.sender, ip: member.ip, message: command.message, cid: command.cid, member, onQueued })
  if (result.error) {
    sendFrame(peer, result.error)
    if (result.error.code !== 'rate_limited') return
    if (++member.strikes >= ABUSE_LIMIT) peer.close(1008, 'Rate limit exceeded')
    return
  }
  member.strikes = 0
  // A repeated cid is not broadcast again: only the sender gets the stored frame back (after its replay).
  // No id on this RoomFrame: the replay filter must not swallow the acknowledgement.
  if (result.duplicate) offerFrame(member, new RoomFrame(JSON.stringify(result.frame)))
}

export default defineWebSocketHandler({
  async upgrade(request) {
    const config = useRuntimeConfig().chat as ChatRuntimeConfig
    try {
      const admission = await admitToChat(request.url, request.headers, upgradeSocket(request))
      const release = holdConnection(admission.ip, config.maxConnectionsPerIp)
      if (!release) throw new ChatRefusal(429, 'Too many connections from this address')
      // Also released when the TCP socket closes: a handshake that fails after this hook (or a client gone meanwhile) never reaches `close`.
      const socket = config.maxConnectionsPerIp ? upgradeSocket(request) : undefined
      if (socket?.destroyed) release()
      else socket?.once('close', release)
      ;(request as unknown as { context: Record<string, unknown> }).context.chatAdmission = { admission, release }
    }
    catch (error) {
      if (error instanceof ChatRefusal) throw new Response(error.message, { status: error.status, headers: { 'content-type': 'text/plain' } })
      chatLogger.error('[nuxt-chat] upgrade failed', error)
      throw new Response('Internal error', { status: 500 })
    }
  },

  open(peer) {
    const config = useRuntimeConfig().chat as ChatRuntimeConfig
    const context = peer.context as { chatAdmission?: { admission: ChatAdmission, release: () => void }, chat?: WebSocketMember }
    const admitted = context.chatAdmission
    if (!admitted) {
      peer.close(1011, 'Not admitted')
      return
    }
    delete context.chatAdmission
    releaseUpgradeRequest(peer)
    const ws = rawWebSocket(peer)
    const { admission } = admitted
    const member = new WebSocketMember(peer, ws, admission.user, admission.sender, admission.ip, admission.room, admitted.release, config.maxBufferedBytes)
    watchSocket(ws, member)
    context.chat = member
    members.add(member)
    startHeartbeat(config)
    useChatHub().join(admission.room, member, admission.since, admission.nameRefused).catch(error => chatLogger.error('[nuxt-chat] join failed', error))
  },

  message(peer, message) {
    const member = memberOf(peer)
    if (!member) return
    member.alive = true
    // A connection's messages are checked one after another and handed to the store in the
    // order sent (it stores them in that order); the next starts once this one is handed over.
    const text = nextFrameIsBinary(member) ? undefined : message.text()
    member.chain = member.chain.then(() => new Promise<void>((handed) => {
      handleMessage(peer, member, text, handed).catch((error) => {
        chatLogger.error('[nuxt-chat] message handling failed', error)
      }).finally(handed)
    }))
  },

  close(peer) {
    const member = memberOf(peer)
    if (!member) return
    members.delete(member)
    member.release()
    useChatHub().leave(member.room, member)
  },

  error(peer, error) {
    chatLogger.debug('[nuxt-chat] socket error', error)
  },
})
