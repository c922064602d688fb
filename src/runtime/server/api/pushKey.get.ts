// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
// The module picks ../utils/nitroV2.ts or ../utils/nitroV3.ts for the app's Nitro.
import { defineEventHandler } from '#nuxt-chat/nitro'
import { errorFrame } from '../../shared/protocol'
import { refuse } from '../utils/httpAdmission'
import { useChatPush } from '../utils/useChatHub'

/** The VAPID public key a browser subscribes with (docs/PROTOCOL.md, "Notifications"). */
export default defineEventHandler((event) => {
  const push = useChatPush()
  if (!push?.enabled) return refuse(event, 503, errorFrame('unavailable', 'Push notifications are not configured on this server'))
  return { publicKey: push.options.vapidPublicKey }
})
