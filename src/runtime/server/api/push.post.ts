// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
// The module picks ../utils/nitroV2.ts or ../utils/nitroV3.ts for the app's Nitro.
import { defineEventHandler, setResponseStatus } from '#nuxt-chat/nitro'
import { errorFrame } from '../../shared/protocol'
import { admitPushRequest, readJsonBody } from '../utils/pushRoutes'
import { parseSubscription } from '../push/pushSubscription'
import { refuse } from '../utils/httpAdmission'

/** Subscribe (docs/PROTOCOL.md, "Notifications"): the body is a browser's `PushSubscription` JSON. */
export default defineEventHandler(async (event) => {
  const admitted = await admitPushRequest(event)
  if ('refused' in admitted) return admitted.refused
  const body = await readJsonBody(event)
  if ('refused' in body) return body.refused
  const { push, user } = admitted
  const subscription = parseSubscription(body, push.options.insecureLoopback)
  if (typeof subscription === 'string') return refuse(event, 400, errorFrame('bad_request', subscription))
  await push.store.pushSubscribe({ uid: user.id, ...subscription, createdAt: Date.now() }, push.options.maxSubscriptions)
  setResponseStatus(event, 201)
  return { ok: true }
})
