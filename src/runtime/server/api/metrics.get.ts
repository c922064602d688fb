// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
import { createHash, timingSafeEqual } from 'node:crypto'
// The module picks ../utils/nitroV2.ts or ../utils/nitroV3.ts for the app's Nitro.
import { defineEventHandler, getRequestHeader, setResponseHeader, setResponseStatus, useRuntimeConfig } from '#nuxt-chat/nitro'
import type { ChatRuntimeConfig } from '../../types'
import { renderPrometheus } from '../utils/chatMetrics'
import { useChatHub } from '../utils/useChatHub'

// Hashes have one length, so comparing them takes the same time whatever the token is.
const digest = (text: string) => createHash('sha256').update(text).digest()

/** This instance's metrics in Prometheus text format; with a `token`, only for `Authorization: Bearer <token>`. */
export default defineEventHandler((event) => {
  const { metrics } = useRuntimeConfig().chat as ChatRuntimeConfig
  const token = typeof metrics === 'object' ? metrics.token : ''
  if (token && !timingSafeEqual(digest(getRequestHeader(event, 'authorization') ?? ''), digest(`Bearer ${token}`))) {
    setResponseStatus(event, 401)
    setResponseHeader(event, 'www-authenticate', 'Bearer')
    return 'Unauthorized\n'
  }
  // The hub starts with the server; reading it here makes sure the counters are wired.
  useChatHub()
  setResponseHeader(event, 'content-type', 'text/plain; version=0.0.4; charset=utf-8')
  setResponseHeader(event, 'cache-control', 'no-store')
  return renderPrometheus()
})
