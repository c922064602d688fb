// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
// The module picks ../utils/nitroV2.ts or ../utils/nitroV3.ts for the app's Nitro.
import { defineEventHandler, setResponseStatus, useRuntimeConfig } from '#nuxt-chat/nitro'
import { errorFrame, type ChatErrorFrame } from '../../shared/protocol'
import type { ChatRuntimeConfig } from '../../types'
import { allowCrossOrigin, allowPreflight } from '../utils/cors'
import { refuse } from '../utils/httpAdmission'

/** CORS preflight of the module's HTTP routes (SSE and POST, files, push): 204 for an origin in `allowedOrigins`, 403 for any other. */
export default defineEventHandler((event): ChatErrorFrame | null => {
  const config = useRuntimeConfig().chat as ChatRuntimeConfig
  if (!allowCrossOrigin(event, config)) return refuse(event, 403, errorFrame('forbidden', 'Origin not allowed'))
  allowPreflight(event)
  setResponseStatus(event, 204)
  return null
})
