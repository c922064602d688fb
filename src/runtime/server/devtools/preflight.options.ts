import { defineEventHandler, setResponseStatus } from 'h3'
import type { ChatErrorFrame } from '../../shared/protocol'
import { announceMethods } from '../utils/routeMethods'
import { refuseForeignRequest } from './sameOrigin'

/**
 * `OPTIONS` of a DevTools route (dev only; docs/PROTOCOL.md, "Methods"): `204` with `Allow`, and
 * no CORS grant: the tab is a page of this origin, so a preflight from any other is `403`.
 */
export default defineEventHandler((event): ChatErrorFrame | null => {
  announceMethods(event)
  const refused = refuseForeignRequest(event)
  if (refused) return refused
  setResponseStatus(event, 204)
  return null
})
