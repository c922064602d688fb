// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
import type { H3Event } from 'h3'
// The module picks ../utils/nitroV2.ts or ../utils/nitroV3.ts for the app's Nitro.
import { defineWebSocketRoute, setResponseHeader, setResponseStatus } from '#nuxt-chat/nitro'
import { errorFrame, type ChatErrorFrame } from '../../shared/protocol'
import { limitRefusalFrame, limitSubjectOf } from '../utils/chatLimits'
import { connectionCapRefusal } from '../utils/connectionCaps'
import { admitHttpRequest, refuse } from '../utils/httpAdmission'
import webSocketHooks from './ws'

/**
 * A plain GET on the WebSocket route (no `Upgrade` header): the same admission as an upgrade
 * (room, Host, origin, guest key, identify hook, its token of `joins`, connections per address), answered `400` /
 * `401` / `403` / `429` with an `error` frame when it would refuse, else `426`. A client whose upgrade failed asks this once to
 * learn why, instead of retrying blindly (browsers do not show a refused upgrade's status).
 */
async function probeAdmission(event: H3Event): Promise<ChatErrorFrame> {
  const admitted = await admitHttpRequest(event, undefined, true)
  if ('refused' in admitted) return admitted.refused
  const atCap = connectionCapRefusal(limitSubjectOf(admitted.admission), admitted.config)
  if (atCap) return refuse(event, 429, limitRefusalFrame(atCap))
  setResponseStatus(event, 426, 'Upgrade Required')
  setResponseHeader(event, 'upgrade', 'websocket')
  setResponseHeader(event, 'content-type', 'application/json')
  return errorFrame('bad_request', 'This route needs a WebSocket upgrade')
}

/** The WebSocket route (GET and HEAD): upgrades go to the handler in ./ws, any other request is the admission probe. */
export default defineWebSocketRoute(webSocketHooks, probeAdmission)
