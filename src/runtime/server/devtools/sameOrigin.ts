import { getRequestHeader, setResponseStatus, type H3Event } from 'h3'
import { errorFrame, type ChatErrorFrame } from '../../shared/protocol'

/** Is `origin` (as a browser sends it) this server's own, by host? The scheme is the dev server's own business. */
function isOwnOrigin(origin: string, host: string | undefined): boolean {
  return Boolean(host) && URL.canParse(origin) && new URL(origin).host === host
}

/**
 * Refuse a request to a DevTools route (dev only) unless it comes from the tab itself, a page of
 * this origin: another site could otherwise post "as the server" with a plain form, or read every
 * room's traffic. A foreign `Origin` or a cross-site `Sec-Fetch-Site` is `403`; a GET may also be
 * a navigation the user typed (`Sec-Fetch-Site: none`); a POST must show it is same-origin and
 * carry `Content-Type: application/json` (`415` otherwise), which no form can send.
 * Returns the error frame to answer with (its status set), or `undefined` to serve the request.
 */
export function refuseForeignRequest(event: H3Event): ChatErrorFrame | undefined {
  const site = getRequestHeader(event, 'sec-fetch-site')
  const origin = getRequestHeader(event, 'origin')
  const host = getRequestHeader(event, 'host')
  const isPost = event.method === 'POST'
  const foreign = (origin !== undefined && !isOwnOrigin(origin, host)) || (site !== undefined && site !== 'same-origin' && (isPost || site !== 'none'))
  if (foreign || (isPost && site === undefined && origin === undefined)) {
    setResponseStatus(event, 403)
    return errorFrame('forbidden', 'The DevTools routes answer only the DevTools tab of this origin')
  }
  const contentType = getRequestHeader(event, 'content-type')?.split(';', 1)[0]!.trim().toLowerCase()
  if (isPost && contentType !== 'application/json') {
    setResponseStatus(event, 415)
    return errorFrame('bad_request', 'Expected Content-Type: application/json')
  }
  return undefined
}
