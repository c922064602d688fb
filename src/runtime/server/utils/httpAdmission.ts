// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
import type { H3Event } from 'h3'
// The module picks ./nitroV2.ts or ./nitroV3.ts for the app's Nitro.
import { requestOrigin, requestPath, setResponseHeader, setResponseStatus, useNitroApp, useRuntimeConfig } from '#nuxt-chat/nitro'
import type { Hookable } from 'hookable'
import { errorFrame, type ChatErrorFrame } from '../../shared/protocol'
import type { ChatRuntimeConfig, ChatRuntimeHooks } from '../../types'
import { admitRequest, ChatRefusal, clientIp, describeRequest, refusalCode, type ChatAdmission } from './access'
import { ChatLimitRefusal, countLimitRefusal, limitRefusalFrame, limitSubjectOf, type LimitRefusal } from './chatLimits'
import { connectionCapRefusal, ConnectionHold, holdPending } from './connectionCaps'
import { allowCrossOrigin } from './cors'
import { chatLogger, useChatHub } from './useChatHub'

/** Seconds a client should wait before retrying a 429 or 503 (`Retry-After`); `undefined` for other statuses. */
export function retryAfterSeconds(status: number): number | undefined {
  if (status === 429) return 5
  if (status === 503) return 2
  return undefined
}

/** Answer an HTTP request with an `error` frame as its JSON body (and `Retry-After` on 429 and 503: the frame's `retryAfter` when it has one). */
export function refuse(event: H3Event, status: number, frame: ChatErrorFrame): ChatErrorFrame {
  setResponseStatus(event, status)
  setResponseHeader(event, 'content-type', 'application/json')
  const retryAfter = frame.retryAfter ?? retryAfterSeconds(status)
  if (retryAfter) setResponseHeader(event, 'retry-after', retryAfter)
  return frame
}

/** Answer a request a limit refused: `429`, `Retry-After` and the `rate_limited` frame naming the limit and its scope. */
export function refuseLimited(event: H3Event, refusal: LimitRefusal, cid?: string): ChatErrorFrame {
  return refuse(event, 429, limitRefusalFrame(refusal, cid))
}

/**
 * Admit a request to this server's rooms (see `admitRequest`), from its URL, headers and socket.
 * While the identify hook runs the request counts against its address's requests not yet
 * identified, apart from its connected guests (throws `ChatLimitRefusal` at `maxConnectionsPerIp`
 * of them): unidentified attempts are bounded per address, and guests at their cap do not keep
 * the address's signed-in people out. `join`: the request joins its room (a version 1 upgrade or
 * stream, or the probe of one): its connection caps are checked and a token of `joins` taken before
 * the room's admission, so a refused join (`ChatLimitRefusal`) asks no `chat:join` hook and makes no direct room.
 */
export async function admitToChat(url: string, headers: Headers, socket: { remoteAddress?: string, encrypted?: boolean } | undefined, version?: 2, join = false): Promise<ChatAdmission> {
  const config = useRuntimeConfig().chat as ChatRuntimeConfig
  const hooks = useNitroApp().hooks as unknown as Hookable<ChatRuntimeHooks>
  const pending = holdPending(clientIp(headers, socket?.remoteAddress, config), config)
  if (!(pending instanceof ConnectionHold)) throw new ChatLimitRefusal(pending)
  try {
    const admission = await admitRequest(describeRequest(url, headers, socket, config), config, hooks, room => useChatHub().signedInNames(room), version)
    // A version 2 connection's joins are metered one by one (wsRooms.ts); a rooms list joins no room.
    if (join && admission.version !== 2 && !admission.rooms) {
      const subject = limitSubjectOf(admission)
      // A connection its caps would refuse next is refused first, taking no token of `joins`.
      const atCap = connectionCapRefusal(subject, config)
      if (atCap) countLimitRefusal(atCap, subject)
      const refused = atCap ?? useChatHub().joinRefusal(subject)
      if (refused) throw new ChatLimitRefusal(refused)
    }
    // The room's own admission (members, bans; docs/PROTOCOL.md, "Admission"), for every transport alike; a version 2 connection's at each join.
    if (admission.version !== 2) await useChatHub().admitToRoom(admission)
    return admission
  }
  finally {
    pending.release()
  }
}

/**
 * Admit an SSE or POST request (CORS, host, room, origin, identify hook; version 2: no room); a
 * refusal is answered here and returned as `{ refused }`. `join`: as for `admitToChat`.
 */
export async function admitHttpRequest(event: H3Event, version?: 2, join = false): Promise<{ admission: ChatAdmission, config: ChatRuntimeConfig } | { refused: ChatErrorFrame }> {
  const config = useRuntimeConfig().chat as ChatRuntimeConfig
  // Before any refusal, so an allowed origin can read the error too.
  allowCrossOrigin(event, config)
  try {
    const { headers, socket } = requestOrigin(event)
    const admission = await admitToChat(requestPath(event), headers, socket, version, join)
    return { admission, config }
  }
  catch (error) {
    if (!(error instanceof ChatRefusal)) chatLogger.error('[nuxt-chat] admission failed', error)
    if (error instanceof ChatLimitRefusal) return { refused: refuseLimited(event, error.refusal) }
    const status = error instanceof ChatRefusal ? error.status : 500
    const message = error instanceof ChatRefusal ? error.message : 'Internal error'
    return { refused: refuse(event, status, errorFrame(refusalCode(status), message)) }
  }
}
