// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
// The module picks ../utils/nitroV2.ts or ../utils/nitroV3.ts for the app's Nitro.
import { defineEventHandler, setResponseHeader } from '#nuxt-chat/nitro'
import { PUSH_WORKER } from '../push/pushWorker'

/** The service worker that shows notifications (docs/PROTOCOL.md, "Notifications"); allowed the whole site as its scope. */
export default defineEventHandler((event) => {
  setResponseHeader(event, 'content-type', 'text/javascript; charset=utf-8')
  setResponseHeader(event, 'service-worker-allowed', '/')
  setResponseHeader(event, 'cache-control', 'no-cache')
  return PUSH_WORKER
})
