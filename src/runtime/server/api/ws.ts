import { defineWebSocketHandler } from 'h3'
import type { Peer } from 'crossws'
import { useNitroApp, useRuntimeConfig } from 'nitropack/runtime'
import { errorFrame, parseClientFrame, PONG_FRAME } from '../../shared/protocol'
import type { ChatRuntimeConfig, ChatRuntimeHooks } from '../../types'
import { admitRequest, ChatRefusal, clientIp, holdConnection, type ChatAdmission } from '../utils/access'
import { RoomFrame, type Member } from '../utils/hub'
import { chatLogger, useChatHub } from '../utils/useChatHub'
import { rawWebSocket, upgradeSocket, upgradeSocketAddress, watchSocket, writeFrame } from '../utils/wsTransport'
import type { Hookable } from 'hookable'

/** Per-connection state, kept in `peer.context.chat`. */
interface WsMember extends Member {
  admission: ChatAdmission
  alive: boolean
  /** Whether the next data frame, in arrival order, was binary. */
  nextFrameIsBinary: () => boolean
  release: () => void
  strikes: number
  /** This member's messages, handled one after another. */
  chain: Promise<void>
}

const members = new Set<WsMember & { peer: Peer }>()
let heartbeat: ReturnType<typeof setInterval> | undefined

/** WebSocket pings: a peer that answered nothing since the last round is gone (found within 2 × interval). */
function startHeartbeat(config: ChatRuntimeConfig) {
  heartbeat ??= setInterval(() => {
    for (const member of members) {
      const ws = rawWebSocket(member.peer)
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

function memberOf(peer: Peer): WsMember | undefined {
  return (peer.context as { chat?: WsMember }).chat
}

function sendFrame(peer: Peer, frame: object) {
  peer.send(JSON.stringify(frame))
}

/** Handle one text frame of a member: a command, or a chat message through the hub. */
async function handleMessage(peer: Peer, member: WsMember, text: string | undefined) {
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
      hub.typing(member.admission.room, member)
      return
    case 'invalid':
      sendFrame(peer, errorFrame('bad_request', command.reason, command.cid))
      return
  }
  const result = await hub.send({ room: member.admission.room, user: member.user, sender: member.sender, message: command.message, cid: command.cid, member })
  if (result.error) {
    sendFrame(peer, result.error)
    if (result.error.code !== 'rate_limited') return
    if (++member.strikes >= hub.abuseLimit) peer.close(1008, 'Rate limit exceeded')
    return
  }
  member.strikes = 0
  // A repeated cid is not broadcast again: only the sender gets the stored frame back.
  if (result.duplicate) member.write(new RoomFrame(JSON.stringify(result.frame), result.frame!.id))
}

export default defineWebSocketHandler({
  async upgrade(request) {
    const config = useRuntimeConfig().chat as ChatRuntimeConfig
    const hooks = useNitroApp().hooks as unknown as Hookable<ChatRuntimeHooks>
    const headers = request.headers
    const ip = clientIp(headers, upgradeSocketAddress(request), config)
    try {
      const admission = await admitRequest({ url: new URL(request.url), headers, ip }, crypto.randomUUID(), config, hooks)
      const release = holdConnection(ip, config.maxConnectionsPerIp)
      if (!release) throw new ChatRefusal(429, 'Too many connections from this address')
      // Also released when the TCP socket closes: a handshake that fails after this hook (or a client gone meanwhile) never reaches `close`.
      const socket = upgradeSocket(request)
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
    const hub = useChatHub()
    const config = useRuntimeConfig().chat as ChatRuntimeConfig
    const context = peer.context as { chatAdmission?: { admission: ChatAdmission, release: () => void }, chat?: WsMember }
    const admitted = context.chatAdmission
    if (!admitted) {
      peer.close(1011, 'Not admitted')
      return
    }
    delete context.chatAdmission
    const ws = rawWebSocket(peer)
    const { admission } = admitted
    // Anonymous peers are named after their crossws id, as in the seed.
    const anonymous = !admission.sender
    const user = anonymous ? { id: peer.id, name: admission.user.name === admission.user.id ? peer.id : admission.user.name } : admission.user
    const member: WsMember & { peer: Peer } = {
      peer,
      user,
      sender: admission.sender,
      admission,
      backlog: null,
      alive: true,
      strikes: 0,
      chain: Promise.resolve(),
      release: admitted.release,
      nextFrameIsBinary: () => false,
      write(frame: RoomFrame) {
        // Already closing (e.g. dropped as a slow reader): nothing more to send, nor to warn about again.
        if (ws && ws.readyState !== 1) return
        if (writeFrame(peer, ws, frame) > config.maxBufferedBytes) {
          // A reader this far behind would only grow our memory: drop it, it will resume by id.
          chatLogger.warn(`[nuxt-chat] closing a slow reader in room "${admission.room}"`)
          if (ws) ws.terminate()
          else peer.close(1008, 'Too slow')
        }
      },
    }
    member.nextFrameIsBinary = watchSocket(ws, () => {
      member.alive = true
    })
    context.chat = member
    members.add(member)
    startHeartbeat(config)
    hub.join(admission.room, member, admission.since).catch(error => chatLogger.error('[nuxt-chat] join failed', error))
  },

  message(peer, message) {
    const member = memberOf(peer)
    if (!member) return
    member.alive = true
    // One message at a time per connection, so a sender's messages are stored in the order sent.
    const text = member.nextFrameIsBinary() ? undefined : message.text()
    member.chain = member.chain.then(() => handleMessage(peer, member, text)).catch((error) => {
      chatLogger.error('[nuxt-chat] message handling failed', error)
    })
  },

  close(peer) {
    const member = memberOf(peer)
    if (!member) return
    members.delete(member as WsMember & { peer: Peer })
    member.release()
    useChatHub().leave(member.admission.room, member)
  },

  error(peer, error) {
    chatLogger.debug('[nuxt-chat] socket error', error)
  },
})
