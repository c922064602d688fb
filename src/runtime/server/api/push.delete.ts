// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
// The module picks ../utils/nitroV2.ts or ../utils/nitroV3.ts for the app's Nitro.
import { defineEventHandler } from '#nuxt-chat/nitro'
import { errorFrame } from '../../shared/protocol'
import { admitPushRequest, readJsonBody } from '../utils/pushRoutes'
import { MAX_ENDPOINT_LENGTH } from '../push/pushSubscription'
import { refuse } from '../utils/httpAdmission'

/** Unsubscribe (docs/PROTOCOL.md, "Notifications"): `{ endpoint }`, one of the person's own. */
export default defineEventHandler(async (event) => {
  const admitted = await admitPushRequest(event)
  if ('refused' in admitted) return admitted.refused
  const body = await readJsonBody(event)
  if ('refused' in body) return body.refused
  const { endpoint } = body
  if (typeof endpoint !== 'string' || !endpoint || endpoint.length > MAX_ENDPOINT_LENGTH) return refuse(event, 400, errorFrame('bad_request', `endpoint must be a string of 1-${MAX_ENDPOINT_LENGTH} characters`))
  return { removed: await admitted.push.store.pushUnsubscribe(admitted.user.id, endpoint) }
})
