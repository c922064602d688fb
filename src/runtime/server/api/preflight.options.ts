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
 * CORS preflight of the module's HTTP routes (SSE and POST, files, push): 204 for an origin in `allowedOrigins`, 403 for any
 * other; without an `Origin` (no preflight: a client asking what the route serves) 204. Each with `Allow`.
 */
export default defineEventHandler((event): ChatErrorFrame | null => {
  const config = useRuntimeConfig().chat as ChatRuntimeConfig
  announceMethods(event)
  const allowed = allowCrossOrigin(event, config)
  if (!allowed && getRequestHeader(event, 'origin')) return refuse(event, 403, errorFrame('forbidden', 'Origin not allowed'))
  if (allowed) allowPreflight(event)
  setResponseStatus(event, 204)
  return null
})
