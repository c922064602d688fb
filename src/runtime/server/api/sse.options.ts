import { defineEventHandler, setResponseStatus } from 'h3'
import { useRuntimeConfig } from 'nitropack/runtime'
import { errorFrame, type ChatErrorFrame } from '../../shared/protocol'
import type { ChatRuntimeConfig } from '../../types'
import { allowCrossOrigin, allowPreflight } from '../utils/cors'
import { refuse } from '../utils/httpAdmission'

/** CORS preflight of the SSE route: 204 for an origin in `allowedOrigins`, 403 for any other. */
export default defineEventHandler((event): ChatErrorFrame | null => {
  const config = useRuntimeConfig().chat as ChatRuntimeConfig
  if (!allowCrossOrigin(event, config)) return refuse(event, 403, errorFrame('forbidden', 'Origin not allowed'))
  allowPreflight(event)
  setResponseStatus(event, 204)
  return null
})
