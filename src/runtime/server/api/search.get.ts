// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
// The module picks ../utils/nitroV2.ts or ../utils/nitroV3.ts for the app's Nitro.
import { defineEventHandler, requestOrigin, requestPath, setResponseHeader, useRuntimeConfig } from '#nuxt-chat/nitro'
import { errorFrame } from '../../shared/protocol'
import { parseSearchRequest } from '../../shared/search'
import type { ChatRuntimeConfig } from '../../types'
import { ChatRefusal, refusalCode } from '../utils/access'
import { ChatLimitRefusal, limitSubjectOf } from '../utils/chatLimits'
import { ConnectionHold, holdConnection } from '../utils/connectionCaps'
import { allowCrossOrigin } from '../utils/cors'
import { admitToChat, refuse, refuseLimited } from '../utils/httpAdmission'
import { chatLogger, useChatHub } from '../utils/useChatHub'

/** The search's own parameters: filters, not the admission's (`room` here names no room to enter). */
const SEARCH_PARAMETERS = ['q', 'room', 'author', 'before', 'after', 'cursor', 'limit']

/**
 * `GET <sseRoute>/search?q=…` (docs/PROTOCOL.md, "Search"): the person is admitted as a version 2
 * connection is, then searches the rooms they may read; `200` with the `search_results` frame as
 * JSON, or an `error` frame with its status.
 */
export default defineEventHandler(async (event) => {
  const config = useRuntimeConfig().chat as ChatRuntimeConfig
  allowCrossOrigin(event, config)
  const url = new URL(requestPath(event), 'http://search.invalid')
  const fields = Object.fromEntries(SEARCH_PARAMETERS.filter(name => url.searchParams.has(name)).map(name => [name, url.searchParams.get(name)]))
  const request = parseSearchRequest(fields)
  if (typeof request === 'string') return refuse(event, 400, errorFrame('bad_request', request))
  for (const name of SEARCH_PARAMETERS) url.searchParams.delete(name)
  let admission
  try {
    const { headers, socket } = requestOrigin(event)
    admission = await admitToChat(`${url.pathname}${url.search}`, headers, socket, 2)
  }
  catch (error) {
    if (error instanceof ChatLimitRefusal) return refuseLimited(event, error.refusal)
    if (!(error instanceof ChatRefusal)) chatLogger.error('[nuxt-chat] admission failed', error)
    const status = error instanceof ChatRefusal ? error.status : 500
    return refuse(event, status, errorFrame(refusalCode(status), error instanceof ChatRefusal ? error.message : 'Internal error'))
  }
  const subject = limitSubjectOf(admission)
  // A search being read holds a connection slot, as a history page does.
  const hold = holdConnection(subject, config)
  if (!(hold instanceof ConnectionHold)) return refuseLimited(event, hold)
  try {
    const answer = await useChatHub().search(request, admission.user, { subject, ...(admission.data && { data: admission.data }) })
    if ('error' in answer) return refuse(event, answer.status, answer.error)
    setResponseHeader(event, 'content-type', 'application/json')
    return answer.text
  }
  finally {
    hold.release()
  }
})
