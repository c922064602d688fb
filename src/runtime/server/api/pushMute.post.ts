// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
// The module picks ../utils/nitroV2.ts or ../utils/nitroV3.ts for the app's Nitro.
import { defineEventHandler } from '#nuxt-chat/nitro'
import { errorFrame, isValidRoom } from '../../shared/protocol'
import { admitPushRequest, readJsonBody } from '../utils/pushRoutes'
import { refuse } from '../utils/httpAdmission'

/** Mute or unmute a room's notifications (docs/PROTOCOL.md, "Notifications"): `{ room, muted }`. */
export default defineEventHandler(async (event) => {
  const admitted = await admitPushRequest(event)
  if ('refused' in admitted) return admitted.refused
  const body = await readJsonBody(event)
  if ('refused' in body) return body.refused
  const { room, muted } = body
  if (typeof room !== 'string' || !isValidRoom(room)) return refuse(event, 400, errorFrame('bad_request', 'Invalid room: 1-64 characters from [A-Za-z0-9._:-]'))
  if (typeof muted !== 'boolean') return refuse(event, 400, errorFrame('bad_request', 'muted must be true or false'))
  const { push, user } = admitted
  if (!await push.store.pushMute(user.id, room, muted, push.options.maxMutes)) return refuse(event, 400, errorFrame('bad_request', `At most ${push.options.maxMutes} muted rooms`))
  return { room, muted }
})
