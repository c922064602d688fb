import { defineEventHandler, setResponseHeader } from 'h3'
import { refuseForeignRequest } from './sameOrigin'
import { devtoolsPage } from './page'

/** The DevTools tab (dev only): one self-contained page, framed by Nuxt DevTools. */
export default defineEventHandler((event) => {
  const refused = refuseForeignRequest(event)
  if (refused) return refused
  setResponseHeader(event, 'content-type', 'text/html; charset=utf-8')
  setResponseHeader(event, 'cache-control', 'no-store')
  return devtoolsPage
})
