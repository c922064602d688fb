import { defineEventHandler, setResponseHeader } from 'h3'
import { refuseForeignRequest } from './sameOrigin'

/** A speech bubble in the DevTools sidebar's grey (served locally: the panel must work offline). */
const ICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32" fill="none" stroke="#888" stroke-width="2.4" stroke-linejoin="round"><path d="M5 6h22v15H14l-6 5v-5H5z"/><path d="M10 12h12M10 16h8" stroke-linecap="round"/></svg>'

/** The DevTools tab's icon (dev only). */
export default defineEventHandler((event) => {
  const refused = refuseForeignRequest(event)
  if (refused) return refused
  setResponseHeader(event, 'content-type', 'image/svg+xml')
  setResponseHeader(event, 'cache-control', 'no-store')
  return ICON
})
