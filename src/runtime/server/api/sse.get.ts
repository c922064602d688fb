// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
// The module picks ../utils/nitroV2.ts or ../utils/nitroV3.ts for the app's Nitro.
import { answerHeadersOnly, clientGone, defineEventHandler, getQuery, openEventStream, setResponseHeader } from '#nuxt-chat/nitro'
import { errorFrame, parseHistoryRequest, parseIdText } from '../../shared/protocol'
import { limitSubjectOf } from '../utils/chatLimits'
import { ConnectionHold, holdConnection } from '../utils/connectionCaps'
import { admitHttpRequest, refuse, refuseLimited } from '../utils/httpAdmission'
import { countSlowReaderDrop } from '../utils/chatMetrics'
import { isOverBudget, queuedWritesAfter } from '../utils/outputBudget'
import type { Member } from '../utils/roomDelivery'
import type { RoomFrame } from '../transport/frame'
import type { RoomsWatcher } from '../utils/readState'
import { trackEventStream } from '../utils/shutdown'
import { chatLogger, useChatHub } from '../utils/useChatHub'
import { asksVersion2, openRoomsStream } from '../utils/sseRooms'

const STREAM_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  'connection': 'keep-alive',
  // nginx: do not buffer the stream.
  'x-accel-buffering': 'no',
}

/**
 * The SSE stream of a room: `retry`, welcome, presence, the replay after `Last-Event-ID`
 * (or `?since=`), then live frames, with a `: ping` comment every `sse.keepAlive` ms.
 * Each frame's text is made once per room and written to every member's stream.
 * `HEAD` is admitted the same way and answers the stream's headers only.
 */
export default defineEventHandler(async (event) => {
  const query = getQuery(event)
  // `?before=` (or `?history`): a page of older history as JSON, for clients on SSE (docs/PROTOCOL.md, "Older history"); any other GET (or its HEAD) of a room joins it.
  const historyPage = query.before !== undefined || query.history !== undefined
  const admitted = await admitHttpRequest(event, asksVersion2(event) ? 2 : undefined, !historyPage)
  if ('refused' in admitted) return admitted.refused
  const { admission, config } = admitted
  if (event.method === 'HEAD') return answerHeadersOnly(event, STREAM_HEADERS)
  // `?v=2`: one stream for every room of the tab (docs/PROTOCOL.md, "Version 2 over SSE").
  if (admission.version === 2) return clientGone(event) ? undefined : openRoomsStream(event, admission, config)
  const subject = limitSubjectOf(admission)
  if (!admission.rooms && historyPage) {
    const request = parseHistoryRequest(query.before, query.limit)
    if (typeof request === 'string') return refuse(event, 400, errorFrame('bad_request', request))
    // `?thread=N`: that thread's replies (docs/PROTOCOL.md, "Threads").
    // An id in a query string as every other (docs/PROTOCOL.md, "Ids and cursors"): decimal digits, not whatever Number() reads.
    const thread = typeof query.thread === 'string' ? parseIdText(query.thread) : undefined
    if (query.thread !== undefined && !thread) return refuse(event, 400, errorFrame('bad_request', '`thread` must be a message id'))
    // A page being read holds a connection slot, as an open POST does.
    const hold = holdConnection(subject, config)
    if (!(hold instanceof ConnectionHold)) return refuseLimited(event, hold)
    try {
      const page = await useChatHub().limitedHistoryPage(subject, admission.room, request.before, request.limit, thread)
      if ('refused' in page) return refuseLimited(event, page.refused)
      setResponseHeader(event, 'content-type', 'application/json')
      return page.text
    }
    catch (error) {
      chatLogger.error('[nuxt-chat] could not read history', error)
      return refuse(event, 503, errorFrame('unavailable', 'History is unavailable right now'))
    }
    finally {
      hold.release()
    }
  }
  // Gone while the identify hook ran: its 'close' has passed, nothing would ever clean up.
  if (clientGone(event)) return
  // A rooms list's first list is history served: refused while the byte budget is spent (a join's replay: in the admission, with its token of `joins`).
  const spent = admission.rooms ? useChatHub().replayRefusal(subject) : undefined
  if (spent) return refuseLimited(event, spent)
  const hold = holdConnection(subject, config)
  if (!(hold instanceof ConnectionHold)) return refuseLimited(event, hold)

  const stream = trackEventStream(openEventStream(event, STREAM_HEADERS))
  stream.write(`retry: ${config.sse.retry}\n\n`)

  const hub = useChatHub()
  let queuedWrites = 0
  const member: Member & RoomsWatcher = {
    user: admission.user,
    sender: admission.sender,
    request: admission.request,
    data: admission.data,
    ip: admission.ip,
    takesDeltas: admission.deltas === true,
    write(frame: RoomFrame) {
      if (stream.closed()) return
      stream.write(frame.sse)
      const queued = stream.queuedBytes()
      queuedWrites = queuedWritesAfter(queuedWrites, queued)
      // A reader this far behind would only grow our memory: drop it; EventSource resumes by id.
      if (isOverBudget(queued, queuedWrites, config.maxBufferedBytes)) {
        countSlowReaderDrop()
        stream.destroy()
      }
    },
    close: () => stream.end(),
  }
  const keepAlive = setInterval(() => stream.write(': ping\n\n'), config.sse.keepAlive)
  stream.onClose(() => {
    clearInterval(keepAlive)
    hold.release()
    if (admission.rooms) hub.unwatchRooms(member)
    else hub.leave(admission.room, member)
  })
  // `?rooms`: the user's rooms list instead of a room (docs/PROTOCOL.md, "Rooms list").
  if (admission.rooms) {
    await hub.watchRooms(member, subject).catch((error) => {
      chatLogger.error('[nuxt-chat] could not read a rooms list', error)
      stream.end()
    })
    return stream.answer()
  }
  await hub.join(admission.room, member, admission.since, admission.nameRefused, admission.createsReadPosition, admission.admittedAt)
  return stream.answer()
})
