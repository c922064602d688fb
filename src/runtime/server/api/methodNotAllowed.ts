// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
// The module picks ../utils/nitroV2.ts or ../utils/nitroV3.ts for the app's Nitro.
import { defineEventHandler, useRuntimeConfig } from '#nuxt-chat/nitro'
import { errorFrame, type ChatErrorFrame } from '../../shared/protocol'
import type { ChatRuntimeConfig } from '../../types'
import { allowCrossOrigin } from '../utils/cors'
import { refuse } from '../utils/httpAdmission'
import { announceMethods } from '../utils/routeMethods'

/** A method a route of the module does not serve (docs/PROTOCOL.md, "Methods"): `405` with `Allow`, never the app's page. */
export default defineEventHandler((event): ChatErrorFrame => {
  // An allowed origin can read the refusal too.
  allowCrossOrigin(event, useRuntimeConfig().chat as ChatRuntimeConfig)
  const allow = announceMethods(event)
  return refuse(event, 405, errorFrame('bad_request', `${event.method} is not served here: ${allow}`))
})
