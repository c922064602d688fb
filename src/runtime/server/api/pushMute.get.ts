// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
// The module picks ../utils/nitroV2.ts or ../utils/nitroV3.ts for the app's Nitro.
import { defineEventHandler } from '#nuxt-chat/nitro'
import { admitPushRequest } from '../utils/pushRoutes'

/** The rooms the person muted for notifications (docs/PROTOCOL.md, "Notifications"). */
export default defineEventHandler(async (event) => {
  const admitted = await admitPushRequest(event)
  if ('refused' in admitted) return admitted.refused
  return { rooms: await admitted.push.store.pushMutedRooms(admitted.user.id, admitted.push.options.maxMutes) }
})
