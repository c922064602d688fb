// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
// The module picks ../utils/nitroV2.ts or ../utils/nitroV3.ts for the app's Nitro.
import { defineEventHandler, getRequestHeader, setResponseStatus, useRuntimeConfig } from '#nuxt-chat/nitro'
import { errorFrame, type ChatErrorFrame } from '../../shared/protocol'
import type { ChatRuntimeConfig } from '../../types'
import { allowCrossOrigin, allowPreflight } from '../utils/cors'
import { refuse } from '../utils/httpAdmission'
import { announceMethods } from '../utils/routeMethods'

/**
 * CORS preflight of every HTTP route of the module (docs/PROTOCOL.md, "Methods"): 204 for an origin in `allowedOrigins`,
 * allowing the route's own methods, 403 for any other; without an `Origin` (no preflight: a client asking what the route
 * serves) 204. Each with `Allow`.
 */
export default defineEventHandler((event): ChatErrorFrame | null => {
  const config = useRuntimeConfig().chat as ChatRuntimeConfig
  // One list for both headers (src/routes.ts): they cannot disagree.
  const methods = announceMethods(event)
  const allowed = allowCrossOrigin(event, config)
  if (!allowed && getRequestHeader(event, 'origin')) return refuse(event, 403, errorFrame('forbidden', 'Origin not allowed'))
  if (allowed) allowPreflight(event, methods)
  setResponseStatus(event, 204)
  return null
})
